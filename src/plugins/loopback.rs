//! loopback: bring `lo` up in the container (reference: plugins/main/loopback).
//!
//! `CNI_IFNAME` is ignored: the plugin always works on `lo`.

use crate::cni::result::{CniResult, Interface, IpConfig};
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::netns::NetNs;

/// `lo` is always interface 1 in every network namespace (the kernel's
/// LOOPBACK_IFINDEX), so it needs no lookup by name.
const LOOPBACK_IFINDEX: u32 = 1;

pub const PLUGIN: Plugin = Plugin {
    name: "loopback",
    versions: version::ALL,
    add,
    del,
    check,
    status: |_| Ok(()),
    gc: |_| Ok(()),
};

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = req.net_conf()?;
    // A prevResult is passed through unchanged (converted on printing).
    let prev = match &conf.prev_result {
        Some(v) => Some(
            CniResult::parse_as(v, &req.version)
                .map_err(|e| e.context("failed to parse prevResult"))?,
        ),
        None => None,
    };
    let ns = NetNs::open(&req.netns)?;
    let nl = ns.netlink()?;
    nl.link_set_up(LOOPBACK_IFINDEX, true)?;
    let addrs = nl.addrs(LOOPBACK_IFINDEX, crate::netlink::consts::AF_UNSPEC)?;
    if let Some(bad) = addrs.iter().find(|a| !a.net.addr().is_loopback()) {
        return Err(CniError::internal(format!(
            "loopback interface found with non-loopback address {:?}",
            bad.net.addr().to_string()
        )));
    }
    if let Some(prev) = prev {
        return Ok(prev);
    }
    let first = |v4: bool| addrs.iter().find(|a| a.net.addr().is_ipv4() == v4);
    Ok(CniResult {
        cni_version: req.version.clone(),
        interfaces: vec![Interface {
            name: "lo".into(),
            mac: "00:00:00:00:00:00".into(),
            sandbox: req.netns.clone(),
            ..Default::default()
        }],
        ips: [first(true), first(false)]
            .into_iter()
            .flatten()
            .map(|a| IpConfig {
                interface: Some(0),
                address: a.net,
                gateway: None,
            })
            .collect(),
        ..Default::default()
    })
}

fn del(req: &Request) -> Result<(), CniError> {
    let Some(ns) = NetNs::open_for_del(&req.netns)? else {
        return Ok(());
    };
    let nl = ns.netlink()?;
    match nl.link_set_up(LOOPBACK_IFINDEX, false) {
        Err(e) if e.is_gone() => Ok(()),
        r => r.map_err(CniError::from),
    }
}

fn check(req: &Request) -> Result<(), CniError> {
    let ns = NetNs::open(&req.netns)?;
    let nl = ns.netlink()?;
    match nl.link_by_index(LOOPBACK_IFINDEX)? {
        Some(lo) if lo.is_up() => Ok(()),
        _ => Err(CniError::internal("loopback interface is down")),
    }
}
