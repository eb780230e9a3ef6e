//! bridge through its symlinked name, in a namespace that plays the node.

mod common;
use common::node::{merged, with_prev, Node};
use common::*;
use serde_json::{json, Value};

fn br_conf(node: &Node, extra: Value) -> Value {
    merged(
        json!({
            "cniVersion": "1.0.0",
            "name": "brnet",
            "type": "bridge",
            "bridge": "cnitest0",
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.66.0.0/24"}]],
                "dataDir": node.data.str(),
            }
        }),
        extra,
    )
}

fn call_args(node: &Node, cmd: &str, id: &str, netns: &str, conf: &Value, args: &str) -> Reply {
    Call::attach("bridge", cmd, id, netns, "eth0")
        .var("CNI_PATH", &node.path)
        .var("CNI_ARGS", args)
        .in_ns(&node.host)
        .config(conf)
        .run()
}

fn link(node: &Node, name: &str) -> Value {
    node.host.ip_json(&["-d", "link", "show", name])[0].clone()
}

/// No veth and no reservation left (the bridge itself stays, by design).
fn assert_clean(node: &Node) {
    let left = node.leftover_links(|l| l.starts_with("veth"));
    assert!(left.is_empty(), "veths left on the node: {left:?}");
    assert!(
        node.reservations("brnet").is_empty(),
        "reservations left: {:?}",
        node.reservations("brnet")
    );
}

/// `bridge -d -j link show dev VETH` on the node: the port's flags.
fn bridge_port(node: &Node, veth: &str) -> Value {
    let out = node
        .host
        .exec(&["bridge", "-d", "-j", "link", "show", "dev", veth]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn bare(cidr: &Value) -> String {
    cidr.as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn two_containers_ping_each_other_and_the_gateway() {
    require_root!();
    let node = Node::new("bridge");
    let (a, b) = (TestNs::new("bra"), TestNs::new("brb"));
    let conf = br_conf(&node, json!({"isGateway": true}));
    let ra = node.call("ADD", "ctr-a", &a.path(), &conf);
    ra.ok();
    let ra = ra.json();
    let rb = node.call("ADD", "ctr-b", &b.path(), &conf).json();

    let ifs = ra["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3);
    assert_eq!(ifs[0]["name"], "cnitest0");
    assert!(ifs[0].get("sandbox").is_none());
    assert!(ifs[1]["name"].as_str().unwrap().starts_with("veth"));
    assert_eq!(
        ifs[2],
        json!({"name": "eth0", "mac": ifs[2]["mac"], "sandbox": a.path()})
    );
    assert_eq!(
        ra["ips"],
        json!([{"address": "10.66.0.2/24", "gateway": "10.66.0.1", "interface": 2}])
    );
    assert_eq!(rb["ips"][0]["address"], "10.66.0.3/24");

    // The gateway sits on the bridge, whose MAC is pinned and reported.
    let brl = link(&node, "cnitest0");
    assert_eq!(brl["linkinfo"]["info_kind"], "bridge");
    assert_eq!(rb["interfaces"][0]["mac"], brl["address"]);
    let br_addrs = node.host.ip_json(&["addr", "show", "cnitest0"]);
    assert!(br_addrs[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["local"] == "10.66.0.1" && x["prefixlen"] == 24));

    assert!(a.ping("10.66.0.3"), "a reaches b");
    assert!(b.ping("10.66.0.2"), "b reaches a");
    assert!(a.ping("10.66.0.1"), "a reaches the gateway");
    assert_eq!(
        a.exec(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_notify"])
            .stdout,
        b"1\n"
    );

    // CHECK passes, fails after the container loses its address.
    node.call("CHECK", "ctr-a", &a.path(), &with_prev(&conf, &ra))
        .ok();
    a.ip(&["addr", "del", "10.66.0.2/24", "dev", "eth0"]);
    let bad = node.call("CHECK", "ctr-a", &a.path(), &with_prev(&conf, &ra));
    assert_ne!(bad.status, 0);
    assert!(bad.stdout.contains("10.66.0.2"), "{}", bad.stdout);

    for _ in 0..2 {
        node.call("DEL", "ctr-a", &a.path(), &conf).ok();
        node.call("DEL", "ctr-b", &b.path(), &conf).ok();
    }
    assert!(
        node.host.link_names().contains(&"cnitest0".to_string()),
        "the bridge stays"
    );
    assert_clean(&node);
}

#[test]
fn default_gateway_reaches_an_outside_namespace_through_the_node() {
    require_root!();
    let node = Node::new("bridge");
    let outside = TestNs::new("brout");
    // node <-> outside link: 192.0.2.1 on the node, 192.0.2.2 outside, and
    // a route back to the pod subnet (no masquerade here).
    node.host.ip(&[
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "up1",
        "netns",
        &outside.name,
    ]);
    node.host.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"]);
    node.host.ip(&["link", "set", "up0", "up"]);
    outside.ip(&["addr", "add", "192.0.2.2/24", "dev", "up1"]);
    outside.ip(&["link", "set", "up1", "up"]);
    outside.ip(&["route", "add", "10.66.0.0/24", "via", "192.0.2.1"]);

    let ctr = TestNs::new("brdg");
    let conf = br_conf(&node, json!({"isDefaultGateway": true}));
    let r = node.call("ADD", "ctr-dg", &ctr.path(), &conf).json();
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.66.0.1"}])
    );
    assert_eq!(
        node.host
            .exec(&["sysctl", "-n", "net.ipv4.ip_forward"])
            .stdout,
        b"1\n"
    );
    assert!(
        ctr.ping("192.0.2.2"),
        "the container reaches the outside through the node"
    );
    node.call("DEL", "ctr-dg", &ctr.path(), &conf).ok();
    node.host.ip(&["link", "del", "up0"]);
    assert_clean(&node);
}

#[test]
fn hairpin_isolation_and_promisc_read_back() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brflags");
    let conf = br_conf(&node, json!({"hairpinMode": true, "portIsolation": true}));
    let r = node.call("ADD", "ctr-f", &ctr.path(), &conf).json();
    let veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let port = bridge_port(&node, &veth);
    assert_eq!(port[0]["hairpin"], true, "{port}");
    assert_eq!(port[0]["isolated"], true, "{port}");
    node.call("DEL", "ctr-f", &ctr.path(), &conf).ok();

    let conf = br_conf(&node, json!({"promiscMode": true}));
    let r = node.call("ADD", "ctr-p", &ctr.path(), &conf).json();
    let flags = node.host.ip_json(&["link", "show", "cnitest0"])[0]["flags"].clone();
    assert!(
        flags.as_array().unwrap().contains(&json!("PROMISC")),
        "{flags}"
    );
    let veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let port = bridge_port(&node, &veth);
    assert_eq!(port[0]["hairpin"], false);
    node.call("CHECK", "ctr-p", &ctr.path(), &with_prev(&conf, &r))
        .ok();
    // CHECK compares the bridge's promisc state with the config.
    let c2 = br_conf(&node, json!({"promiscMode": false}));
    assert_ne!(
        node.call("CHECK", "ctr-p", &ctr.path(), &with_prev(&c2, &r))
            .status,
        0
    );
    node.call("DEL", "ctr-p", &ctr.path(), &conf).ok();

    let r = node.call(
        "ADD",
        "ctr-hp",
        &ctr.path(),
        &br_conf(&node, json!({"hairpinMode": true, "promiscMode": true})),
    );
    assert_eq!(r.err_code(), 7);
    assert_clean(&node);
}

#[test]
fn mac_precedence_cni_args_then_args_then_runtime_config() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brmac");
    let cases = [
        (json!({}), "c2:11:22:33:44:01"),
        (
            json!({"args": {"cni": {"mac": "c2:11:22:33:44:02"}}}),
            "c2:11:22:33:44:02",
        ),
        (
            json!({"args": {"cni": {"mac": "c2:11:22:33:44:02"}}, "runtimeConfig": {"mac": "c2:11:22:33:44:03"}}),
            "c2:11:22:33:44:03",
        ),
    ];
    for (extra, want) in cases {
        let conf = br_conf(&node, extra);
        let r = call_args(
            &node,
            "ADD",
            "ctr-m",
            &ctr.path(),
            &conf,
            "IgnoreUnknown=1;MAC=c2:11:22:33:44:01;K8S_POD_NAME=x",
        );
        r.ok();
        assert_eq!(r.json()["interfaces"][2]["mac"], want);
        assert_eq!(ctr.ip_json(&["link", "show", "eth0"])[0]["address"], want);
        node.call("DEL", "ctr-m", &ctr.path(), &conf).ok();
    }
    let bad = call_args(
        &node,
        "ADD",
        "ctr-m",
        &ctr.path(),
        &br_conf(&node, json!({})),
        "MAC=zz",
    );
    // CNI_ARGS is the environment: code 4 (a bad MAC in the config is 7).
    assert_eq!(bad.err_code(), 4);
    assert!(bad.stdout.contains("MAC"));
    assert_clean(&node);
}

#[test]
fn force_address_replaces_a_different_gateway() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brforce");
    node.host.ip(&["link", "add", "cnitest0", "type", "bridge"]);
    node.host
        .ip(&["addr", "add", "10.99.99.1/24", "dev", "cnitest0"]);
    let conf = br_conf(&node, json!({"isGateway": true}));
    let r = node.call("ADD", "ctr-x", &ctr.path(), &conf);
    assert_ne!(r.status, 0);
    assert!(
        r.stdout
            .contains("already has an IP address different from 10.66.0.1/24"),
        "{}",
        r.stdout
    );
    assert_clean(&node);

    let conf = br_conf(&node, json!({"isGateway": true, "forceAddress": true}));
    node.call("ADD", "ctr-x", &ctr.path(), &conf).ok();
    let addrs: Vec<String> = node.host.ip_json(&["-4", "addr", "show", "cnitest0"])[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["local"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(addrs, vec!["10.66.0.1"]);
    node.call("DEL", "ctr-x", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn a_gateway_already_on_the_bridge_is_accepted_like_go_even_with_a_later_second_address() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brgwok");
    node.host.ip(&["link", "add", "cnitest0", "type", "bridge"]);
    // The reference walks the addresses in the kernel's order and stops at
    // the gateway: an address listed after it is another network's.
    node.host
        .ip(&["addr", "add", "10.66.0.1/24", "dev", "cnitest0"]);
    node.host
        .ip(&["addr", "add", "10.99.99.1/24", "dev", "cnitest0"]);
    let conf = br_conf(&node, json!({"isGateway": true}));
    node.call("ADD", "ctr-x", &ctr.path(), &conf).ok();
    let addrs: Vec<String> = node.host.ip_json(&["-4", "addr", "show", "cnitest0"])[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["local"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(addrs, vec!["10.66.0.1", "10.99.99.1"]);
    node.call("DEL", "ctr-x", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn ipv6_dual_stack_dad_off_unless_enabledad_and_gateway_usable_at_once_unlike_go_tentative_gateway()
{
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("br6");
    let mut conf = br_conf(&node, json!({"isGateway": true}));
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.66.0.0/24"}], [{"subnet": "fd66::/64"}]]);
    let r = node.call("ADD", "ctr-6", &ctr.path(), &conf).json();
    assert_eq!(r["ips"][1]["address"], "fd66::2/64");
    assert_eq!(
        ctr.exec(&["sysctl", "-n", "net.ipv6.conf.eth0.accept_dad"])
            .stdout,
        b"0\n"
    );
    let tentative = ctr.ip_json(&["-6", "addr", "show", "eth0", "tentative"]);
    assert!(
        tentative.as_array().unwrap().is_empty()
            || tentative[0]["addr_info"].as_array().unwrap().is_empty(),
        "{tentative}"
    );
    // The bridge's IPv6 gateway answers right after ADD (Go's is tentative
    // for a DAD round first).
    assert!(ctr.ping("fd66::1"));
    node.call("DEL", "ctr-6", &ctr.path(), &conf).ok();

    conf["enabledad"] = json!(true);
    node.call("ADD", "ctr-6", &ctr.path(), &conf).ok();
    assert_eq!(
        ctr.exec(&["sysctl", "-n", "net.ipv6.conf.eth0.accept_dad"])
            .stdout,
        b"1\n"
    );
    assert_eq!(
        ctr.exec(&["sysctl", "-n", "net.ipv6.conf.eth0.enhanced_dad"])
            .stdout,
        b"1\n"
    );
    node.call("DEL", "ctr-6", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

/// The reference runs IPAM CHECK even without IPAM and fails every L2
/// bridge with "no plugin name provided". Ours checks the interfaces only.
#[test]
fn l2_bridge_passes_check_fixing_go_no_plugin_name_bug() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brl2");
    for ipam in [json!(null), json!({})] {
        let conf = br_conf(&node, json!({"ipam": ipam}));
        let r = node.call("ADD", "ctr-l2", &ctr.path(), &conf);
        r.ok();
        let r = r.json();
        assert!(r.get("ips").is_none(), "{r}");
        assert!(ctr.ip_json(&["link", "show", "eth0"])[0]["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("UP")));
        node.call("CHECK", "ctr-l2", &ctr.path(), &with_prev(&conf, &r))
            .ok();
        node.call("DEL", "ctr-l2", &ctr.path(), &conf).ok();
    }
    assert_clean(&node);
}

#[test]
fn disable_container_interface_leaves_it_down_and_refuses_ipam() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brdis");
    let conf = br_conf(
        &node,
        json!({"ipam": null, "disableContainerInterface": true}),
    );
    node.call("ADD", "ctr-d", &ctr.path(), &conf).ok();
    let flags = ctr.ip_json(&["link", "show", "eth0"])[0]["flags"].clone();
    assert!(!flags.as_array().unwrap().contains(&json!("UP")), "{flags}");
    node.call("DEL", "ctr-d", &ctr.path(), &conf).ok();
    let r = node.call(
        "ADD",
        "ctr-d",
        &ctr.path(),
        &br_conf(&node, json!({"disableContainerInterface": true})),
    );
    assert_eq!(r.err_code(), 7);
    assert_clean(&node);
}

#[test]
fn two_first_adds_at_once_on_a_new_bridge_both_succeed() {
    require_root!();
    for round in 0..5 {
        let node = Node::new("bridge");
        let (a, b) = (TestNs::new("brra"), TestNs::new("brrb"));
        let conf = br_conf(&node, json!({"isGateway": true}));
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| node.call("ADD", "ctr-ra", &a.path(), &conf));
            let hb = s.spawn(|| node.call("ADD", "ctr-rb", &b.path(), &conf));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        assert_eq!(ra.status, 0, "round {round}: {}", ra.stdout);
        assert_eq!(rb.status, 0, "round {round}: {}", rb.stdout);
        assert!(a.ping(&bare(&rb.json()["ips"][0]["address"])));
        node.call("DEL", "ctr-ra", &a.path(), &conf).ok();
        node.call("DEL", "ctr-rb", &b.path(), &conf).ok();
        assert_clean(&node);
    }
}

#[test]
fn del_after_netns_is_gone_and_a_failure_after_ipam_leaks_nothing() {
    require_root!();
    let node = Node::new("bridge");
    let conf = br_conf(&node, json!({"isGateway": true}));
    let ctr = TestNs::new("brgone");
    let path = ctr.path();
    node.call("ADD", "ctr-g", &path, &conf).ok();
    drop(ctr);
    node.call("DEL", "ctr-g", &path, &conf).ok();
    node.call("DEL", "ctr-g", "", &conf).ok();
    assert_clean(&node);

    for point in ["bridge:after-ipam", "bridge:before-result"] {
        let ctr = TestNs::new("brfail");
        let r = Call::attach("bridge", "ADD", "ctr-f", &ctr.path(), "eth0")
            .var("CNI_PATH", &node.path)
            .var("CNIBOX_FAULT", point)
            .in_ns(&node.host)
            .config(&conf)
            .run();
        assert_eq!(r.err_code(), 999, "{point}");
        assert_eq!(ctr.link_names(), vec!["lo".to_string()], "{point}");
        assert_clean(&node);
    }
}

/// ADD on a VLAN-filtering bridge: the result, or `None` after a Kernel
/// skip when this kernel has no bridge VLAN filtering (the ADD must then
/// fail cleanly, code 2, leaving nothing behind).
fn vlan_add(node: &Node, id: &str, ctr: &TestNs, conf: &Value) -> Option<Value> {
    let r = node.call("ADD", id, &ctr.path(), conf);
    if r.status != 0 && r.stdout.contains("VLAN filtering") {
        assert_eq!(r.err_code(), 2, "unsupported kernel feature is code 2");
        assert_clean(node);
        skip(
            SkipKind::Kernel,
            &format!(
                "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING; make test-kernel runs this): {}",
                r.json()["msg"]
            ),
        );
        return None;
    }
    r.ok();
    Some(r.json())
}

/// `bridge -j vlan show dev DEV` on the node: (vid, pvid, untagged), in
/// order, ranges expanded.
fn port_vlans(node: &Node, dev: &str) -> Vec<(u64, bool, bool)> {
    let out = node
        .host
        .exec(&["bridge", "-j", "vlan", "show", "dev", dev]);
    assert!(out.status.success(), "bridge vlan show dev {dev}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut vids = Vec::new();
    for e in v[0]["vlans"].as_array().cloned().unwrap_or_default() {
        let flags: Vec<&str> = e["flags"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let first = e["vlan"].as_u64().unwrap();
        let last = e["vlanEnd"].as_u64().unwrap_or(first);
        for vid in first..=last {
            vids.push((
                vid,
                flags.contains(&"PVID"),
                flags.contains(&"Egress Untagged"),
            ));
        }
    }
    vids
}

/// The bridge filters VLANs (`ip -d link`: vlan_filtering 1).
fn assert_vlan_filtering(node: &Node) {
    let br = link(node, "cnitest0");
    assert_eq!(
        br["linkinfo"]["info_data"]["vlan_filtering"], 1,
        "bridge has VLAN filtering: {br}"
    );
}

fn host_veth(r: &Value) -> String {
    r["interfaces"][1]["name"].as_str().unwrap().to_string()
}

#[test]
fn vlan_access_port_or_skip_when_the_kernel_lacks_vlan_filtering() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brvlan");
    let conf = br_conf(&node, json!({"vlan": 100}));
    let Some(r) = vlan_add(&node, "ctr-v", &ctr, &conf) else {
        return;
    };
    assert_vlan_filtering(&node);
    // VLAN 1 (the bridge's default) is removed: the port is in VLAN 100
    // only, untagged, as its PVID.
    assert_eq!(
        port_vlans(&node, &host_veth(&r)),
        [(100, true, true)],
        "access port"
    );
    node.call("CHECK", "ctr-v", &ctr.path(), &with_prev(&conf, &r))
        .ok();
    node.call("DEL", "ctr-v", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn vlan_trunk_port_carries_tagged_ids_and_ranges_over_native_vlan_1() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brtrunk");
    let conf = br_conf(
        &node,
        json!({"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 203}, {"id": 300}]}),
    );
    let Some(r) = vlan_add(&node, "ctr-t", &ctr, &conf) else {
        return;
    };
    assert_vlan_filtering(&node);
    assert_eq!(
        port_vlans(&node, &host_veth(&r)),
        [
            (1, true, true),
            (101, false, false),
            (200, false, false),
            (201, false, false),
            (202, false, false),
            (203, false, false),
            (300, false, false),
        ],
        "trunk port: VLAN 1 native, the rest tagged"
    );
    node.call("DEL", "ctr-t", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn preserve_default_vlan_keeps_vlan_1_beside_the_access_vlan() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brpres");
    let conf = br_conf(&node, json!({"vlan": 100, "preserveDefaultVlan": true}));
    let Some(r) = vlan_add(&node, "ctr-p", &ctr, &conf) else {
        return;
    };
    // VLAN 1 stays (untagged; the PVID moves to the access VLAN).
    assert_eq!(
        port_vlans(&node, &host_veth(&r)),
        [(1, false, true), (100, true, true)],
        "preserveDefaultVlan"
    );
    node.call("DEL", "ctr-p", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn vlan_gateway_lives_on_bridge_dot_vlan_and_the_container_reaches_it() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brvgw");
    let conf = br_conf(&node, json!({"vlan": 100, "isGateway": true}));
    let Some(r) = vlan_add(&node, "ctr-g", &ctr, &conf) else {
        return;
    };
    // The gateway address is on cnitest0.100, not on the bridge.
    let gw_if = node.host.ip_json(&["addr", "show", "cnitest0.100"]);
    let addrs: Vec<String> = gw_if[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert!(addrs.contains(&"10.66.0.1/24".to_string()), "{gw_if}");
    assert_eq!(gw_if[0]["operstate"], "UP", "{gw_if}");
    let br = node.host.ip_json(&["addr", "show", "cnitest0"]);
    assert!(
        !br.to_string().contains("10.66.0.1"),
        "no gateway address on the bridge itself: {br}"
    );
    // Its veth peer is a port of the bridge, an access port in VLAN 100.
    let gw_link = node.host.ip_json(&["-d", "link", "show", "cnitest0.100"]);
    let peer_index = gw_link[0]["link_index"]
        .as_u64()
        .or_else(|| {
            let peer = gw_link[0]["link"].as_str()?;
            node.host.ip_json(&["link", "show", peer])[0]["ifindex"].as_u64()
        })
        .unwrap_or_else(|| panic!("cnitest0.100 is a veth with a peer: {gw_link}"));
    let ports = node.host.ip_json(&["link", "show", "master", "cnitest0"]);
    let peer = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ifindex"].as_u64() == Some(peer_index))
        .unwrap_or_else(|| panic!("the gateway's peer is a bridge port: {ports}"));
    let peer = peer["ifname"].as_str().unwrap();
    assert_eq!(port_vlans(&node, peer), [(100, true, true)], "gateway port");
    assert_eq!(
        port_vlans(&node, &host_veth(&r)),
        [(100, true, true)],
        "container port"
    );
    // Traffic: the container reaches its gateway through VLAN 100.
    assert!(ctr.ping("10.66.0.1"), "container pings its VLAN gateway");
    node.call("CHECK", "ctr-g", &ctr.path(), &with_prev(&conf, &r))
        .ok();
    node.call("DEL", "ctr-g", &ctr.path(), &conf).ok();
    // The container's port and reservation go; the gateway interface
    // stays, as the bridge does.
    assert!(
        !node.host.link_names().contains(&host_veth(&r)),
        "container veth gone"
    );
    assert!(node.reservations("brnet").is_empty());
    assert!(node.host.link_names().contains(&"cnitest0.100".to_string()));
}

#[test]
fn bad_bridge_configs_are_code_7_and_change_nothing() {
    require_root!();
    let node = Node::new("bridge");
    let ctr = TestNs::new("brbad");
    for (extra, mentions) in [
        (json!({"vlan": 5000}), "vlan"),
        (json!({"vlan": 10, "vlanTrunk": [{"id": 20}]}), "vlanTrunk"),
        (json!({"vlanTrunk": [{"minID": 10}]}), "maxID is missing"),
        (json!({"bridge": "a-name-longer-than-15"}), "bridge"),
        (json!({"bridge": "a/b"}), "bridge"),
        (json!({"mtu": "x"}), "mtu"),
        (json!({"isGateway": "yes"}), "isGateway"),
        (
            json!({"runtimeConfig": {"mac": "not-a-mac"}}),
            "runtimeConfig.mac",
        ),
    ] {
        let r = node.call(
            "ADD",
            "ctr-bad",
            &ctr.path(),
            &br_conf(&node, extra.clone()),
        );
        assert_eq!(r.err_code(), 7, "{extra}: {}", r.stdout);
        assert!(r.stdout.contains(mentions), "{extra}: {}", r.stdout);
        assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
        assert!(
            !node.host.link_names().contains(&"cnitest0".to_string()),
            "{extra}: no bridge created"
        );
    }
    assert_clean(&node);
}

#[test]
fn go_host_local_as_ipam_works_the_same() {
    require_root!();
    let Some(node) = Node::with_go_host_local("bridge") else {
        return;
    };
    let ctr = TestNs::new("brgo");
    let conf = br_conf(&node, json!({"isGateway": true}));
    let r = node.call("ADD", "ctr-go", &ctr.path(), &conf);
    r.ok();
    let r = r.json();
    assert_eq!(r["ips"][0]["address"], "10.66.0.2/24");
    assert!(ctr.ping("10.66.0.1"));
    node.call("CHECK", "ctr-go", &ctr.path(), &with_prev(&conf, &r))
        .ok();
    node.call("DEL", "ctr-go", &ctr.path(), &conf).ok();
    assert_clean(&node);
}
