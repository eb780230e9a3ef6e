//! vrf: put the container interface into a VRF (reference:
//! plugins/meta/vrf). Chained after a main plugin; everything happens in
//! the container's namespace.
//!
//! ADD finds or creates the VRF (`table` 0: the lowest id no other VRF of
//! the namespace uses), enslaves `CNI_IFNAME` keeping its IPv6 addresses
//! (the kernel drops them on enslave) and moves its `main` routes to the
//! VRF table. Differences from the reference (tests named for them): DEL
//! succeeds whether the VRF, the interface or the namespace is gone, and a
//! failed ADD undoes the enslave and the VRF it created.

use crate::cni::result::CniResult;
use crate::cni::{CniError, Plugin, Request};
use crate::netlink::addr::Addr;
use crate::netlink::consts::{AF_INET6, AF_UNSPEC, IFA_F_NODAD, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
use crate::netlink::link::Link;
use crate::netlink::route::{Route, RouteMode};
use crate::netlink::socket::Req;
use crate::netlink::Netlink;
use crate::steps::netns::NetNs;
use crate::steps::undo::Undo;
use serde::Deserialize;
use std::time::Duration;

pub const PLUGIN: Plugin = Plugin {
    name: "vrf",
    // As the reference: from 0.3.1 on.
    versions: &["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    add,
    del,
    check,
    status,
    gc,
};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VrfConf {
    vrfname: String,
    table: u32,
}

fn load(req: &Request) -> Result<VrfConf, CniError> {
    let c: VrfConf = req.decode()?;
    if c.vrfname.is_empty() {
        return Err(CniError::config(
            "vrfname: configuration is expected to have a valid vrf name",
        ));
    }
    let bad = c.vrfname.len() > 15
        || c.vrfname == "."
        || c.vrfname == ".."
        || c.vrfname
            .chars()
            .any(|ch| ch == '/' || ch == ':' || ch.is_whitespace() || ch == '\0');
    if bad {
        return Err(CniError::config(format!(
            "vrfname: {:?} is not a valid interface name",
            c.vrfname
        )));
    }
    Ok(c)
}

fn prev_result(req: &Request) -> Result<CniResult, CniError> {
    let prev = req
        .net_conf()?
        .prev_result
        .ok_or_else(|| CniError::config("prevResult: missing prevResult from earlier plugin"))?;
    CniResult::parse_as(&prev, &req.version).map_err(|e| e.context("could not parse prevResult"))
}

/// The VRF named `name`: `Ok(None)` if no link has that name, an error if
/// one that is not a VRF has it. Returns the link and its table.
fn find_vrf(nl: &Netlink, name: &str) -> Result<Option<(Link, u32)>, CniError> {
    let found = nl
        .links_with_vrf_table()?
        .into_iter()
        .find(|(l, _)| l.name == name);
    match found {
        None => Ok(None),
        Some((l, Some(t))) => Ok(Some((l, t))),
        Some(_) => Err(CniError::internal(format!("Netlink {name} is not a VRF"))),
    }
}

/// The lowest table id >= 1 no VRF of the namespace uses.
fn free_table(nl: &Netlink) -> Result<u32, CniError> {
    let taken: Vec<u32> = nl
        .links_with_vrf_table()?
        .into_iter()
        .filter_map(|(_, t)| t)
        .collect();
    (1..u32::MAX)
        .find(|t| !taken.contains(t))
        .ok_or_else(|| CniError::internal("no free routing table id for a VRF"))
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = load(req)?;
    let mut prev = prev_result(req)?;
    let ns = NetNs::open(&req.netns)?;
    let nl = ns.netlink()?;
    enslave(&nl, &conf, &req.ifname).map_err(|e| e.context("cmdAdd failed"))?;
    prev.cni_version = req.version.clone();
    Ok(prev)
}

fn enslave(nl: &Netlink, conf: &VrfConf, ifname: &str) -> Result<(), CniError> {
    let mut undo = Undo::new();
    let (vrf, table) = match find_vrf(nl, &conf.vrfname)? {
        Some((l, t)) if conf.table != 0 && t != conf.table => {
            return Err(CniError::internal(format!(
                "VRF {} already exist with different routing table {t}",
                l.name
            )))
        }
        Some(found) => found,
        None => {
            let table = match conf.table {
                0 => free_table(nl)?,
                t => t,
            };
            nl.vrf_add(&conf.vrfname, table)?;
            let name = conf.vrfname.clone();
            undo.push(move || {
                let _ = nl.link_del_by_name(&name);
            });
            let l = nl
                .link_by_name(&conf.vrfname)?
                .ok_or_else(|| CniError::internal(format!("VRF {} vanished", conf.vrfname)))?;
            nl.link_set_up(l.index, true)?;
            (l, table)
        }
    };

    let link = nl
        .link_by_name(ifname)?
        .ok_or_else(|| CniError::internal(format!("could not get link by name {ifname}")))?;
    if link.master != 0 {
        let master = nl
            .link_by_index(link.master)?
            .map(|m| m.name)
            .unwrap_or_else(|| format!("#{}", link.master));
        return Err(CniError::internal(format!(
            "interface {ifname} has already a master set: {master}"
        )));
    }
    // What the enslave takes away: IPv6 addresses (unless keep_addr_on_down)
    // and the link's routes in main.
    let before: Vec<Addr> = global_v6(nl, link.index)?;
    let routes: Vec<Route> = nl
        .routes(AF_UNSPEC)?
        .into_iter()
        .filter(|r| {
            r.oif == link.index && r.table == RT_TABLE_MAIN as u32 && r.scope == RT_SCOPE_UNIVERSE
        })
        .collect();
    nl.run(&Req::link_set_master(link.index, vrf.index))?;
    let (index, saved, old_routes) = (link.index, before.clone(), routes.clone());
    undo.push(move || {
        let _ = nl.run(&Req::link_set_master(index, 0));
        restore(nl, index, &saved);
        for r in &old_routes {
            let _ = nl.run(&Req::route_add(r, RouteMode::Replace));
        }
    });

    let after = global_v6(nl, link.index)?;
    for a in before
        .iter()
        .filter(|a| !after.iter().any(|b| b.net == a.net))
    {
        nl.addr_add(link.index, &a.net, a.flags & IFA_F_NODAD)
            .map_err(|e| {
                CniError::from(e).context(format!(
                    "could not restore address {} to {ifname} @ {}",
                    a.net, vrf.name
                ))
            })?;
        wait_for_route(nl, table, a)?;
    }
    for r in &routes {
        let mut moved = r.clone();
        moved.table = table;
        nl.run(&Req::route_add(&moved, RouteMode::Replace))?;
    }
    undo.commit();
    Ok(())
}

/// The link's IPv6 addresses other than link-local ones.
fn global_v6(nl: &Netlink, index: u32) -> Result<Vec<Addr>, CniError> {
    Ok(nl
        .addrs(index, AF_INET6)?
        .into_iter()
        .filter(|a| match a.net.addr() {
            std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            _ => false,
        })
        .collect())
}

/// Re-add addresses after an enslave or a release (best effort: rollback).
fn restore(nl: &Netlink, index: u32, addrs: &[Addr]) {
    for a in addrs {
        let _ = nl.addr_add(index, &a.net, a.flags & IFA_F_NODAD);
    }
}

/// A re-added address is usable once its route is in the VRF table: poll,
/// 10 ms doubling, 9 tries (about 2.5 s), never a fixed sleep.
fn wait_for_route(nl: &Netlink, table: u32, a: &Addr) -> Result<(), CniError> {
    let mut delay = Duration::from_millis(10);
    for _ in 0..9 {
        if nl.table_has_route_to(table, a.net.addr())? {
            return Ok(());
        }
        std::thread::sleep(delay);
        delay *= 2;
    }
    Err(CniError::internal(format!(
        "the route of {} did not appear in VRF table {table}",
        a.net
    )))
}

/// DEL: release `CNI_IFNAME` from the VRF, and delete the VRF when nothing
/// is enslaved to it any more. Everything already gone is success.
fn del(req: &Request) -> Result<(), CniError> {
    let conf = load(req)?;
    let Some(ns) = NetNs::open_for_del(&req.netns)? else {
        return Ok(());
    };
    let nl = ns.netlink()?;
    // No VRF, or a link of that name that is not a VRF: nothing of ours.
    let vrf = nl
        .links_with_vrf_table()?
        .into_iter()
        .find(|(l, t)| l.name == conf.vrfname && t.is_some());
    let Some((vrf, _)) = vrf else {
        return Ok(());
    };
    if let Some(link) = nl.link_by_name(&req.ifname)? {
        if link.master == vrf.index {
            match nl.run(&Req::link_set_master(link.index, 0)) {
                Err(e) if !e.is_gone() => return Err(e.into()),
                _ => {}
            }
        }
    }
    let enslaved = nl.links()?.into_iter().any(|l| l.master == vrf.index);
    if !enslaved {
        nl.link_del(vrf.index)?;
    }
    Ok(())
}

/// The VRF exists and `CNI_IFNAME` is enslaved to it.
fn check(req: &Request) -> Result<(), CniError> {
    let conf = load(req)?;
    prev_result(req)?;
    let ns = NetNs::open(&req.netns)?;
    let nl = ns.netlink()?;
    let (vrf, _) = find_vrf(&nl, &conf.vrfname)?
        .ok_or_else(|| CniError::internal(format!("VRF {} not found", conf.vrfname)))?;
    match nl.link_by_name(&req.ifname)? {
        Some(l) if l.master == vrf.index => Ok(()),
        _ => Err(CniError::internal(format!(
            "Failed to find {} associated to vrf {}",
            req.ifname, conf.vrfname
        ))),
    }
}

fn status(req: &Request) -> Result<(), CniError> {
    load(req).map(|_| ())
}

/// State lives only in container namespaces: nothing to collect.
fn gc(req: &Request) -> Result<(), CniError> {
    load(req).map(|_| ())
}

/// Fuzzing only (`cargo fuzz`): every config check ADD makes before it
/// changes anything.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = load(req);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::skel::with_test_request;

    fn conf_of(extra: &str) -> Result<VrfConf, CniError> {
        let c = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"vrf"{extra}}}"#);
        with_test_request(&c, "", load)
    }

    #[test]
    fn vrfname_is_required_and_a_valid_name() {
        let c = conf_of(r#","VRFName":"blue","table":42"#).unwrap();
        assert_eq!((c.vrfname.as_str(), c.table), ("blue", 42));
        for (bad, words) in [
            ("", "vrfname"),
            (r#","vrfname":"""#, "valid vrf name"),
            (r#","vrfname":"a-name-much-too-long""#, "vrfname"),
            (r#","vrfname":"../x""#, "vrfname"),
            (r#","vrfname":"b","table":-1"#, "table"),
            (r#","vrfname":"b","table":4294967296"#, "table"),
        ] {
            let e = conf_of(bad).unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.contains(words), "{bad}: {}", e.msg);
        }
    }
}
