//! bandwidth chained after cnibox ptp, in a node netns and container netns
//! of the test's own: the qdiscs and filter `tc` shows equal the Go
//! plugin's (Debian 1.1.1), shaping is measurable on a real TCP transfer,
//! failures roll back, DEL is idempotent.

mod common;
use common::node::{with_prev, Node};
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const GO_BW: &str = "/usr/lib/cni/bandwidth";
const ID: &str = "ctr-bw";

fn ptp_conf(node: &Node) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "bwnet",
        "type": "ptp",
        "ipam": {"type": "host-local", "subnet": "10.98.0.0/24", "dataDir": node.data.str()}
    })
}

/// 1 Mbit/s with a 200 kbit burst, both directions.
fn bw_conf(extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0", "name": "bwnet", "type": "bandwidth",
        "ingressRate": 1_000_000, "ingressBurst": 200_000,
        "egressRate": 1_000_000, "egressBurst": 200_000,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn bw(node: &Node, cmd: &str, netns: &str, conf: &Value, go: bool) -> Reply {
    let mut call = Call::attach("bandwidth", cmd, ID, netns, "eth0")
        .in_ns(&node.host)
        .config(conf);
    if go {
        call.bin_dir = PathBuf::from("/usr/lib/cni");
    }
    call.run()
}

fn ptp_container() -> (Node, TestNs, Value) {
    let node = Node::new("ptp");
    let ctr = TestNs::new("bwc");
    let add = node.call("ADD", ID, &ctr.path(), &ptp_conf(&node));
    add.ok();
    let r = add.json();
    (node, ctr, r)
}

fn host_veth(r: &Value) -> String {
    r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i.get("sandbox").is_none_or(|s| s == ""))
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `tc -j ARGS` in the node, with the host veth's name replaced.
fn tc(node: &Node, veth: &str, args: &[&str]) -> Value {
    let mut cmd = vec!["tc", "-j"];
    cmd.extend_from_slice(args);
    let out = node.host.exec(&cmd);
    assert!(out.status.success(), "tc {args:?}: {out:?}");
    let s = String::from_utf8_lossy(&out.stdout).replace(veth, "HOSTVETH");
    if s.trim().is_empty() {
        return json!([]);
    }
    serde_json::from_str(&s).unwrap()
}

fn qdisc_kinds(node: &Node, dev: &str) -> Vec<String> {
    tc(node, dev, &["qdisc", "show", "dev", dev])
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["kind"].as_str().unwrap().to_string())
        .collect()
}

fn ifb_of(node: &Node) -> Vec<String> {
    node.host
        .link_names()
        .into_iter()
        .filter(|l| l.starts_with("bwp"))
        .collect()
}

#[test]
fn add_makes_the_qdiscs_and_filter_the_go_plugin_makes_and_del_removes_the_ifb() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let veth = host_veth(&r);
    let conf = with_prev(&bw_conf(json!({})), &r);
    let add = bw(&node, "ADD", &ctr.path(), &conf, false);
    add.ok();
    let out = add.json();
    let ifs = out["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3, "{out}");
    let ifb = ifs[2]["name"].as_str().unwrap().to_string();
    assert!(ifb.starts_with("bwp") && ifb.len() == 15, "{ifb}");
    assert!(ifs[2].get("sandbox").is_none(), "{out}");
    assert_eq!(ifb_of(&node), vec![ifb.clone()]);

    let qdiscs = tc(&node, &veth, &["qdisc", "show"]);
    let filters = tc(&node, &veth, &["filter", "show", "dev", &veth, "ingress"]);
    let tbf = qdiscs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "tbf" && q["dev"] == "HOSTVETH")
        .unwrap_or_else(|| panic!("{qdiscs}"));
    assert_eq!(tbf["options"]["rate"], 125000, "{tbf}");
    assert_eq!(tbf["options"]["burst"], 25000, "{tbf}");
    assert!(filters.to_string().contains(&ifb), "{filters}");
    // Two mirred actions, as the reference's library sends them.
    assert_eq!(
        filters.to_string().matches("\"mirred\"").count(),
        2,
        "{filters}"
    );
    let on_ifb = tc(&node, &veth, &["qdisc", "show", "dev", &ifb]);
    assert_eq!(on_ifb[0]["kind"], "tbf", "{on_ifb}");

    // CHECK passes, and fails when the limits differ.
    let mut check = with_prev(&bw_conf(json!({})), &out);
    bw(&node, "CHECK", &ctr.path(), &check, false).ok();
    check["egressRate"] = json!(2_000_000);
    bw(&node, "CHECK", &ctr.path(), &check, false).fails();

    if std::path::Path::new(GO_BW).exists() {
        let (gnode, gctr, gr) = ptp_container();
        let gveth = host_veth(&gr);
        bw(
            &gnode,
            "ADD",
            &gctr.path(),
            &with_prev(&bw_conf(json!({})), &gr),
            true,
        )
        .ok();
        assert_eq!(
            tc(&gnode, &gveth, &["qdisc", "show"]),
            qdiscs,
            "qdiscs differ from Go's"
        );
        assert_eq!(
            tc(
                &gnode,
                &gveth,
                &["filter", "show", "dev", &gveth, "ingress"]
            ),
            filters,
            "filters differ from Go's"
        );
        // Go's CHECK accepts what we made (and the reverse).
        bw(
            &node,
            "CHECK",
            &ctr.path(),
            &with_prev(&bw_conf(json!({})), &out),
            true,
        )
        .ok();
        // Drop-in both ways: our DEL removes the ifb Go's ADD made, and
        // Go's DEL the one ours made.
        let gconf = with_prev(&bw_conf(json!({})), &gr);
        assert_eq!(ifb_of(&gnode).len(), 1, "Go's ADD made an ifb");
        bw(&gnode, "DEL", &gctr.path(), &gconf, false).ok();
        assert!(ifb_of(&gnode).is_empty(), "our DEL after Go's ADD");
        bw(&node, "DEL", &ctr.path(), &conf, true).ok();
        assert!(ifb_of(&node).is_empty(), "Go's DEL after our ADD");
    } else {
        skip(
            SkipKind::Tool,
            "Debian's Go bandwidth not installed: no comparison",
        );
    }

    bw(&node, "DEL", &ctr.path(), &conf, false).ok();
    assert!(ifb_of(&node).is_empty());
    bw(&node, "DEL", &ctr.path(), &conf, false).ok();
}

/// Seconds to move 300 KB over TCP from `from` to `to_ip` (bound in `to`).
fn transfer(from: &TestNs, to: &TestNs, to_ip: IpAddr) -> Duration {
    fn in_ns<T: Send>(ns: &TestNs, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(ns.path()).unwrap();
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
    let listener = in_ns(to, || TcpListener::bind((to_ip, 0)).unwrap());
    let port = listener.local_addr().unwrap().port();
    let recv = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got.len()
    });
    let mut stream = in_ns(from, || {
        TcpStream::connect_timeout(&SocketAddr::new(to_ip, port), Duration::from_secs(5)).unwrap()
    });
    let start = Instant::now();
    stream.write_all(&vec![7u8; 300_000]).unwrap();
    drop(stream);
    assert_eq!(recv.join().unwrap(), 300_000);
    start.elapsed()
}

#[test]
fn shaped_transfers_are_measurably_slower_both_ways() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let ctr_ip: IpAddr = r["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let gw: IpAddr = r["ips"][0]["gateway"].as_str().unwrap().parse().unwrap();
    let free_out = transfer(&ctr, &node.host, gw);
    let free_in = transfer(&node.host, &ctr, ctr_ip);
    assert!(
        free_out < Duration::from_millis(500),
        "unshaped out took {free_out:?}"
    );
    assert!(
        free_in < Duration::from_millis(500),
        "unshaped in took {free_in:?}"
    );

    bw(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&bw_conf(json!({})), &r),
        false,
    )
    .ok();
    let out = transfer(&ctr, &node.host, gw);
    let inn = transfer(&node.host, &ctr, ctr_ip);
    eprintln!("300 KB: unshaped {free_out:?} out, {free_in:?} in; shaped {out:?} out, {inn:?} in");
    assert!(
        out > Duration::from_millis(1500),
        "egress shaped took only {out:?}"
    );
    assert!(
        inn > Duration::from_millis(1500),
        "ingress shaped took only {inn:?}"
    );
}

#[test]
fn no_bandwidth_and_no_prev_result_is_an_empty_result_where_the_reference_panics() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("bwc");
    let plain = json!({"cniVersion": "1.0.0", "name": "bwnet", "type": "bandwidth"});
    let r = bw(&node, "ADD", &ctr.path(), &plain, false);
    r.ok();
    assert_eq!(r.json()["cniVersion"], "1.0.0");
    assert!(r.json().get("interfaces").is_none_or(|i| i == &json!([])));
    // Limits but no prevResult: a config error naming it.
    let r = bw(&node, "ADD", &ctr.path(), &bw_conf(json!({})), false);
    assert_eq!(r.err_code(), 7);
    assert!(r.json()["msg"].as_str().unwrap().contains("prevResult"));
}

#[test]
fn zero_limits_pass_the_prev_result_through_untouched() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(
        &bw_conf(json!({"ingressRate": 0, "ingressBurst": 0, "egressRate": 0, "egressBurst": 0})),
        &r,
    );
    let add = bw(&node, "ADD", &ctr.path(), &conf, false);
    add.ok();
    assert_eq!(add.json()["interfaces"], r["interfaces"]);
    assert!(ifb_of(&node).is_empty());
    assert_eq!(qdisc_kinds(&node, &host_veth(&r)), vec!["noqueue"]);
}

#[test]
fn runtime_config_applies_when_no_top_level_keys() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let veth = host_veth(&r);
    let conf = with_prev(
        &bw_conf(json!({
            "ingressRate": null, "ingressBurst": null, "egressRate": null, "egressBurst": null,
            "runtimeConfig": {"bandwidth": {"ingressRate": 2_000_000, "ingressBurst": 400_000}},
        })),
        &r,
    );
    bw(&node, "ADD", &ctr.path(), &conf, false).ok();
    let q = tc(&node, &veth, &["qdisc", "show", "dev", &veth]);
    assert_eq!(q[0]["options"]["rate"], 250000, "{q}");
    assert!(ifb_of(&node).is_empty(), "no egress limit, no ifb");
}

#[test]
fn failed_add_leaves_no_ifb_and_no_qdisc_unlike_the_reference() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let veth = host_veth(&r);
    // Someone else's ingress qdisc: ours cannot be added after the TBF and
    // the ifb were made.
    node.host
        .exec(&["tc", "qdisc", "add", "dev", &veth, "ingress"]);
    let before = qdisc_kinds(&node, &veth);
    assert!(before.contains(&"ingress".to_string()), "{before:?}");
    bw(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&bw_conf(json!({})), &r),
        false,
    )
    .fails();
    assert!(ifb_of(&node).is_empty(), "ifb left: {:?}", ifb_of(&node));
    assert_eq!(qdisc_kinds(&node, &veth), before, "qdiscs changed");
}

#[test]
fn del_removes_the_ifb_after_the_veth_and_netns_are_gone() {
    require_root!();
    let (node, ctr, r) = ptp_container();
    let conf = with_prev(&bw_conf(json!({})), &r);
    bw(&node, "ADD", &ctr.path(), &conf, false).ok();
    let path = ctr.path();
    drop(ctr);
    assert!(!ifb_of(&node).is_empty());
    bw(&node, "DEL", &path, &conf, false).ok();
    assert!(ifb_of(&node).is_empty());
    bw(&node, "DEL", "", &conf, false).ok();
}

#[test]
fn works_behind_bridge_too_and_shapes_the_bridge_port() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("bwc");
    let br = json!({
        "cniVersion": "1.0.0", "name": "bwnet", "type": "bridge", "bridge": "cnibw0",
        "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.98.1.0/24", "dataDir": node.data.str()}
    });
    let add = node.call("ADD", ID, &ctr.path(), &br);
    add.ok();
    let r = add.json();
    // interfaces: the bridge, the host veth, the container's eth0.
    let port = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let out = bw(
        &node,
        "ADD",
        &ctr.path(),
        &with_prev(&bw_conf(json!({})), &r),
        false,
    );
    out.ok();
    assert_eq!(out.json()["interfaces"].as_array().unwrap().len(), 4);
    assert_eq!(qdisc_kinds(&node, &port), vec!["tbf", "ingress"]);
    assert_eq!(
        qdisc_kinds(&node, "cnibw0"),
        vec!["noqueue"],
        "bridge untouched"
    );
    bw(&node, "DEL", &ctr.path(), &bw_conf(json!({})), false).ok();
    assert!(ifb_of(&node).is_empty());
}
