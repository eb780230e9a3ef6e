//! Masquerade and MAC spoof checking end to end, through ptp and bridge,
//! with no `nft` or `iptables` binary on the plugins' PATH (cnibox speaks
//! nf_tables over netlink). `nft` is used here only as a test tool to look.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

const FIXTURE: &str = "/work/shared/reference/fixtures/goref-head-ptp-nftmasq.nft";
const NO_BINARIES: &str = "/nonexistent";

fn fixture_path() -> Option<std::path::PathBuf> {
    // The fixture travels with the repository too (tests/fixtures).
    let local =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/goref-head-ptp-nftmasq.nft");
    [local, Path::new(FIXTURE).to_path_buf()]
        .into_iter()
        .find(|p| p.exists())
}

struct Node {
    host: TestNs,
    data: TempDir,
}

impl Node {
    fn new() -> Node {
        Node {
            host: TestNs::new("mqh"),
            data: TempDir::new("mq-data"),
        }
    }

    fn ptp(&self, name: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": name, "type": "ptp", "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.data.str()}
        })
    }

    fn call(&self, applet: &str, cmd: &str, id: &str, netns: &str, conf: &Value) -> Reply {
        Call::attach(applet, cmd, id, netns, "eth0")
            .var("PATH", NO_BINARIES)
            .in_ns(&self.host)
            .config(conf)
            .run()
    }

    /// `nft -j list ruleset` in the node, as rules with their comments.
    fn nft(&self, args: &[&str]) -> String {
        let mut cmd = vec!["nft"];
        cmd.extend_from_slice(args);
        let out = self.host.exec(&cmd);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn masq_rules(&self) -> Vec<String> {
        let s = self.nft(&[
            "-j",
            "list",
            "chain",
            "inet",
            "cni_plugins_masquerade",
            "masq_checks",
        ]);
        let Ok(v) = serde_json::from_str::<Value>(&s) else {
            return vec![];
        };
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("rule"))
            .map(|r| r["comment"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn postrouting_rule_count(&self) -> usize {
        let s = self.nft(&[
            "-j",
            "list",
            "chain",
            "inet",
            "cni_plugins_masquerade",
            "postrouting",
        ]);
        serde_json::from_str::<Value>(&s)
            .map(|v| {
                v["nftables"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|o| o.get("rule").is_some())
                    .count()
            })
            .unwrap_or(0)
    }

    /// An "outside" namespace behind the node at 192.0.2.2 with NO route
    /// back to the pod subnets: replies reach a pod only if masqueraded.
    fn outside(&self) -> TestNs {
        let out = TestNs::new("mqout");
        self.host.ip(&[
            "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", &out.name,
        ]);
        self.host.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"]);
        self.host.ip(&["link", "set", "up0", "up"]);
        out.ip(&["addr", "add", "192.0.2.2/24", "dev", "up1"]);
        out.ip(&["link", "set", "up1", "up"]);
        out
    }
}

fn nft_available() -> bool {
    if have_nft() {
        return true;
    }
    skip(
        SkipKind::Tool,
        "the nft test tool is not installed (apt-get install nftables)",
    );
    false
}

#[test]
fn ptp_masquerade_without_firewall_binaries_reaches_an_outside_receiver() {
    require_root!();
    if !nft_available() {
        return;
    }
    let node = Node::new();
    let outside = node.outside();
    let ctr = TestNs::new("mqc");
    let conf = node.ptp("mqnet", "10.91.0.0/24");
    node.call("ptp", "ADD", "ctr-mq", &ctr.path(), &conf).ok();
    let rules = node.masq_rules();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(
        rules[0].ends_with(", net: mqnet, if: eth0, id: ctr-mq"),
        "{rules:?}"
    );
    // The outside has no route to 10.91.0.0/24: the reply arrives only
    // because the source was rewritten to the node's 192.0.2.1.
    assert!(
        ctr.ping("192.0.2.2"),
        "masqueraded traffic reaches the outside and back"
    );
    let seen = outside.exec(&["ip", "-j", "neigh", "show", "dev", "up1"]);
    assert!(
        String::from_utf8_lossy(&seen.stdout).contains("192.0.2.1"),
        "the outside talked to the node's address"
    );

    node.call("ptp", "DEL", "ctr-mq", &ctr.path(), &conf).ok();
    assert!(node.masq_rules().is_empty(), "DEL removed the rule");
    assert_eq!(
        node.postrouting_rule_count(),
        3,
        "table and chains stay, as the reference"
    );
}

#[test]
fn go_made_rule_is_removed_by_our_del_and_gc_and_our_add_lists_identically() {
    require_root!();
    let Some(fixture) = fixture_path() else {
        skip(
            SkipKind::Tool,
            "fixture goref-head-ptp-nftmasq.nft not found",
        );
        return;
    };
    if !nft_available() {
        return;
    }
    let node = Node::new();
    let conf = node.ptp("fixture", "10.99.0.0/24");
    let plant = || {
        let out = node.host.exec(&["nft", "-f", fixture.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // Our DEL of Go's attachment (netns long gone) removes Go's rule.
    plant();
    assert_eq!(node.masq_rules().len(), 1);
    node.call("ptp", "DEL", "fixture0001", "", &conf).ok();
    assert!(node.masq_rules().is_empty());
    assert_eq!(node.postrouting_rule_count(), 3);

    // Our GC with a valid list that lacks it removes it too.
    node.host
        .exec(&["nft", "delete", "table", "inet", "cni_plugins_masquerade"]);
    plant();
    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "someone-else", "ifname": "eth0"}]);
    Call::new("ptp", "GC")
        .var("PATH", NO_BINARIES)
        .in_ns(&node.host)
        .config(&gc)
        .run()
        .ok();
    assert!(node.masq_rules().is_empty());

    // Our ADD with the same inputs lists exactly what Go made.
    node.host
        .exec(&["nft", "delete", "table", "inet", "cni_plugins_masquerade"]);
    let ctr = TestNs::new("mqfx");
    node.call("ptp", "ADD", "fixture0001", &ctr.path(), &conf)
        .ok();
    let ours = node.nft(&["list", "table", "inet", "cni_plugins_masquerade"]);
    let go = std::fs::read_to_string(&fixture).unwrap();
    assert_eq!(
        ours.trim_end(),
        go.trim_end(),
        "our table lists byte for byte as Go's"
    );
    node.call("ptp", "DEL", "fixture0001", &ctr.path(), &conf)
        .ok();
}

#[test]
fn thirty_two_parallel_adds_keep_every_rule_and_dels_remove_them_all() {
    require_root!();
    if !nft_available() {
        return;
    }
    let node = Node::new();
    let conf = node.ptp("mqpar", "10.92.0.0/24");
    let ctrs: Vec<TestNs> = (0..32).map(|_| TestNs::new("mqp")).collect();
    let run_all = |cmd: &str| {
        std::thread::scope(|s| {
            let hs: Vec<_> = ctrs
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let conf = &conf;
                    let node = &node;
                    let cmd = cmd.to_string();
                    s.spawn(move || node.call("ptp", &cmd, &format!("par-{i}"), &c.path(), conf))
                })
                .collect();
            for h in hs {
                h.join().unwrap().ok();
            }
        })
    };
    run_all("ADD");
    let rules = node.masq_rules();
    assert_eq!(rules.len(), 32, "every container's rule is present");
    for i in 0..32 {
        assert!(
            rules.iter().any(|r| r.ends_with(&format!("id: par-{i}"))),
            "par-{i} missing"
        );
    }
    assert_eq!(
        node.postrouting_rule_count(),
        3,
        "base rules made exactly once"
    );
    run_all("DEL");
    assert!(node.masq_rules().is_empty());
    assert_eq!(node.postrouting_rule_count(), 3);
}

#[test]
fn del_after_the_netns_is_gone_leaves_no_rule_for_ptp_and_bridge() {
    require_root!();
    if !nft_available() {
        return;
    }
    let node = Node::new();
    let ptp = node.ptp("mqgone", "10.93.0.0/24");
    let bridge = json!({
        "cniVersion": "1.0.0", "name": "mqgonebr", "type": "bridge", "bridge": "mqbr0", "isGateway": true,
        "ipMasq": true, "macspoofchk": true,
        "ipam": {"type": "host-local", "subnet": "10.94.0.0/24", "dataDir": node.data.str()}
    });
    for (applet, conf) in [("ptp", &ptp), ("bridge", &bridge)] {
        let ctr = TestNs::new("mqg");
        let path = ctr.path();
        node.call(applet, "ADD", "gone-1", &path, conf).ok();
        assert_eq!(node.masq_rules().len(), 1, "{applet}");
        drop(ctr);
        node.call(applet, "DEL", "gone-1", &path, conf).ok();
        assert!(
            node.masq_rules().is_empty(),
            "{applet}: the reference leaks here, we do not"
        );
        if applet == "bridge" {
            let spoof = node.nft(&["list", "table", "bridge", "nat"]);
            assert!(
                !spoof.contains("gone-1"),
                "no spoof-check state left: {spoof}"
            );
        }
    }
}

#[test]
fn bridge_macspoofchk_rules_follow_the_attachment() {
    require_root!();
    if !nft_available() {
        return;
    }
    let node = Node::new();
    let ctr = TestNs::new("mqs");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "spoofnet", "type": "bridge", "bridge": "mqbr1", "macspoofchk": true,
        "ipam": {"type": "host-local", "subnet": "10.95.0.0/24", "dataDir": node.data.str()}
    });
    let r = node.call("bridge", "ADD", "spoof-1", &ctr.path(), &conf);
    r.ok();
    let mac = r.json()["interfaces"][2]["mac"]
        .as_str()
        .unwrap()
        .to_string();
    let table = node.nft(&["list", "table", "bridge", "nat"]);
    assert!(table.contains("cni-br-iface-spoof-1-eth0"), "{table}");
    assert!(
        table.contains(&format!("ether saddr {mac} return")),
        "{table}"
    );
    assert!(table.contains("macspoofchk-spoof-1-eth0"), "{table}");
    node.call("bridge", "DEL", "spoof-1", &ctr.path(), &conf)
        .ok();
    let table = node.nft(&["list", "table", "bridge", "nat"]);
    assert!(!table.contains("spoof-1"), "{table}");
}

#[test]
fn iptables_backend_without_the_binary_is_code_7_naming_the_field() {
    require_root!();
    let node = Node::new();
    let ctr = TestNs::new("mqi");
    let mut conf = node.ptp("mqipt", "10.96.0.0/24");
    conf["ipMasqBackend"] = json!("iptables");
    let r = node.call("ptp", "ADD", "ipt-1", &ctr.path(), &conf);
    assert_eq!(r.err_code(), 7);
    assert!(r.stdout.contains("ipMasqBackend"), "{}", r.stdout);
    assert_eq!(ctr.link_names(), vec!["lo".to_string()], "nothing was made");
    assert!(
        tree(node.data.path()).iter().all(|f| !f.contains("10.96.")),
        "no IP reserved"
    );
}
