//! loopback: bring `lo` up in the container (reference: plugins/main/loopback).
//!
//! `CNI_IFNAME` is ignored: the plugin always works on `lo`.

use crate::cni::result::{CniResult, Interface, IpConfig};
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::netns::NetNs;

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
    let lo = nl
        .link_by_name("lo")?
        .ok_or_else(|| CniError::internal("no loopback interface in the namespace"))?;
    nl.link_set_up(lo.index, true)?;
    let addrs = nl.addrs(lo.index, crate::netlink::consts::AF_UNSPEC)?;
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
    if req.netns.is_empty() {
        return Ok(());
    }
    let ns = match NetNs::open(&req.netns) {
        Ok(ns) => ns,
        Err(e) if e.is_not_exist() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let nl = ns.netlink()?;
    if let Some(lo) = nl.link_by_name("lo")? {
        nl.link_set_up(lo.index, false)?;
    }
    Ok(())
}

fn check(req: &Request) -> Result<(), CniError> {
    let ns = NetNs::open(&req.netns)?;
    let nl = ns.netlink()?;
    match nl.link_by_name("lo")? {
        Some(lo) if lo.is_up() => Ok(()),
        _ => Err(CniError::internal("loopback interface is down")),
    }
}
