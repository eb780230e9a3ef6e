//! MAC spoof checking for bridge ports (Go's `pkg/link` SpoofChecker), with
//! the reference's nftables table, chain and comment names.
//!
//! INTERFACE ONLY until the nf_tables work lands (issue 13): setup refuses
//! (code 2) instead of pretending; teardown and GC have nothing of ours to
//! remove.

use crate::cni::types::Attachment;
use crate::cni::CniError;

/// Only frames from `container_mac` may enter the bridge through
/// `host_ifname` (attachment `container_id`/`ifname`).
pub fn setup(
    _host_ifname: &str,
    _container_mac: &str,
    _container_id: &str,
    _ifname: &str,
) -> Result<(), CniError> {
    Err(CniError::unsupported(
        "macspoofchk: the nftables backend is not available in this build yet",
    ))
}

/// Remove the attachment's rules and chains; works when the interfaces are gone.
pub fn teardown(_container_id: &str, _ifname: &str) -> Result<(), CniError> {
    Ok(())
}

/// Remove state of `bridge`'s attachments that are not in `valid`.
pub fn gc(_bridge: &str, _valid: &[Attachment]) -> Result<(), CniError> {
    Ok(())
}
