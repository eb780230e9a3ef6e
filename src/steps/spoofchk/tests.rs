//! macspoofchk: names, parsing, and kernel tests in throwaway netns.

use super::*;
use crate::netlink::testns::TestNs;

const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];

/// What Go's SpoofChecker.Setup hands to `nft -j -f` (go-nft), in its two
/// transactions, for host veth veth1234abcd, MAC 02:42:ac:11:00:02,
/// container cid0001, ifname eth0.
const GO_BASE: &str = r#"{"nftables":[{"add":{"table":{"family":"bridge","name":"nat"}}},
{"add":{"chain":{"family":"bridge","table":"nat","name":"PREROUTING","type":"filter","hook":"prerouting","prio":-300,"policy":"accept"}}},
{"add":{"chain":{"family":"bridge","table":"nat","name":"cni-br-iface-cid0001-eth0"}}},
{"add":{"chain":{"family":"bridge","table":"nat","name":"cni-br-iface-cid0001-eth0-mac"}}}]}"#;
const GO_RULES: &str = r#"{"nftables":[{"flush":{"chain":{"family":"bridge","table":"nat","name":"cni-br-iface-cid0001-eth0"}}},
{"flush":{"chain":{"family":"bridge","table":"nat","name":"cni-br-iface-cid0001-eth0-mac"}}},
{"add":{"rule":{"family":"bridge","table":"nat","chain":"PREROUTING","expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"veth1234abcd"}},{"jump":{"target":"cni-br-iface-cid0001-eth0"}}],"comment":"macspoofchk-cid0001-eth0"}}},
{"add":{"rule":{"family":"bridge","table":"nat","chain":"cni-br-iface-cid0001-eth0","expr":[{"jump":{"target":"cni-br-iface-cid0001-eth0-mac"}}],"comment":"macspoofchk-cid0001-eth0"}}},
{"add":{"rule":{"family":"bridge","table":"nat","chain":"cni-br-iface-cid0001-eth0-mac","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ether","field":"saddr"}},"right":"02:42:ac:11:00:02"}},{"return":null}],"comment":"macspoofchk-cid0001-eth0"}}},
{"add":{"rule":{"family":"bridge","table":"nat","chain":"cni-br-iface-cid0001-eth0-mac","expr":[{"drop":null}],"comment":"macspoofchk-cid0001-eth0"}}}]}"#;

fn plant_go(ns: &TestNs) {
    for (i, json) in [GO_BASE, GO_RULES].iter().enumerate() {
        let f = std::env::temp_dir().join(format!("{}-go{i}.json", ns.name));
        std::fs::write(&f, json).unwrap();
        ns.ok(&["nft", "-j", "-f", f.to_str().unwrap()]);
        let _ = std::fs::remove_file(f);
    }
}

fn chain_names(nl: &Netlink) -> Vec<String> {
    nf::list_chains(nl, NFPROTO_BRIDGE, TABLE)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

#[test]
fn names_and_parsing() {
    assert_eq!(iface_chain("c1", "eth0"), "cni-br-iface-c1-eth0");
    assert_eq!(mac_chain("c1", "eth0"), "cni-br-iface-c1-eth0-mac");
    assert_eq!(comment("c1", "eth0"), "macspoofchk-c1-eth0");
    assert_eq!(parse_mac("02:42:AC:11:00:02"), Some(MAC));
    for bad in [
        "",
        "02:42:ac:11:00",
        "02:42:ac:11:00:02:03",
        "2:42:ac:11:00:02",
        "zz:42:ac:11:00:02",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    let r = rules("veth1234abcd", MAC, "cid0001", "eth0");
    assert_eq!(
        parse_jump(&r[0]),
        Some(Found {
            ref_id: "cid0001-eth0".into(),
            host_ifname: "veth1234abcd".into()
        })
    );
    assert_eq!(parse_jump(&r[1]), None);
    assert!(setup("veth0", "not-a-mac", "c", "eth0").is_err());
}

#[test]
fn kernel_setup_lists_like_go_and_replaces_on_readd() {
    let Some(ours) = TestNs::new("spoof") else {
        return;
    };
    if !TestNs::have_nft() {
        eprintln!("no nft: skipping");
        return;
    }
    let go = TestNs::new("spoofgo").unwrap();
    plant_go(&go);
    ours.with_netfilter(|nl| {
        setup_with(nl, "veth1234abcd", MAC, "cid0001", "eth0").unwrap();
        // A repeated ADD replaces instead of duplicating (Go duplicates the
        // PREROUTING jump).
        setup_with(nl, "veth1234abcd", MAC, "cid0001", "eth0").unwrap();
    });
    let list = |ns: &TestNs| ns.ok(&["nft", "list", "table", "bridge", "nat"]);
    assert_eq!(list(&ours), list(&go));
    ours.with_netfilter(|nl| {
        let got = nf::list_rules(nl, NFPROTO_BRIDGE, TABLE, None).unwrap();
        let want = rules("veth1234abcd", MAC, "cid0001", "eth0");
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(&want) {
            assert!(g.same_as(w), "{g:?}");
        }
    });
}

#[test]
fn kernel_teardown_removes_go_state_keeps_base_chain() {
    let Some(ns) = TestNs::new("spoofdel") else {
        return;
    };
    if !TestNs::have_nft() {
        eprintln!("no nft: skipping");
        return;
    }
    plant_go(&ns);
    ns.with_netfilter(|nl| {
        setup_with(nl, "vethother", MAC, "other", "eth0").unwrap();
        teardown_with(nl, "cid0001", "eth0").unwrap();
        assert_eq!(
            chain_names(nl),
            [
                "PREROUTING",
                "cni-br-iface-other-eth0",
                "cni-br-iface-other-eth0-mac"
            ]
        );
        let base = nf::list_rules(nl, NFPROTO_BRIDGE, TABLE, Some(BASE_CHAIN)).unwrap();
        assert_eq!(base.len(), 1);
        assert_eq!(
            base[0].comment.as_deref(),
            Some(&b"macspoofchk-other-eth0"[..])
        );
        teardown_with(nl, "cid0001", "eth0").unwrap(); // again: nothing to do
        teardown_with(nl, "other", "eth0").unwrap();
        assert_eq!(chain_names(nl), ["PREROUTING"]);
    });
    // No table at all: teardown is a no-op.
    let Some(empty) = TestNs::new("spoofnone") else {
        return;
    };
    empty.with_netfilter(|nl| teardown_with(nl, "x", "eth0").unwrap());
}

#[test]
fn kernel_gc_removes_only_provably_stale_attachments() {
    let Some(ns) = TestNs::new("spoofgc") else {
        return;
    };
    for cmd in [
        "ip link add br0 type bridge",
        "ip link add br1 type bridge",
        "ip link add v0 type veth peer name v0p",
        "ip link add v1 type veth peer name v1p",
        "ip link add v2 type veth peer name v2p",
        "ip link set v0 master br0",
        "ip link set v1 master br0",
        "ip link set v2 master br1",
    ] {
        ns.ok(&cmd.split(' ').collect::<Vec<_>>());
    }
    ns.with_netfilter(|nl| {
        let rt = Netlink::route().unwrap();
        setup_with(nl, "v0", MAC, "a0", "eth0").unwrap(); // br0, valid
        setup_with(nl, "v1", MAC, "a1", "eth0").unwrap(); // br0, not valid
        setup_with(nl, "v2", MAC, "a2", "eth0").unwrap(); // br1: another network
        setup_with(nl, "gone0", MAC, "a3", "eth0").unwrap(); // veth gone
        let valid = [Attachment {
            container_id: "a0".into(),
            ifname: "eth0".into(),
        }];
        gc_with(nl, &rt, "br0", &valid).unwrap();
        assert_eq!(
            chain_names(nl),
            [
                "PREROUTING",
                "cni-br-iface-a0-eth0",
                "cni-br-iface-a0-eth0-mac",
                "cni-br-iface-a2-eth0",
                "cni-br-iface-a2-eth0-mac"
            ]
        );
        let refs: Vec<String> = nf::list_rules(nl, NFPROTO_BRIDGE, TABLE, Some(BASE_CHAIN))
            .unwrap()
            .iter()
            .filter_map(parse_jump)
            .map(|f| f.ref_id)
            .collect();
        assert_eq!(refs, ["a0-eth0", "a2-eth0"]);
    });
}

#[test]
fn kernel_spoofed_source_mac_is_dropped() {
    let (Some(h), Some(c)) = (TestNs::new("spoofh"), TestNs::new("spoofc")) else {
        return;
    };
    let st = std::process::Command::new("ip")
        .args([
            "link", "add", "h0", "netns", &h.name, "type", "veth", "peer", "name", "c0", "netns",
            &c.name,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    for cmd in [
        "ip link add br0 type bridge",
        "ip addr add 10.99.5.1/24 dev br0",
        "ip link set br0 up",
        "ip link set h0 master br0",
        "ip link set h0 up",
    ] {
        h.ok(&cmd.split(' ').collect::<Vec<_>>());
    }
    for cmd in [
        "ip link set c0 address 02:42:ac:11:00:02",
        "ip addr add 10.99.5.2/24 dev c0",
        "ip link set c0 up",
    ] {
        c.ok(&cmd.split(' ').collect::<Vec<_>>());
    }
    h.with_netfilter(|nl| setup_with(nl, "h0", MAC, "ctr", "eth0").unwrap());

    // A UDP datagram from the container to the bridge address.
    let probe = || -> bool {
        use std::net::UdpSocket;
        // An ephemeral port (see masq's probe: a fixed one can be held by
        // another test's forked child for a moment).
        let rx = h.run(|| UdpSocket::bind("10.99.5.1:0").unwrap());
        let to = rx.local_addr().unwrap();
        let tx = c.run(|| UdpSocket::bind("10.99.5.2:0").unwrap());
        rx.set_read_timeout(Some(std::time::Duration::from_millis(700)))
            .unwrap();
        let mut buf = [0u8; 16];
        (0..3).any(|_| {
            tx.send_to(b"x", to).unwrap();
            rx.recv_from(&mut buf).is_ok()
        })
    };
    assert!(probe(), "the container's own MAC passes");
    c.ok(&["ip", "link", "set", "c0", "address", "02:42:ac:11:00:99"]);
    c.ok(&["ip", "neigh", "flush", "dev", "c0"]);
    h.ok(&["ip", "neigh", "flush", "dev", "br0"]);
    assert!(!probe(), "a spoofed source MAC is dropped");
    h.with_netfilter(|nl| teardown_with(nl, "ctr", "eth0").unwrap());
    assert!(probe(), "after teardown nothing is filtered");
}
