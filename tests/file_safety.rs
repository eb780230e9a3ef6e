//! State files: created with the reference's modes whatever the umask,
//! nothing world-writable, and no symlink planted in the data dir or the
//! result cache is ever followed: the plugin refuses, or works around it,
//! and the symlink's target is never created, written or removed.

mod common;
mod rel;

use common::*;
use rel::files;
use serde_json::{json, Value};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Node {
    host: TestNs,
    root: TempDir,
}

impl Node {
    fn new() -> Node {
        let n = Node {
            host: TestNs::new("fsn"),
            root: TempDir::new("cnibox-fs"),
        };
        for d in ["data", "cache", "net.d", "elsewhere"] {
            std::fs::create_dir_all(n.p(d)).unwrap();
        }
        let list = json!({"cniVersion": "1.1.0", "name": "fsnet", "plugins": [n.ptp()]});
        std::fs::write(n.p("net.d/fsnet.conflist"), list.to_string()).unwrap();
        n
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn ptp(&self) -> Value {
        json!({"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.63.0.0/24",
               "dataDir": self.p("data")}})
    }

    /// `cnibox tool ARGS` in the node under umask 000.
    fn tool(&self, args: &[&str]) -> std::process::Output {
        let cache = self.p("cache").display().to_string();
        let mut full = vec!["tool"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--cache-dir", &cache]);
        Command::new(ip_path())
            .args([
                "netns",
                "exec",
                &self.host.name,
                "sh",
                "-c",
                "umask 000; exec \"$0\" \"$@\"",
            ])
            .arg(cnibox())
            .args(&full)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NETCONFPATH", self.p("net.d"))
            .env("CNI_PATH", bin_dir())
            .output()
            .unwrap()
    }

    /// The host-local plugin itself (no tool), under umask 000.
    fn host_local(&self, cmd: &str, id: &str) -> Reply {
        let conf = json!({"cniVersion": "1.1.0", "name": "fsnet", "ipam": self.ptp()["ipam"]});
        Call::attach("host-local", cmd, id, "/nonexistent", "eth0")
            .config(&conf)
            .run()
    }
}

/// Nothing under `dir` is world-writable.
fn assert_none_world_writable(dir: &Path) {
    for l in files(dir) {
        if l.contains(" -> ") {
            continue;
        }
        let m = l
            .split_whitespace()
            .nth(1)
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap();
        assert_eq!(m & 0o002, 0, "world-writable: {l}");
    }
}

#[test]
fn state_files_have_the_reference_modes_even_under_umask_0() {
    require_root!();
    let n = Node::new();
    let ctr = TestNs::new("fsc");
    let out = n.tool(&["add", "fsnet", &ctr.path(), "--id", "fs1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let net = n.p("data/fsnet");
    assert_eq!(mode(&net), 0o755, "network dir");
    assert_eq!(mode(&net.join("10.63.0.2")), 0o600, "reservation");
    assert_eq!(mode(&net.join("last_reserved_ip.0")), 0o600);
    assert_eq!(mode(&net.join("lock")), 0o750);
    assert_eq!(mode(&net.join(".cnibox")), 0o700);
    assert_eq!(mode(&n.p("cache/results")), 0o700, "libcni's 0700");
    assert_eq!(mode(&n.p("cache/results/fsnet-fs1-eth0")), 0o600);
    assert_none_world_writable(&n.p("data"));
    assert_none_world_writable(&n.p("cache"));
    let out = n.tool(&["del", "fsnet", &ctr.path(), "--id", "fs1"]);
    assert!(out.status.success());
}

#[test]
fn a_symlinked_network_dir_is_refused_and_its_target_untouched() {
    require_root!();
    let n = Node::new();
    symlink(n.p("elsewhere"), n.p("data/fsnet")).unwrap();
    let r = n.host_local("ADD", "fs2");
    assert_eq!(r.err_code(), 5, "{}", r.stdout);
    assert!(r.stdout.contains("symlink"), "{}", r.stdout);
    assert!(
        files(&n.p("elsewhere")).is_empty(),
        "nothing made through the link"
    );
    // DEL and GC do not follow it either, and succeed or say why.
    let r = n.host_local("DEL", "fs2");
    assert!(
        r.status == 0 || r.stdout.contains("symlink"),
        "{}",
        r.stdout
    );
    assert!(files(&n.p("elsewhere")).is_empty());
}

#[test]
fn symlinks_planted_in_the_store_are_never_followed() {
    require_root!();
    let n = Node::new();
    n.host_local("ADD", "first").ok(); // makes the store: 10.63.0.2
    let net = n.p("data/fsnet");
    let secret = n.p("elsewhere/secret");
    std::fs::write(&secret, b"keep me").unwrap();
    let before = files(&n.p("elsewhere"));
    // A reservation, the allocator's cursor and the index, all links.
    symlink(&secret, net.join("10.63.0.3")).unwrap();
    std::fs::remove_file(net.join("last_reserved_ip.0")).unwrap();
    symlink(&secret, net.join("last_reserved_ip.0")).unwrap();
    std::fs::remove_dir_all(net.join(".cnibox")).unwrap();
    symlink(n.p("elsewhere"), net.join(".cnibox")).unwrap();

    let r = n.host_local("ADD", "second");
    r.ok();
    let got = r.json()["ips"][0]["address"].as_str().unwrap().to_string();
    assert_ne!(got, "10.63.0.3/24", "a link is not a free address");
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep me");
    assert_eq!(
        files(&n.p("elsewhere")),
        before,
        "nothing made in the link's target"
    );
    n.host_local("DEL", "second").ok();
    n.host_local("DEL", "first").ok();
    // GC removes the planted reservation link itself, never its target.
    let conf = json!({"cniVersion": "1.1.0", "name": "fsnet", "ipam": n.ptp()["ipam"],
                      "cni.dev/valid-attachments": []});
    Call::new("host-local", "GC").config(&conf).run().ok();
    assert!(std::fs::symlink_metadata(net.join("10.63.0.3")).is_err());
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep me");
    assert_eq!(files(&n.p("elsewhere")), before);
}

#[test]
fn a_symlinked_lock_is_refused() {
    require_root!();
    let n = Node::new();
    std::fs::create_dir_all(n.p("data/fsnet")).unwrap();
    let target = n.p("elsewhere/lock-target");
    symlink(&target, n.p("data/fsnet/lock")).unwrap();
    let r = n.host_local("ADD", "fs3");
    assert_eq!(r.err_code(), 5, "{}", r.stdout);
    assert!(!target.exists(), "the lock's target was not created");
}

#[test]
fn the_result_cache_never_follows_a_planted_symlink() {
    require_root!();
    let n = Node::new();
    let ctr = TestNs::new("fsc");
    // results/ itself a link: the tool refuses to write or list through it.
    symlink(n.p("elsewhere"), n.p("cache/results")).unwrap();
    let out = n.tool(&["add", "fsnet", &ctr.path(), "--id", "fs4"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    assert!(
        files(&n.p("elsewhere")).is_empty(),
        "nothing written through the link"
    );
    let out = n.tool(&["ls"]);
    assert!(!out.status.success(), "ls refuses too");
    // (The ADD's plugins ran before the cache write: DEL cleans up.)
    std::fs::remove_file(n.p("cache/results")).unwrap();
    let out = n.tool(&["del", "fsnet", &ctr.path(), "--id", "fs4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The attachment's cache file a link: replaced by ADD, removed by DEL,
    // its target never read into a result nor touched.
    let secret = n.p("elsewhere/secret");
    std::fs::write(&secret, b"{\"kind\":\"cniCacheV1\"}").unwrap();
    std::fs::create_dir_all(n.p("cache/results")).unwrap();
    let f = n.p("cache/results/fsnet-fs5-eth0");
    symlink(&secret, &f).unwrap();
    let out = n.tool(&["del", "fsnet", &ctr.path(), "--id", "fs5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::symlink_metadata(&f).is_err(), "the link is gone");
    symlink(&secret, &f).unwrap();
    let out = n.tool(&["add", "fsnet", &ctr.path(), "--id", "fs5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!std::fs::symlink_metadata(&f)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        b"{\"kind\":\"cniCacheV1\"}"
    );
    let out = n.tool(&["del", "fsnet", &ctr.path(), "--id", "fs5"]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        b"{\"kind\":\"cniCacheV1\"}"
    );
}
