use super::live::{Attachment, Live, NsState};
use super::*;
use std::collections::{BTreeSet, HashMap, HashSet};

fn live() -> Live {
    Live {
        namespaces: 1,
        ips: HashSet::from(["10.1.0.2".parse().unwrap()]),
        ips_complete: true,
        cache: Vec::new(),
        alive_ids: HashSet::from(["alive".to_string()]),
        dead: BTreeSet::new(),
        dead_ids: HashSet::new(),
        gone_ns: HashMap::new(),
        known: BTreeSet::new(),
        nsids: HashSet::new(),
        errors: Vec::new(),
    }
}

/// What a scan found, and its verdict, in order.
fn verdicts(s: &Scan) -> Vec<(String, Verdict)> {
    s.findings
        .iter()
        .map(|f| (f.what.clone(), f.verdict))
        .collect()
}

#[test]
fn alive_by_id_or_by_address() {
    let l = live();
    let other: IpAddr = "10.1.0.9".parse().unwrap();
    assert!(judge(&l, Some("alive"), &[other]).is_none());
    assert!(judge(&l, Some("x"), &["10.1.0.2".parse().unwrap()]).is_none());
    let (v, why) = judge(&l, Some("x"), &[other]).unwrap();
    assert_eq!(v, Verdict::Leaked);
    assert!(why.contains("10.1.0.9"), "{why}");
}

#[test]
fn no_address_and_no_cache_evidence_is_unknown() {
    let l = live();
    assert_eq!(judge(&l, Some("x"), &[]).unwrap().0, Verdict::Unknown);
}

#[test]
fn unreadable_namespace_makes_address_evidence_unknown() {
    let mut l = live();
    l.ips_complete = false;
    let (v, _) = judge(&l, Some("x"), &["10.1.0.9".parse().unwrap()]).unwrap();
    assert_eq!(v, Verdict::Unknown);
}

#[test]
fn gone_netns_in_the_cache_is_leaked_and_named() {
    let mut l = live();
    l.gone_ns.insert("d".into(), "/run/netns/gone".into());
    l.mark_dead("net", "d");
    let (v, why) = judge(&l, Some("d"), &[]).unwrap();
    assert_eq!(v, Verdict::Leaked);
    assert!(why.contains("/run/netns/gone"), "{why}");
    assert!(l.is_dead_id("d"));
}

#[test]
fn cache_entries_alive_gone_or_unknown() {
    let mut l = live();
    let at = |id: &str, netns: &str, state| Attachment {
        file: format!("/c/results/n-{id}-eth0").into(),
        network: "n".into(),
        container_id: id.into(),
        ifname: "eth0".into(),
        netns: netns.into(),
        state,
    };
    l.cache = vec![
        at("a", "/run/netns/a", NsState::Alive),
        at("g", "/run/netns/g", NsState::Gone),
        at("e", "", NsState::Unknown),
        at("u", "/proc/1/ns/net", NsState::Unknown),
    ];
    let mut s = Scan::default();
    files::scan_cache(&l, &mut s);
    let got = verdicts(&s);
    assert_eq!(
        got,
        vec![
            ("g/eth0 on n".to_string(), Verdict::Leaked),
            ("u/eth0 on n".to_string(), Verdict::Unknown)
        ]
    );
}

#[test]
fn tuning_backups_of_dead_alive_and_unknown_containers() {
    let dir = std::env::temp_dir().join(format!("cnibox-doctor-tun-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "alive_eth0.json",
        "d_x_net1.json",
        "who_eth0.json",
        "notes.txt",
    ] {
        std::fs::write(dir.join(f), "{}").unwrap();
    }
    let mut l = live();
    l.mark_dead("n", "d_x");
    let mut s = Scan::default();
    files::scan_tuning(&dir, &l, &mut s);
    let _ = std::fs::remove_dir_all(&dir);
    let got = verdicts(&s);
    assert_eq!(
        got,
        vec![
            ("backup of d_x/net1".to_string(), Verdict::Leaked),
            ("backup of who/eth0".to_string(), Verdict::Unknown)
        ]
    );
    assert_eq!(s.inspected[&Kind::Tuning], 3);
}

#[test]
fn arguments() {
    let a = |v: &[&str]| parse(&v.iter().map(OsString::from).collect::<Vec<_>>());
    let o = a(&[
        "--fix",
        "--json",
        "--netns-dir=/x",
        "--netns-dir",
        "/y",
        "--min-age",
        "0",
    ])
    .unwrap()
    .unwrap();
    assert!(o.fix && o.json);
    assert_eq!(o.netns_dirs, vec![PathBuf::from("/x"), PathBuf::from("/y")]);
    assert_eq!(o.min_age, Duration::ZERO);
    let d = a(&[]).unwrap().unwrap();
    assert_eq!(d.netns_dirs.len(), 2);
    assert_eq!(d.min_age, Duration::from_secs(30));
    assert!(a(&["--help"]).unwrap().is_none());
    assert!(a(&["--min-age", "soon"]).is_err());
    assert!(a(&["--data-dir"]).is_err());
    assert!(a(&["extra"]).is_err());
}
