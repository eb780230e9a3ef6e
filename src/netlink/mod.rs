//! A synchronous, minimal netlink layer on neli's blocking socket.
//!
//! Layer 4: imports nothing from the rest of cnibox. Message bodies are
//! encoded by us (golden-byte tested); neli provides the socket, framing of
//! single requests and parsing of replies (ACKs, errors with extended ACK).

pub mod addr;
pub mod attr;
pub mod bridge;
mod close;
pub mod consts;
pub mod ctnetlink;
pub mod link;
pub mod link_ext;
pub mod neigh;
pub mod nftables;
pub mod nsid;
pub mod route;
pub mod rule;
pub mod socket;
pub mod sublink;
pub mod tc;
#[cfg(test)]
pub mod testns;
pub mod tun;
pub mod vrf;

pub use socket::{Netlink, NlError};
