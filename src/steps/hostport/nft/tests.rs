//! Golden bytes (nft 1.0.6 running Go's transaction, captured with strace:
//! netlink/nftables/testdata/portmap-*.hex) and kernel tests in throwaway
//! namespaces against the Go HEAD fixture.

use super::*;
use crate::netlink::consts::NLM_F_ACK;
use crate::netlink::nftables::consts::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::netlink::testns::{reference_fixtures, TestNs};
use std::process::Command;

const ID: &str = "fixture0002";

fn maps() -> Vec<Mapping> {
    let m = |host_port, container_port, protocol, host_ip: Option<&str>| Mapping {
        host_port,
        container_port,
        protocol,
        host_ip: host_ip.map(|h| h.parse().unwrap()),
    };
    vec![
        m(8080, 80, IPPROTO_TCP, None),
        m(5353, 53, IPPROTO_UDP, None),
        m(9090, 90, IPPROTO_TCP, Some("192.0.2.10")),
    ]
}

const SNAT: Options = Options {
    snat: true,
    masq_all: false,
};

/// Messages of a datagram, with sequence numbers and the ACK flag cleared.
fn messages(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes(b[..4].try_into().unwrap()) as usize;
        let mut m = b[..len].to_vec();
        m[8..12].fill(0);
        let f = u16::from_ne_bytes([m[6], m[7]]) & !NLM_F_ACK;
        m[6..8].copy_from_slice(&f.to_ne_bytes());
        out.push(m.iter().map(|x| format!("{x:02x}")).collect());
        b = &b[crate::netlink::attr::align(len).min(b.len())..];
    }
    out
}

fn golden(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for m in &mut v {
        m.replace_range(16..24, "00000000");
    }
    v
}

#[test]
fn golden_v4_add_transaction_matches_nft_running_gos() {
    let cip: IpAddr = "10.99.1.2".parse().unwrap();
    let rules = container_rules(&cip, &maps(), &SNAT, ID);
    let ours = messages(add_batch(&cip, &rules, &SNAT, &[]).finish(0).as_bytes());
    let theirs = golden(include_str!(
        "../../../netlink/nftables/testdata/portmap-v4.hex"
    ));
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "message {i} (ours first, nft second)");
    }
}

#[test]
fn golden_v6_rules_match_nft() {
    // portmap-v6.hex: table, chain hostports, 2 mappings (one with an
    // ip6 hostIP, sctp), chain masquerading, the hairpin rule, 2 masqAll rules.
    let cip: IpAddr = "fd99:1::2".parse().unwrap();
    let m6 = |protocol, host_ip: Option<&str>| Mapping {
        host_port: 8080,
        container_port: 80,
        protocol,
        host_ip: host_ip.map(|h| h.parse().unwrap()),
    };
    let f = NFPROTO_IPV6;
    let mut b = Batch::new(None);
    b.add_table(&Table {
        family: f,
        name: TABLE.into(),
        comment: Some(TABLE_COMMENT.into()),
        handle: None,
    });
    b.add_chain(&Chain::regular(f, TABLE, HOSTPORTS));
    b.add_rule(&mapping_rule(f, &m6(IPPROTO_TCP, None), &cip, ID));
    b.add_rule(&mapping_rule(
        f,
        &m6(IPPROTO_SCTP, Some("fd99::10")),
        &cip,
        ID,
    ));
    b.add_chain(&base_chain(f, MASQUERADING, NF_INET_POST_ROUTING, SRCNAT));
    let all = Options {
        snat: true,
        masq_all: true,
    };
    for r in masq_rules(f, &cip, &SNAT, ID)
        .into_iter()
        .chain(masq_rules(f, &cip, &all, ID))
        .chain(masq_rules(f, &cip, &all, ID))
    {
        b.add_rule(&r);
    }
    let ours = messages(b.finish(0).as_bytes());
    let theirs = golden(include_str!(
        "../../../netlink/nftables/testdata/portmap-v6.hex"
    ));
    assert_eq!(ours, theirs);
}

#[test]
fn other_family_host_ips_are_skipped_and_unspecified_ones_match_any() {
    let mut m = maps();
    m[1].host_ip = Some("::".parse().unwrap());
    let v6 = container_rules(&"fd99:1::2".parse().unwrap(), &m, &SNAT, ID);
    // 8080 and 5353 (:: = any address), not the v4-only 9090; 1 masquerade
    assert_eq!(v6.len(), 3);
    assert_eq!(
        v6[1],
        mapping_rule(NFPROTO_IPV6, &maps()[1], &"fd99:1::2".parse().unwrap(), ID)
    );
    let no_snat = Options {
        snat: false,
        masq_all: false,
    };
    // v4 without snat: 8080 and 9090 (the :: mapping is v6 only), no masquerade
    assert_eq!(
        container_rules(&"10.0.0.2".parse().unwrap(), &m, &no_snat, ID).len(),
        2
    );
}

fn nft(ns: &TestNs, args: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft"])
        .args(args)
        .output()
        .expect("run nft");
    assert!(
        o.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `nft list` of both tables with rule handles dropped.
fn listing(ns: &TestNs) -> String {
    let mut s = nft(ns, &["list", "table", "ip", TABLE]);
    s.push_str(&nft(ns, &["list", "table", "ip6", TABLE]));
    s
}

#[test]
fn kernel_setup_lists_exactly_like_the_go_fixture() {
    let Some(fx) = reference_fixtures() else {
        eprintln!("skipping: no reference fixtures");
        return;
    };
    let Some(ns) = TestNs::new("pmadd") else {
        return;
    };
    ns.with_netfilter(|nl| {
        for ip in ["10.99.1.2", "fd99:1::2"] {
            setup(nl, ID, &ip.parse().unwrap(), &maps(), &SNAT).unwrap();
        }
        // a repeated ADD replaces, never duplicates
        setup(nl, ID, &"10.99.1.2".parse().unwrap(), &maps(), &SNAT).unwrap();
    });
    let want = std::fs::read_to_string(fx.join("goref-head-portmap-nft.nft")).unwrap();
    assert_eq!(listing(&ns), want);
    let rules = ns.with_netfilter(|nl| nf::list_rules(nl, NFPROTO_IPV4, TABLE, None).unwrap());
    ns.with_netfilter(|nl| {
        check(nl, ID, &"10.99.1.2".parse().unwrap(), &maps(), &SNAT).unwrap();
        let e = check(nl, "other", &"10.99.1.2".parse().unwrap(), &maps(), &SNAT).unwrap_err();
        assert!(e.msg.contains("missing hostport rule"), "{}", e.msg);
    });
    assert_eq!(rules.len(), 3 + 2 + 2 + 2);
}

#[test]
fn kernel_teardown_removes_gos_rules_and_keeps_tables_and_chains() {
    let Some(fx) = reference_fixtures() else {
        eprintln!("skipping: no reference fixtures");
        return;
    };
    let Some(ns) = TestNs::new("pmdel") else {
        return;
    };
    let file = fx.join("goref-head-portmap-nft.nft");
    nft(&ns, &["-f", file.to_str().unwrap()]);
    ns.with_netfilter(|nl| {
        // another container's rules stay
        setup(
            nl,
            "other",
            &"10.99.1.3".parse().unwrap(),
            &maps()[..1],
            &SNAT,
        )
        .unwrap();
        teardown(nl, ID).unwrap();
        teardown(nl, ID).unwrap();
    });
    let l = listing(&ns);
    assert!(!l.contains(ID), "{l}");
    assert_eq!(l.matches("comment \"other\"").count(), 3, "{l}");
    for chain in [
        HOSTPORTS,
        HOSTIP_HOSTPORTS,
        HOSTPORTS_ALL,
        PREROUTING,
        OUTPUT,
        MASQUERADING,
    ] {
        assert_eq!(
            l.matches(&format!("chain {chain} {{")).count(),
            2,
            "{chain}: {l}"
        );
    }
    assert_eq!(
        l.matches("fib daddr type local jump hostports_all").count(),
        4
    );
    // Tearing one container down keeps the tables and the other's rules
    ns.with_netfilter(|nl| teardown(nl, "other").unwrap());
    let l = listing(&ns);
    assert!(!l.contains("comment \"other\""), "{l}");
    assert_eq!(l.matches("chain masquerading {").count(), 2, "{l}");
}

#[test]
fn kernel_16_parallel_adds_and_dels_keep_every_rule_and_one_set_of_jumps() {
    let Some(ns) = TestNs::new("pmpar") else {
        return;
    };
    let ip = |i: usize| -> IpAddr { format!("10.98.0.{}", i + 2).parse().unwrap() };
    ns.in_parallel(16, |i, nl| {
        setup(nl, &format!("par-{i}"), &ip(i), &maps(), &SNAT).unwrap();
    });
    let rules = ns.with_netfilter(|nl| nf::list_rules(nl, NFPROTO_IPV4, TABLE, None).unwrap());
    let count = |chain: &str| rules.iter().filter(|r| r.chain == chain).count();
    assert_eq!(count(HOSTPORTS), 16 * 3);
    assert_eq!(count(MASQUERADING), 16 * 2);
    assert_eq!(count(HOSTPORTS_ALL), 2);
    assert_eq!(count(PREROUTING), 1);
    assert_eq!(count(OUTPUT), 1);
    ns.in_parallel(16, |i, nl| {
        teardown(nl, &format!("par-{i}")).unwrap();
    });
    let rules = ns.with_netfilter(|nl| nf::list_rules(nl, NFPROTO_IPV4, TABLE, None).unwrap());
    assert!(rules.iter().all(|r| r.comment.is_none()), "{rules:?}");
    assert_eq!(rules.len(), 4);
}
