//! sbr chained after cnibox ptp, in a node netns and container netns of the
//! test's own; compared with Debian's Go sbr (1.1.1) where it exists.

mod common;
use common::node::{with_prev, Node};
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

const GO_SBR: &str = "/usr/lib/cni/sbr";

fn ptp_conf(node: &Node) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "sbrnet",
        "type": "ptp",
        "ipam": {
            "type": "host-local",
            "subnet": "10.99.12.0/24",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.77.0/24"}],
            "dataDir": node.data.str(),
        }
    })
}

fn dual_stack_conf(node: &Node) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "sbrnet",
        "type": "ptp",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.99.13.0/24"}], [{"subnet": "fd99:13::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            "dataDir": node.data.str(),
        }
    })
}

fn sbr_conf(extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "sbrnet", "type": "sbr"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Run sbr (ours, or the Go one with `go`) in the node netns.
fn sbr(node: &Node, cmd: &str, netns: &str, conf: &Value, go: bool) -> Reply {
    if cmd == "ADD" {
        wait_for_link_local_route(netns);
    }
    let mut call = Call::attach("sbr", cmd, "ctr-sbr", netns, "eth0")
        .in_ns(&node.host)
        .config(conf);
    if go {
        call.bin_dir = PathBuf::from("/usr/lib/cni");
    }
    call.run()
}

/// The kernel adds eth0's fe80::/64 route on its own once the link is up
/// (sooner or later: on a slow machine after the ADD that made the link),
/// and sbr moves whatever routes the link has: wait for it, so ours and
/// Go's see the same table.
fn wait_for_link_local_route(netns: &str) {
    let name = netns.rsplit('/').next().unwrap_or(netns);
    for _ in 0..100 {
        let out = std::process::Command::new(ip_path())
            .args(["-n", name, "-6", "route", "show", "dev", "eth0"])
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("fe80::/64")) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A ptp ADD in a fresh container; returns (node, container, result).
fn ptp_container() -> (Node, TestNs, Value) {
    let node = Node::new("ptp");
    let ctr = TestNs::new("sbrc");
    let add = node.call("ADD", "ctr-sbr", &ctr.path(), &ptp_conf(&node));
    add.ok();
    let r = add.json();
    (node, ctr, r)
}

fn rules(ns: &TestNs) -> Value {
    ns.ip_json(&["rule", "show"])
}

fn table(ns: &TestNs, t: &str) -> Value {
    // A table that does not exist (yet) reads as empty.
    let mut all = Vec::new();
    for fam in ["-4", "-6"] {
        let out = ns.exec(&["ip", "-j", fam, "route", "show", "table", t]);
        if let Ok(Value::Array(v)) = serde_json::from_slice::<Value>(&out.stdout) {
            all.extend(v);
        }
    }
    Value::Array(all)
}

fn main_routes_of_eth0(ns: &TestNs) -> Vec<Value> {
    let mut all = ns.ip_json(&["route", "show", "dev", "eth0"]);
    let v6 = ns.ip_json(&["-6", "route", "show", "dev", "eth0"]);
    all.as_array_mut()
        .unwrap()
        .extend(v6.as_array().unwrap().iter().cloned());
    all.as_array().unwrap().clone()
}

#[test]
fn add_moves_routes_to_table_100_as_the_go_plugin_does_and_del_removes_rules() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(&sbr_conf(json!({})), &r);
    let add = sbr(&node, "ADD", &ctr.path(), &conf, false);
    add.ok();
    assert_eq!(add.json()["ips"], r["ips"], "prevResult passed through");

    let ours_rules = rules(&ctr);
    let lookup: Vec<&Value> = ours_rules
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["table"] == "100")
        .collect();
    assert_eq!(lookup.len(), 1, "{ours_rules}");
    assert_eq!(lookup[0]["src"], "10.99.12.2");
    assert_eq!(lookup[0]["priority"], 32765);
    let t100 = table(&ctr, "100");
    let dsts: Vec<&str> = t100
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["dst"].as_str().unwrap())
        .collect();
    for want in [
        "default",
        "10.99.12.0/24",
        "10.99.12.1",
        "192.168.77.0/24",
        "fe80::/64",
    ] {
        assert!(
            dsts.contains(&want),
            "{want} missing from table 100: {t100}"
        );
    }
    assert!(
        main_routes_of_eth0(&ctr).is_empty(),
        "main still has eth0 routes"
    );

    if std::path::Path::new(GO_SBR).exists() {
        let (gnode, gctr, gr) = ptp_container();
        let gconf = with_prev(&sbr_conf(json!({})), &gr);
        sbr(&gnode, "ADD", &gctr.path(), &gconf, true).ok();
        assert_eq!(rules(&gctr), ours_rules, "ip rule differs from Go's");
        assert_eq!(table(&gctr, "100"), t100, "table 100 differs from Go's");
        assert_eq!(
            main_routes_of_eth0(&gctr),
            main_routes_of_eth0(&ctr),
            "main differs from Go's"
        );
    } else {
        skip(
            SkipKind::Tool,
            "Debian's Go sbr not installed: no comparison",
        );
    }

    sbr(&node, "DEL", &ctr.path(), &conf, false).ok();
    assert!(
        !rules(&ctr).to_string().contains("10.99.12.2"),
        "rule left: {}",
        rules(&ctr)
    );
    // A second DEL finds nothing and succeeds.
    sbr(&node, "DEL", &ctr.path(), &conf, false).ok();
    node.call("DEL", "ctr-sbr", &ctr.path(), &ptp_conf(&node))
        .ok();
}

#[test]
fn dual_stack_gets_one_table_per_address_as_the_go_plugin_does() {
    require_root!();
    if !std::path::Path::new(GO_SBR).exists() {
        skip(SkipKind::Tool, "Debian's Go sbr not installed");
        return;
    }
    let mut seen = Vec::new();
    for go in [false, true] {
        let node = Node::new("ptp");
        let ctr = TestNs::new("sbrc");
        let add = node.call("ADD", "ctr-sbr", &ctr.path(), &dual_stack_conf(&node));
        add.ok();
        let conf = with_prev(&sbr_conf(json!({})), &add.json());
        sbr(&node, "ADD", &ctr.path(), &conf, go).ok();
        let state = (
            rules(&ctr),
            table(&ctr, "100"),
            table(&ctr, "101"),
            main_routes_of_eth0(&ctr),
        );
        assert!(state.2.to_string().contains("fd99:13::1"), "{}", state.2);
        seen.push(state);
    }
    assert_eq!(seen[0], seen[1], "ours (left) differ from Go's (right)");
}

#[test]
fn table_choice_skips_a_table_holding_routes_unlike_the_reference() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    // Table 100 already holds a route but no rule points to it: the
    // reference (which only lists main's routes) would pick it.
    ctr.ip(&["route", "add", "blackhole", "10.200.0.0/16", "table", "100"]);
    ctr.ip(&["route", "add", "10.201.0.0/16", "dev", "lo", "table", "101"]);
    let conf = with_prev(&sbr_conf(json!({})), &r);
    sbr(&node, "ADD", &ctr.path(), &conf, false).ok();
    let rs = rules(&ctr);
    let t: Vec<&Value> = rs
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["src"] == "10.99.12.2")
        .map(|x| &x["table"])
        .collect();
    assert_eq!(t, vec!["102"], "{rs}");
    assert_eq!(table(&ctr, "100").as_array().unwrap().len(), 1);
    assert!(table(&ctr, "102").to_string().contains("10.99.12.1"));
}

#[test]
fn given_table_adds_only_rules_and_gateways_override() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(&sbr_conf(json!({"table": 500})), &r);
    sbr(&node, "ADD", &ctr.path(), &conf, false).ok();
    let rs = rules(&ctr).to_string();
    assert!(rs.contains(r#""table":"500""#), "{rs}");
    assert!(table(&ctr, "500").as_array().unwrap().is_empty());
    assert!(!main_routes_of_eth0(&ctr).is_empty(), "main routes kept");
    sbr(&node, "DEL", &ctr.path(), &conf, false).ok();
    assert!(!rules(&ctr).to_string().contains("10.99.12.2"));

    // A configured gateway replaces the result's in the default route.
    ctr.ip(&["route", "add", "10.99.12.9", "dev", "eth0", "scope", "link"]);
    let conf = with_prev(&sbr_conf(json!({"gateways": ["10.99.12.9"]})), &r);
    sbr(&node, "ADD", &ctr.path(), &conf, false).ok();
    let t = table(&ctr, "100");
    let def = t
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["dst"] == "default")
        .unwrap_or_else(|| panic!("{t}"));
    assert_eq!(def["gateway"], "10.99.12.9", "{t}");
}

#[test]
fn add_source_hints_keeps_the_subnet_in_main_with_src() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(&sbr_conf(json!({"addSourceHints": true})), &r);
    sbr(&node, "ADD", &ctr.path(), &conf, false).ok();
    let main = ctr.ip_json(&["route", "show", "dev", "eth0"]);
    let subnet = main
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["dst"] == "10.99.12.0/24")
        .unwrap_or_else(|| panic!("{main}"));
    assert_eq!(subnet["prefsrc"], "10.99.12.2");
    assert_eq!(subnet["scope"], "link");
    assert!(subnet.get("gateway").is_none(), "{main}");
    assert!(
        !main.to_string().contains("\"default\""),
        "default left in main: {main}"
    );
    assert!(table(&ctr, "100").to_string().contains("default"));
}

#[test]
fn del_with_missing_netns_succeeds_and_creates_no_file_unlike_the_reference() {
    require_root!();
    let node = Node::new("ptp");
    let dir = TempDir::new("sbr-gone");
    let gone = dir.path().join("netns-gone");
    let conf = sbr_conf(json!({}));
    sbr(&node, "DEL", gone.to_str().unwrap(), &conf, false).ok();
    assert!(!gone.exists(), "DEL created {gone:?}");
    // Empty CNI_NETNS: success too.
    sbr(&node, "DEL", "", &conf, false).ok();
    // The interface gone: success.
    let ctr = TestNs::new("sbrc");
    sbr(&node, "DEL", &ctr.path(), &conf, false).ok();
}

#[test]
fn failed_add_leaves_no_rule_and_no_table() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    // An unreachable configured gateway fails the default route after the
    // rule was added: the rule must go again.
    let conf = with_prev(&sbr_conf(json!({"gateways": ["172.31.9.9"]})), &r);
    let before = rules(&ctr);
    sbr(&node, "ADD", &ctr.path(), &conf, false).fails();
    assert_eq!(rules(&ctr), before);
    assert!(table(&ctr, "100").as_array().unwrap().is_empty());
    assert!(!main_routes_of_eth0(&ctr).is_empty());
}

#[test]
fn add_without_prev_result_is_a_config_error() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("sbrc");
    let r = sbr(&node, "ADD", &ctr.path(), &sbr_conf(json!({})), false);
    assert_eq!(r.err_code(), 7);
    assert!(r.json()["msg"].as_str().unwrap().contains("prevResult"));
}
