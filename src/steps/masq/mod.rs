//! IP masquerade for a container's addresses (Go's `ip.SetupIPMasqForNetworks`
//! and friends), with the reference's table, chain and comment names so rules
//! written by the Go plugins are found by ours and the reverse.
//!
//! Default backend: nf_tables spoken over netlink ([`nft`]), no binary.
//! `ipMasqBackend: "iptables"` runs the iptables/ip6tables binaries
//! ([`iptables`]), only when asked. Teardown always cleans both: nf_tables
//! rules by comment, and the iptables chain when an iptables binary exists
//! (a node migrating from the Go plugins).
//!
//! Everything runs in the calling thread's network namespace (the plugin's
//! host netns).

pub mod iptables;
pub mod nft;

use crate::cni::types::Attachment;
use crate::cni::CniError;
use crate::netlink::Netlink;
use crate::steps::undo::Undo;
use ipnet::IpNet;
use sha2::{Digest, Sha512};

/// Which backend a config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

fn parse_backend(backend: Option<&str>) -> Result<Backend, CniError> {
    match backend {
        None | Some("") | Some("nftables") => Ok(Backend::Nftables),
        Some("iptables") => Ok(Backend::Iptables),
        Some(other) => Err(CniError::config(format!(
            "ipMasqBackend: unknown backend {other:?} (want \"nftables\" or \"iptables\")"
        ))),
    }
}

/// Check `ipMasqBackend` before any change: absent, "nftables" or
/// "iptables" (the latter only with an iptables binary in PATH); else code 7
/// naming the field.
pub fn validate_backend(backend: Option<&str>) -> Result<(), CniError> {
    // Only look for the binary when it is asked for (a PATH walk per ADD
    // otherwise).
    let want_iptables = parse_backend(backend)? == Backend::Iptables;
    check_backend(
        backend,
        want_iptables && iptables::find("iptables").is_some(),
    )
}

fn check_backend(backend: Option<&str>, have_iptables: bool) -> Result<(), CniError> {
    if parse_backend(backend)? == Backend::Iptables && !have_iptables {
        return Err(CniError::config(
            "ipMasqBackend: \"iptables\" requested, but no iptables binary was found in PATH",
        ));
    }
    Ok(())
}

/// Masquerade traffic from each of `ips` (address with its subnet prefix) to
/// anything outside its subnet, for attachment (`container_id`, `ifname`) of
/// `network`. One transaction; a repeated ADD replaces the attachment's
/// rules.
pub fn setup(
    backend: Option<&str>,
    ips: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    match parse_backend(backend)? {
        Backend::Nftables => nft::setup(ips, network, ifname, container_id),
        Backend::Iptables => iptables::setup(ips, network, container_id),
    }
}

/// [`setup`], with its [`teardown`] queued on `undo` first: a failed ADD
/// removes whatever part of the rules went in.
pub fn setup_undoable<'a>(
    undo: &mut Undo<'a>,
    backend: Option<&str>,
    ips: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    let (net, ifn, id) = (
        network.to_string(),
        ifname.to_string(),
        container_id.to_string(),
    );
    undo.push(move || {
        let _ = teardown(&net, &ifn, &id);
    });
    setup(backend, ips, network, ifname, container_id)
}

/// Remove the attachment's masquerade rules in every backend, found by name
/// and comment, never by looking at the interface (which may be gone).
/// Tables and chains shared by attachments stay.
pub fn teardown(network: &str, ifname: &str, container_id: &str) -> Result<(), CniError> {
    teardown_on(netfilter_socket()?.as_ref(), network, ifname, container_id)
}

/// A netfilter socket, or `None` when the kernel has no nf_tables (nothing
/// of ours can exist then).
pub fn netfilter_socket() -> Result<Option<Netlink>, CniError> {
    Netlink::netfilter_if_supported()
        .map_err(|e| CniError::internal(format!("ipMasq (nftables): open netfilter socket: {e}")))
}

/// [`teardown`] on a netfilter socket the caller owns. Closing such a
/// socket right after rules were deleted makes the kernel finish its
/// deferred cleanup first (an RCU grace period, ~10 ms here); a DEL keeps
/// the socket open while it deletes the veth, which waits for one anyway.
pub fn teardown_on(
    nl: Option<&Netlink>,
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    // iptables first: when its chain exists the binary runs, with sockets
    // of its own, which must not close after our rule deletions (see above).
    let ipt = iptables::teardown(nl, network, container_id);
    let nft = match nl {
        Some(nl) => nft::teardown_with(nl, network, ifname, container_id),
        None => Ok(()),
    };
    CniError::combine(nft.err().into_iter().chain(ipt.err()).collect())
}

/// Remove masquerade rules of `network` whose attachment is not in `valid`
/// (nf_tables; the iptables backend has no per-network marker to go by, as
/// in the reference).
pub fn gc(network: &str, valid: &[Attachment]) -> Result<(), CniError> {
    nft::gc(network, valid)
}

/// The first `n` hex characters of SHA-512(`s`) (Go's
/// `utils.MustFormatHashWithPrefix(n, "", s)`).
pub(crate) fn sha512_hex(s: &str, n: usize) -> String {
    use std::fmt::Write;
    let digest = Sha512::digest(s.as_bytes());
    let mut out = String::with_capacity(128);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names() {
        assert!(validate_backend(None).is_ok());
        assert!(validate_backend(Some("nftables")).is_ok());
        let e = validate_backend(Some("ebtables")).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("ipMasqBackend"), "{}", e.msg);
    }

    #[test]
    fn iptables_backend_without_binary_is_code_7_naming_the_field() {
        let e = check_backend(Some("iptables"), false).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("ipMasqBackend"), "{}", e.msg);
        assert!(check_backend(Some("iptables"), true).is_ok());
        assert!(check_backend(None, false).is_ok());
        assert!(iptables::find_in("iptables", Some(std::ffi::OsStr::new(""))).is_none());
    }

    #[test]
    fn hashes_match_go() {
        // From the Go fixture's comment and Go's utils tests.
        assert_eq!(sha512_hex("fixture", 16), "94e950eda4a870e6");
        assert_eq!(sha512_hex("eth0:fixture0001", 16), "9e3ad078d934914f");
        assert_eq!(sha512_hex("test1234", 24), "2bbe0c48b91a7d1b8a6753a8");
    }
}
