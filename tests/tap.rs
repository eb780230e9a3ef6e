//! tap through its symlinked name, from a namespace that plays the node,
//! into fresh container namespaces. The device's flags are read back with
//! `ip -d -j link`; every test ends by asserting nothing leaked (no link
//! but lo, no reservation).

mod common;
use common::node::{merged, with_prev, Node};
use common::*;
use serde_json::{json, Value};

fn tap_conf(node: &Node, version: &str, extra: Value) -> Value {
    merged(
        json!({
            "cniVersion": version,
            "name": "tapnet",
            "type": "tap",
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.66.0.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": node.data.str(),
            },
            "dns": {"nameservers": ["10.66.0.53"]},
        }),
        extra,
    )
}

fn l2_conf(version: &str, extra: Value) -> Value {
    merged(
        json!({"cniVersion": version, "name": "tapnet", "type": "tap"}),
        extra,
    )
}

fn call(node: &Node, cmd: &str, ctr: &TestNs, conf: &Value, fault: Option<&str>) -> Reply {
    let mut c = Call::attach("tap", cmd, "ctr-tap", &ctr.path(), "eth0")
        .var("CNI_PATH", &node.path)
        .in_ns(&node.host)
        .config(conf);
    if let Some(f) = fault {
        c = c.var("CNIBOX_FAULT", f);
    }
    c.run()
}

/// `ip -d -j link show eth0` in the container.
fn link(ctr: &TestNs) -> Value {
    ctr.ip_json(&["-d", "link", "show", "eth0"])[0].clone()
}

/// Nothing but lo in the container, no reservation on the node.
fn assert_clean(node: &Node, ctr: &TestNs) {
    assert_eq!(ctr.link_names(), vec!["lo".to_string()], "links left");
    assert!(
        node.reservations("tapnet").is_empty(),
        "reservations left: {:?}",
        node.reservations("tapnet")
    );
}

/// uid/gid as `ip -j` prints them: a name when one resolves, else the
/// number.
fn id_matches(v: &Value, id: u32, name_if_any: &[&str]) -> bool {
    v.as_u64() == Some(id as u64)
        || v.as_str() == Some(&id.to_string())
        || v.as_str().is_some_and(|s| name_if_any.contains(&s))
}

#[test]
fn l2_round_trip_makes_a_plain_tap_and_del_twice_succeeds() {
    require_root!();
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let node = Node::new("tap");
        let ctr = TestNs::new("tapc");
        let conf = l2_conf(version, json!({}));
        let add = call(&node, "ADD", &ctr, &conf, None);
        add.ok();
        let r = add.json();
        let l = link(&ctr);
        // The documented reference shape: one interface, no IPs, empty dns.
        let mac = l["address"].as_str().unwrap();
        let mut want = json!({"cniVersion": version,
                   "interfaces": [{"name": "eth0", "mac": mac, "sandbox": ctr.path()}]});
        if version < "1.0.0" {
            // The 0.x result types print an empty dns object.
            want["dns"] = json!({});
        }
        assert_eq!(r, want, "{version}");
        let info = &l["linkinfo"]["info_data"];
        assert_eq!(l["linkinfo"]["info_kind"], "tun");
        assert_eq!(info["type"], "tap");
        assert_eq!(info["pi"], false, "{info}");
        assert_eq!(info["vnet_hdr"], false, "{info}");
        assert_eq!(info["persist"], true, "{info}");
        assert_eq!(info["multi_queue"], false, "{info}");
        assert!(info.get("user").is_none() && info.get("group").is_none());
        assert!(l["flags"].as_array().unwrap().contains(&json!("UP")));

        if version != "0.3.1" {
            call(&node, "CHECK", &ctr, &with_prev(&conf, &r), None).ok();
        }
        call(&node, "DEL", &ctr, &conf, None).ok();
        assert_clean(&node, &ctr);
        call(&node, "DEL", &ctr, &conf, None).ok();
    }
}

#[test]
fn ioctl_path_with_owner_and_group_applies_mtu_and_mac_where_the_reference_drops_them() {
    require_root!();
    let node = Node::new("tap");
    let ctr = TestNs::new("tapc");
    let conf = tap_conf(
        &node,
        "1.0.0",
        json!({"owner": 4242, "group": 4343, "multiQueue": true,
               "mtu": 1400, "mac": "02:00:00:aa:bb:01"}),
    );
    let add = call(&node, "ADD", &ctr, &conf, None);
    add.ok();
    let r = add.json();
    let l = link(&ctr);
    let info = &l["linkinfo"]["info_data"];
    assert_eq!(l["mtu"], 1400, "{l}");
    assert_eq!(l["address"], "02:00:00:aa:bb:01");
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:aa:bb:01");
    assert_eq!(info["multi_queue"], true, "{info}");
    assert_eq!(l["num_tx_queues"], 256);
    assert_eq!(info["pi"], false);
    assert_eq!(info["vnet_hdr"], false);
    assert!(id_matches(&info["user"], 4242, &[]), "{info}");
    assert!(id_matches(&info["group"], 4343, &[]), "{info}");

    // L3: the reference's result shape, addresses and arp_notify.
    assert_eq!(
        r,
        json!({"cniVersion": "1.0.0",
               "interfaces": [{"name": "eth0", "mac": "02:00:00:aa:bb:01", "sandbox": ctr.path()}],
               "ips": [{"address": "10.66.0.2/24", "gateway": "10.66.0.1", "interface": 0}],
               "routes": [{"dst": "0.0.0.0/0"}],
               "dns": {"nameservers": ["10.66.0.53"]}})
    );
    let addrs = ctr.ip(&["-4", "addr", "show", "eth0"]);
    assert!(addrs.contains("10.66.0.2/24"), "{addrs}");
    let routes = ctr.ip(&["route", "show", "default"]);
    assert!(routes.contains("via 10.66.0.1 dev eth0"), "{routes}");
    let arp = ctr.exec(&["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]);
    assert_eq!(String::from_utf8_lossy(&arp.stdout).trim(), "1");

    call(&node, "CHECK", &ctr, &with_prev(&conf, &r), None).ok();
    // CHECK sees a missing address.
    ctr.ip(&["addr", "del", "10.66.0.2/24", "dev", "eth0"]);
    call(&node, "CHECK", &ctr, &with_prev(&conf, &r), None).fails();
    call(&node, "DEL", &ctr, &conf, None).ok();
    assert_clean(&node, &ctr);
    call(&node, "DEL", &ctr, &conf, None).ok();
}

#[test]
fn owner_only_path_also_applies_mtu_and_mac_and_mac_precedence_holds() {
    require_root!();
    let node = Node::new("tap");
    let ctr = TestNs::new("tapc");
    // config mac < CNI_ARGS MAC < runtimeConfig.mac
    let conf = tap_conf(
        &node,
        "1.0.0",
        json!({"owner": 4242, "mtu": 9000, "mac": "02:00:00:00:00:01",
               "runtimeConfig": {"mac": "02:00:00:00:00:03"}}),
    );
    let add = Call::attach("tap", "ADD", "ctr-tap", &ctr.path(), "eth0")
        .var("CNI_PATH", &node.path)
        .var("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .in_ns(&node.host)
        .config(&conf)
        .run();
    add.ok();
    let l = link(&ctr);
    assert_eq!(l["mtu"], 9000);
    assert_eq!(l["address"], "02:00:00:00:00:03");
    assert!(id_matches(&l["linkinfo"]["info_data"]["user"], 4242, &[]));
    assert!(l["linkinfo"]["info_data"].get("group").is_none());
    call(&node, "DEL", &ctr, &conf, None).ok();

    // Without runtimeConfig, CNI_ARGS wins over the config.
    let conf = merged(conf, json!({"runtimeConfig": null}));
    Call::attach("tap", "ADD", "ctr-tap", &ctr.path(), "eth0")
        .var("CNI_PATH", &node.path)
        .var("CNI_ARGS", "MAC=02:00:00:00:00:02;IgnoreUnknown=1")
        .in_ns(&node.host)
        .config(&conf)
        .run()
        .ok();
    assert_eq!(link(&ctr)["address"], "02:00:00:00:00:02");
    call(&node, "DEL", &ctr, &conf, None).ok();
    assert_clean(&node, &ctr);
}

#[test]
fn bridge_option_enslaves_the_tap_to_a_bridge_inside_the_container() {
    require_root!();
    let node = Node::new("tap");
    let ctr = TestNs::new("tapc");
    ctr.ip(&["link", "add", "br0", "type", "bridge"]);
    let conf = l2_conf("1.0.0", json!({"bridge": "br0"}));
    call(&node, "ADD", &ctr, &conf, None).ok();
    assert_eq!(link(&ctr)["master"], "br0");
    call(&node, "DEL", &ctr, &conf, None).ok();
    let names = ctr.link_names();
    assert_eq!(names, vec!["lo".to_string(), "br0".to_string()]);

    // A bridge that is not there: code 7 naming the field, nothing made.
    let conf = l2_conf("1.0.0", json!({"bridge": "nobr"}));
    let r = call(&node, "ADD", &ctr, &conf, None);
    assert_eq!(r.err_code(), 7, "{}", r.stdout);
    assert!(r.stdout.contains("bridge"), "{}", r.stdout);
    assert_eq!(ctr.link_names(), names);
}

#[test]
fn failed_add_leaves_nothing_where_the_reference_leaks_the_tap() {
    require_root!();
    let node = Node::new("tap");
    let ctr = TestNs::new("tapc");
    let conf = tap_conf(&node, "1.0.0", json!({}));
    for point in [
        "tap:after-create",
        "tap:after-link",
        "tap:after-ipam",
        "tap:after-configure",
    ] {
        let r = call(&node, "ADD", &ctr, &conf, Some(point));
        assert_eq!(r.err_code(), 999, "{point}: {}", r.stdout);
        assert!(r.stdout.contains(point), "{}", r.stdout);
        assert_clean(&node, &ctr);
    }
    // A real IPAM failure (the reference leaves the tap up and a retry
    // fails with "file exists"): an exhausted range.
    let full = tap_conf(
        &node,
        "1.0.0",
        json!({"ipam": {"type": "host-local", "dataDir": node.data.str(),
                        "ranges": [[{"subnet": "10.66.1.0/30", "rangeStart": "10.66.1.2",
                                     "rangeEnd": "10.66.1.2"}]]}}),
    );
    Call::attach("tap", "ADD", "other", &ctr.path(), "eth9")
        .var("CNI_PATH", &node.path)
        .in_ns(&node.host)
        .config(&full)
        .run()
        .ok();
    let r = call(&node, "ADD", &ctr, &full, None);
    r.fails();
    assert_eq!(
        ctr.link_names(),
        vec!["lo".to_string(), "eth9".to_string()],
        "no tap left after the IPAM failure"
    );
    // The retry with a working config succeeds.
    call(&node, "ADD", &ctr, &conf, None).ok();
    call(&node, "DEL", &ctr, &conf, None).ok();
}

#[test]
fn del_succeeds_with_the_netns_gone_and_releases_the_ip() {
    require_root!();
    let node = Node::new("tap");
    let ctr = TestNs::new("tapc");
    let conf = tap_conf(&node, "1.0.0", json!({}));
    call(&node, "ADD", &ctr, &conf, None).ok();
    assert_eq!(node.reservations("tapnet").len(), 1);
    let path = ctr.path();
    drop(ctr);
    let del = Call::attach("tap", "DEL", "ctr-tap", &path, "eth0")
        .var("CNI_PATH", &node.path)
        .in_ns(&node.host)
        .config(&conf)
        .run();
    del.ok();
    assert!(node.reservations("tapnet").is_empty());
}

#[test]
fn interop_with_go_host_local_and_status_gc_delegate() {
    require_root!();
    let Some(node) = Node::with_go_host_local("tap") else {
        skip(
            SkipKind::Tool,
            "Debian's containernetworking-plugins not installed",
        );
        return;
    };
    let ctr = TestNs::new("tapc");
    let conf = tap_conf(&node, "1.0.0", json!({}));
    let add = call(&node, "ADD", &ctr, &conf, None);
    add.ok();
    assert_eq!(add.json()["ips"][0]["address"], "10.66.0.2/24");
    assert_eq!(node.reservations("tapnet"), vec!["10.66.0.2".to_string()]);
    call(&node, "CHECK", &ctr, &with_prev(&conf, &add.json()), None).ok();
    call(&node, "DEL", &ctr, &conf, None).ok();
    assert_clean(&node, &ctr);

    // STATUS/GC at 1.1.0 with our host-local; L2 has nothing to ask.
    let node = Node::new("tap");
    let conf = tap_conf(&node, "1.1.0", json!({}));
    call(&node, "STATUS", &ctr, &conf, None).ok();
    call(&node, "GC", &ctr, &conf, None).ok();
    call(&node, "STATUS", &ctr, &l2_conf("1.1.0", json!({})), None).ok();
}

#[test]
fn selinux_context_is_refused_clearly_where_selinux_is_off() {
    require_root!();
    if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        skip(SkipKind::Kernel, "SELinux is enabled here");
        return;
    }
    let node = Node::new("tap");
    let ctr = TestNs::new("tapc");
    let conf = l2_conf(
        "1.0.0",
        json!({"selinuxContext": "system_u:system_r:container_t:s0"}),
    );
    let r = call(&node, "ADD", &ctr, &conf, None);
    assert_eq!(r.err_code(), 2, "{}", r.stdout);
    assert!(
        r.stdout.contains("selinuxContext") && r.stdout.contains("SELinux is not enabled"),
        "{}",
        r.stdout
    );
    assert_clean(&node, &ctr);
}

#[test]
fn l2_at_0_2_0_is_refused_before_any_change_where_the_reference_leaks_the_tap() {
    require_root!();
    let node = Node::new("tap");
    let ctr = TestNs::new("tapc");
    for version in ["0.1.0", "0.2.0"] {
        let r = call(&node, "ADD", &ctr, &l2_conf(version, json!({})), None);
        assert_eq!(r.err_code(), 1, "{}", r.stdout);
        assert!(r.stdout.contains("cniVersion"), "{}", r.stdout);
        assert_clean(&node, &ctr);
    }
    // L3 at 0.2.0 is fine.
    let conf = tap_conf(&node, "0.2.0", json!({}));
    let add = call(&node, "ADD", &ctr, &conf, None);
    add.ok();
    assert_eq!(add.json()["ip4"]["ip"], "10.66.0.2/24");
    call(&node, "DEL", &ctr, &conf, None).ok();
    assert_clean(&node, &ctr);
}
