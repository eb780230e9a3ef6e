//! The port and bridge rows of the `ovs` applet: insert (with the wait
//! for vswitchd), find by external_ids, remove (with our empty bridge).

use super::conf::Settings;
use super::txn::{self, BridgeOp, PortSpec, DB, OWNER};
use crate::cni::result::CniResult;
use crate::cni::{CniError, Request};
use crate::ovsdb::{ops, Client};
use crate::steps::ipam::{self, Allocation};
use serde_json::Value;

/// Insert `ports` (and the tunnel ports not there yet) on the bridge, made
/// if asked, in one transaction; wait for vswitchd. Retried once when a
/// concurrent ADD made the bridge or a tunnel port first. The uuid of the
/// first port's interface.
pub fn insert_ports(db: &mut Client, s: &Settings, ports: &[PortSpec]) -> Result<String, CniError> {
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
            // Our bridge was removed by a concurrent DEL since we looked:
            // make it again.
            Err(crate::ovsdb::Error::Db { ref error, .. })
                if error == "timed out" && s.create_bridge && attempt < 2 =>
            {
                continue
            }
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
pub fn missing_tunnels(db: &mut Client, s: &Settings) -> Result<Vec<PortSpec>, CniError> {
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
pub fn applied_without_error(db: &mut Client, iface_uuid: &str) -> Result<Value, CniError> {
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

pub fn interface_ok(row: &Value) -> Result<(), CniError> {
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
pub fn bridge_row(db: &mut Client, name: &str) -> Result<Option<Value>, CniError> {
    let r = db
        .transact(DB, &[txn::select_bridge(name)])
        .map_err(txn::cni)?;
    Ok(ops::rows(&r[0]).first().cloned())
}

/// The external_ids that name one attachment.
pub fn attachment_ids<'a>(req: &'a Request) -> Vec<(&'a str, &'a str)> {
    vec![
        ("owner", OWNER),
        ("containerID", req.container_id.as_str()),
        ("ifname", req.ifname.as_str()),
    ]
}

/// Remove every port whose external_ids include `ids`, then each bridge we
/// made that has only its own port left. The names of the removed ports.
/// With `only`, just the port of that name (a rollback removes the port it
/// made, not an older one of the same attachment).
pub fn remove_ours(
    s: &Settings,
    ids: &[(&str, &str)],
    only: Option<&str>,
) -> Result<Vec<String>, CniError> {
    let mut db = txn::connect(&s.socket, s.timeout)?;
    remove_ports_on(&mut db, ids, only)
}

pub fn remove_ports_on(
    db: &mut Client,
    ids: &[(&str, &str)],
    only: Option<&str>,
) -> Result<Vec<String>, CniError> {
    let r = db.transact(DB, &[txn::find_ports(ids)]).map_err(txn::cni)?;
    let mut names = Vec::new();
    for port in ops::rows(&r[0]) {
        if only.is_some_and(|n| port["name"].as_str() != Some(n)) {
            continue;
        }
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
pub fn remove_bridge_if_ours_and_empty(db: &mut Client, name: &str) -> Result<(), CniError> {
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

/// IPAM when configured (released again unless the ADD keeps it), and the
/// result to build on.
pub fn allocate<'a>(
    req: &'a Request<'a>,
    s: &Settings,
) -> Result<(Option<Allocation<'a>>, CniResult), CniError> {
    let Some(mut alloc) = (match s.ipam.as_str() {
        "" => None,
        t => Some(ipam::Allocation::new(req, t)?),
    }) else {
        return Ok((None, CniResult::default()));
    };
    let result = std::mem::take(&mut alloc.result);
    if result.ips.is_empty() {
        return Err(CniError::internal("IPAM plugin returned missing IP config"));
    }
    Ok((Some(alloc), result))
}
