//! host-device through its symlinked name. The "host" is a node namespace
//! and the device is one end of a veth pair made there (this VM has no
//! spare NIC, PCI or auxiliary device). Results are compared with the Go
//! reference (/usr/lib/cni/host-device, Debian 1.1.1).

mod common;
use common::node::{merged, with_prev, Node};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const GO: &str = "/usr/lib/cni/host-device";

/// A node with a veth `hd0` (peer `hdpeer`), up, with a pre-existing alias.
fn node_with_device(go_host_local: bool) -> Option<Node> {
    let node = if go_host_local {
        Node::with_go_host_local("host-device")?
    } else {
        Node::new("host-device")
    };
    node.host.ip(&[
        "link", "add", "hd0", "type", "veth", "peer", "name", "hdpeer",
    ]);
    node.host.ip(&["link", "set", "hd0", "alias", "uplink-a"]);
    node.host.ip(&["link", "set", "hd0", "up"]);
    node.host.ip(&["link", "set", "hdpeer", "up"]);
    Some(node)
}

fn state_dir(node: &Node) -> PathBuf {
    node.data.path().join("hd-state")
}

fn hd_conf(node: &Node, version: &str, extra: Value) -> Value {
    merged(
        json!({
            "cniVersion": version,
            "name": "hdnet",
            "type": "host-device",
            "device": "hd0",
            "dataDir": state_dir(node).display().to_string(),
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.67.0.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": node.data.str(),
            },
            "dns": {"nameservers": ["10.67.0.53"]},
        }),
        extra,
    )
}

fn call(node: &Node, cmd: &str, ctr: &str, conf: &Value, fault: Option<&str>) -> Reply {
    let mut c = Call::attach("host-device", cmd, "ctr-hd", ctr, "net1")
        .var("CNI_PATH", &node.path)
        .in_ns(&node.host)
        .config(conf);
    if let Some(f) = fault {
        c = c.var("CNIBOX_FAULT", f);
    }
    c.run()
}

/// `ip -j link show NAME` in `ns`, or Null.
fn link(ns: &TestNs, name: &str) -> Value {
    let out = ns.exec(&["ip", "-j", "link", "show", name]);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

fn is_up(l: &Value) -> bool {
    l["flags"].as_array().unwrap().contains(&json!("UP"))
}

/// The device is home as it was: name, alias, MAC, up; nothing else left.
fn assert_home(node: &Node, ctr: Option<&TestNs>, mac: &str) {
    let l = link(&node.host, "hd0");
    assert!(!l.is_null(), "hd0 is back on the node");
    assert_eq!(l["ifalias"], "uplink-a", "{l}");
    assert_eq!(l["address"], mac);
    assert!(is_up(&l), "up again: {l}");
    if let Some(ctr) = ctr {
        assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
    }
    assert!(node.reservations("hdnet").is_empty());
    assert!(tree(&state_dir(node)).is_empty(), "state files left");
}

#[test]
fn round_trip_moves_the_device_in_and_out_keeping_its_alias_mac_and_up_state() {
    require_root!();
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let node = node_with_device(false).unwrap();
        let ctr = TestNs::new("hdc");
        let mac = link(&node.host, "hd0")["address"]
            .as_str()
            .unwrap()
            .to_string();
        let conf = hd_conf(&node, version, json!({}));
        let add = call(&node, "ADD", &ctr.path(), &conf, None);
        add.ok();
        let r = add.json();
        assert_eq!(
            r["interfaces"],
            json!([{"name": "net1", "mac": mac, "sandbox": ctr.path()}])
        );
        assert_eq!(r["ips"][0]["address"], "10.67.0.2/24");
        assert_eq!(r["ips"][0]["interface"], 0);
        assert_eq!(r["dns"], json!({"nameservers": ["10.67.0.53"]}));

        // Inside: renamed, the original name as alias (as the reference),
        // up, addressed, routed; gone from the node.
        let l = link(&ctr, "net1");
        assert_eq!(l["ifalias"], "hd0", "{l}");
        assert_eq!(l["address"], mac);
        assert!(is_up(&l));
        assert!(ctr
            .ip(&["-4", "addr", "show", "net1"])
            .contains("10.67.0.2/24"));
        assert!(ctr
            .ip(&["route", "show", "default"])
            .contains("via 10.67.0.1"));
        assert!(link(&node.host, "hd0").is_null());
        if version != "0.3.1" {
            call(&node, "CHECK", &ctr.path(), &with_prev(&conf, &r), None).ok();
        }

        call(&node, "DEL", &ctr.path(), &conf, None).ok();
        assert_home(&node, Some(&ctr), &mac);
    }
}

#[test]
fn second_del_succeeds_where_the_reference_fails() {
    require_root!();
    let node = node_with_device(false).unwrap();
    let ctr = TestNs::new("hdc");
    let mac = link(&node.host, "hd0")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let conf = hd_conf(&node, "1.0.0", json!({}));
    call(&node, "ADD", &ctr.path(), &conf, None).ok();
    call(&node, "DEL", &ctr.path(), &conf, None).ok();
    call(&node, "DEL", &ctr.path(), &conf, None).ok();
    assert_home(&node, Some(&ctr), &mac);
}

#[test]
fn del_with_the_netns_gone_succeeds_and_releases_the_ip_where_the_reference_fails() {
    require_root!();
    let node = node_with_device(false).unwrap();
    let ctr = TestNs::new("hdc");
    let conf = hd_conf(&node, "1.0.0", json!({}));
    call(&node, "ADD", &ctr.path(), &conf, None).ok();
    let path = ctr.path();
    drop(ctr);
    // A virtual device dies with its namespace (its peer with it): DEL
    // says so and succeeds with nothing to move.
    let gone = node.leftover_links(|l| l == "hdpeer");
    assert!(gone.is_empty(), "the veth died with the netns");
    let del = call(&node, "DEL", &path, &conf, None);
    del.ok();
    assert!(del.stderr.contains("did not come back"), "{}", del.stderr);
    assert!(node.reservations("hdnet").is_empty());
    assert!(tree(&state_dir(&node)).is_empty());
    call(&node, "DEL", &path, &conf, None).ok();
}

#[test]
fn failed_add_moves_the_device_back_and_releases_the_ip_where_the_reference_leaks() {
    require_root!();
    let node = node_with_device(false).unwrap();
    let ctr = TestNs::new("hdc");
    let mac = link(&node.host, "hd0")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let conf = hd_conf(&node, "1.0.0", json!({}));
    for point in [
        "host-device:after-state",
        "host-device:after-move",
        "host-device:after-ipam",
        "host-device:after-configure",
    ] {
        let r = call(&node, "ADD", &ctr.path(), &conf, Some(point));
        assert_eq!(r.err_code(), 999, "{point}: {}", r.stdout);
        assert_home(&node, Some(&ctr), &mac);
    }
    // A real IPAM failure: a range with no free address.
    let full = hd_conf(
        &node,
        "1.0.0",
        json!({"ipam": {"type": "host-local", "dataDir": node.data.str(),
                        "ranges": [[{"subnet": "10.67.1.0/30", "rangeStart": "10.67.1.2",
                                     "rangeEnd": "10.67.1.2"}]]}}),
    );
    let other = TestNs::new("hdo");
    let ipam_only = json!({"cniVersion": "1.0.0", "name": "hdnet", "ipam": full["ipam"].clone()});
    Call::attach("host-local", "ADD", "other", &other.path(), "eth0")
        .var("CNI_PATH", &node.path)
        .config(&ipam_only)
        .run()
        .ok();
    let r = call(&node, "ADD", &ctr.path(), &full, None);
    r.fails();
    let l = link(&node.host, "hd0");
    assert_eq!(l["ifalias"], "uplink-a");
    assert!(is_up(&l));
    assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
    assert!(tree(&state_dir(&node)).is_empty());
    // And a retry that can work, works.
    call(&node, "ADD", &ctr.path(), &conf, None).ok();
    call(&node, "DEL", &ctr.path(), &conf, None).ok();
}

#[test]
fn hwaddr_finds_the_device_and_a_missing_device_changes_nothing() {
    require_root!();
    let node = node_with_device(false).unwrap();
    let ctr = TestNs::new("hdc");
    let mac = link(&node.host, "hd0")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let conf = hd_conf(
        &node,
        "1.0.0",
        json!({"device": null, "hwaddr": mac.to_uppercase(), "ipam": null}),
    );
    let add = call(&node, "ADD", &ctr.path(), &conf, None);
    add.ok();
    // L2: no IPs, the config's dns.
    assert_eq!(
        add.json(),
        json!({"cniVersion": "1.0.0", "dns": {"nameservers": ["10.67.0.53"]},
               "interfaces": [{"name": "net1", "mac": mac, "sandbox": ctr.path()}]})
    );
    call(&node, "DEL", &ctr.path(), &conf, None).ok();
    assert_home(&node, Some(&ctr), &mac);

    let r = call(
        &node,
        "ADD",
        &ctr.path(),
        &hd_conf(&node, "1.0.0", json!({"device": "nosuch0"})),
        None,
    );
    assert_eq!(r.err_code(), 7, "{}", r.stdout);
    assert!(r.stdout.contains("device") && r.stdout.contains("nosuch0"));
    assert_home(&node, Some(&ctr), &mac);
}

/// Keys sorted (serde_json's map), the random MAC and the sandbox masked.
fn masked(mut v: Value) -> Value {
    if let Some(ifs) = v["interfaces"].as_array_mut() {
        for i in ifs {
            i["mac"] = json!("MAC");
            i["sandbox"] = json!("SANDBOX");
        }
    }
    v
}

#[test]
fn results_match_the_go_reference_and_each_del_undoes_the_others_add() {
    require_root!();
    if !Path::new(GO).exists() {
        skip(
            SkipKind::Tool,
            "Debian's containernetworking-plugins not installed",
        );
        return;
    }
    for (version, l3) in [
        ("0.3.1", true),
        ("0.4.0", true),
        ("1.0.0", true),
        ("0.4.0", false),
        ("1.0.0", false),
    ] {
        // Ours with Go's host-local, then Go's with the same.
        let ours_node = node_with_device(true).unwrap();
        let go_node = node_with_device(true).unwrap();
        let go_bin = go_node.data.path().join("bin/host-device");
        std::fs::remove_file(&go_bin).unwrap();
        std::os::unix::fs::symlink(GO, &go_bin).unwrap();
        let (c1, c2) = (TestNs::new("hdc"), TestNs::new("hdg"));
        let conf = |n: &Node| match l3 {
            true => hd_conf(n, version, json!({})),
            false => hd_conf(n, version, json!({"ipam": null, "dns": null})),
        };
        let ours = call(&ours_node, "ADD", &c1.path(), &conf(&ours_node), None);
        let go = call(&go_node, "ADD", &c2.path(), &conf(&go_node), None);
        ours.ok();
        go.ok();
        assert_eq!(masked(ours.json()), masked(go.json()), "{version} l3={l3}");

        // Drop-in both ways: Go's DEL brings back what we moved in (it
        // reads the alias), ours what Go moved in.
        let ours_mac = link(&ours_node.host, "hdpeer")["address"].clone();
        std::fs::remove_file(ours_node.data.path().join("bin/host-device")).unwrap();
        std::os::unix::fs::symlink(GO, ours_node.data.path().join("bin/host-device")).unwrap();
        call(&ours_node, "DEL", &c1.path(), &conf(&ours_node), None).ok();
        assert!(
            !link(&ours_node.host, "hd0").is_null(),
            "Go's DEL returned it"
        );
        assert!(!ours_mac.is_null());
        std::fs::remove_file(&go_bin).unwrap();
        std::os::unix::fs::symlink(cnibox(), &go_bin).unwrap();
        call(&go_node, "DEL", &c2.path(), &conf(&go_node), None).ok();
        let l = link(&go_node.host, "hd0");
        assert!(!l.is_null(), "our DEL returned what Go moved in");
        assert_eq!(c2.link_names(), vec!["lo".to_string()]);
        assert!(go_node.reservations("hdnet").is_empty());
    }
}

#[test]
fn status_and_gc_delegate_to_ipam() {
    require_root!();
    let node = node_with_device(false).unwrap();
    let ctr = TestNs::new("hdc");
    let conf = hd_conf(&node, "1.1.0", json!({}));
    call(&node, "STATUS", &ctr.path(), &conf, None).ok();
    call(&node, "GC", &ctr.path(), &conf, None).ok();
    let l2 = hd_conf(&node, "1.1.0", json!({"ipam": null}));
    call(&node, "STATUS", &ctr.path(), &l2, None).ok();
}

#[test]
fn l2_at_0_2_0_is_refused_before_the_device_moves() {
    require_root!();
    let node = node_with_device(false).unwrap();
    let ctr = TestNs::new("hdc");
    let mac = link(&node.host, "hd0")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let conf = hd_conf(&node, "0.2.0", json!({"ipam": null}));
    let r = call(&node, "ADD", &ctr.path(), &conf, None);
    assert_eq!(r.err_code(), 1, "{}", r.stdout);
    assert_home(&node, Some(&ctr), &mac);
}

#[test]
fn del_with_the_netns_gone_restores_a_device_the_kernel_gave_back() {
    require_root!();
    let node = node_with_device(false).unwrap();
    let ctr = TestNs::new("hdc");
    let mac = link(&node.host, "hd0")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let conf = hd_conf(&node, "1.0.0", json!({}));
    call(&node, "ADD", &ctr.path(), &conf, None).ok();
    // What the kernel does with a physical device when its netns dies: back
    // to the initial netns, alias kept, renamed devN if its name is taken.
    // Played here by hand (a veth would die with the netns).
    ctr.ip(&[
        "link",
        "set",
        "net1",
        "netns",
        &node.host.name,
        "name",
        "dev5",
    ]);
    // A bystander with the same alias but another MAC is left alone.
    node.host.ip(&[
        "link", "add", "other0", "type", "veth", "peer", "name", "other1",
    ]);
    node.host.ip(&["link", "set", "other0", "alias", "hd0"]);
    let path = ctr.path();
    drop(ctr);
    call(&node, "DEL", &path, &conf, None).ok();
    assert_home(&node, None, &mac);
    assert!(link(&node.host, "dev5").is_null());
    assert_eq!(link(&node.host, "other0")["ifalias"], "hd0");
}
