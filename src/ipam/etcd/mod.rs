//! `etcd` IPAM (beyond the reference; Contiv kept cluster IPAM in etcd,
//! whereabouts and Calico do it today): host-local's range syntax, with
//! every reservation held in an etcd v3 cluster, so any number of nodes
//! allocate from one flat pool with no duplicates and no central allocator.
//!
//! ```json
//! "ipam": {"type": "etcd", "endpoints": ["https://10.0.0.1:2379"],
//!          "caFile": "...", "certFile": "...", "keyFile": "...",
//!          "prefix": "/cni/ipam", "node": "worker-1", "timeout": 10,
//!          "ranges": [[{"subnet": "10.10.0.0/16"}]]}
//! ```
//!
//! Keys: `<prefix>/<network>/<ip>` = `{containerID, ifname, node, since}`
//! (the reservation), `<prefix>/<network>/_owners/<id>/<ifname>/<ip>` (an
//! owner index, written and removed in the same txn, so ADD, DEL and CHECK
//! never read the whole pool), and `<prefix>/_hints/<network>/<node>/<set>`
//! (where this node reserved last). ADD reads the attachment's index and
//! the hints, then candidates 16 at a time, then one create txn; STATUS and
//! GC read the whole pool.
//!
//! A crash between reserving and answering leaves at most a key that GC
//! removes (GC only ever removes this node's keys). An unreachable cluster
//! is error 11 (try again later) within `timeout`.

mod config;
mod pool;

use crate::cni::error::code;
use crate::cni::result::{CniResult, IpConfig};
use crate::cni::types::valid_attachments;
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::ipranges::{self, dns};
use ipnet::IpNet;
use pool::{Owner, Pool};
use std::collections::HashSet;
use std::net::IpAddr;

pub const PLUGIN: Plugin = Plugin {
    name: "etcd",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conn = config::conn(req)?;
    let ranges = ipranges::load(req)?;
    let dns = if ranges.resolv_conf.is_empty() {
        Default::default()
    } else {
        dns::read(&ranges.resolv_conf)?
    };
    let mut pool = Pool::open(&conn)?;
    let start = pool.start(&req.container_id, &req.ifname)?;
    let owner = Owner {
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        node: conn.node.clone(),
        since: pool::now_rfc3339(),
    };
    let value = serde_json::to_vec(&owner).map_err(|e| CniError::internal(e.to_string()))?;

    let (wanted, left_over) = ranges.requested_by_set();
    let mut got: Vec<(IpAddr, &ipranges::range::Range)> = Vec::new();
    let mut failure = None;
    for (i, (set, wanted)) in ranges.sets.iter().zip(wanted).enumerate() {
        let res = match wanted {
            Some(ip) => match set.range_for(ip) {
                Some(r) if r.gateway == ip => Err(CniError::internal(format!(
                    "requested ip {ip} is subnet's gateway"
                ))),
                _ => match pool.reserve(ip, &owner, &value, None) {
                    Ok(true) => Ok(ip),
                    Ok(false) => Err(CniError::internal(format!(
                        "requested IP address {ip} is not available in range set {set}"
                    ))),
                    Err(e) => Err(e),
                },
            },
            None => {
                // One address per attachment and set, as host-local.
                let dup = start.held.iter().find(|ip| set.contains(**ip));
                let hint = start.hints.iter().find(|h| h.0 == i).map(|h| h.1);
                match dup {
                    Some(ip) => Err(CniError::internal(format!(
                        "{ip} has been allocated to {}, duplicate allocation is not allowed",
                        req.container_id
                    ))),
                    None => match pool.allocate(set, i, hint, &owner, &value) {
                        Ok(Some(ip)) => Ok(ip),
                        Ok(None) => Err(CniError::internal(format!(
                            "no IP addresses available in range set: {set}"
                        ))),
                        Err(e) => Err(e),
                    },
                }
            }
        };
        match res {
            Ok(ip) => got.push((ip, set.range_for(ip).expect("allocated from the set"))),
            Err(e) => {
                failure = Some(e.context(format!("failed to allocate for range {i}")));
                break;
            }
        }
    }
    if failure.is_none() {
        failure = left_over;
    }
    if let Some(e) = failure {
        // Give back exactly what this call reserved (a failure here leaves
        // a key of this node that GC removes).
        for (ip, _) in &got {
            let _ = pool.release_ip(*ip, &owner, &value);
        }
        return Err(e);
    }
    crate::steps::fault::point("etcd:before-answer")?;
    let ips = got
        .into_iter()
        .map(|(ip, r)| {
            Ok(IpConfig {
                interface: None,
                address: IpNet::new(ip, r.subnet.prefix_len())
                    .map_err(|e| CniError::internal(e.to_string()))?,
                gateway: Some(r.gateway),
            })
        })
        .collect::<Result<_, CniError>>()?;
    Ok(CniResult {
        cni_version: req.version.clone(),
        ips,
        routes: ranges.routes,
        dns,
        ..Default::default()
    })
}

/// DEL: release every address of the network this attachment holds, from
/// whichever node reserved it. Needs only the connection part of the
/// config. An unreachable cluster is an error (the runtime retries; the
/// keys would otherwise leak until GC).
fn del(req: &Request) -> Result<(), CniError> {
    let conn = config::conn(req)?;
    let mut pool = Pool::open(&conn)?;
    for e in pool.held(&req.container_id, &req.ifname)? {
        // false: someone changed it since we read it; not ours now.
        pool.release(&e)?;
    }
    Ok(())
}

/// CHECK: the attachment holds addresses in the pool, and every
/// prevResult address inside our ranges is one of them.
fn check(req: &Request) -> Result<(), CniError> {
    let conn = config::conn(req)?;
    let ranges = ipranges::load(req)?;
    let mut pool = Pool::open(&conn)?;
    let held: Vec<IpAddr> = pool
        .held(&req.container_id, &req.ifname)?
        .into_iter()
        .map(|e| e.ip)
        .collect();
    if held.is_empty() {
        return Err(CniError::internal(format!(
            "etcd: Failed to find address added by container {}",
            req.container_id
        )));
    }
    let prev = match req.config.get("prevResult") {
        None | Some(crate::cni::json::GoValue::Null) => return Ok(()),
        Some(v) => CniResult::parse_as(v, &req.version)
            .map_err(|e| e.context("failed to parse prevResult"))?,
    };
    for ipc in &prev.ips {
        let ip = ipc.address.addr().to_canonical();
        if ranges.sets.iter().any(|s| s.contains(ip)) && !held.contains(&ip) {
            return Err(CniError::internal(format!(
                "etcd: address {ip} in prevResult is not reserved by container {} interface {}",
                req.container_id, req.ifname
            )));
        }
    }
    Ok(())
}

/// STATUS: the cluster answers and no range set is exhausted (code 50).
fn status(req: &Request) -> Result<(), CniError> {
    let conn = config::conn(req)?;
    let ranges = ipranges::load(req)?;
    let unavailable = |e: CniError| CniError::new(code::NOT_AVAILABLE, e.msg);
    let mut pool = Pool::open(&conn)?;
    let entries = pool.list().map_err(unavailable)?;
    for (i, set) in ranges.sets.iter().enumerate() {
        let used = entries.iter().filter(|e| set.allocatable(e.ip)).count() as u128;
        if used >= set.capacity() {
            return Err(CniError::new(
                code::NOT_AVAILABLE,
                format!("etcd: range set {i} is exhausted: no IP addresses available in range set: {set}"),
            ));
        }
    }
    Ok(())
}

/// GC (spec 1.1): release this node's reservations whose attachment is not
/// in `cni.dev/valid-attachments` (never another node's: it has its own
/// runtime and its own GC). Errors are collected, none stops the sweep.
fn gc(req: &Request) -> Result<(), CniError> {
    let Some(valid) = valid_attachments(&req.config)? else {
        return Ok(());
    };
    let conn = config::conn(req)?;
    let pairs: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let mut pool = Pool::open(&conn)?;
    let mut errors = Vec::new();
    for e in pool.list()? {
        let Some(o) = &e.owner else { continue };
        if o.node != conn.node || pairs.contains(&(o.container_id.as_str(), o.ifname.as_str())) {
            continue;
        }
        if let Err(err) = pool.release(&e) {
            errors.push(format!("{}: {}", e.ip, err.msg));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::TRY_AGAIN_LATER,
            format!("etcd: garbage collection failed: {}", errors.join("; ")),
        ))
    }
}
