//! vrf chained after cnibox ptp. This VM's kernel has no VRF: the tests
//! that make one are guarded with `require_link_kind!("vrf")` and run in
//! the full-kernel lane; config, refusal and DEL paths run everywhere.

mod common;
use common::node::{with_prev, Node};
use common::*;
use serde_json::{json, Value};

const ID: &str = "ctr-vrf";

fn ptp_conf(node: &Node) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "vrfnet",
        "type": "ptp",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.97.0.0/24"}], [{"subnet": "fd97::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            "dataDir": node.data.str(),
        }
    })
}

fn vrf_conf(extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "vrfnet", "type": "vrf", "vrfname": "blue"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn vrf(node: &Node, cmd: &str, netns: &str, conf: &Value) -> Reply {
    Call::attach("vrf", cmd, ID, netns, "eth0")
        .in_ns(&node.host)
        .config(conf)
        .run()
}

fn ptp_container() -> (Node, TestNs, Value) {
    let node = Node::new("ptp");
    let ctr = TestNs::new("vrfc");
    let add = node.call("ADD", ID, &ctr.path(), &ptp_conf(&node));
    add.ok();
    let r = add.json();
    (node, ctr, r)
}

/// `ip -d -j link show NAME`'s first entry (Null when there is none).
fn link(ns: &TestNs, name: &str) -> Value {
    let out = ns.exec(&["ip", "-d", "-j", "link", "show", name]);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get(0).cloned())
        .unwrap_or(Value::Null)
}

fn routes(ns: &TestNs, args: &[&str]) -> Value {
    let mut all = vec![];
    for fam in ["-4", "-6"] {
        let mut cmd = vec!["ip", "-j", fam, "route", "show"];
        cmd.extend_from_slice(args);
        let out = ns.exec(&cmd);
        if let Ok(Value::Array(v)) = serde_json::from_slice::<Value>(&out.stdout) {
            all.extend(v);
        }
    }
    Value::Array(all)
}

fn addrs(ns: &TestNs, dev: &str) -> String {
    ns.ip_json(&["addr", "show", "dev", dev]).to_string()
}

// ---- everywhere --------------------------------------------------------

#[test]
fn del_succeeds_when_the_netns_is_gone_or_empty() {
    require_root!();
    let node = Node::new("ptp");
    let dir = TempDir::new("vrf-gone");
    let gone = dir.path().join("netns");
    vrf(&node, "DEL", gone.to_str().unwrap(), &vrf_conf(json!({}))).ok();
    assert!(!gone.exists());
    vrf(&node, "DEL", "", &vrf_conf(json!({}))).ok();
}

#[test]
fn del_succeeds_when_the_vrf_and_the_interface_are_gone() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("vrfc");
    vrf(&node, "DEL", &ctr.path(), &vrf_conf(json!({}))).ok();
    vrf(&node, "DEL", &ctr.path(), &vrf_conf(json!({}))).ok();
}

#[test]
fn del_leaves_a_link_of_that_name_that_is_not_a_vrf_alone() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("vrfc");
    ctr.ip(&["link", "add", "blue", "type", "veth", "peer", "bluep"]);
    vrf(&node, "DEL", &ctr.path(), &vrf_conf(json!({}))).ok();
    assert_eq!(link(&ctr, "blue")["ifname"], "blue");
}

#[test]
fn add_refuses_a_link_of_that_name_that_is_not_a_vrf_and_changes_nothing() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    ctr.ip(&["link", "add", "blue", "type", "veth", "peer", "bluep"]);
    // What the kernel does on its own meanwhile (the link-local address
    // and route, DAD) is not ADD's doing: compared without it.
    let settled = |ns: &TestNs| -> (Vec<Value>, Vec<Value>) {
        let r = routes(ns, &[]).as_array().cloned().unwrap_or_default();
        let r = r
            .into_iter()
            .filter(|x| !x["dst"].as_str().unwrap_or("").starts_with("fe80"))
            .collect();
        let a: Value = serde_json::from_str(&addrs(ns, "eth0")).unwrap();
        let a = a[0]["addr_info"].as_array().cloned().unwrap_or_default();
        let a = a.into_iter().filter(|x| x["scope"] != "link").collect();
        (r, a)
    };
    let before = settled(&ctr);
    let add = vrf(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&vrf_conf(json!({})), &r),
    );
    add.fails();
    assert!(add.stdout.contains("is not a VRF"), "{}", add.stdout);
    assert!(link(&ctr, "eth0").get("master").is_none());
    assert_eq!(settled(&ctr), before);
}

#[test]
fn add_without_prev_result_is_a_config_error() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("vrfc");
    let r = vrf(&node, "ADD", &ctr.path(), &vrf_conf(json!({})));
    assert_eq!(r.err_code(), 7);
    assert!(r.stdout.contains("prevResult"));
}

/// On a kernel without VRF the ADD fails and leaves nothing; on one with
/// VRF it succeeds (the full-kernel lane).
#[test]
fn add_fails_cleanly_where_the_kernel_cannot_make_a_vrf() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let before = (routes(&ctr, &[]), addrs(&ctr, "eth0"));
    let add = vrf(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&vrf_conf(json!({})), &r),
    );
    if kernel_has_link_kind("vrf") {
        add.ok();
        return;
    }
    assert_eq!(add.err_code(), 999, "{}", add.stdout);
    assert!(add.stdout.contains("vrf blue"), "{}", add.stdout);
    assert_eq!(link(&ctr, "blue"), Value::Null, "VRF left behind");
    assert_eq!((routes(&ctr, &[]), addrs(&ctr, "eth0")), before);
}

// ---- full-kernel lane ----------------------------------------------------

#[test]
fn add_enslaves_keeping_v6_and_moving_routes_then_del_removes_the_vrf() {
    require_root!();
    require_link_kind!("vrf");
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(&vrf_conf(json!({})), &r);
    let add = vrf(&node, "ADD", &ctr.path(), &conf);
    add.ok();
    assert_eq!(
        add.json()["interfaces"],
        r["interfaces"],
        "result passed on"
    );

    let blue = link(&ctr, "blue");
    assert_eq!(blue["linkinfo"]["info_kind"], "vrf", "{blue}");
    assert_eq!(blue["linkinfo"]["info_data"]["table"], 1, "{blue}");
    assert_eq!(link(&ctr, "eth0")["master"], "blue");
    let v6 = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .find(|a| a.contains(':'))
        .unwrap();
    assert!(addrs(&ctr, "eth0").contains(&v6), "v6 address lost");
    let in_vrf = routes(&ctr, &["vrf", "blue"]).to_string();
    assert!(in_vrf.contains("\"default\""), "{in_vrf}");
    assert!(in_vrf.contains("10.97.0.1"), "{in_vrf}");
    vrf(&node, "CHECK", &ctr.path(), &conf).ok();

    vrf(&node, "DEL", &ctr.path(), &conf).ok();
    assert!(link(&ctr, "eth0").get("master").is_none());
    assert_eq!(link(&ctr, "blue"), Value::Null, "VRF left");
    vrf(&node, "DEL", &ctr.path(), &conf).ok();
    vrf(&node, "CHECK", &ctr.path(), &conf).fails();
}

#[test]
fn table_zero_takes_the_lowest_table_no_other_vrf_uses() {
    require_root!();
    require_link_kind!("vrf");
    let (node, ctr, r) = ptp_container();
    ctr.ip(&["link", "add", "red", "type", "vrf", "table", "1"]);
    ctr.ip(&["link", "add", "green", "type", "vrf", "table", "3"]);
    vrf(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&vrf_conf(json!({})), &r),
    )
    .ok();
    assert_eq!(link(&ctr, "blue")["linkinfo"]["info_data"]["table"], 2);
}

#[test]
fn existing_vrf_with_another_table_is_refused() {
    require_root!();
    require_link_kind!("vrf");
    let (node, ctr, r) = ptp_container();
    ctr.ip(&["link", "add", "blue", "type", "vrf", "table", "7"]);
    let add = vrf(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&vrf_conf(json!({"table": 8})), &r),
    );
    add.fails();
    assert!(
        add.stdout.contains("different routing table 7"),
        "{}",
        add.stdout
    );
    assert!(link(&ctr, "eth0").get("master").is_none());
    // The same table (or 0) joins it.
    vrf(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&vrf_conf(json!({"table": 7})), &r),
    )
    .ok();
    assert_eq!(link(&ctr, "eth0")["master"], "blue");
}

#[test]
fn del_after_the_interface_is_gone_succeeds_unlike_the_reference() {
    require_root!();
    require_link_kind!("vrf");
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(&vrf_conf(json!({})), &r);
    vrf(&node, "ADD", &ctr.path(), &conf).ok();
    ctr.ip(&["link", "del", "eth0"]);
    vrf(&node, "DEL", &ctr.path(), &conf).ok();
    assert_eq!(link(&ctr, "blue"), Value::Null, "VRF with no slave left");
}

#[test]
fn vrf_stays_while_another_interface_is_enslaved() {
    require_root!();
    require_link_kind!("vrf");
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(&vrf_conf(json!({})), &r);
    vrf(&node, "ADD", &ctr.path(), &conf).ok();
    ctr.ip(&["link", "add", "other", "type", "veth", "peer", "otherp"]);
    ctr.ip(&["link", "set", "other", "master", "blue"]);
    vrf(&node, "DEL", &ctr.path(), &conf).ok();
    assert_eq!(link(&ctr, "blue")["linkinfo"]["info_kind"], "vrf");
    assert!(link(&ctr, "eth0").get("master").is_none());
}
