//! The firewall chained plugin end to end, in node namespaces of the
//! tests' own: cnibox writes iptables-nft rules over netlink (no iptables
//! binary on its PATH); `iptables`/`ip6tables`/`iptables-save` are used here
//! only as tools to look, to set the node's FORWARD policy, and to plant
//! Go-made rules; Debian's Go plugin (/usr/lib/cni/firewall, v1.1.1) is the
//! interop partner.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

const GO_FIREWALL: &str = "/usr/lib/cni/firewall";
const NO_BINARIES: &str = "/nonexistent";
const TOOLS_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

struct Node {
    host: TestNs,
    ipam: TempDir,
    fw: TempDir,
}

impl Node {
    fn new() -> Node {
        Node {
            host: TestNs::new("fwh"),
            ipam: TempDir::new("fw-ipam"),
            fw: TempDir::new("fw-state"),
        }
    }

    fn bridge(&self, name: &str, br: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": br,
            "isGateway": true,
            "ipam": {"type": "host-local", "subnet": subnet,
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.ipam.str()}
        })
    }

    fn firewall(&self, name: &str, extra: Value) -> Value {
        node::merged(
            json!({"cniVersion": "1.0.0", "name": name, "type": "firewall",
                   "backend": "iptables", "dataDir": self.fw.str()}),
            extra,
        )
    }

    fn call(&self, applet: &str, cmd: &str, id: &str, netns: &str, conf: &Value) -> Reply {
        Call::attach(applet, cmd, id, netns, "eth0")
            .var("PATH", NO_BINARIES)
            .in_ns(&self.host)
            .config(conf)
            .run()
    }

    /// Debian's Go firewall plugin, with iptables on its PATH.
    fn go(&self, cmd: &str, id: &str, netns: &str, conf: &Value) -> Reply {
        let mut c = Call::attach("firewall", cmd, id, netns, "eth0")
            .var("PATH", TOOLS_PATH)
            .var("CNI_PATH", "/usr/lib/cni")
            .in_ns(&self.host)
            .config(conf);
        c.bin_dir = Path::new("/usr/lib/cni").to_path_buf();
        c.run()
    }

    fn sh(&self, cmd: &[&str]) -> String {
        let out = self.host.exec(cmd);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `iptables-save -t filter` (or ip6tables-save) without comments and
    /// with counters zeroed.
    fn save(&self, v6: bool) -> String {
        let tool = if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        };
        self.sh(&[tool, "-t", "filter"])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.find(" [") {
                Some(i) if l.starts_with(':') => format!("{} [0:0]", &l[..i]),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The rules of CNI-FORWARD as `iptables -S` prints them.
    fn cni_forward(&self, v6: bool) -> Vec<String> {
        let tool = if v6 { "ip6tables" } else { "iptables" };
        let out = self.host.exec(&[tool, "-S", "CNI-FORWARD"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("-A"))
            .map(str::to_string)
            .collect()
    }

    /// Per-IP rules left in CNI-FORWARD (both families).
    fn per_ip_rules(&self) -> Vec<String> {
        [false, true]
            .into_iter()
            .flat_map(|v6| self.cni_forward(v6))
            .filter(|l| l.contains(" -s ") || l.contains(" -d "))
            .collect()
    }

    /// An outside namespace at 192.0.2.2 that routes `pods` back via the node.
    fn outside(&self, pods: &str) -> TestNs {
        let out = TestNs::new("fwout");
        self.host.ip(&[
            "link", "add", "fwup0", "type", "veth", "peer", "name", "fwup1", "netns", &out.name,
        ]);
        self.host
            .ip(&["addr", "add", "192.0.2.1/24", "dev", "fwup0"]);
        self.host.ip(&["link", "set", "fwup0", "up"]);
        out.ip(&["addr", "add", "192.0.2.2/24", "dev", "fwup1"]);
        out.ip(&["link", "set", "fwup1", "up"]);
        out.ip(&["route", "add", pods, "via", "192.0.2.1"]);
        out
    }

    fn forward_drop(&self) {
        self.sh(&["iptables", "-P", "FORWARD", "DROP"]);
        self.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
}

/// A Go HEAD fixture (see tests/fixtures/README.md): the copy in the
/// repository (tests/fixtures, copied from the reference fixtures).
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tools_present() -> bool {
    let ok = [
        "iptables",
        "iptables-save",
        "ip6tables-save",
        "iptables-restore",
    ]
    .iter()
    .all(|t| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        skip(
            SkipKind::Tool,
            "iptables (nf_tables) test tools not installed",
        );
    }
    ok
}

fn go_present() -> bool {
    let ok = Path::new(GO_FIREWALL).exists();
    if !ok {
        skip(SkipKind::Tool, "Debian's Go firewall plugin not installed");
    }
    ok
}

/// A prevResult as the bridge returns it, for tests that need no links.
fn prev(br: &str, netns: &str, ips: &[&str]) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": br, "mac": "02:00:00:00:00:01"},
                       {"name": "veth0", "mac": "02:00:00:00:00:02"},
                       {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": netns}],
        "ips": ips.iter().map(|a| json!({"address": a, "interface": 2})).collect::<Vec<_>>()
    })
}

#[test]
fn forward_drop_node_reaches_the_outside_only_with_firewall_in_the_chain() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    node.forward_drop();
    let outside = node.outside("10.94.0.0/24");
    let br = node.bridge("fwnet", "cnifwa0", "10.94.0.0/24");
    let fw = node.firewall("fwnet", json!({}));
    let ctrs = [TestNs::new("fwc"), TestNs::new("fwc")];
    let mut results = Vec::new();
    for (i, c) in ctrs.iter().enumerate() {
        let r = node.call("bridge", "ADD", &format!("fw-{i}"), &c.path(), &br);
        results.push(r.ok().json());
    }
    for c in &ctrs {
        assert!(
            !c.ping("192.0.2.2"),
            "FORWARD policy drop stops a bridge-only chain"
        );
    }
    for (i, c) in ctrs.iter().enumerate() {
        let conf = node::with_prev(&fw, &results[i]);
        let r = node.call("firewall", "ADD", &format!("fw-{i}"), &c.path(), &conf);
        assert_eq!(r.ok().json(), results[i], "firewall passes prevResult on");
    }
    for c in &ctrs {
        assert!(c.ping("192.0.2.2"), "firewall in the chain lets it through");
    }
    assert_eq!(node.per_ip_rules().len(), 4, "{:?}", node.per_ip_rules());
    for (i, c) in ctrs.iter().enumerate() {
        let conf = node::with_prev(&fw, &results[i]);
        node.call("firewall", "CHECK", &format!("fw-{i}"), &c.path(), &conf)
            .ok();
        node.call("firewall", "DEL", &format!("fw-{i}"), &c.path(), &conf)
            .ok();
    }
    assert!(node.per_ip_rules().is_empty(), "{:?}", node.per_ip_rules());
    assert!(
        !ctrs[0].ping("192.0.2.2"),
        "after DEL the drop policy holds again"
    );
    for (i, c) in ctrs.iter().enumerate() {
        node.call("bridge", "DEL", &format!("fw-{i}"), &c.path(), &br)
            .ok();
    }
    drop(outside);
}

#[test]
fn isolated_ingress_policy_blocks_traffic_between_two_bridges() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    node.forward_drop();
    let nets = [
        ("fwisa", "cnifwi0", "10.95.1.0/24"),
        ("fwisb", "cnifwi1", "10.95.2.0/24"),
    ];
    let ctrs = [TestNs::new("fwi"), TestNs::new("fwi")];
    let mut res = Vec::new();
    for (i, (name, br, subnet)) in nets.iter().enumerate() {
        let r = node.call(
            "bridge",
            "ADD",
            &format!("iso-{i}"),
            &ctrs[i].path(),
            &node.bridge(name, br, subnet),
        );
        res.push(r.ok().json());
    }
    let addr = |i: usize| {
        res[i]["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    // Open policy first: the two bridges reach each other.
    for (i, (name, ..)) in nets.iter().enumerate() {
        let conf = node::with_prev(&node.firewall(name, json!({})), &res[i]);
        node.call(
            "firewall",
            "ADD",
            &format!("iso-{i}"),
            &ctrs[i].path(),
            &conf,
        )
        .ok();
    }
    assert!(ctrs[0].ping(&addr(1)), "open: bridge A reaches bridge B");
    // Isolated: the same attachments, ADD again with the policy.
    for (i, (name, ..)) in nets.iter().enumerate() {
        let conf = node::with_prev(
            &node.firewall(name, json!({"ingressPolicy": "isolated"})),
            &res[i],
        );
        node.call(
            "firewall",
            "ADD",
            &format!("iso-{i}"),
            &ctrs[i].path(),
            &conf,
        )
        .ok();
    }
    assert!(!ctrs[0].ping(&addr(1)), "isolated: A cannot reach B");
    assert!(!ctrs[1].ping(&addr(0)), "isolated: B cannot reach A");
    let s = node.save(false);
    for br in ["cnifwi0", "cnifwi1"] {
        assert!(s.contains(&format!("-A CNI-ISOLATION-STAGE-1 -i {br} -o {br} -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j DROP")), "{s}");
        assert!(
            s.contains(&format!("-A CNI-ISOLATION-STAGE-2 -o {br} -m comment")),
            "{s}"
        );
    }
    for (i, (name, br, subnet)) in nets.iter().enumerate() {
        let conf = node::with_prev(
            &node.firewall(name, json!({"ingressPolicy": "isolated"})),
            &res[i],
        );
        node.call(
            "firewall",
            "DEL",
            &format!("iso-{i}"),
            &ctrs[i].path(),
            &conf,
        )
        .ok();
        node.call(
            "bridge",
            "DEL",
            &format!("iso-{i}"),
            &ctrs[i].path(),
            &node.bridge(name, br, subnet),
        )
        .ok();
    }
    assert!(node.per_ip_rules().is_empty(), "{:?}", node.per_ip_rules());
}

#[test]
fn iptables_save_equals_the_go_plugin_for_the_same_prev_result() {
    require_root!();
    if !tools_present() || !go_present() {
        return;
    }
    let (go, us) = (Node::new(), Node::new());
    let ctr = TestNs::new("fwq");
    let p = prev(
        "cnifw0",
        &ctr.path(),
        &["10.99.3.2/24", "fd99:3::2/64", "10.99.3.7/24"],
    );
    for (admin, id) in [(None, "fixture0003"), (Some("MY-ADMIN"), "fixture0004")] {
        let extra = admin.map_or(json!({}), |a| json!({"iptablesAdminChainName": a}));
        let conf = node::with_prev(&go.firewall("fwfix", extra.clone()), &p);
        go.go("ADD", id, &ctr.path(), &conf).ok();
        let conf = node::with_prev(&us.firewall("fwfix", extra), &p);
        us.call("firewall", "ADD", id, &ctr.path(), &conf).ok();
    }
    assert_eq!(us.save(false), go.save(false));
    assert_eq!(us.save(true), go.save(true));
    assert!(us
        .save(false)
        .contains("-A CNI-FORWARD -s 10.99.3.7/32 -j ACCEPT"));
    // Go's `iptables -C` (its CHECK) finds our rules, and ours find Go's.
    let conf = node::with_prev(&us.firewall("fwfix", json!({})), &p);
    us.go("CHECK", "fixture0003", &ctr.path(), &conf).ok();
    go.call("firewall", "CHECK", "fixture0003", &ctr.path(), &conf)
        .ok();
}

#[test]
fn same_bridge_add_lists_exactly_the_go_head_fixture() {
    require_root!();
    if !tools_present() {
        return;
    }
    let want4 = fixture("goref-head-firewall.iptables-save");
    let want6 = fixture("goref-head-firewall.ip6tables-save");
    if !want4.exists() {
        skip(
            SkipKind::Tool,
            "fixture goref-head-firewall.iptables-save missing",
        );
        return;
    }
    let node = Node::new();
    let ctr = TestNs::new("fwq");
    let p = prev("cnifw0", &ctr.path(), &["10.99.3.2/24", "fd99:3::2/64"]);
    let conf = node::with_prev(
        &node.firewall("fwfix", json!({"ingressPolicy": "same-bridge"})),
        &p,
    );
    node.call("firewall", "ADD", "fixture0003", &ctr.path(), &conf)
        .ok();
    // A second ADD changes nothing (every rule is -C'd first, as Go does).
    node.call("firewall", "ADD", "fixture0003", &ctr.path(), &conf)
        .ok();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim_end().to_string();
    assert_eq!(node.save(false), read(&want4));
    assert_eq!(node.save(true), read(&want6));
}

#[test]
fn go_add_then_our_del_and_our_add_then_go_del_leave_no_per_ip_rule() {
    require_root!();
    if !tools_present() || !go_present() {
        return;
    }
    let ctr = TestNs::new("fwq");
    let p = prev("cnifw0", &ctr.path(), &["10.99.3.2/24", "fd99:3::2/64"]);
    // Go ADD, cnibox DEL (with the prevResult, as libcni sends it).
    let a = Node::new();
    let conf = node::with_prev(&a.firewall("fwfix", json!({})), &p);
    a.go("ADD", "fixture0003", &ctr.path(), &conf).ok();
    assert_eq!(a.per_ip_rules().len(), 4);
    a.call("firewall", "DEL", "fixture0003", &ctr.path(), &conf)
        .ok();
    assert!(a.per_ip_rules().is_empty(), "{:?}", a.per_ip_rules());
    // cnibox ADD, Go DEL (`iptables -D`).
    let b = Node::new();
    let conf = node::with_prev(&b.firewall("fwfix", json!({})), &p);
    b.call("firewall", "ADD", "fixture0003", &ctr.path(), &conf)
        .ok();
    assert_eq!(b.per_ip_rules().len(), 4);
    b.go("DEL", "fixture0003", &ctr.path(), &conf).ok();
    assert!(b.per_ip_rules().is_empty(), "{:?}", b.per_ip_rules());
    assert_eq!(
        b.cni_forward(false),
        vec!["-A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN"],
        "the chains and jumps stay, as Go leaves them"
    );
}

#[test]
fn planted_fixture_rules_are_removed_by_our_del_leaving_chains_jumps_and_isolation() {
    require_root!();
    if !tools_present() {
        return;
    }
    let f4 = fixture("goref-head-firewall.iptables-save");
    let f6 = fixture("goref-head-firewall.ip6tables-save");
    if !f4.exists() {
        skip(
            SkipKind::Tool,
            "fixture goref-head-firewall.iptables-save missing",
        );
        return;
    }
    let node = Node::new();
    for (tool, f) in [("iptables-restore", &f4), ("ip6tables-restore", &f6)] {
        let cmd = format!("{tool} < {}", f.display());
        node.sh(&["sh", "-c", &cmd]);
    }
    let before4 = node.save(false);
    let ctr = TestNs::new("fwq");
    let p = prev("cnifw0", &ctr.path(), &["10.99.3.2/24", "fd99:3::2/64"]);
    let conf = node::with_prev(
        &node.firewall("fwfix", json!({"ingressPolicy": "same-bridge"})),
        &p,
    );
    node.call("firewall", "DEL", "fixture0003", &ctr.path(), &conf)
        .ok();
    assert!(node.per_ip_rules().is_empty(), "{:?}", node.per_ip_rules());
    let want: Vec<&str> = before4
        .lines()
        .filter(|l| !l.contains("10.99.3.2"))
        .collect();
    assert_eq!(node.save(false), want.join("\n"));
    assert_eq!(node.save(true).lines().count(), want.len());
}

#[test]
fn del_without_prev_result_still_removes_the_rules_where_the_reference_leaks() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    let ctr = TestNs::new("fwq");
    let p = prev("cnifw0", &ctr.path(), &["10.96.0.5/24", "fd96::5/64"]);
    let fw = node.firewall("fwleak", json!({}));
    node.call(
        "firewall",
        "ADD",
        "leak1",
        &ctr.path(),
        &node::with_prev(&fw, &p),
    )
    .ok();
    assert_eq!(node.per_ip_rules().len(), 4);
    node.call("firewall", "DEL", "leak1", &ctr.path(), &fw).ok();
    assert!(node.per_ip_rules().is_empty(), "{:?}", node.per_ip_rules());
    assert!(
        tree(node.fw.path()).iter().all(|f| !f.contains("leak1")),
        "state file gone"
    );
    // A second DEL, and a DEL with the rules' chain and table gone: success.
    node.call(
        "firewall",
        "DEL",
        "leak1",
        &ctr.path(),
        &node::with_prev(&fw, &p),
    )
    .ok();
    node.sh(&["iptables", "-F", "CNI-FORWARD"]);
    node.sh(&["iptables", "-F", "FORWARD"]);
    node.sh(&["iptables", "-X", "CNI-FORWARD"]);
    node.sh(&["nft", "delete", "table", "ip6", "filter"]);
    node.call(
        "firewall",
        "DEL",
        "leak1",
        &ctr.path(),
        &node::with_prev(&fw, &p),
    )
    .ok();
}

#[test]
fn gc_removes_the_rules_of_attachments_not_in_the_valid_list() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    let ctr = TestNs::new("fwq");
    let fw = node.firewall("fwgc", json!({"cniVersion": "1.1.0"}));
    let p1 = prev("cnifw0", &ctr.path(), &["10.97.0.2/24"]);
    let p2 = prev("cnifw0", &ctr.path(), &["10.97.0.3/24"]);
    let mut p1v = p1.clone();
    p1v["cniVersion"] = json!("1.1.0");
    let mut p2v = p2.clone();
    p2v["cniVersion"] = json!("1.1.0");
    node.call(
        "firewall",
        "ADD",
        "gc-keep",
        &ctr.path(),
        &node::with_prev(&fw, &p1v),
    )
    .ok();
    node.call(
        "firewall",
        "ADD",
        "gc-stale",
        &ctr.path(),
        &node::with_prev(&fw, &p2v),
    )
    .ok();
    // Another network's attachment is none of this GC's business.
    let other = node.firewall("fwother", json!({"cniVersion": "1.1.0"}));
    let p3 = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.97.0.9/24"}]});
    node.call(
        "firewall",
        "ADD",
        "gc-other",
        &ctr.path(),
        &node::with_prev(&other, &p3),
    )
    .ok();
    assert_eq!(node.per_ip_rules().len(), 6);
    let mut gc = fw.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-keep", "ifname": "eth0"}]);
    Call::new("firewall", "GC")
        .var("PATH", NO_BINARIES)
        .in_ns(&node.host)
        .config(&gc)
        .run()
        .ok();
    let left = node.per_ip_rules();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.iter().all(|l| !l.contains("10.97.0.3/32")), "{left:?}");
    assert!(left.iter().any(|l| l.contains("10.97.0.2/32")), "{left:?}");
    assert!(left.iter().any(|l| l.contains("10.97.0.9/32")), "{left:?}");
}

#[test]
fn check_fails_once_a_per_ip_rule_is_gone() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    let ctr = TestNs::new("fwq");
    let p = prev("cnifw0", &ctr.path(), &["10.98.0.2/24"]);
    let conf = node::with_prev(&node.firewall("fwchk", json!({})), &p);
    node.call("firewall", "ADD", "chk1", &ctr.path(), &conf)
        .ok();
    node.call("firewall", "CHECK", "chk1", &ctr.path(), &conf)
        .ok();
    node.sh(&[
        "iptables",
        "-D",
        "CNI-FORWARD",
        "-s",
        "10.98.0.2/32",
        "-j",
        "ACCEPT",
    ]);
    let r = node.call("firewall", "CHECK", "chk1", &ctr.path(), &conf);
    assert_eq!(r.err_code(), 999, "{}", r.stdout);
}

#[test]
fn legacy_iptables_node_without_a_legacy_binary_is_code_2_and_changes_nothing() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    let legacy = node
        .host
        .exec(&["iptables-legacy", "-P", "FORWARD", "DROP"]);
    if !legacy.status.success() {
        skip(SkipKind::Tool, "iptables-legacy not usable here");
        return;
    }
    let ctr = TestNs::new("fwq");
    let p = prev("cnifw0", &ctr.path(), &["10.98.1.2/24"]);
    let conf = node::with_prev(&node.firewall("fwleg", json!({})), &p);
    let r = node.call("firewall", "ADD", "leg1", &ctr.path(), &conf);
    assert_eq!(r.err_code(), 2, "{}", r.stdout);
    assert!(r.stdout.contains("iptables-legacy"), "{}", r.stdout);
    assert!(
        node.host.nft_ruleset().trim().is_empty(),
        "no nf_tables table made"
    );
    assert!(tree(node.fw.path()).is_empty(), "no state left");
}

/// A PATH where `iptables`/`ip6tables` are the legacy binaries, so that
/// Go's plugin writes x_tables rules too.
fn legacy_path(dir: &TempDir) -> String {
    for t in ["iptables", "ip6tables"] {
        let target = format!("/usr/sbin/{t}-legacy");
        std::os::unix::fs::symlink(&target, dir.path().join(t)).unwrap();
    }
    format!("{}:{TOOLS_PATH}", dir.str())
}

#[test]
fn legacy_iptables_node_gets_the_go_rules_through_iptables_legacy() {
    require_root!();
    if !tools_present() || !go_present() {
        return;
    }
    let bins = TempDir::new("fw-legacy-bin");
    let path = legacy_path(&bins);
    let (go, us) = (Node::new(), Node::new());
    for n in [&go, &us] {
        if !n
            .host
            .exec(&["iptables-legacy", "-P", "FORWARD", "DROP"])
            .status
            .success()
            || !n
                .host
                .exec(&["ip6tables-legacy", "-P", "FORWARD", "DROP"])
                .status
                .success()
        {
            skip(SkipKind::Tool, "iptables-legacy not usable here");
            return;
        }
    }
    let ctr = TestNs::new("fwq");
    let p = prev("cnifw0", &ctr.path(), &["10.99.3.2/24", "fd99:3::2/64"]);
    // Open policy: Debian's 1.1.1 words the isolation comments differently
    // from HEAD (same_bridge_add_lists_exactly_the_go_head_fixture covers those).
    let extra = json!({"iptablesAdminChainName": "LEGACY-ADMIN"});
    let conf = node::with_prev(&go.firewall("fwfix", extra.clone()), &p);
    let mut g = Call::attach("firewall", "ADD", "fixture0003", &ctr.path(), "eth0")
        .var("PATH", &path)
        .var("CNI_PATH", "/usr/lib/cni")
        .in_ns(&go.host)
        .config(&conf);
    g.bin_dir = Path::new("/usr/lib/cni").to_path_buf();
    g.run().ok();
    let ours = |cmd: &str, conf: &Value| {
        Call::attach("firewall", cmd, "fixture0003", &ctr.path(), "eth0")
            .var("PATH", &path)
            .in_ns(&us.host)
            .config(conf)
            .run()
    };
    let conf = node::with_prev(&us.firewall("fwfix", extra.clone()), &p);
    ours("ADD", &conf).ok();
    let save = |n: &Node, tool: &str| {
        n.sh(&[tool, "-t", "filter"])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.find(" [") {
                Some(i) if l.starts_with(':') => l[..i].to_string(),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for tool in ["iptables-legacy-save", "ip6tables-legacy-save"] {
        let s = save(&us, tool);
        assert_eq!(s, save(&go, tool), "{tool}");
        assert!(s.contains("-A CNI-FORWARD -s "), "{s}");
    }
    let iso = node::with_prev(
        &us.firewall(
            "fwfix",
            node::merged(extra.clone(), json!({"ingressPolicy": "isolated"})),
        ),
        &p,
    );
    ours("ADD", &iso).ok();
    let s = save(&us, "iptables-legacy-save");
    assert!(s.contains("-A CNI-ISOLATION-STAGE-1 -i cnifw0 -o cnifw0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j DROP"), "{s}");
    assert!(
        us.host.nft_ruleset().trim().is_empty(),
        "nothing in nf_tables"
    );
    ours("CHECK", &conf).ok();
    // DEL without prevResult: the remembered IPs find the legacy rules.
    ours(
        "DEL",
        &us.firewall("fwfix", json!({"iptablesAdminChainName": "LEGACY-ADMIN"})),
    )
    .ok();
    for tool in ["iptables-legacy-save", "ip6tables-legacy-save"] {
        let s = save(&us, tool);
        assert!(
            !s.contains("-A CNI-FORWARD -s ") && !s.contains("-A CNI-FORWARD -d "),
            "{s}"
        );
        assert!(s.contains("-j LEGACY-ADMIN"), "chains and jumps stay: {s}");
    }
    assert_eq!(ours("CHECK", &conf).err_code(), 999);
}

#[test]
fn eight_parallel_adds_make_one_set_of_jumps_and_every_per_ip_rule() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    let ctr = TestNs::new("fwq");
    let fw = node.firewall("fwpar", json!({"ingressPolicy": "same-bridge"}));
    std::thread::scope(|s| {
        for i in 0..8 {
            let (node, ctr, fw) = (&node, &ctr, &fw);
            s.spawn(move || {
                let ips = [
                    format!("10.98.2.{}/24", i + 2),
                    format!("fd98:2::{}/64", i + 2),
                ];
                let p = prev("cnifwp0", &ctr.path(), &[&ips[0], &ips[1]]);
                let conf = node::with_prev(fw, &p);
                node.call("firewall", "ADD", &format!("par{i}"), &ctr.path(), &conf)
                    .ok();
            });
        }
    });
    assert_eq!(node.per_ip_rules().len(), 32, "{:?}", node.per_ip_rules());
    for v6 in [false, true] {
        let s = node.save(v6);
        let count = |needle: &str| s.lines().filter(|l| l.contains(needle)).count();
        assert_eq!(count("-A FORWARD "), 2, "{s}");
        assert_eq!(count("-j CNI-ADMIN"), 1, "{s}");
        assert_eq!(count("-A CNI-ISOLATION-STAGE-1 "), 2, "{s}");
        assert_eq!(count("-A CNI-ISOLATION-STAGE-2 "), 2, "{s}");
    }
}

#[test]
fn del_and_gc_remove_a_state_write_a_crash_cut_short() {
    require_root!();
    if !tools_present() {
        return;
    }
    let node = Node::new();
    let fw = node.firewall("fwtmp", json!({"cniVersion": "1.1.0"}));
    let dir = node.fw.path().join("fwtmp");
    std::fs::create_dir_all(&dir).unwrap();
    // Killed between writing the state and renaming it into place.
    for n in ["cut-del_eth0.tmp", "cut-gc_eth0.tmp", "live_eth0.tmp"] {
        std::fs::write(dir.join(n), b"{\"containerID\":").unwrap();
    }
    node.call("firewall", "DEL", "cut-del", "", &fw).ok();
    assert!(!dir.join("cut-del_eth0.tmp").exists(), "DEL left its .tmp");
    let gc = node::merged(
        fw.clone(),
        json!({"cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]}),
    );
    Call::new("firewall", "GC")
        .var("PATH", NO_BINARIES)
        .in_ns(&node.host)
        .config(&gc)
        .run()
        .ok();
    assert!(
        !dir.join("cut-gc_eth0.tmp").exists(),
        "GC left a stale .tmp"
    );
    assert!(
        dir.join("live_eth0.tmp").exists(),
        "GC removed a valid attachment's write"
    );
}
