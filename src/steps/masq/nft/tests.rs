//! Kernel tests of the nf_tables masquerade backend, in throwaway netns.

use super::*;
use crate::netlink::testns::{reference_fixtures, TestNs};

const FIXTURE_COMMENT: &str =
    "94e950eda4a870e6-9e3ad078d934914f, net: fixture, if: eth0, id: fixture0001";

fn ip(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn masq_rules(nl: &Netlink) -> Vec<Rule> {
    nf::list_rules(nl, NFPROTO_INET, TABLE, Some(MASQ_CHAIN)).unwrap()
}

/// Table and both chains there, postrouting with exactly its 3 rules.
fn assert_base_intact(nl: &Netlink) {
    let t = nf::get_table(nl, NFPROTO_INET, TABLE)
        .unwrap()
        .expect("table");
    assert_eq!(t.comment.as_deref(), Some(TABLE_COMMENT.as_bytes()));
    let names: Vec<String> = nf::list_chains(nl, NFPROTO_INET, TABLE)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, [MASQ_CHAIN, POSTROUTING]);
    let pr = nf::list_rules(nl, NFPROTO_INET, TABLE, Some(POSTROUTING)).unwrap();
    assert_eq!(pr.len(), 3, "{pr:?}");
    for (g, w) in pr.iter().zip(base_rules()) {
        assert!(g.same_as(&w), "{g:?}");
    }
}

#[test]
fn comment_is_gos() {
    assert_eq!(
        comment("fixture", "eth0", "fixture0001"),
        FIXTURE_COMMENT.as_bytes()
    );
    assert_eq!(
        instance_hash("fixture", "eth0", "fixture0001"),
        "94e950eda4a870e6-9e3ad078d934914f"
    );
    let long = "x".repeat(300);
    let c = comment("n\"et", "eth0", &long);
    assert_eq!(c.len(), COMMENT_MAX);
    assert!(String::from_utf8_lossy(&c).contains(", net: net, if: eth0, id: xxx"));
    // Go cuts bytes, even inside a multi-byte character.
    let c = comment("n", "eth0", &"é".repeat(100));
    assert_eq!(c.len(), COMMENT_MAX);
}

#[test]
fn kernel_setup_lists_like_the_go_fixture() {
    let Some(ns) = TestNs::new("masqadd") else {
        return;
    };
    ns.with_netfilter(|nl| {
        setup_with(nl, &[ip("10.99.0.2/24")], "fixture", "eth0", "fixture0001").unwrap();
        assert_base_intact(nl);
    });
    let (Some(dir), true) = (reference_fixtures(), TestNs::have_nft()) else {
        eprintln!("no fixture or no nft: skipping the listing comparison");
        return;
    };
    let text = ns.ok(&["nft", "list", "table", "inet", TABLE]);
    let want = std::fs::read_to_string(dir.join("goref-head-ptp-nftmasq.nft")).unwrap();
    assert_eq!(text, want);

    // JSON too, apart from handles and nft's metainfo.
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("handle");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => {
                a.retain(|e| e.get("metainfo").is_none());
                a.iter_mut().for_each(strip);
            }
            _ => {}
        }
    }
    let mut ours: serde_json::Value =
        serde_json::from_str(&ns.ok(&["nft", "-j", "list", "table", "inet", TABLE])).unwrap();
    let mut go: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("goref-head-ptp-nftmasq.json")).unwrap(),
    )
    .unwrap();
    strip(&mut ours);
    strip(&mut go);
    assert_eq!(ours, go);
}

fn plant_fixture() -> Option<TestNs> {
    let dir = reference_fixtures()?;
    if !TestNs::have_nft() {
        eprintln!("no nft: cannot plant the Go fixture");
        return None;
    }
    let ns = TestNs::new("masqgo")?;
    let f = dir.join("goref-head-ptp-nftmasq.nft");
    ns.ok(&["nft", "-f", f.to_str().unwrap()]);
    Some(ns)
}

#[test]
fn kernel_teardown_removes_the_go_rule_and_keeps_table_and_chains() {
    let Some(ns) = plant_fixture() else {
        return;
    };
    ns.with_netfilter(|nl| {
        assert_eq!(masq_rules(nl).len(), 1);
        // Another attachment's rule must survive.
        setup_with(nl, &[ip("10.99.0.3/24")], "fixture", "eth0", "other").unwrap();
        teardown_with(nl, "fixture", "eth0", "fixture0001").unwrap();
        let left = masq_rules(nl);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].comment, Some(comment("fixture", "eth0", "other")));
        assert_base_intact(nl);
        // Again: nothing to do, no error.
        teardown_with(nl, "fixture", "eth0", "fixture0001").unwrap();
    });
}

#[test]
fn kernel_gc_removes_only_invalid_attachments_of_the_network() {
    let Some(ns) = plant_fixture() else {
        return;
    };
    ns.with_netfilter(|nl| {
        setup_with(nl, &[ip("10.98.0.2/24")], "othernet", "eth0", "fixture0001").unwrap();
        let valid = [Attachment {
            container_id: "fixture0001".into(),
            ifname: "eth0".into(),
        }];
        gc_with(nl, "fixture", &valid).unwrap();
        assert_eq!(masq_rules(nl).len(), 2, "valid attachment kept");
        gc_with(nl, "fixture", &[]).unwrap();
        let left = masq_rules(nl);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(
            left[0].comment,
            Some(comment("othernet", "eth0", "fixture0001"))
        );
        assert_base_intact(nl);
    });
}

#[test]
fn kernel_setup_is_idempotent_dual_stack_and_repairs_postrouting() {
    let Some(ns) = TestNs::new("masqidem") else {
        return;
    };
    ns.with_netfilter(|nl| {
        let ips = [ip("10.99.0.2/24"), ip("fd99::2/64")];
        setup_with(nl, &ips, "net", "eth0", "c1").unwrap();
        setup_with(nl, &ips, "net", "eth0", "c1").unwrap();
        let rules = masq_rules(nl);
        assert_eq!(rules.len(), 2);
        assert!(rules[0].same_as(&masq_rule(&ips[0], &comment("net", "eth0", "c1"))));
        assert!(rules[1].same_as(&masq_rule(&ips[1], &comment("net", "eth0", "c1"))));
        // A re-ADD with other addresses replaces the attachment's rules.
        setup_with(nl, &[ip("10.99.0.9/24")], "net", "eth0", "c1").unwrap();
        assert_eq!(masq_rules(nl).len(), 1);

        // Someone flushed postrouting (or left junk in it): the next ADD
        // restores exactly the 3 base rules, keeping the masq rules.
        let mut b = Batch::new(None);
        b.flush_chain(NFPROTO_INET, TABLE, POSTROUTING);
        b.add_rule(&Rule::new(
            NFPROTO_INET,
            TABLE,
            POSTROUTING,
            vec![Expr::Counter],
        ));
        b.commit(nl, "mess up").unwrap();
        setup_with(nl, &[ip("10.99.0.3/24")], "net", "eth0", "c2").unwrap();
        assert_base_intact(nl);
        assert_eq!(masq_rules(nl).len(), 2);

        teardown_with(nl, "net", "eth0", "c1").unwrap();
        teardown_with(nl, "net", "eth0", "c2").unwrap();
        assert!(masq_rules(nl).is_empty());
        assert_base_intact(nl);
    });
}

#[test]
fn kernel_32_parallel_setups_and_teardowns_lose_nothing() {
    let Some(ns) = TestNs::new("masqpar") else {
        return;
    };
    const N: usize = 32;
    // The table does not exist yet: every first ADD races.
    ns.in_parallel(N, |i, nl| {
        let addr = ip(&format!("10.77.{}.{}/16", i / 200, 2 + i % 200));
        setup_with(nl, &[addr], "par", "eth0", &format!("ctr{i:03}")).unwrap();
    });
    ns.with_netfilter(|nl| {
        let rules = masq_rules(nl);
        assert_eq!(rules.len(), N);
        for i in 0..N {
            let c = comment("par", "eth0", &format!("ctr{i:03}"));
            assert_eq!(
                rules
                    .iter()
                    .filter(|r| r.comment.as_ref() == Some(&c))
                    .count(),
                1,
                "ctr{i:03}"
            );
        }
        assert_base_intact(nl);
    });

    ns.in_parallel(N, |i, nl| {
        teardown_with(nl, "par", "eth0", &format!("ctr{i:03}")).unwrap();
    });
    ns.with_netfilter(|nl| {
        assert!(masq_rules(nl).is_empty());
        assert_base_intact(nl);
    });
}

/// Host netns H between a container netns C (10.99.0.2/24 behind h0) and an
/// "outside" netns O (192.0.2.2/24 on h1's link, no route back to the
/// container subnet). Returns (H, C, O).
fn topology(tag: &str) -> Option<(TestNs, TestNs, TestNs)> {
    let h = TestNs::new(&format!("{tag}h"))?;
    let c = TestNs::new(&format!("{tag}c"))?;
    let o = TestNs::new(&format!("{tag}o"))?;
    let sh = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    sh(&[
        "link", "add", "h0", "netns", &h.name, "type", "veth", "peer", "name", "c0", "netns",
        &c.name,
    ]);
    sh(&[
        "link", "add", "h1", "netns", &h.name, "type", "veth", "peer", "name", "o0", "netns",
        &o.name,
    ]);
    for (ns, cmds) in [
        (
            &h,
            &[
                "ip addr add 10.99.0.1/24 dev h0",
                "ip addr add 192.0.2.1/24 dev h1",
                "ip link set h0 up",
                "ip link set h1 up",
                "sysctl -qw net.ipv4.ip_forward=1",
            ][..],
        ),
        (
            &c,
            &[
                "ip addr add 10.99.0.2/24 dev c0",
                "ip link set c0 up",
                "ip link set lo up",
                "ip route add default via 10.99.0.1",
            ][..],
        ),
        (
            &o,
            &["ip addr add 192.0.2.2/24 dev o0", "ip link set o0 up"][..],
        ),
    ] {
        for cmd in cmds {
            ns.ok(&cmd.split(' ').collect::<Vec<_>>());
        }
    }
    Some((h, c, o))
}

/// Send one datagram from a fresh socket in C to O; what source address O
/// sees, and whether O's answer to that source made it back to C.
fn probe(c: &TestNs, o: &TestNs) -> (std::net::IpAddr, bool) {
    use std::net::UdpSocket;
    use std::time::Duration;
    // An ephemeral port: a fixed one can still be held for a moment by a
    // child another test forks (the fd table is copied until exec), and
    // the next probe's bind would fail with EADDRINUSE.
    let rx = o.run(|| UdpSocket::bind("192.0.2.2:0").unwrap());
    let to = rx.local_addr().unwrap();
    let tx = c.run(|| UdpSocket::bind("0.0.0.0:0").unwrap());
    rx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    // ARP/neighbour resolution may eat the first datagram: retry a little.
    let mut from = None;
    for _ in 0..5 {
        tx.send_to(b"ping", to).unwrap();
        if let Ok((_, f)) = rx.recv_from(&mut buf) {
            from = Some(f);
            break;
        }
    }
    let from = from.expect("outside received nothing");
    let _ = rx.send_to(b"pong", from);
    let answered = tx.recv_from(&mut buf).is_ok();
    (from.ip(), answered)
}

#[test]
fn kernel_real_masquerade_seen_by_the_receiver() {
    let Some((h, c, o)) = topology("mq") else {
        return;
    };
    let container: std::net::IpAddr = "10.99.0.2".parse().unwrap();
    let host_side: std::net::IpAddr = "192.0.2.1".parse().unwrap();

    let (src, answered) = probe(&c, &o);
    assert_eq!(
        src, container,
        "without masquerade the container address leaks"
    );
    assert!(
        !answered,
        "outside has no route back to the container subnet"
    );

    h.with_netfilter(|nl| setup_with(nl, &[ip("10.99.0.2/24")], "mq", "eth0", "ctr").unwrap());
    let (src, answered) = probe(&c, &o);
    assert_eq!(src, host_side, "masqueraded to the host-side address");
    assert!(answered, "the reply is de-NATed back to the container");

    h.with_netfilter(|nl| {
        teardown_with(nl, "mq", "eth0", "ctr").unwrap();
        assert!(masq_rules(nl).is_empty());
        assert_base_intact(nl);
    });
    let (src, _) = probe(&c, &o);
    assert_eq!(
        src, container,
        "after teardown: no masquerade for new flows"
    );
}

/// Timing for the closing note (run with `-- --ignored --nocapture`):
/// our setup and teardown transactions vs `nft -f` of the same change.
#[test]
#[ignore = "a timing measurement, not a check: run with -- --ignored --nocapture"]
fn bench_masq_setup_teardown_vs_nft() {
    use std::time::Instant;
    let Some(ns) = TestNs::new("masqbench") else {
        return;
    };
    const N: usize = 200;
    let median = |mut v: Vec<u128>| {
        v.sort();
        v[v.len() / 2]
    };
    let (first, add, del) = ns.with_netfilter(|nl| {
        let t = Instant::now();
        setup_with(nl, &[ip("10.99.0.2/24")], "bench", "eth0", "first").unwrap();
        let first = t.elapsed().as_micros();
        let (mut add, mut del) = (Vec::new(), Vec::new());
        for i in 0..N {
            let id = format!("c{i}");
            let t = Instant::now();
            setup_with(nl, &[ip("10.99.0.3/24")], "bench", "eth0", &id).unwrap();
            add.push(t.elapsed().as_micros());
            let t = Instant::now();
            teardown_with(nl, "bench", "eth0", &id).unwrap();
            del.push(t.elapsed().as_micros());
        }
        (first, median(add), median(del))
    });
    // Including a fresh socket, as a plugin process pays it.
    let with_socket = ns.with_netfilter(|_| {
        let mut v = Vec::new();
        for i in 0..N {
            let t = Instant::now();
            setup(&[ip("10.99.0.4/24")], "bench", "eth0", &format!("s{i}")).unwrap();
            teardown_with(
                &Netlink::netfilter().unwrap(),
                "bench",
                "eth0",
                &format!("s{i}"),
            )
            .unwrap();
            v.push(t.elapsed().as_micros());
        }
        median(v)
    });
    println!("masq nft-netlink: first ADD (creates table/chains) {first} us");
    println!("masq nft-netlink: ADD median {add} us, DEL median {del} us (N={N}, 1 IP)");
    println!(
        "masq nft-netlink: ADD+DEL with a fresh socket each, median {with_socket} us \
         (includes the kernel's wait at close after a delete)"
    );
    if !TestNs::have_nft() {
        return;
    }
    // What Go's ADD pipes to nft (knftables), and its DEL by handle.
    let go_add = "add table inet cni_plugins_masquerade { comment \"x\" ; }\n\
        add chain inet cni_plugins_masquerade masq_checks { comment \"y\" ; }\n\
        add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority 100 ; }\n\
        flush chain inet cni_plugins_masquerade postrouting\n\
        add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4 return\n\
        add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8 return\n\
        add rule inet cni_plugins_masquerade postrouting goto masq_checks\n\
        add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.99.0.5 ip daddr != 10.99.0.0/24 masquerade comment \"nftbench\"\n";
    let f = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&f, go_add).unwrap();
    let mut v = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        ns.ok(&["nft", "-f", f.to_str().unwrap()]);
        v.push(t.elapsed().as_micros());
    }
    let _ = std::fs::remove_file(&f);
    // `ip netns exec` alone, to subtract.
    let mut base = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        ns.ok(&["true"]);
        base.push(t.elapsed().as_micros());
    }
    println!(
        "nft -f of Go's ADD transaction: median {} us (ip netns exec true alone: {} us)",
        median(v),
        median(base)
    );
}

#[test]
#[ignore = "a timing measurement, not a check: run with -- --ignored --nocapture"]
fn bench_fresh_socket_parts() {
    use std::time::{Duration, Instant};
    let Some(ns) = TestNs::new("partbench") else {
        return;
    };
    ns.with_netfilter(|nl0| {
        setup_with(nl0, &[ip("10.99.0.2/24")], "b", "eth0", "first").unwrap();
        let (mut add, mut del, mut del_wait) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..30 {
            let id = format!("x{round}");
            // ADD as a plugin process does it: open, work, close.
            let t = Instant::now();
            let nl = Netlink::netfilter().unwrap();
            setup_with(&nl, &[ip("10.99.0.3/24")], "b", "eth0", &id).unwrap();
            drop(nl);
            add.push(t.elapsed().as_micros());
            // DEL likewise.
            let t = Instant::now();
            let nl = Netlink::netfilter().unwrap();
            teardown_with(&nl, "b", "eth0", &id).unwrap();
            let work = t.elapsed().as_micros();
            drop(nl);
            del.push((t.elapsed().as_micros(), work));
            // DEL whose socket is closed 50 ms later.
            setup_with(nl0, &[ip("10.99.0.3/24")], "b", "eth0", &id).unwrap();
            let nl = Netlink::netfilter().unwrap();
            teardown_with(&nl, "b", "eth0", &id).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let t = Instant::now();
            drop(nl);
            del_wait.push(t.elapsed().as_micros());
        }
        add.sort();
        del.sort();
        del_wait.sort();
        println!(
            "fresh socket: ADD {} us; DEL {} us of which {} us before close; close 50 ms after a DEL: {} us",
            add[15], del[15].0, del[15].1, del_wait[15]
        );
    });
}

#[test]
fn kernel_gc_of_thousands_of_rules_goes_through_in_several_transactions() {
    let Some(ns) = TestNs::new("masqbig") else {
        return;
    };
    ns.with_netfilter(|nl| {
        // More than one datagram can carry (the send buffer is ~208 KiB):
        // a node leaving thousands of leaked Go rules behind must still GC.
        const N: usize = 4000;
        setup_with(nl, &[], "big", "eth0", "seed").unwrap();
        let mut b = Batch::new(None);
        for i in 0..N {
            let a = ip(&format!("10.{}.{}.2/24", 100 + i / 250, i % 250));
            b.add_rule(&masq_rule(&a, &comment("big", "eth0", &format!("c{i}"))));
        }
        b.commit(nl, "plant").unwrap();
        setup_with(nl, &[ip("10.1.1.2/24")], "keep", "eth0", "c0").unwrap();
        assert_eq!(masq_rules(nl).len(), N + 1);
        let valid = [Attachment {
            container_id: "c7".into(),
            ifname: "eth0".into(),
        }];
        gc_with(nl, "big", &valid).unwrap();
        let left: Vec<_> = masq_rules(nl)
            .into_iter()
            .filter_map(|r| r.comment)
            .collect();
        assert_eq!(
            left,
            [comment("big", "eth0", "c7"), comment("keep", "eth0", "c0")]
        );
        assert_base_intact(nl);
    });
}

#[test]
fn kernel_teardowns_racing_over_a_big_table_survive_interrupted_dumps() {
    // A dump of a big chain spans many datagrams; a commit by another
    // teardown between two of them makes the kernel flag the dump
    // interrupted (EINTR once the socket's own re-reads run out). Every
    // teardown must still succeed: 8 workers, as a node's runtime might run.
    let Some(ns) = TestNs::new("masqintr") else {
        return;
    };
    const WORKERS: usize = 8;
    const EACH: usize = 20;
    const FILLER: usize = 1500;
    let cid = |w: usize, i: usize| format!("w{w}c{i}");
    ns.with_netfilter(|nl| {
        setup_with(nl, &[], "intr", "eth0", "seed").unwrap();
        let mut b = Batch::new(None);
        for i in 0..FILLER {
            let a = ip(&format!("10.{}.{}.2/24", 100 + i / 250, i % 250));
            b.add_rule(&masq_rule(&a, &comment("filler", "eth0", &format!("f{i}"))));
        }
        for w in 0..WORKERS {
            for i in 0..EACH {
                let a = ip(&format!("10.50.{w}.{}/16", 2 + i));
                b.add_rule(&masq_rule(&a, &comment("intr", "eth0", &cid(w, i))));
            }
        }
        b.commit(nl, "plant").unwrap();
    });
    ns.in_parallel(WORKERS, |w, nl| {
        for i in 0..EACH {
            teardown_with(nl, "intr", "eth0", &cid(w, i))
                .unwrap_or_else(|e| panic!("{}: {}", cid(w, i), e.msg));
        }
    });
    ns.with_netfilter(|nl| {
        assert_eq!(masq_rules(nl).len(), FILLER, "only the filler rules stay");
        assert_base_intact(nl);
    });
}
