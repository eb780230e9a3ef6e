//! Configure a container interface from a result (Go's
//! `ipam.ConfigureIface`): IPv6 enabled when needed, addresses, link up, DAD
//! settled only when it must be, routes appended (ECMP) with the family's
//! gateway when a route has none.

use super::netns::NetNs;
use super::nlbatch::Batch;
use super::sysctl;
use crate::cni::result::CniResult;
use crate::cni::CniError;
use crate::netlink::consts::{AF_INET6, IFA_F_NODAD};
use crate::netlink::link::Link;
use crate::netlink::route::{Route, RouteMode};
use crate::netlink::Netlink;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct ConfigureOptions {
    /// Add addresses with IFA_F_NODAD (no DAD, so nothing to wait for).
    pub nodad: bool,
    /// Best-effort sysctls (path, value) written inside the namespace before
    /// the addresses, in the same trip into it (bridge's DAD and
    /// arp_notify settings; failures are ignored, as the reference does).
    pub sysctls: Vec<(String, String)>,
}

/// How long to wait for IPv6 DAD, polling every 50 ms (Go's values).
const DAD_TIMEOUT: Duration = Duration::from_secs(5);
const DAD_POLL: Duration = Duration::from_millis(50);

/// The first gateway of each family among the result's addresses.
pub fn family_gateways(result: &CniResult) -> (Option<IpAddr>, Option<IpAddr>) {
    let v4 = result
        .ips
        .iter()
        .filter(|ip| ip.is_v4())
        .find_map(|ip| ip.gateway);
    let v6 = result
        .ips
        .iter()
        .filter(|ip| !ip.is_v4())
        .find_map(|ip| ip.gateway);
    (v4, v6)
}

/// Apply `result` to `link` inside `ns` (`nl` is a socket in `ns`).
/// `routes_first` are added after the link is up and before the result's
/// routes (ptp's gateway routes, which the result's routes go through);
/// `tail` runs last. Everything after the addresses goes to the kernel in
/// one batch (two when DAD must settle in between).
pub fn configure(
    ns: &NetNs,
    nl: &Netlink,
    link: &Link,
    result: &CniResult,
    opts: &ConfigureOptions,
    routes_first: &[Route],
    tail: Batch,
) -> Result<(), CniError> {
    if result.interfaces.is_empty() {
        return Err(CniError::internal(
            "failed to configure interface: result has no interfaces",
        ));
    }
    let mut mine = Vec::new();
    for ip in &result.ips {
        let Some(idx) = ip.interface else { continue };
        let named = usize::try_from(idx)
            .ok()
            .and_then(|i| result.interfaces.get(i))
            .map(|i| i.name.as_str());
        if named != Some(link.name.as_str()) {
            return Err(CniError::internal(format!(
                "failed to add IP addr {} to {:?}: invalid interface index",
                ip.address, link.name
            )));
        }
        mine.push(ip);
    }

    let want_v6 = mine.iter().any(|ip| !ip.is_v4());
    if want_v6 || !opts.sysctls.is_empty() {
        let name = link.name.clone();
        let extra = &opts.sysctls;
        ns.run(move || -> std::io::Result<()> {
            // Settings of the interface just created: write, no need to read.
            for (path, value) in extra {
                let _ = sysctl::write(path, value);
            }
            if want_v6 {
                enable_ipv6(&name)?;
            }
            Ok(())
        })?
        .map_err(|e| CniError::internal(format!("failed to enable IPv6 on {}: {e}", link.name)))?;
    }

    let mut batch = Batch::new();
    for ip in &mine {
        // NODAD only means something for IPv6.
        let f = if opts.nodad && !ip.is_v4() {
            IFA_F_NODAD
        } else {
            0
        };
        batch.addr_add(link.index, &ip.address, f, false);
    }
    batch.link_up(link.index);

    let (v4gw, v6gw) = family_gateways(result);
    if v6gw.is_some() && !opts.nodad {
        std::mem::take(&mut batch).run(nl)?;
        settle_dad(nl, link)?;
    }

    for r in routes_first {
        batch.route_add(r, RouteMode::Append, true);
    }
    for r in &result.routes {
        let gw = r.gw.or(if r.dst.addr().is_ipv4() { v4gw } else { v6gw });
        let mut route = Route::new(r.dst.trunc(), link.index);
        route.gw = gw;
        route.priority = u32::try_from(r.priority).map_err(|_| {
            CniError::config(format!("routes: priority {} out of range", r.priority))
        })?;
        if let Some(t) = r.table {
            route.table = u32::try_from(t)
                .map_err(|_| CniError::config(format!("routes: table {t} out of range")))?;
        }
        if let Some(s) = r.scope {
            route.scope = u8::try_from(s)
                .map_err(|_| CniError::config(format!("routes: scope {s} out of range")))?;
        }
        batch.route_add(&route, RouteMode::Append, false);
    }
    batch.append(tail);
    batch
        .run(nl)
        .map_err(|e| e.context(format!("failed to configure {:?}", link.name)))
}

/// `disable_ipv6=0` on `lo` and the interface if needed, and
/// `keep_addr_on_down=1`, from inside the namespace.
fn enable_ipv6(ifname: &str) -> std::io::Result<()> {
    for dev in ["lo", ifname] {
        let path = sysctl::iface_path("ipv6", dev, "disable_ipv6");
        if let Err(e) = sysctl::ensure(&path, "0") {
            eprintln!("cnibox: failed to enable IPv6 on {dev}: {e}");
        }
    }
    sysctl::ensure(
        &sysctl::iface_path("ipv6", ifname, "keep_addr_on_down"),
        "1",
    )
}

/// Wait until no IPv6 address of the link is tentative (Go's
/// `SettleAddresses`). A failed DAD is an error; a timeout is one only if
/// the link is operationally up.
pub fn settle_dad(nl: &Netlink, link: &Link) -> Result<(), CniError> {
    // Without carrier (a tap nobody has opened) the kernel holds DAD until
    // the carrier comes: nothing to wait for now (Go sits out its timeout).
    let carrier = nl
        .link_by_index(link.index)?
        .is_some_and(|l| l.flags & crate::netlink::consts::IFF_LOWER_UP != 0);
    if !carrier {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        let addrs = nl.addrs(link.index, AF_INET6)?;
        if let Some(bad) = addrs.iter().find(|a| a.dad_failed()) {
            return Err(CniError::internal(format!(
                "link {} has address {} in DADFAILED state",
                link.name, bad.net
            )));
        }
        if !addrs.iter().any(|a| a.is_tentative()) {
            return Ok(());
        }
        if start.elapsed() >= DAD_TIMEOUT {
            let oper_up = nl
                .link_by_index(link.index)?
                .map(|l| l.oper_state == crate::netlink::consts::IF_OPER_UP)
                .unwrap_or(false);
            if oper_up {
                return Err(CniError::internal(format!(
                    "link {} still has tentative addresses after {DAD_TIMEOUT:?}",
                    link.name
                )));
            }
            return Ok(());
        }
        std::thread::sleep(DAD_POLL);
    }
}
