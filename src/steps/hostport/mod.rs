//! Host port forwarding (the portmap plugin's steps): validated mappings,
//! the nf_tables rules ([`nft`]), `route_localnet` on the interface that
//! routes to the container, and the UDP conntrack flush.

pub mod iptables;
pub mod nft;

use crate::cni::CniError;
use crate::netlink::ctnetlink;
use crate::netlink::nftables::consts::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::netlink::Netlink;
use crate::steps::sysctl;
use std::net::IpAddr;

/// One validated port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub host_port: u16,
    pub container_port: u16,
    /// IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP.
    pub protocol: u8,
    pub host_ip: Option<IpAddr>,
}

/// The plugin options the rules depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub snat: bool,
    pub masq_all: bool,
}

/// `tcp`, `udp` or `sctp` in any case (Go passes the string to `nft`
/// verbatim, which refuses anything but lower case).
pub fn parse_protocol(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Some(IPPROTO_TCP),
        "udp" => Some(IPPROTO_UDP),
        "sctp" => Some(IPPROTO_SCTP),
        _ => None,
    }
}

/// Set `net.ipv4.conf.<if>.route_localnet=1` on the interface the main
/// table routes `cip` through (the bridge, usually), so that traffic to
/// 127.0.0.1:<hostPort> can be DNATed to the container. Never reset, as in
/// the reference (other containers behind the interface rely on it).
pub fn enable_route_localnet(cip: &IpAddr) -> Result<(), CniError> {
    let nl = Netlink::route()?;
    let family = if cip.is_ipv4() { 2 } else { 10 };
    let best = nl
        .routes(family)?
        .into_iter()
        .filter(|r| r.oif != 0 && r.table_or_main() == 254 && r.dst.contains(cip))
        .max_by_key(|r| r.dst.prefix_len());
    // No route: nothing routes to the container through this node (the
    // reference skips the setting then too).
    let Some(route) = best else {
        return Ok(());
    };
    let link = nl.link_by_index(route.oif)?.ok_or_else(|| {
        CniError::internal(format!(
            "portmap: interface {} routing to {cip} is gone",
            route.oif
        ))
    })?;
    let path = sysctl::iface_path("ipv4", &link.name, "route_localnet");
    sysctl::ensure(&path, "1")
        .map_err(|e| CniError::internal(format!("portmap: set route_localnet: {e}")))
}

/// Delete the UDP conntrack entries whose original destination port is one
/// of the UDP host ports (all addresses, both families), so that a flow
/// that started before the mapping existed is NATed from its next packet
/// on. Failures are returned for the caller to log or ignore, as the
/// reference only logs them.
pub fn flush_udp_conntrack(maps: &[Mapping]) -> Result<(), CniError> {
    let ports: Vec<u16> = maps
        .iter()
        .filter(|m| m.protocol == IPPROTO_UDP)
        .map(|m| m.host_port)
        .collect();
    if ports.is_empty() {
        return Ok(());
    }
    ctnetlink::delete_udp_by_dport(&ports)
        .map_err(|e| CniError::internal(format!("portmap: flush UDP conntrack: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_in_any_case() {
        assert_eq!(parse_protocol("TCP"), Some(6));
        assert_eq!(parse_protocol("Udp"), Some(17));
        assert_eq!(parse_protocol("sctp"), Some(132));
        for bad in ["", "icmp", "tcp ", "6"] {
            assert_eq!(parse_protocol(bad), None, "{bad:?}");
        }
    }
}
