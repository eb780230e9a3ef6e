//! ovs: attach a container to an Open vSwitch bridge, talking OVSDB
//! (RFC 7047) to ovsdb-server on its unix socket; no ovs-vsctl.
//!
//! The veth kind makes a veth pair (peer born in the container netns), then
//! ONE transaction inserts Interface + Port (VLAN tag/trunks, external_ids
//! naming the attachment), hangs the port on the bridge and bumps
//! `next_cfg`; ADD waits (bounded) for vswitchd to apply it and reads the
//! interface's `error`/`ofport`: a port OVS refused fails the ADD, rolled
//! back. DEL finds ports by their external_ids, so it needs no cache and no
//! prevResult, and never touches a port or bridge the operator made.
//! The vhost-user kinds (OVS-DPDK) live in `vhost.rs`.

mod conf;
mod ports;
mod txn;
mod vhost;

use crate::cni::result::CniResult;
use crate::cni::types::valid_attachments;
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::Netlink;
use crate::ovsdb::ops;
use crate::ovsdb::Client;
use crate::steps::iface::{self, ConfigureOptions};
use crate::steps::netns::NetNs;
use crate::steps::nlbatch::Batch;
use crate::steps::undo::Undo;
use crate::steps::veth::{self, VethOptions};
use crate::steps::{check, fault, ipam, l2result};
use conf::{Kind, Settings};
use ports::{
    applied_without_error, attachment_ids, bridge_row, insert_ports, interface_ok, remove_ours,
    remove_ports_on,
};
use serde_json::Value;
use txn::{PortSpec, DB, OWNER};

pub const PLUGIN: Plugin = Plugin {
    name: "ovs",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

fn add(req: &Request) -> Result<CniResult, CniError> {
    let s = conf::settings(req)?;
    if s.ipam.is_empty() {
        l2result::refuse_old_version(&req.version)?;
    }
    let mut db = txn::connect(&s.socket, s.timeout)?;
    // The bridge must exist, or be ours to make.
    let bridge_exists = bridge_row(&mut db, &s.bridge)?.is_some();
    if !bridge_exists && !s.create_bridge {
        return Err(CniError::config(format!(
            "bridge: OVS bridge {:?} not found (set createBridge to make it)",
            s.bridge
        )));
    }
    match s.kind {
        Kind::Veth => add_veth(req, &s, db),
        _ => vhost::add(req, &s, db),
    }
}

fn add_veth(req: &Request, s: &Settings, mut db: Client) -> Result<CniResult, CniError> {
    let ns = NetNs::open(&req.netns)?;
    let cont_nl = ns.netlink()?;
    let host_nl = Netlink::route()?;
    veth::ensure_absent(&cont_nl, &req.ifname)?;

    let (alloc, mut result) = ports::allocate(req, s)?;

    let mut undo = Undo::new();
    let pair = veth::create(
        &host_nl,
        &ns,
        &cont_nl,
        &req.ifname,
        &VethOptions {
            mtu: s.mtu,
            container_mac: s.mac,
        },
    )?;
    let host_index = pair.host.index;
    let host = &host_nl;
    undo.push(move || {
        let _ = host.link_del(host_index);
    });
    fault::point("ovs:after-veth")?;

    let port = PortSpec {
        name: pair.host.name.clone(),
        ..s.port_spec(req)
    };
    // Rollback goes through the same path as DEL: by external_ids.
    let host_name = pair.host.name.clone();
    undo.push(move || {
        if let Err(e) = remove_ours(s, &attachment_ids(req), Some(&host_name)) {
            eprintln!("cnibox ovs: rollback of the OVS port: {e}");
        }
    });
    let iface_uuid = insert_ports(&mut db, s, &[port])?;
    fault::point("ovs:after-port")?;
    applied_without_error(&mut db, &iface_uuid)?;

    result.interfaces = pair.result_interfaces(&req.netns).into();
    if alloc.is_some() {
        for ip in &mut result.ips {
            ip.interface = Some(1);
        }
        let opts = ConfigureOptions::default();
        iface::configure(
            &ns,
            &cont_nl,
            &pair.container,
            &result,
            &opts,
            &[],
            Batch::new(),
        )?;
    } else {
        // L2 only: the link just goes up.
        cont_nl.link_set_up(pair.container.index, true)?;
    }
    fault::point("ovs:after-configure")?;
    if let Some(dns) = s.common.dns_override() {
        result.dns = dns;
    }
    result.cni_version = req.version.clone();
    undo.commit();
    if let Some(a) = alloc {
        a.keep();
    }
    Ok(result)
}

/// DEL: the OVS port(s) by external_ids, the veth, our socket files, then
/// the IPAM allocation. Everything already gone is success.
fn del(req: &Request) -> Result<(), CniError> {
    let s = conf::settings(req)?;
    // Keep going after an error (ovsdb-server down, say) so the rest is
    // still cleaned up; report it, so the runtime retries.
    let mut errors = Vec::new();
    let names = remove_ours(&s, &attachment_ids(req), None).unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });
    fault::point("ovs:del-after-port")?;
    let local = match s.kind {
        Kind::Veth => veth::delete(&req.netns, &req.ifname).map(|_| delete_host_links(&names)),
        _ => vhost::del(req, &s),
    };
    errors.extend(local.err());
    if !s.ipam.is_empty() {
        errors.extend(ipam::del(req, &s.ipam).err());
    }
    CniError::combine(errors)
}

/// Host veth ends still there (their container end is normally deleted
/// with them, so this is rarely needed).
fn delete_host_links(names: &[String]) {
    if names.is_empty() {
        return;
    }
    if let Ok(nl) = Netlink::route() {
        for n in names {
            if let Ok(Some(l)) = nl.link_by_name(n) {
                if l.kind == "veth" {
                    let _ = nl.link_del(l.index);
                }
            }
        }
    }
}

fn check(req: &Request) -> Result<(), CniError> {
    let s = conf::settings(req)?;
    let mut db = txn::connect(&s.socket, s.timeout)?;
    let r = db
        .transact(DB, &[txn::find_ports(&attachment_ids(req))])
        .map_err(txn::cni)?;
    let port = match ops::rows(&r[0]) {
        [one] => one.clone(),
        [] => {
            return Err(CniError::internal(format!(
                "no OVS port for container {} interface {}",
                req.container_id, req.ifname
            )))
        }
        _ => {
            return Err(CniError::internal(
                "more than one OVS port for this attachment",
            ))
        }
    };
    let name = port["name"].as_str().unwrap_or_default();
    let r = db
        .transact(DB, &[txn::select_interface_by_name(name)])
        .map_err(txn::cni)?;
    let iface = ops::rows(&r[0])
        .first()
        .cloned()
        .ok_or_else(|| CniError::internal(format!("OVS interface {name} missing")))?;
    interface_ok(&iface)?;
    if !s.ipam.is_empty() {
        ipam::check(req, &s.ipam)?;
    }
    match s.kind {
        Kind::Veth => {
            let ns = NetNs::open(&req.netns)?;
            let prev = check::prev_result(req, &s.common, "ovs")?;
            // The host end in the result is the port OVS has, and exists.
            if let Some(h) = prev.interfaces.iter().find(|i| i.sandbox.is_empty()) {
                if h.name != name {
                    return Err(CniError::internal(format!(
                        "OVS port is {name}, the result says {}",
                        h.name
                    )));
                }
                check::link(&Netlink::route()?, h, Some("veth"))?;
            }
            let (idx, ci) = check::container_iface(&prev, &req.ifname, &req.netns)?;
            let nl = ns.netlink()?;
            let link = check::link(&nl, ci, Some("veth"))?;
            check::addresses_and_routes(&nl, &link, &prev, idx)
        }
        _ => vhost::check(req, &s, &iface),
    }
}

/// STATUS: ovsdb-server answers and the bridge is there (or may be made).
fn status(req: &Request) -> Result<(), CniError> {
    let s = conf::settings(req)?;
    let unavailable = |e: CniError| CniError::new(50, e.msg);
    let mut db = txn::connect(&s.socket, s.timeout).map_err(unavailable)?;
    let dbs = db.list_dbs().map_err(|e| unavailable(txn::cni(e)))?;
    if !dbs.iter().any(|d| d == DB) {
        return Err(CniError::new(
            50,
            format!("ovsdb-server at {} has no {DB} database", s.socket),
        ));
    }
    if bridge_row(&mut db, &s.bridge)
        .map_err(unavailable)?
        .is_none()
        && !s.create_bridge
    {
        return Err(CniError::new(
            50,
            format!("OVS bridge {:?} does not exist", s.bridge),
        ));
    }
    ipam::status_if_any(req)
}

/// GC: remove this network's ports whose attachment is not valid.
fn gc(req: &Request) -> Result<(), CniError> {
    let s = conf::settings(req)?;
    let mut errors = Vec::new();
    if let Some(valid) = valid_attachments(&req.config)? {
        let mut db = txn::connect(&s.socket, s.timeout)?;
        let r = db
            .transact(
                DB,
                &[txn::find_ports(&[
                    ("owner", OWNER),
                    ("network", req.name()),
                ])],
            )
            .map_err(txn::cni)?;
        for port in ops::rows(&r[0]) {
            let ids = ops::map_items(&port["external_ids"]);
            let get = |k: &str| ids.get(k).and_then(Value::as_str).unwrap_or_default();
            let (cid, ifname) = (get("containerID"), get("ifname"));
            if valid
                .iter()
                .any(|a| a.container_id == cid && a.ifname == ifname)
            {
                continue;
            }
            let gone = [("owner", OWNER), ("containerID", cid), ("ifname", ifname)];
            match remove_ports_on(&mut db, &gone, None) {
                Ok(names) if s.kind == Kind::Veth => delete_host_links(&names),
                Ok(_) => vhost::remove_files(&s, cid, ifname),
                Err(e) => errors.push(e),
            }
        }
    }
    if let Err(e) = ipam::gc_if_any(req) {
        errors.push(e);
    }
    CniError::combine(errors)
}
