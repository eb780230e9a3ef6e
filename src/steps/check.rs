//! CHECK helpers shared by the main plugins: find the container interface in
//! prevResult and verify the link, its MAC, its addresses and the routes
//! (Go's `ip.ValidateExpected*`).

use crate::cni::result::{CniResult, Interface, IpConfig};
use crate::cni::types::NetConf;
use crate::cni::{CniError, Request};
use crate::netlink::consts::{AF_INET, AF_INET6, RT_TABLE_MAIN};
use crate::netlink::link::Link;
use crate::netlink::Netlink;

/// The prevResult of a CHECK (required), parsed in the config's version.
pub fn prev_result(req: &Request, conf: &NetConf, plugin: &str) -> Result<CniResult, CniError> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config(format!("{plugin}: Required prevResult missing")))?;
    CniResult::parse_as(prev, &req.version).map_err(|e| e.context("failed to parse prevResult"))
}

/// The result interface named `ifname` in sandbox `netns`.
pub fn container_iface<'r>(
    result: &'r CniResult,
    ifname: &str,
    netns: &str,
) -> Result<(usize, &'r Interface), CniError> {
    let (idx, iface) = result
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == ifname)
        .ok_or_else(|| {
            CniError::internal(format!(
                "expected interface {ifname:?} not found in prevResult"
            ))
        })?;
    if iface.sandbox != netns {
        return Err(CniError::internal(format!(
            "Sandbox mismatch: expected {:?} found {:?}",
            netns, iface.sandbox
        )));
    }
    Ok((idx, iface))
}

/// The link exists, has the expected kind (if given) and the MAC of the
/// result.
pub fn link(nl: &Netlink, iface: &Interface, kind: Option<&str>) -> Result<Link, CniError> {
    let link = nl
        .link_by_name(&iface.name)?
        .ok_or_else(|| CniError::internal(format!("failed to find interface {:?}", iface.name)))?;
    if let Some(kind) = kind {
        if link.kind != kind {
            return Err(CniError::internal(format!(
                "interface {:?} is a {:?}, expected {kind}",
                iface.name, link.kind
            )));
        }
    }
    if !iface.mac.is_empty() && !link.mac_string().eq_ignore_ascii_case(&iface.mac) {
        return Err(CniError::internal(format!(
            "interface {}: MAC {} does not match {}",
            iface.name,
            link.mac_string(),
            iface.mac
        )));
    }
    Ok(link)
}

/// The container side of a CHECK: every address the result gives
/// interface `idx` is on `link` with its exact prefix and has a route to its
/// subnet, and every result route exists (matched by destination, table and
/// gateway). The routes are dumped once for both.
pub fn addresses_and_routes(
    nl: &Netlink,
    link: &Link,
    prev: &CniResult,
    idx: usize,
) -> Result<(), CniError> {
    let ips: Vec<&IpConfig> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface.map(|i| i as usize) == Some(idx))
        .collect();
    if ips.is_empty() && prev.routes.is_empty() {
        return Ok(());
    }
    let (v4, v6) = (nl.routes(AF_INET)?, nl.routes(AF_INET6)?);
    let routes_of = |v4_family: bool| if v4_family { &v4 } else { &v6 };
    if !ips.is_empty() {
        let have = nl.addrs(link.index, 0)?;
        for ip in &ips {
            if !have.iter().any(|a| a.net == ip.address) {
                return Err(CniError::internal(format!(
                    "Failed to match addr {} on interface {}",
                    ip.address, link.name
                )));
            }
            let subnet = ip.address.trunc();
            if !routes_of(ip.is_v4()).iter().any(|r| r.dst == subnet) {
                return Err(CniError::internal(format!(
                    "Failed to find a route to {subnet} for {}",
                    ip.address
                )));
            }
        }
    }
    for want in &prev.routes {
        // A table outside u32 cannot exist, so such a route is never found.
        let table = match want.table {
            Some(t) => u32::try_from(t).ok(),
            None => Some(RT_TABLE_MAIN as u32),
        };
        let found = routes_of(want.dst.addr().is_ipv4()).iter().any(|r| {
            r.dst == want.dst.trunc()
                && Some(r.table_or_main()) == table
                && (want.gw.is_none() || r.gw == want.gw)
        });
        if !found {
            return Err(CniError::internal(format!(
                "Failed to find route {}{}",
                want.dst,
                want.gw.map(|g| format!(" via {g}")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}
