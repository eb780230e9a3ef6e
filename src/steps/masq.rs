//! IP masquerade for a container's addresses (Go's `ip.SetupIPMasqForNetworks`
//! and friends), with the reference's table, chain and comment names so rules
//! written by the Go plugins are found by ours and the reverse.
//!
//! Runs in the calling thread's network namespace (the plugin's host netns).
//!
//! INTERFACE ONLY: the nf_tables-over-netlink implementation lands with the
//! firewall work (issue 13). Until then setup refuses (code 2) instead of
//! pretending, and teardown/GC have nothing of ours to remove.

use crate::cni::types::Attachment;
use crate::cni::CniError;
use ipnet::IpNet;

/// Check `ipMasqBackend` before any change: absent, "nftables" or
/// "iptables" (the latter only with an iptables binary); else code 7.
pub fn validate_backend(backend: Option<&str>) -> Result<(), CniError> {
    match backend {
        None | Some("") | Some("nftables") | Some("iptables") => Ok(()),
        Some(other) => Err(CniError::config(format!(
            "ipMasqBackend: unknown backend {other:?} (want \"nftables\" or \"iptables\")"
        ))),
    }
}

/// Masquerade traffic from each of `ips` (address with its subnet prefix) to
/// anything outside its subnet, for attachment (`container_id`, `ifname`) of
/// `network`.
pub fn setup(
    _backend: Option<&str>,
    _ips: &[IpNet],
    _network: &str,
    _ifname: &str,
    _container_id: &str,
) -> Result<(), CniError> {
    Err(CniError::unsupported(
        "ipMasq: the masquerade backend is not available in this build yet",
    ))
}

/// Remove the attachment's masquerade rules in every backend, found by name
/// and comment, never by looking at the interface (which may be gone).
/// `ips` may be empty.
pub fn teardown(
    _ips: &[IpNet],
    _network: &str,
    _ifname: &str,
    _container_id: &str,
) -> Result<(), CniError> {
    Ok(())
}

/// Remove masquerade rules of `network` whose attachment is not in `valid`.
pub fn gc(_network: &str, _valid: &[Attachment]) -> Result<(), CniError> {
    Ok(())
}
