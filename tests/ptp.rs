//! ptp through its symlinked name, in a namespace that plays the node and
//! fresh container namespaces. Every test ends by asserting nothing leaked:
//! no veth, address or route on the node, no reservation in the data dir.

mod common;
use common::node::{merged, with_prev, Node};
use common::*;
use serde_json::{json, Value};

fn ptp_conf(node: &Node, version: &str, extra: Value) -> Value {
    merged(
        json!({
            "cniVersion": version,
            "name": "ptpnet",
            "type": "ptp",
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd88::/64"}]],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                "dataDir": node.data.str(),
            }
        }),
        extra,
    )
}

/// Nothing of ours is left on the node: no link, no route, no reservation.
fn assert_clean(node: &Node) {
    let links = node.leftover_links(|l| l != "lo");
    assert!(links.is_empty(), "links left on the node: {links:?}");
    assert_eq!(
        node.host.ip_json(&["route", "show"]),
        json!([]),
        "v4 routes left on the node"
    );
    let routes6: Vec<Value> = node
        .host
        .ip_json(&["-6", "route", "show"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dev"] != "lo")
        .cloned()
        .collect();
    assert!(
        routes6.is_empty(),
        "v6 routes left on the node: {routes6:?}"
    );
    assert!(
        node.reservations("ptpnet").is_empty(),
        "reservations left: {:?}",
        node.reservations("ptpnet")
    );
}

fn addr_of(result: &Value, v4: bool) -> String {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().to_string())
        .find(|a| a.contains('.') == v4)
        .unwrap()
}

fn bare(cidr: &str) -> &str {
    cidr.split('/').next().unwrap()
}

#[test]
fn add_check_del_for_each_version_with_ping_both_ways() {
    require_root!();
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let node = Node::new("ptp");
        let ctr = TestNs::new("ptpc");
        let conf = ptp_conf(&node, version, json!({}));
        let add = node.call("ADD", "ctr-a", &ctr.path(), &conf);
        add.ok();
        let r = add.json();

        // The result: host veth then container interface, IPs on index 1.
        assert_eq!(r["cniVersion"], version);
        let ifs = r["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 2, "{r}");
        let host_veth = ifs[0]["name"].as_str().unwrap();
        assert!(
            host_veth.starts_with("veth") && host_veth.len() == 12,
            "{host_veth}"
        );
        assert_eq!(ifs[0]["mac"].as_str().unwrap().len(), 17);
        assert!(ifs[0].get("sandbox").is_none());
        assert_eq!(ifs[1]["name"], "eth0");
        assert_eq!(ifs[1]["sandbox"], ctr.path());
        let v4 = addr_of(&r, true);
        let v6 = addr_of(&r, false);
        assert_eq!(v4, "10.88.0.2/24");
        assert_eq!(v6, "fd88::2/64");
        for ip in r["ips"].as_array().unwrap() {
            assert_eq!(ip["interface"], 1);
            assert_eq!(
                ip.get("version").is_some(),
                version < "1.0.0",
                "{version}: version field"
            );
        }
        assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]));

        // Inside: the address and ptp's routes.
        let addrs = ctr.ip_json(&["addr", "show", "eth0"]);
        let infos: Vec<String> = addrs[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect();
        assert!(infos.contains(&v4) && infos.contains(&v6), "{infos:?}");
        let routes = ctr.ip_json(&["route", "show"]);
        let has = |dst: &str, gw: Option<&str>| {
            routes.as_array().unwrap().iter().any(|x| {
                x["dst"] == dst
                    && gw
                        .map(|g| x["gateway"] == g)
                        .unwrap_or(x.get("gateway").is_none())
            })
        };
        assert!(has("default", Some("10.88.0.1")), "{routes}");
        assert!(
            has("10.88.0.0/24", Some("10.88.0.1")),
            "subnet via gateway: {routes}"
        );
        assert!(has("10.88.0.1", None), "gateway on-link: {routes}");

        // Traffic both ways, v4 and v6.
        assert!(
            ctr.ping("10.88.0.1"),
            "{version}: container pings its gateway"
        );
        assert!(
            node.host.ping(bare(&v4)),
            "{version}: node pings the container"
        );
        assert!(ctr.ping("fd88::1"), "{version}: v6 gateway");
        assert!(
            node.host.ping(bare(&v6)),
            "{version}: node pings the container over v6"
        );

        // CHECK passes, then fails once the test removes a route.
        let check_conf = with_prev(&conf, &r);
        if version >= "0.4.0" {
            node.call("CHECK", "ctr-a", &ctr.path(), &check_conf).ok();
            ctr.ip(&["route", "del", "default"]);
            let bad = node.call("CHECK", "ctr-a", &ctr.path(), &check_conf);
            assert_ne!(
                bad.status, 0,
                "{version}: CHECK after route removal must fail"
            );
            assert!(bad.stdout.contains("0.0.0.0/0"), "{}", bad.stdout);
        } else {
            assert_eq!(
                node.call("CHECK", "ctr-a", &ctr.path(), &check_conf)
                    .err_code(),
                1
            );
        }

        node.call("DEL", "ctr-a", &ctr.path(), &conf).ok();
        assert!(!ctr.link_names().contains(&"eth0".to_string()));
        node.call("DEL", "ctr-a", &ctr.path(), &conf).ok();
        assert_clean(&node);
    }
}

#[test]
fn second_container_gets_the_next_ip_and_both_reach_the_host() {
    require_root!();
    let node = Node::new("ptp");
    let (a, b) = (TestNs::new("ptpa"), TestNs::new("ptpb"));
    let conf = ptp_conf(&node, "1.0.0", json!({}));
    let ra = node.call("ADD", "ctr-1", &a.path(), &conf).json();
    let rb = node.call("ADD", "ctr-2", &b.path(), &conf).json();
    assert_eq!(addr_of(&ra, true), "10.88.0.2/24");
    assert_eq!(addr_of(&rb, true), "10.88.0.3/24");
    assert!(a.ping("10.88.0.1") && b.ping("10.88.0.1"));
    assert!(node.host.ping("10.88.0.2") && node.host.ping("10.88.0.3"));
    // The same gateway sits on both host veths (by design).
    let gw_holders = node
        .host
        .ip_json(&["-4", "addr", "show"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["addr_info"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["local"] == "10.88.0.1")
        })
        .count();
    assert_eq!(gw_holders, 2);
    node.call("DEL", "ctr-1", &a.path(), &conf).ok();
    node.call("DEL", "ctr-2", &b.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn del_after_the_netns_is_deleted_and_with_empty_netns() {
    require_root!();
    let node = Node::new("ptp");
    let conf = ptp_conf(&node, "1.0.0", json!({}));
    let ctr = TestNs::new("ptpd");
    let path = ctr.path();
    node.call("ADD", "ctr-gone", &path, &conf).ok();
    drop(ctr);
    node.call("DEL", "ctr-gone", &path, &conf).ok();
    assert_clean(&node);

    let ctr = TestNs::new("ptpe");
    node.call("ADD", "ctr-empty", &ctr.path(), &conf).ok();
    node.call("DEL", "ctr-empty", "", &conf).ok();
    assert!(
        node.reservations("ptpnet").is_empty(),
        "empty CNI_NETNS still releases the IP"
    );
    drop(ctr); // takes the veth with it
    assert_clean(&node);
}

#[test]
fn a_failure_after_ipam_leaves_no_ip_and_no_veth() {
    require_root!();
    let node = Node::new("ptp");
    let conf = ptp_conf(&node, "1.0.0", json!({}));
    for point in [
        "ptp:after-ipam",
        "ptp:after-veth",
        "ptp:after-configure",
        "ptp:after-masq",
    ] {
        let ctr = TestNs::new("ptpf");
        let r = Call::attach("ptp", "ADD", "ctr-fail", &ctr.path(), "eth0")
            .var("CNI_PATH", &node.path)
            .var("CNIBOX_FAULT", point)
            .in_ns(&node.host)
            .config(&conf)
            .run();
        assert_eq!(r.err_code(), 999, "{point}");
        assert!(r.stdout.contains("injected fault"), "{point}: {}", r.stdout);
        assert_eq!(
            ctr.link_names(),
            vec!["lo".to_string()],
            "{point}: no container interface left"
        );
        assert_clean(&node);
    }
}

#[test]
fn adding_an_existing_interface_fails_before_allocating() {
    require_root!();
    let node = Node::new("ptp");
    let conf = ptp_conf(&node, "1.0.0", json!({}));
    let ctr = TestNs::new("ptpx");
    ctr.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    let r = node.call("ADD", "ctr-x", &ctr.path(), &conf);
    assert_eq!(r.err_code(), 999);
    assert!(r.stdout.contains("already exists"));
    assert!(node.reservations("ptpnet").is_empty());
    assert_clean(&node);
}

#[test]
fn dns_from_config_overrides_ipam_dns_when_any_field_is_present() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("ptpdns");
    let conf = ptp_conf(
        &node,
        "1.0.0",
        json!({"dns": {"nameservers": ["10.0.0.53"], "search": ["a.example"]}}),
    );
    let r = node.call("ADD", "ctr-dns", &ctr.path(), &conf).json();
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.0.0.53"], "search": ["a.example"]})
    );
    node.call("DEL", "ctr-dns", &ctr.path(), &conf).ok();

    let conf = ptp_conf(&node, "1.0.0", json!({"dns": {}}));
    let r = node.call("ADD", "ctr-dns", &ctr.path(), &conf).json();
    assert!(
        r.get("dns").is_none(),
        "an empty dns object overrides nothing: {r}"
    );
    node.call("DEL", "ctr-dns", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn mtu_applies_to_both_ends() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("ptpmtu");
    let conf = ptp_conf(&node, "1.0.0", json!({"mtu": 1400}));
    let r = node.call("ADD", "ctr-mtu", &ctr.path(), &conf).json();
    let host_veth = r["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(ctr.ip_json(&["link", "show", "eth0"])[0]["mtu"], 1400);
    assert_eq!(
        node.host.ip_json(&["link", "show", &host_veth])[0]["mtu"],
        1400
    );
    node.call("DEL", "ctr-mtu", &ctr.path(), &conf).ok();
    assert_clean(&node);
}

#[test]
fn bad_config_fields_are_code_7_and_change_nothing() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("ptpbad");
    for (extra, mentions) in [
        (json!({"mtu": "big"}), "mtu"),
        (json!({"mtu": -1}), "mtu"),
        (json!({"ipMasq": "yes"}), "ipMasq"),
        (json!({"ipMasqBackend": "pf"}), "ipMasqBackend"),
        (json!({"ipam": {}}), "ipam"),
        (json!({"ipam": {"type": "../host-local"}}), "plugin name"),
    ] {
        let conf = ptp_conf(&node, "1.0.0", extra.clone());
        let r = node.call("ADD", "ctr-bad", &ctr.path(), &conf);
        assert_eq!(r.err_code(), 7, "{extra}: {}", r.stdout);
        assert!(r.stdout.contains(mentions), "{extra}: {}", r.stdout);
        assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
        assert_clean(&node);
    }
}

#[test]
fn go_host_local_as_ipam_works_the_same() {
    require_root!();
    let Some(node) = Node::with_go_host_local("ptp") else {
        return;
    };
    let ctr = TestNs::new("ptpgo");
    let conf = ptp_conf(&node, "1.0.0", json!({}));
    let r = node.call("ADD", "ctr-go", &ctr.path(), &conf);
    r.ok();
    let r = r.json();
    assert_eq!(addr_of(&r, true), "10.88.0.2/24");
    assert_eq!(addr_of(&r, false), "fd88::2/64");
    assert!(ctr.ping("10.88.0.1"));
    assert!(node.host.ping("10.88.0.2"));
    assert_eq!(
        node.reservations("ptpnet"),
        vec!["10.88.0.2".to_string(), "fd88::2".to_string()]
    );
    node.call("CHECK", "ctr-go", &ctr.path(), &with_prev(&conf, &r))
        .ok();
    node.call("DEL", "ctr-go", &ctr.path(), &conf).ok();
    assert_clean(&node);
}
