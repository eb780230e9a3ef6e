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
mod txn;
mod vhost;

use crate::cni::result::{CniResult, Interface};
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
use serde_json::Value;
use txn::{BridgeOp, PortSpec, DB, OWNER};

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

    let mut alloc = match s.ipam.as_str() {
        "" => None,
        t => Some(ipam::Allocation::new(req, t)?),
    };
    let mut result = alloc
        .as_mut()
        .map(|a| std::mem::take(&mut a.result))
        .unwrap_or_default();
    if alloc.is_some() && result.ips.is_empty() {
        return Err(CniError::internal("IPAM plugin returned missing IP config"));
    }

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
    undo.push(|| {
        if let Err(e) = remove_ours(s, &attachment_ids(req)) {
            eprintln!("cnibox ovs: rollback of the OVS port: {e}");
        }
    });
    let iface_uuid = insert_ports(&mut db, s, &[port])?;
    fault::point("ovs:after-port")?;
    applied_without_error(&mut db, &iface_uuid)?;

    result.interfaces = vec![
        Interface {
            name: pair.host.name.clone(),
            mac: pair.host.mac_string(),
            ..Default::default()
        },
        Interface {
            name: pair.container.name.clone(),
            mac: pair.container.mac_string(),
            sandbox: req.netns.clone(),
            ..Default::default()
        },
    ];
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

/// Insert `ports` (and the tunnel ports not there yet) on the bridge, made
/// if asked, in one transaction; wait for vswitchd. Retried once when a
/// concurrent ADD made the bridge or a tunnel port first. The uuid of the
/// first port's interface.
fn insert_ports(db: &mut Client, s: &Settings, ports: &[PortSpec]) -> Result<String, CniError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let exists = bridge_row(db, &s.bridge)?.is_some();
        let bridge = if exists || !s.create_bridge {
            BridgeOp::Existing(&s.bridge)
        } else {
            BridgeOp::Create {
                name: &s.bridge,
                datapath_type: &s.datapath_type,
            }
        };
        let mut all = ports.to_vec();
        all.extend(missing_tunnels(db, s)?);
        let ops = txn::add_ports(&bridge, &all);
        match db.transact(DB, &ops) {
            Ok(r) => {
                let iface = r
                    .first()
                    .and_then(|r| r.get("uuid"))
                    .and_then(ops::uuid_of)
                    .ok_or_else(|| CniError::internal("ovsdb: insert gave no uuid"))?
                    .to_string();
                let next_cfg = r
                    .last()
                    .and_then(|r| ops::rows(r).first())
                    .and_then(|row| row["next_cfg"].as_i64())
                    .unwrap_or(0);
                txn::wait_applied(db, next_cfg)?;
                return Ok(iface);
            }
            Err(e) if e.is_conflict() && attempt < 2 => continue,
            Err(crate::ovsdb::Error::Db { error, .. })
                if error == "timed out" && matches!(bridge, BridgeOp::Existing(_)) =>
            {
                return Err(CniError::config(format!(
                    "bridge: OVS bridge {:?} not found",
                    s.bridge
                )))
            }
            Err(e) => return Err(txn::cni(e).context("failed to add the OVS port")),
        }
    }
}

/// Tunnel ports of the config that the database does not have yet.
fn missing_tunnels(db: &mut Client, s: &Settings) -> Result<Vec<PortSpec>, CniError> {
    let want = s.tunnel_specs();
    if want.is_empty() {
        return Ok(want);
    }
    let names: Vec<String> = want.iter().map(|p| p.name.clone()).collect();
    let r = db
        .transact(DB, &txn::select_port_names(&names))
        .map_err(txn::cni)?;
    Ok(want
        .into_iter()
        .zip(r.iter())
        .filter(|(_, r)| ops::rows(r).is_empty())
        .map(|(p, _)| p)
        .collect())
}

/// After vswitchd applied the change: an interface it could not open has
/// `error` set and `ofport` -1.
fn applied_without_error(db: &mut Client, iface_uuid: &str) -> Result<Value, CniError> {
    let r = db
        .transact(DB, &[txn::select_interface(iface_uuid)])
        .map_err(txn::cni)?;
    let row = ops::rows(&r[0])
        .first()
        .cloned()
        .ok_or_else(|| CniError::internal("ovsdb: the new interface row is gone"))?;
    interface_ok(&row)?;
    Ok(row)
}

fn interface_ok(row: &Value) -> Result<(), CniError> {
    let name = row["name"].as_str().unwrap_or_default();
    if let Some(err) = ops::optional(&row["error"]).and_then(Value::as_str) {
        return Err(CniError::internal(format!(
            "OVS refused interface {name}: {err}"
        )));
    }
    if ops::optional(&row["ofport"]).and_then(Value::as_i64) == Some(-1) {
        return Err(CniError::internal(format!(
            "OVS gave interface {name} no OpenFlow port (ofport -1)"
        )));
    }
    Ok(())
}

/// The Bridge row named `name`, if any.
fn bridge_row(db: &mut Client, name: &str) -> Result<Option<Value>, CniError> {
    let r = db
        .transact(DB, &[txn::select_bridge(name)])
        .map_err(txn::cni)?;
    Ok(ops::rows(&r[0]).first().cloned())
}

/// The external_ids that name one attachment.
fn attachment_ids<'a>(req: &'a Request) -> Vec<(&'a str, &'a str)> {
    vec![
        ("owner", OWNER),
        ("containerID", req.container_id.as_str()),
        ("ifname", req.ifname.as_str()),
    ]
}

/// Remove every port whose external_ids include `ids`, then each bridge we
/// made that has only its own port left. The names of the removed ports.
fn remove_ours(s: &Settings, ids: &[(&str, &str)]) -> Result<Vec<String>, CniError> {
    let mut db = txn::connect(&s.socket, s.timeout)?;
    remove_ports_on(&mut db, ids)
}

fn remove_ports_on(db: &mut Client, ids: &[(&str, &str)]) -> Result<Vec<String>, CniError> {
    let r = db.transact(DB, &[txn::find_ports(ids)]).map_err(txn::cni)?;
    let mut names = Vec::new();
    for port in ops::rows(&r[0]) {
        let Some(pu) = ops::uuid_of(&port["_uuid"]) else {
            continue;
        };
        names.push(port["name"].as_str().unwrap_or_default().to_string());
        let r = db.transact(DB, &[txn::bridges_of(pu)]).map_err(txn::cni)?;
        for br in ops::rows(&r[0]) {
            let Some(bu) = ops::uuid_of(&br["_uuid"]) else {
                continue;
            };
            db.transact(DB, &txn::remove_ports(bu, &[pu]))
                .map_err(txn::cni)?;
            remove_bridge_if_ours_and_empty(db, br["name"].as_str().unwrap_or_default())?;
        }
    }
    Ok(names)
}

/// A bridge goes only if cnibox made it (owner mark) and no port is left
/// but its own internal one and our tunnel ports.
fn remove_bridge_if_ours_and_empty(db: &mut Client, name: &str) -> Result<(), CniError> {
    let Some(br) = bridge_row(db, name)? else {
        return Ok(());
    };
    if ops::map_items(&br["external_ids"]).get("owner") != Some(&Value::from(OWNER)) {
        return Ok(());
    }
    let ports: Vec<String> = ops::set_items(&br["ports"])
        .into_iter()
        .filter_map(|p| ops::uuid_of(p).map(str::to_string))
        .collect();
    for p in &ports {
        let r = db
            .transact(
                DB,
                &[ops::select(
                    "Port",
                    vec![ops::cond("_uuid", "==", ops::uuid(p))],
                    &["name", "external_ids"],
                )],
            )
            .map_err(txn::cni)?;
        let Some(row) = ops::rows(&r[0]).first() else {
            continue;
        };
        let own = row["name"].as_str() == Some(name);
        let tunnel = ops::map_items(&row["external_ids"]).contains_key("cnibox-tunnel");
        if !own && !tunnel {
            return Ok(());
        }
    }
    let bu = ops::uuid_of(&br["_uuid"]).unwrap_or_default().to_string();
    match db.transact(DB, &txn::remove_bridge(&bu, &br["ports"])) {
        Ok(_) => Ok(()),
        // Its ports changed meanwhile: a concurrent ADD keeps it.
        Err(crate::ovsdb::Error::Db { error, .. }) if error == "timed out" => Ok(()),
        Err(e) => Err(txn::cni(e)),
    }
}

/// DEL: the OVS port(s) by external_ids, the veth, our socket files, then
/// the IPAM allocation. Everything already gone is success.
fn del(req: &Request) -> Result<(), CniError> {
    let s = conf::settings(req)?;
    let names = remove_ours(&s, &attachment_ids(req))?;
    fault::point("ovs:del-after-port")?;
    match s.kind {
        Kind::Veth => {
            veth::delete(&req.netns, &req.ifname)?;
            delete_host_links(&names);
        }
        _ => vhost::del(req, &s)?,
    }
    match s.ipam.as_str() {
        "" => Ok(()),
        t => ipam::del(req, t),
    }
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
            match remove_ports_on(&mut db, &gone) {
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
