//! tuning through its symlinked name: a veth pre-made in a container
//! namespace with a hand-written prevResult (or a real ptp ADD before it),
//! every field read back with `ip -d -j link` and the sysctl files, the
//! backup file compared byte for byte with what Debian's Go tuning (1.1.1,
//! no txQLen) writes, and DELs of either implementation restoring what the
//! other changed.

mod common;
use common::node::{merged, with_prev, Node};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const GO_DIR: &str = "/usr/lib/cni";
const OLD_MAC: &str = "02:aa:bb:cc:dd:01";
const NEW_MAC: &str = "02:00:00:00:77:01";

/// A container namespace holding `eth0` (a veth whose peer stays beside
/// it), a node namespace to run the plugin from, and a data dir.
struct World {
    node: TestNs,
    ctr: TestNs,
    data: TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            node: TestNs::new("tunn"),
            ctr: TestNs::new("tunc"),
            data: TempDir::new("tuning-data"),
        };
        w.ctr.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ]);
        w.ctr.ip(&["link", "set", "eth0", "address", OLD_MAC]);
        w.ctr.ip(&["link", "set", "eth0", "up"]);
        w
    }

    fn prev(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": "peer0", "mac": "02:aa:bb:cc:dd:02"},
                {"name": "eth0", "mac": OLD_MAC, "sandbox": self.ctr.path()}
            ],
            "ips": [{"address": "10.9.0.2/24", "interface": 1}]
        })
    }

    /// A tuning config at `version` with `extra` keys and a prevResult.
    fn conf(&self, version: &str, extra: Value) -> Value {
        let base = json!({
            "cniVersion": version, "name": "tunnet", "type": "tuning",
            "dataDir": self.data.str(),
        });
        with_prev(&merged(base, extra), &self.prev(version))
    }

    fn run(&self, dir: &str, cmd: &str, conf: &Value) -> Reply {
        self.call(dir, cmd, conf, &[])
    }

    fn call(&self, dir: &str, cmd: &str, conf: &Value, env: &[(&str, &str)]) -> Reply {
        let mut c = Call::attach("tuning", cmd, "ctr-t", &self.ctr.path(), "eth0")
            .in_ns(&self.node)
            .config(conf);
        if dir == GO_DIR {
            c.bin_dir = PathBuf::from(GO_DIR);
        }
        for (k, v) in env {
            c = c.var(k, v);
        }
        c.run()
    }

    fn ours(&self, cmd: &str, conf: &Value) -> Reply {
        self.run(&bin_dir().display().to_string(), cmd, conf)
    }

    fn link(&self) -> Value {
        self.ctr.ip_json(&["-d", "link", "show", "eth0"])[0].clone()
    }

    fn sysctl(&self, path: &str) -> String {
        let out = self.ctr.exec(&["cat", path]);
        assert!(out.status.success(), "cat {path}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn backup(&self) -> PathBuf {
        self.data.path().join("ctr-t_eth0.json")
    }

    fn backup_bytes(&self) -> Option<String> {
        std::fs::read_to_string(self.backup()).ok()
    }
}

fn have_go() -> bool {
    if Path::new(GO_DIR).join("tuning").exists() {
        return true;
    }
    skip(
        SkipKind::Tool,
        "Debian's Go tuning (/usr/lib/cni/tuning) not installed",
    );
    false
}

fn flags(link: &Value) -> Vec<String> {
    link["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// The attributes tuning sets and restores.
fn state(link: &Value) -> (String, u64, u64, bool, bool) {
    let f = flags(link);
    (
        link["address"].as_str().unwrap().to_string(),
        link["mtu"].as_u64().unwrap(),
        link["txqlen"].as_u64().unwrap(),
        f.contains(&"PROMISC".to_string()),
        f.contains(&"ALLMULTI".to_string()),
    )
}

const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";
const ARP_NOTIFY: &str = "/proc/sys/net/ipv4/conf/eth0/arp_notify";

#[test]
fn every_field_set_read_back_checked_and_restored_by_del() {
    require_root!();
    let w = World::new();
    let before = state(&w.link());
    assert_eq!(before, (OLD_MAC.to_string(), 1500, 1000, false, false));
    assert_eq!(w.sysctl(ARP_NOTIFY), "0");
    let conf = w.conf(
        "1.1.0",
        json!({
            "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1", "net.core.somaxconn": "512"},
            "mac": NEW_MAC, "promisc": true, "mtu": 1400, "txQLen": 500, "allmulti": true,
        }),
    );
    let add = w.ours("ADD", &conf);
    add.ok();
    let r = add.json();
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(
        r["interfaces"][1]["mac"], NEW_MAC,
        "result MAC updated: {r}"
    );
    assert_eq!(
        r["interfaces"][0]["mac"], "02:aa:bb:cc:dd:02",
        "other MACs kept"
    );
    assert_eq!(r["ips"], w.prev("1.1.0")["ips"]);

    assert_eq!(
        state(&w.link()),
        (NEW_MAC.to_string(), 1400, 500, true, true)
    );
    assert_eq!(w.sysctl(ARP_NOTIFY), "1");
    assert_eq!(w.sysctl(SOMAXCONN), "512");
    // Old values only, Go's MarshalIndent(v, "", " ") layout.
    assert_eq!(
        w.backup_bytes().unwrap(),
        format!("{{\n \"mac\": \"{OLD_MAC}\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"allmulti\": false,\n \"txQLen\": 1000\n}}")
    );
    assert_eq!(mode(&w.backup()) & 0o777, 0o600);

    let check_conf = with_prev(&conf, &r);
    w.ours("CHECK", &check_conf).ok();
    // CHECK sees a change behind its back.
    w.ctr.ip(&["link", "set", "eth0", "mtu", "1300"]);
    let bad = w.ours("CHECK", &check_conf);
    assert_eq!(bad.err_code(), 999);
    assert!(
        bad.json()["msg"].as_str().unwrap().contains("MTU"),
        "{}",
        bad.stdout
    );
    w.ctr.ip(&["link", "set", "eth0", "mtu", "1400"]);
    w.ours("CHECK", &check_conf).ok();

    w.ours("DEL", &conf).ok();
    assert_eq!(state(&w.link()), before);
    assert!(w.backup_bytes().is_none(), "backup removed");
    // Sysctls are not restored (nor by the reference).
    assert_eq!(w.sysctl(ARP_NOTIFY), "1");
    // A second DEL finds nothing and succeeds.
    w.ours("DEL", &conf).ok();
}

#[test]
fn result_keeps_the_config_version_and_only_sysctls_need_no_backup() {
    require_root!();
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let w = World::new();
        let conf = w.conf(version, json!({"sysctl": {"net.core.somaxconn": "300"}}));
        let add = w.ours("ADD", &conf);
        add.ok();
        let r = add.json();
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][1]["mac"], OLD_MAC);
        assert_eq!(w.sysctl(SOMAXCONN), "300");
        assert!(w.backup_bytes().is_none(), "no link change, no backup");
        if version != "0.3.1" {
            w.ours("CHECK", &with_prev(&conf, &r)).ok();
        }
        w.ours("DEL", &conf).ok();
    }
}

#[test]
fn backup_file_bytes_and_result_match_go_tuning() {
    require_root!();
    if !have_go() {
        return;
    }
    for extra in [
        json!({"mac": NEW_MAC, "promisc": true, "mtu": 1400, "allmulti": true}),
        json!({"mtu": 9000}),
        json!({"allmulti": false, "sysctl": {"net.core.somaxconn": "257"}}),
        json!({"runtimeConfig": {"mac": NEW_MAC}, "args": {"cni": {"promisc": true}}}),
    ] {
        let w = World::new();
        let conf = w.conf("1.0.0", extra.clone());
        let go = w.run(GO_DIR, "ADD", &conf);
        go.ok();
        let go_backup = w.backup_bytes().expect("Go wrote a backup");
        let go_state = state(&w.link());
        w.run(GO_DIR, "DEL", &conf).ok();
        assert!(w.backup_bytes().is_none());

        let ours = w.ours("ADD", &conf);
        ours.ok();
        assert_eq!(w.backup_bytes().unwrap(), go_backup, "backup for {extra}");
        assert_eq!(state(&w.link()), go_state, "link for {extra}");
        // Debian's 1.1.1 prints an empty `"dns": {}` at 1.0.0; HEAD's
        // libcni (and cnibox) leave it out. Everything else is the same.
        let mut go_result = go.json();
        if go_result["dns"] == json!({}) {
            go_result.as_object_mut().unwrap().remove("dns");
        }
        assert_eq!(ours.json(), go_result, "result for {extra}");
        w.ours("DEL", &conf).ok();
    }
}

#[test]
fn go_del_restores_after_our_add_and_ours_after_go_add() {
    require_root!();
    if !have_go() {
        return;
    }
    let w = World::new();
    let before = state(&w.link());
    let conf = w.conf(
        "1.0.0",
        json!({"mac": NEW_MAC, "promisc": true, "mtu": 1400, "allmulti": true}),
    );
    let changed = (NEW_MAC.to_string(), 1400, 1000, true, true);
    // cnibox ADD, Go DEL.
    w.ours("ADD", &conf).ok();
    assert_eq!(state(&w.link()), changed);
    w.run(GO_DIR, "DEL", &conf).ok();
    assert_eq!(state(&w.link()), before, "Go restored our backup");
    assert!(w.backup_bytes().is_none(), "Go removed our backup");
    // Go ADD, cnibox DEL.
    w.run(GO_DIR, "ADD", &conf).ok();
    assert_eq!(state(&w.link()), changed);
    w.ours("DEL", &conf).ok();
    assert_eq!(state(&w.link()), before, "we restored Go's backup");
    assert!(w.backup_bytes().is_none(), "we removed Go's backup");
    // txQLen (HEAD only; Debian's 1.1.1 ignores the key) round trip.
    let conf = w.conf("1.0.0", json!({"txQLen": 42, "mtu": 1280}));
    w.ours("ADD", &conf).ok();
    assert_eq!(state(&w.link()).2, 42);
    w.ours("DEL", &conf).ok();
    assert_eq!(state(&w.link()), before);
}

#[test]
fn del_with_the_link_gone_removes_the_backup_the_reference_leaks() {
    require_root!();
    let w = World::new();
    let conf = w.conf("1.0.0", json!({"mtu": 1400, "promisc": true}));
    w.ours("ADD", &conf).ok();
    assert!(w.backup_bytes().is_some());
    w.ctr.ip(&["link", "del", "eth0"]);
    w.ours("DEL", &conf).ok();
    assert!(w.backup_bytes().is_none(), "backup left behind");

    // The reference returns success and leaves the file forever.
    if Path::new(GO_DIR).join("tuning").exists() {
        let w = World::new();
        let conf = w.conf("1.0.0", json!({"mtu": 1400, "promisc": true}));
        w.ours("ADD", &conf).ok();
        w.ctr.ip(&["link", "del", "eth0"]);
        w.run(GO_DIR, "DEL", &conf).ok();
        assert!(
            w.backup_bytes().is_some(),
            "Go no longer leaks: update this test"
        );
    }

    // The whole namespace gone, or no CNI_NETNS at all: removed too.
    for netns_gone in [true, false] {
        let w = World::new();
        let conf = w.conf("1.0.0", json!({"mac": NEW_MAC}));
        w.ours("ADD", &conf).ok();
        let path = w.ctr.path();
        let ctr = w.ctr;
        drop(ctr);
        let netns = if netns_gone { path.as_str() } else { "" };
        Call::attach("tuning", "DEL", "ctr-t", netns, "eth0")
            .in_ns(&w.node)
            .config(&conf)
            .run()
            .ok();
        assert!(
            !w.data.path().join("ctr-t_eth0.json").exists(),
            "backup left (netns gone: {netns_gone})"
        );
    }
}

#[test]
fn args_cni_sysctl_alone_works_where_the_reference_panics() {
    require_root!();
    let w = World::new();
    let conf = w.conf(
        "1.0.0",
        json!({"args": {"cni": {"sysctl": {"net.core.somaxconn": "777"}, "mtu": 1450}}}),
    );
    w.ours("ADD", &conf).ok();
    assert_eq!(w.sysctl(SOMAXCONN), "777");
    assert_eq!(state(&w.link()).1, 1450);
    w.ours("DEL", &conf).ok();
    assert_eq!(state(&w.link()).1, 1500);
    if Path::new(GO_DIR).join("tuning").exists() {
        let go = w.run(GO_DIR, "ADD", &conf);
        assert_ne!(go.status, 0, "Go no longer panics: update this test");
        assert!(go.stderr.contains("panic"), "{}", go.stderr);
    }
}

#[test]
fn args_cni_overrides_the_config_and_its_mac_wins_over_everything() {
    require_root!();
    let w = World::new();
    let conf = w.conf(
        "1.0.0",
        json!({
            "mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"},
            "mtu": 1400, "promisc": true, "sysctl": {"net.core.somaxconn": "100"},
            "args": {"cni": {"mac": NEW_MAC, "mtu": 1300, "promisc": false,
                             "sysctl": {"net.core.somaxconn": "200"}}},
        }),
    );
    let add = w.call(
        &bin_dir().display().to_string(),
        "ADD",
        &conf,
        &[("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:02")],
    );
    add.ok();
    assert_eq!(add.json()["interfaces"][1]["mac"], NEW_MAC);
    assert_eq!(
        state(&w.link()),
        (NEW_MAC.to_string(), 1300, 1000, false, false)
    );
    assert_eq!(w.sysctl(SOMAXCONN), "200");
    // CNI_ARGS MAC beats the config's mac.
    let w = World::new();
    let conf = w.conf("1.0.0", json!({"mac": "02:00:00:00:00:01"}));
    let env = [("CNI_ARGS", "MAC=02:00:00:00:00:02")];
    w.call(&bin_dir().display().to_string(), "ADD", &conf, &env)
        .ok();
    assert_eq!(state(&w.link()).0, "02:00:00:00:00:02");
}

/// Nothing changed: link, sysctls, data dir.
fn assert_untouched(w: &World, somaxconn: &str) {
    assert_eq!(
        state(&w.link()),
        (OLD_MAC.to_string(), 1500, 1000, false, false)
    );
    assert_eq!(w.sysctl(SOMAXCONN), somaxconn);
    assert_eq!(w.sysctl(ARP_NOTIFY), "0");
    assert!(tree(w.data.path()).is_empty(), "{:?}", tree(w.data.path()));
}

#[test]
fn sysctl_outside_net_is_refused_with_code_7_and_nothing_changes() {
    require_root!();
    let w = World::new();
    let orig = w.sysctl(SOMAXCONN);
    for key in [
        "kernel.hostname",
        "net/../kernel/hostname",
        "/kernel/domainname",
        "net",
    ] {
        let mut sysctl = json!({"net.core.somaxconn": "999",
                                "net.ipv4.conf.IFNAME.arp_notify": "1"});
        sysctl[key] = json!("x");
        let conf = w.conf("1.0.0", json!({"sysctl": sysctl, "mtu": 1400}));
        let r = w.ours("ADD", &conf);
        if key == "net/../kernel/hostname" {
            // Dots are separators: this names net/kernel/hostname, which
            // does not exist (still refused before any change).
            assert_eq!(r.err_code(), 7, "{}", r.stdout);
        } else {
            assert_eq!(r.err_code(), 7, "{key}: {}", r.stdout);
            assert!(r.stdout.contains("invalid net sysctl key"), "{}", r.stdout);
        }
        assert_untouched(&w, &orig);
    }
    assert_ne!(w.sysctl("/proc/sys/kernel/hostname"), "x");
}

#[test]
fn duplicate_sysctl_keys_are_refused() {
    require_root!();
    let w = World::new();
    let orig = w.sysctl(SOMAXCONN);
    let conf = w.conf("1.0.0", json!({"mtu": 1400}));
    let text = serde_json::to_string(&conf).unwrap().replacen(
        '{',
        r#"{"sysctl": {"net.core.somaxconn": "600", "net.core.somaxconn": "700"},"#,
        1,
    );
    for cmd in ["ADD", "CHECK"] {
        let r = Call::attach("tuning", cmd, "ctr-t", &w.ctr.path(), "eth0")
            .in_ns(&w.node)
            .stdin(&text)
            .run();
        assert_eq!(r.err_code(), 7, "{}", r.stdout);
        assert!(r.stdout.contains("duplicated sysctl keys"), "{}", r.stdout);
    }
    assert_untouched(&w, &orig);
}

#[test]
fn failed_add_rolls_back_sysctls_link_and_backup() {
    require_root!();
    let w = World::new();
    let orig = w.sysctl(SOMAXCONN);
    let conf = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "901", "net.ipv4.conf.IFNAME.arp_notify": "1"},
               "mac": NEW_MAC, "promisc": true, "mtu": 1400, "txQLen": 7, "allmulti": true}),
    );
    for point in [
        "tuning:after-sysctl",
        "tuning:after-backup",
        "tuning:after-link",
    ] {
        let r = w.call(
            &bin_dir().display().to_string(),
            "ADD",
            &conf,
            &[("CNIBOX_FAULT", point)],
        );
        assert_eq!(r.err_code(), 999, "{point}");
        assert_untouched(&w, &orig);
    }
    // The kernel refusing a value (MTU above the veth's maximum) too.
    let conf = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "902"}, "mac": NEW_MAC, "mtu": 70000}),
    );
    assert_eq!(w.ours("ADD", &conf).err_code(), 999);
    assert_untouched(&w, &orig);
    // A sysctl that does not exist: refused before any change.
    let conf = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "903", "net.ipv4.conf.IFNAME.nope": "1"}}),
    );
    assert_eq!(w.ours("ADD", &conf).err_code(), 7);
    assert_untouched(&w, &orig);
    // A repeated ADD that fails keeps the earlier ADD's backup intact.
    let first = w.conf("1.0.0", json!({"mtu": 1400}));
    w.ours("ADD", &first).ok();
    let saved = w.backup_bytes().unwrap();
    let r = w.call(
        &bin_dir().display().to_string(),
        "ADD",
        &w.conf("1.0.0", json!({"mtu": 1300, "promisc": true})),
        &[("CNIBOX_FAULT", "tuning:after-link")],
    );
    assert_eq!(r.err_code(), 999);
    assert_eq!(w.backup_bytes().unwrap(), saved);
    assert_eq!(state(&w.link()).1, 1400);
}

#[test]
fn allowlist_lines_are_unanchored_go_regexps() {
    require_root!();
    let w = World::new();
    let orig = w.sysctl(SOMAXCONN);
    let list = w.data.path().join("allowlist.conf");
    std::fs::write(
        &list,
        "  net\\.core\\.somax  \n\n^net\\.ipv4\\.conf\\.IFNAME\\.arp_notify$\n",
    )
    .unwrap();
    let list = list.display().to_string();
    let env = [("CNIBOX_TUNING_ALLOWLIST", list.as_str())];
    let bin = bin_dir().display().to_string();
    let bad = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "1", "net.ipv4.ip_forward": "1"}}),
    );
    let r = w.call(&bin, "ADD", &bad, &env);
    assert_eq!(r.err_code(), 7);
    assert!(
        r.stdout
            .contains("Sysctl net.ipv4.ip_forward is not allowed"),
        "{}",
        r.stdout
    );
    assert_eq!(w.sysctl(SOMAXCONN), orig);
    let good = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.core.somaxconn": "444", "net.ipv4.conf.IFNAME.arp_notify": "1"}}),
    );
    w.call(&bin, "ADD", &good, &env).ok();
    assert_eq!(w.sysctl(SOMAXCONN), "444");
    assert_eq!(w.sysctl(ARP_NOTIFY), "1");
    // A line we cannot read as a Go regexp is an error, not a silent match.
    std::fs::write(w.data.path().join("allowlist.conf"), "(?i)NET\n").unwrap();
    assert_eq!(w.call(&bin, "ADD", &good, &env).err_code(), 7);
}

#[test]
fn chained_after_ptp_add_check_and_del() {
    require_root!();
    let node = Node::new("ptp");
    let ctr = TestNs::new("tunp");
    let data = TempDir::new("tuning-chain");
    let ptp = json!({
        "cniVersion": "1.0.0", "name": "chainnet", "type": "ptp",
        "ipam": {"type": "host-local", "subnet": "10.89.0.0/24", "dataDir": node.data.str()}
    });
    let add = node.call("ADD", "ctr-c", &ctr.path(), &ptp);
    add.ok();
    let prev = add.json();
    let tuning = with_prev(
        &json!({"cniVersion": "1.0.0", "name": "chainnet", "type": "tuning",
                "dataDir": data.str(), "mac": NEW_MAC, "mtu": 1280,
                "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}),
        &prev,
    );
    let call = |cmd: &str, conf: &Value| {
        Call::attach("tuning", cmd, "ctr-c", &ctr.path(), "eth0")
            .in_ns(&node.host)
            .config(conf)
            .run()
    };
    let t = call("ADD", &tuning);
    t.ok();
    let r = t.json();
    let eth0 = r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap();
    assert_eq!(eth0["mac"], NEW_MAC);
    assert_eq!(r["ips"], prev["ips"]);
    let link = ctr.ip_json(&["link", "show", "eth0"])[0].clone();
    assert_eq!(link["address"], NEW_MAC);
    assert_eq!(link["mtu"], 1280);
    // The chain's final result passes CHECK of both plugins.
    call("CHECK", &with_prev(&tuning, &r)).ok();
    node.call("CHECK", "ctr-c", &ctr.path(), &with_prev(&ptp, &r))
        .ok();
    // Reverse order on DEL.
    call("DEL", &tuning).ok();
    assert!(tree(data.path()).is_empty());
    node.call("DEL", "ctr-c", &ctr.path(), &ptp).ok();
    assert!(node.reservations("chainnet").is_empty());
}

#[test]
fn prev_result_required_and_status_gc_keep_backups() {
    require_root!();
    let w = World::new();
    let mut conf = w.conf("1.1.0", json!({"mtu": 1400}));
    conf.as_object_mut().unwrap().remove("prevResult");
    let r = w.ours("ADD", &conf);
    assert_eq!(r.err_code(), 7);
    assert!(r.stdout.contains("prevResult"), "{}", r.stdout);
    assert_untouched(&w, &w.sysctl(SOMAXCONN));

    let conf = w.conf("1.1.0", json!({"mtu": 1400}));
    w.ours("ADD", &conf).ok();
    let status = Call::new("tuning", "STATUS")
        .in_ns(&w.node)
        .config(&conf)
        .run();
    status.ok();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    Call::new("tuning", "GC")
        .in_ns(&w.node)
        .config(&gc)
        .run()
        .ok();
    assert!(
        w.backup_bytes().is_some(),
        "GC keeps backups (no network name in them)"
    );
    w.ours("DEL", &conf).ok();
    assert_eq!(state(&w.link()).1, 1500);
}

#[test]
fn a_symlink_planted_as_the_backup_is_never_followed() {
    require_root!();
    let w = World::new();
    let elsewhere = TempDir::new("tuning-elsewhere");
    let target = elsewhere.path().join("precious");
    std::fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, w.backup()).unwrap();
    let orig = w.sysctl(SOMAXCONN);
    let conf = w.conf(
        "1.0.0",
        json!({"mtu": 1400, "sysctl": {"net.core.somaxconn": "905"}}),
    );
    let r = w.ours("ADD", &conf);
    r.fails();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert_eq!(state(&w.link()).1, 1500, "link untouched");
    assert_eq!(w.sysctl(SOMAXCONN), orig, "sysctl rolled back");
    w.ours("DEL", &conf).ok();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
}
