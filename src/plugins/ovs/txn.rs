//! The OVSDB transactions of the `ovs` applet, as pure functions from what
//! to do to the exact operations sent (unit-tested below), plus the few
//! calls that run them.

use crate::cni::CniError;
use crate::ovsdb::ops::{self, cond, map, named, set, uuid};
use crate::ovsdb::{self, Client};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const DB: &str = "Open_vSwitch";
pub const OWNER: &str = "cnibox";

/// One port to insert: its single interface's name, type and options, and
/// the port's VLAN settings and external_ids.
#[derive(Debug, Clone, Default)]
pub struct PortSpec {
    pub name: String,
    pub iface_type: String,
    pub options: Vec<(String, String)>,
    pub tag: Option<u16>,
    pub trunks: Vec<u16>,
    pub mtu_request: Option<u32>,
    pub external_ids: Vec<(String, String)>,
}

/// The bridge the port goes on.
#[derive(Debug, Clone)]
pub enum BridgeOp<'a> {
    /// It must exist (checked in the transaction).
    Existing(&'a str),
    /// Made in the same transaction, marked as ours.
    Create {
        name: &'a str,
        datapath_type: &'a str,
    },
}

fn pairs(v: &[(String, String)]) -> Value {
    map(v.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn port_rows(p: &PortSpec, n: usize) -> (Vec<Value>, String) {
    let (iname, pname) = (format!("iface{n}"), format!("port{n}"));
    let mut iface = json!({"name": p.name, "type": p.iface_type, "options": pairs(&p.options)});
    if let Some(mtu) = p.mtu_request {
        iface["mtu_request"] = json!(mtu);
    }
    let mut port = json!({
        "name": p.name,
        "interfaces": named(&iname),
        "external_ids": pairs(&p.external_ids),
    });
    if let Some(tag) = p.tag {
        port["tag"] = json!(tag);
    }
    if !p.trunks.is_empty() {
        port["trunks"] = set(p.trunks.iter().map(|t| json!(t)).collect());
        if p.tag.is_some() {
            // The tag is the native VLAN, the trunks pass tagged.
            port["vlan_mode"] = json!("native-untagged");
        }
    }
    let ops = vec![
        ops::insert("Interface", iface, Some(&iname)),
        ops::insert("Port", port, Some(&pname)),
    ];
    (ops, pname)
}

/// ONE transaction: insert every port (with its interface), hang them on
/// the bridge (made here if asked), bump `next_cfg`, and read it back (the
/// last result). The first port's interface uuid is result 0.
pub fn add_ports(bridge: &BridgeOp, ports: &[PortSpec]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut refs = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let (ops, pname) = port_rows(p, i);
        out.extend(ops);
        refs.push(named(&pname));
    }
    match bridge {
        BridgeOp::Existing(name) => {
            out.push(ops::wait_now(
                "Bridge",
                vec![cond("name", "==", json!(name))],
                &["name"],
                vec![json!({ "name": name })],
            ));
            out.push(ops::mutate(
                "Bridge",
                vec![cond("name", "==", json!(name))],
                vec![json!(["ports", "insert", set(refs)])],
            ));
        }
        BridgeOp::Create {
            name,
            datapath_type,
        } => {
            // As `ovs-vsctl add-br`: the bridge's own internal port.
            let internal = PortSpec {
                name: name.to_string(),
                iface_type: "internal".into(),
                ..Default::default()
            };
            let (ops, pname) = port_rows(&internal, ports.len());
            out.extend(ops);
            refs.push(named(&pname));
            let mut row = json!({
                "name": name,
                "ports": set(refs),
                "external_ids": map([("owner", OWNER)]),
            });
            if !datapath_type.is_empty() {
                row["datapath_type"] = json!(datapath_type);
            }
            out.push(ops::insert("Bridge", row, Some("bridge")));
            out.push(ops::mutate(
                "Open_vSwitch",
                vec![],
                vec![json!(["bridges", "insert", set(vec![named("bridge")])])],
            ));
        }
    }
    out.push(ops::mutate(
        "Open_vSwitch",
        vec![],
        vec![json!(["next_cfg", "+=", 1])],
    ));
    out.push(ops::select("Open_vSwitch", vec![], &["next_cfg"]));
    out
}

/// Select our ports: those whose external_ids include all of `ids`.
pub fn find_ports(ids: &[(&str, &str)]) -> Value {
    ops::select(
        "Port",
        vec![cond("external_ids", "includes", map(ids.iter().copied()))],
        &["_uuid", "name", "external_ids"],
    )
}

/// Select the bridges holding `port`.
pub fn bridges_of(port: &str) -> Value {
    ops::select(
        "Bridge",
        vec![cond("ports", "includes", set(vec![uuid(port)]))],
        &["_uuid", "name", "ports", "external_ids"],
    )
}

/// Take `ports` off `bridge` (OVSDB then drops the unreferenced Port and
/// Interface rows).
pub fn remove_ports(bridge: &str, ports: &[&str]) -> Vec<Value> {
    vec![ops::mutate(
        "Bridge",
        vec![cond("_uuid", "==", uuid(bridge))],
        vec![json!([
            "ports",
            "delete",
            set(ports.iter().map(|p| uuid(p)).collect())
        ])],
    )]
}

/// Remove `bridge` unless its ports changed since they were read as
/// `ports` (a concurrent ADD keeps it).
pub fn remove_bridge(bridge: &str, ports: &Value) -> Vec<Value> {
    vec![
        ops::wait_now(
            "Bridge",
            vec![cond("_uuid", "==", uuid(bridge))],
            &["ports"],
            vec![json!({ "ports": ports })],
        ),
        ops::mutate(
            "Open_vSwitch",
            vec![],
            vec![json!(["bridges", "delete", set(vec![uuid(bridge)])])],
        ),
    ]
}

pub fn select_bridge(name: &str) -> Value {
    ops::select(
        "Bridge",
        vec![cond("name", "==", json!(name))],
        &["_uuid", "ports", "external_ids"],
    )
}

pub fn select_interface(iface_uuid: &str) -> Value {
    ops::select(
        "Interface",
        vec![cond("_uuid", "==", uuid(iface_uuid))],
        &["name", "error", "ofport", "status", "type"],
    )
}

pub fn select_interface_by_name(name: &str) -> Value {
    ops::select(
        "Interface",
        vec![cond("name", "==", json!(name))],
        &["name", "error", "ofport", "status", "type"],
    )
}

pub fn select_port_names(names: &[String]) -> Vec<Value> {
    names
        .iter()
        .map(|n| ops::select("Port", vec![cond("name", "==", json!(n))], &["name"]))
        .collect()
}

/// An OVSDB failure as a CNI error: unreachable or slow is "try again
/// later" (11), a refused transaction is internal.
pub fn cni(e: ovsdb::Error) -> CniError {
    match e {
        ovsdb::Error::Connect(_) | ovsdb::Error::Timeout(_) => CniError::new(11, e.to_string()),
        _ => CniError::internal(e.to_string()),
    }
}

pub fn connect(socket: &str, timeout: Duration) -> Result<Client, CniError> {
    Client::connect(socket, timeout).map_err(cni)
}

/// Wait (bounded by the client's timeout) until ovs-vswitchd has applied
/// configuration `next_cfg` (`cur_cfg` reaches it), as `ovs-vsctl` does.
pub fn wait_applied(c: &mut Client, next_cfg: i64) -> Result<(), CniError> {
    let deadline = Instant::now() + c.timeout();
    let mut pause = Duration::from_millis(1);
    loop {
        let r = c
            .transact(DB, &[ops::select("Open_vSwitch", vec![], &["cur_cfg"])])
            .map_err(cni)?;
        let cur = ops::rows(&r[0])
            .first()
            .and_then(|row| row["cur_cfg"].as_i64())
            .unwrap_or(0);
        if cur >= next_cfg {
            return Ok(());
        }
        if Instant::now() + pause > deadline {
            return Err(CniError::new(
                11,
                format!(
                    "ovs-vswitchd did not apply the change within {:?} (cur_cfg {cur}, \
                     waiting for {next_cfg}): is it running?",
                    c.timeout()
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PortSpec {
        PortSpec {
            name: "veth1".into(),
            iface_type: String::new(),
            tag: Some(10),
            external_ids: vec![("owner".into(), "cnibox".into())],
            ..Default::default()
        }
    }

    #[test]
    fn add_on_an_existing_bridge_is_exact() {
        let ops = add_ports(&BridgeOp::Existing("br0"), &[spec()]);
        let want = json!([
            {"op": "insert", "table": "Interface", "uuid-name": "iface0",
             "row": {"name": "veth1", "type": "", "options": ["map", []]}},
            {"op": "insert", "table": "Port", "uuid-name": "port0",
             "row": {"name": "veth1", "interfaces": ["named-uuid", "iface0"], "tag": 10,
                     "external_ids": ["map", [["owner", "cnibox"]]]}},
            {"op": "wait", "timeout": 0, "table": "Bridge", "where": [["name", "==", "br0"]],
             "columns": ["name"], "until": "==", "rows": [{"name": "br0"}]},
            {"op": "mutate", "table": "Bridge", "where": [["name", "==", "br0"]],
             "mutations": [["ports", "insert", ["set", [["named-uuid", "port0"]]]]]},
            {"op": "mutate", "table": "Open_vSwitch", "where": [],
             "mutations": [["next_cfg", "+=", 1]]},
            {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]},
        ]);
        assert_eq!(Value::Array(ops), want);
    }

    #[test]
    fn trunks_and_a_new_bridge_are_exact() {
        let mut p = spec();
        p.trunks = vec![20, 21];
        let ops = add_ports(
            &BridgeOp::Create {
                name: "br1",
                datapath_type: "netdev",
            },
            &[p],
        );
        assert_eq!(ops[1]["row"]["trunks"], json!(["set", [20, 21]]));
        assert_eq!(ops[1]["row"]["vlan_mode"], "native-untagged");
        assert_eq!(
            ops[2],
            json!({"op": "insert", "table": "Interface", "uuid-name": "iface1",
                   "row": {"name": "br1", "type": "internal", "options": ["map", []]}})
        );
        assert_eq!(
            ops[4],
            json!({"op": "insert", "table": "Bridge", "uuid-name": "bridge",
                   "row": {"name": "br1", "datapath_type": "netdev",
                           "external_ids": ["map", [["owner", "cnibox"]]],
                           "ports": ["set", [["named-uuid", "port0"], ["named-uuid", "port1"]]]}})
        );
        assert_eq!(
            ops[5],
            json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                   "mutations": [["bridges", "insert", ["set", [["named-uuid", "bridge"]]]]]})
        );
        assert_eq!(ops.len(), 8);
    }

    #[test]
    fn delete_and_find_are_exact() {
        assert_eq!(
            Value::Array(remove_ports("b-1", &["p-1"])),
            json!([{"op": "mutate", "table": "Bridge", "where": [["_uuid", "==", ["uuid", "b-1"]]],
                    "mutations": [["ports", "delete", ["set", [["uuid", "p-1"]]]]]}])
        );
        assert_eq!(
            find_ports(&[("owner", "cnibox"), ("containerID", "c1")]),
            json!({"op": "select", "table": "Port",
                   "where": [["external_ids", "includes", ["map", [["owner", "cnibox"], ["containerID", "c1"]]]]],
                   "columns": ["_uuid", "name", "external_ids"]})
        );
        assert_eq!(
            bridges_of("p-1")["where"],
            json!([["ports", "includes", ["set", [["uuid", "p-1"]]]]])
        );
        let rb = remove_bridge("b-1", &json!(["uuid", "p-9"]));
        assert_eq!(rb[0]["rows"], json!([{"ports": ["uuid", "p-9"]}]));
        assert_eq!(
            rb[1]["mutations"],
            json!([["bridges", "delete", ["set", [["uuid", "b-1"]]]]])
        );
    }
}
