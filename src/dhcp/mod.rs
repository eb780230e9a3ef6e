//! A DHCPv4 client: the message format and options (RFC 2131/2132, 3442)
//! and the exchanges a lease needs (DISCOVER/OFFER/REQUEST/ACK, renew,
//! rebind, release), over a UDP socket bound to one interface. Layer 4:
//! imports nothing from the rest of cnibox; the caller opens the socket in
//! the right network namespace and passes the interface's MAC.
//!
//! Own encoder rather than a crate: the subset needed is ~250 lines, while
//! dhcproto brings its own option tables, trust-dns types and a larger
//! binary for features (DHCPv6, relay, every option) unused here.

pub mod client;
pub mod message;

pub use client::{Client, Lease, Params};
