//! `cnibox doctor` on a test node (a netns playing the host): containers
//! added through `cnibox tool` (libcni's cache) with cnibox's plugins AND
//! Debian's Go plugins, some of them leaked by deleting their netns without
//! a DEL. Doctor runs inside the node (`ip netns exec`), so it sees only the
//! node's nf_tables and links, with its own cache, data and tuning dirs.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const GO: &str = "/usr/lib/cni";

/// A /16 of 10.0.0.0/8 unlikely to be used by anything else on the machine
/// (doctor treats an address configured in ANY live netns as alive).
fn octet() -> u32 {
    200 + std::process::id() % 50
}

struct TestNode {
    node: TestNs,
    cache: TempDir,
    data: TempDir,
    confs: TempDir,
    tuning: TempDir,
}

impl TestNode {
    fn new() -> TestNode {
        TestNode {
            node: TestNs::new("drn"),
            cache: TempDir::new("dr-cache"),
            data: TempDir::new("dr-data"),
            confs: TempDir::new("dr-conf"),
            tuning: TempDir::new("dr-tun"),
        }
    }

    fn conflist(&self, name: &str, plugins: Value) {
        let v = json!({"cniVersion": "0.4.0", "name": name, "plugins": plugins});
        std::fs::write(
            self.confs.path().join(format!("{name}.conflist")),
            v.to_string(),
        )
        .unwrap();
    }

    fn ipam(&self, subnet: &str) -> Value {
        json!({"type": "host-local", "subnet": subnet, "dataDir": self.data.str()})
    }

    /// `cnibox tool CMD` inside the node.
    fn tool(
        &self,
        cni_path: &str,
        cmd: &str,
        net: &str,
        id: &str,
        netns: &str,
        cap: &str,
    ) -> Reply {
        let out = Command::new(ip_path())
            .args(["netns", "exec", &self.node.name])
            .arg(cnibox())
            .args([
                "tool",
                cmd,
                "--id",
                id,
                "--cache-dir",
                &self.cache.str(),
                net,
                netns,
            ])
            .env("NETCONFPATH", self.confs.path())
            .env("CNI_PATH", cni_path)
            .env("CAP_ARGS", cap)
            .output()
            .unwrap();
        Reply {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cnibox doctor` inside the node, on the node's own dirs.
    fn run_doctor(&self, args: &[&str]) -> std::process::Output {
        Command::new(ip_path())
            .args(["netns", "exec", &self.node.name])
            .arg(cnibox())
            .arg("doctor")
            .args(["--cache-dir", &self.cache.str()])
            .args(["--data-dir", &self.data.str()])
            .args(["--tuning-dir", &self.tuning.str()])
            .args(args)
            .output()
            .unwrap()
    }

    fn doctor(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = self.run_doctor(&args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor output not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    fn doctor_text(&self, extra: &[&str]) -> String {
        String::from_utf8_lossy(&self.run_doctor(extra).stdout).into_owned()
    }

    /// host-local's directory for network `net` (made).
    fn store(&self, net: &str) -> std::path::PathBuf {
        let dir = self.data.path().join(net);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A libcni cache entry for (net, id, eth0) naming `netns`; returns the
    /// cache's results directory.
    fn plant_cache(&self, net: &str, id: &str, netns: &str) -> std::path::PathBuf {
        let results = self.cache.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(
            results.join(format!("{net}-{id}-eth0")),
            json!({"kind": "cniCacheV1", "containerId": id, "ifName": "eth0",
                   "networkName": net, "netns": netns,
                   "config": "e30=", "result": {"cniVersion": "0.4.0"}})
            .to_string(),
        )
        .unwrap();
        results
    }

    /// Everything iptables-nft and nft show in the node.
    fn firewall(&self) -> String {
        let mut s = self.node.nft_ruleset();
        let o = self.node.exec(&["iptables-save"]);
        s.push_str(&String::from_utf8_lossy(&o.stdout));
        s
    }

    fn reservations(&self) -> Vec<String> {
        tree(self.data.path())
            .into_iter()
            .filter(|p| {
                Path::new(p)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().parse::<std::net::IpAddr>().is_ok())
            })
            .map(|p| {
                let content = std::fs::read_to_string(self.data.path().join(&p)).unwrap();
                format!("{p} {content}")
            })
            .collect()
    }
}

fn ids_of(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                format!(
                    "{} @ {}",
                    f["what"].as_str().unwrap(),
                    f["where"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

fn mentions(list: &Value, kind: &str, id: &str) -> bool {
    ids_of(list)
        .iter()
        .any(|(k, w)| k == kind && w.contains(id))
}

fn first_ip(add: &Reply) -> String {
    let v: Value = serde_json::from_str(&add.stdout)
        .unwrap_or_else(|e| panic!("ADD output ({e}): {} {}", add.stdout, add.stderr));
    let a = v["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_string()
}

fn have_go_and_iptables() -> bool {
    if !Path::new(GO).join("ptp").exists() {
        skip(
            SkipKind::Tool,
            "Debian's containernetworking-plugins not installed",
        );
        return false;
    }
    let ok = Command::new("iptables-save")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(SkipKind::Tool, "iptables (nft flavour) not installed");
        return false;
    }
    if !have_nft() {
        skip(SkipKind::Tool, "nft not installed");
        return false;
    }
    true
}

/// A polluted node: 4 networks (cnibox ptp+ipMasq, Go ptp+ipMasq, cnibox
/// bridge+portmap, Go bridge+portmap), one live and one leaked container on
/// each, a planted stale cache entry and a planted stale reservation.
#[test]
fn lists_every_leaked_object_and_nothing_alive_then_fix_removes_them() {
    require_root!();
    if !have_go_and_iptables() {
        return;
    }
    let n = TestNode::new();
    let o = octet();
    let cb = bin_dir().display().to_string();
    let nets = [
        ("drcbptp", cb.as_str(), "ptp"),
        ("drgoptp", GO, "ptp"),
        ("drcbbr", cb.as_str(), "bridge"),
        ("drgobr", GO, "bridge"),
    ];
    for (i, (name, path, kind)) in nets.iter().enumerate() {
        let subnet = format!("10.{o}.{}.0/24", i + 1);
        if *kind == "ptp" {
            n.conflist(
                name,
                json!([{"type": "ptp", "ipMasq": true, "ipam": n.ipam(&subnet)}]),
            );
        } else {
            n.conflist(
                name,
                json!([
                    {"type": "bridge", "bridge": format!("{name}0"), "isGateway": true,
                     // cnibox's spoof check (nf_tables over netlink); Go's
                     // 1.1.1 would need the nft binary on its PATH.
                     "macspoofchk": path == &cb.as_str(),
                     "ipam": n.ipam(&subnet)},
                    // Its ownership records in the test's dir, not the node's.
                    {"type": "portmap", "capabilities": {"portMappings": true},
                     "dataDir": n.data.path().join("portmap")}
                ]),
            );
        }
    }
    let mut live: Vec<(TestNs, String, String, String, &str)> = Vec::new(); // ns, net, id, ip, path
    let mut leaked_ids: Vec<(String, &str)> = Vec::new();
    for (i, (name, path, kind)) in nets.iter().enumerate() {
        for (j, keep) in [(0, true), (1, false)] {
            let ns = TestNs::new("drc");
            let id = format!(
                "{}-{}-{}",
                if keep { "live" } else { "dead" },
                name,
                unique("")
            );
            let cap = if *kind == "bridge" {
                json!({"portMappings": [{"hostPort": 18000 + i * 10 + j, "containerPort": 80, "protocol": "tcp"}]})
                    .to_string()
            } else {
                "{}".into()
            };
            let r = n.tool(path, "add", name, &id, &ns.path(), &cap);
            assert_eq!(r.status, 0, "ADD {name} {id}: {} {}", r.stdout, r.stderr);
            let ip = first_ip(&r);
            if keep {
                live.push((ns, name.to_string(), id, ip, path));
            } else {
                leaked_ids.push((id, kind));
                drop(ns); // netns deleted, no DEL
            }
        }
    }
    // Planted: a cache entry whose netns is gone, a reservation nobody holds.
    let planted_cache_id = format!("planted-cache-{}", unique(""));
    let results = n.plant_cache("drcbptp", &planted_cache_id, "/run/netns/drgone-planted");
    let planted_res_id = format!("planted-res-{}", unique(""));
    std::fs::write(
        n.data.path().join(format!("drcbptp/10.{o}.1.200")),
        format!("{planted_res_id}\r\neth0"),
    )
    .unwrap();

    let (code, rep) = n.doctor(&["--min-age", "0"]);
    eprintln!("{}", n.doctor_text(&["--min-age", "0"]));
    assert_eq!(code, 1, "{rep:#}");
    let leaked = &rep["leaked"];
    // Every leaked container: its reservation and cache entry, and its
    // masquerade rule / Go chain / portmap rules.
    for (id, kind) in &leaked_ids {
        assert!(
            mentions(leaked, "reservation", id),
            "reservation of {id}: {rep:#}"
        );
        assert!(mentions(leaked, "cache", id), "cache of {id}: {rep:#}");
        let extra = match (id.contains("drgo"), *kind) {
            (false, "ptp") => "masquerade",
            (false, _) => "portmap",
            (true, _) => "go-chain",
        };
        assert!(mentions(leaked, extra, id), "{extra} of {id}: {rep:#}");
        if id.contains("drcbbr") {
            assert!(
                mentions(leaked, "spoof-check", id),
                "spoof check of {id}: {rep:#}"
            );
        }
    }
    assert_eq!(rep["unknownOwner"], json!([]), "{rep:#}");
    assert!(mentions(leaked, "cache", &planted_cache_id), "{rep:#}");
    assert!(mentions(leaked, "reservation", &planted_res_id), "{rep:#}");
    // Nothing alive is listed at all, leaked or not.
    for (_, _, id, _, _) in &live {
        for l in [&rep["leaked"], &rep["unknownOwner"]] {
            assert!(
                !ids_of(l).iter().any(|(_, w)| w.contains(id.as_str())),
                "live {id} listed: {rep:#}"
            );
        }
    }
    let fw_before = n.firewall();
    for (id, _) in &leaked_ids {
        if id.contains("drcbptp") || id.contains("drcbbr") {
            assert!(fw_before.contains(id.as_str()), "{id} not in\n{fw_before}");
        }
    }

    // --fix removes them, a second --fix finds nothing.
    let (code, fixed) = n.doctor(&["--min-age", "0", "--fix"]);
    assert_eq!(code, 0, "{fixed:#}");
    assert_eq!(
        fixed["removed"].as_array().unwrap().len(),
        leaked.as_array().unwrap().len(),
        "{fixed:#}"
    );
    let (code, again) = n.doctor(&["--min-age", "0", "--fix"]);
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(again["leaked"], json!([]), "{again:#}");
    assert_eq!(again["removed"], json!([]), "{again:#}");

    let fw = n.firewall();
    let res = n.reservations().join("\n");
    for (id, _) in &leaked_ids {
        assert!(!fw.contains(id.as_str()), "{id} still in\n{fw}");
        assert!(!res.contains(id.as_str()), "{id} still in\n{res}");
    }
    assert!(!res.contains(&planted_res_id), "{res}");
    // No CNI-<hash> chain of a dead Go container is left: only the live
    // ones' (one per live Go container) and the shared CNI-HOSTPORT-*.
    let chains: Vec<&str> = fw
        .lines()
        .filter(|l| l.starts_with(":CNI-") && !l.starts_with(":CNI-HOSTPORT-"))
        .collect();
    assert_eq!(chains.len(), 2, "{fw}");
    let cached = tree(&results);
    assert_eq!(cached.len(), live.len(), "{cached:?}");

    // The live containers still answer, and their DEL works.
    for (ns, net, id, ip, path) in &live {
        assert!(n.node.ping(ip), "{id} at {ip} does not answer");
        let r = n.tool(path, "del", net, id, &ns.path(), "{}");
        assert_eq!(r.status, 0, "DEL {id}: {} {}", r.stdout, r.stderr);
    }
    let res = n.reservations();
    assert!(res.is_empty(), "{res:?}");
    let (code, end) = n.doctor(&["--min-age", "0"]);
    assert_eq!((code, &end["leaked"]), (0, &json!([])), "{end:#}");
}

#[test]
fn young_reservations_are_unknown_owner_never_removed() {
    require_root!();
    let n = TestNode::new();
    let o = octet();
    let dir = n.store("drnet");
    let file = dir.join(format!("10.{o}.9.9"));
    std::fs::write(&file, "young-one\r\neth0").unwrap();
    let (code, rep) = n.doctor(&["--fix"]);
    assert_eq!(code, 0, "{rep:#}");
    assert!(
        mentions(&rep["unknownOwner"], "reservation", "young-one"),
        "{rep:#}"
    );
    assert!(file.exists());
    // Old enough: leaked, removed through host-local's DEL.
    let (code, rep) = n.doctor(&["--fix", "--min-age", "0"]);
    assert_eq!(code, 0, "{rep:#}");
    assert!(
        mentions(&rep["removed"], "reservation", "young-one"),
        "{rep:#}"
    );
    assert!(!file.exists());
}

/// A host veth whose peer's netns is held by nothing doctor can see (a bind
/// mount outside the netns dirs) is "unknown owner" and stays; shown the
/// mount's directory, doctor accounts for it.
#[test]
fn veth_with_invisible_peer_is_unknown_owner_and_kept() {
    require_root!();
    let n = TestNode::new();
    let hidden = TestNs::new("drhid");
    let mounts = TempDir::new("dr-mnt");
    let target = mounts.path().join("hidden");
    std::fs::write(&target, "").unwrap();
    let st = Command::new("mount")
        .args(["--bind", &hidden.path(), &target.display().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    struct Umount(String);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _umount = Umount(target.display().to_string());
    n.node.ip(&[
        "link", "add", "drvh0", "type", "veth", "peer", "name", "drvc0",
    ]);
    n.node.ip(&["link", "set", "drvc0", "netns", &hidden.name]);
    drop(hidden); // unbound from /run/netns; our mount keeps it alive
    let (code, rep) = n.doctor(&["--fix"]);
    assert_eq!(code, 0, "{rep:#}");
    assert!(mentions(&rep["unknownOwner"], "veth", "drvh0"), "{rep:#}");
    assert!(n.node.link_names().contains(&"drvh0".to_string()));
    let (_, rep) = n.doctor(&["--netns-dir", &mounts.str()]);
    assert!(!mentions(&rep["unknownOwner"], "veth", "drvh0"), "{rep:#}");
}

/// bandwidth's ifb (`bwp` + 12 hex of sha512(network + ID)) and tuning's
/// backup file (`<ID>_<ifname>.json`) of a container whose cache entry
/// names a gone netns are leaked and removed; an ifb matching no known
/// attachment is unknown owner and stays.
#[test]
fn ifb_and_tuning_backup_of_a_dead_container() {
    require_root!();
    require_link_kind!("ifb");
    let n = TestNode::new();
    let id = format!("deadbw-{}", unique(""));
    let results = n.plant_cache("bwnet", &id, "/run/netns/drgone-bw");
    use sha2::{Digest, Sha512};
    let hex: String = Sha512::digest(format!("bwnet{id}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let ifb = format!("bwp{}", &hex[..12]);
    n.node.ip(&["link", "add", &ifb, "type", "ifb"]);
    n.node
        .ip(&["link", "add", "bwp000000000000", "type", "ifb"]);
    let backup = n.tuning.path().join(format!("{id}_eth0.json"));
    std::fs::write(&backup, "{}").unwrap();

    let (code, rep) = n.doctor(&[]);
    assert_eq!(code, 1, "{rep:#}");
    assert!(mentions(&rep["leaked"], "ifb", &ifb), "{rep:#}");
    assert!(mentions(&rep["leaked"], "tuning", &id), "{rep:#}");
    assert!(
        mentions(&rep["unknownOwner"], "ifb", "bwp000000000000"),
        "{rep:#}"
    );
    let (code, rep) = n.doctor(&["--fix"]);
    assert_eq!(code, 0, "{rep:#}");
    let links = n.node.link_names();
    assert!(!links.contains(&ifb), "{links:?}");
    assert!(links.contains(&"bwp000000000000".to_string()), "{links:?}");
    assert!(!backup.exists());
    assert!(!results.join(format!("bwnet-{id}-eth0")).exists());
}

/// host-local's DEL releases every address of an owner, so one address
/// still configured somewhere keeps all of them (a dual-stack container
/// whose IPv6 address is gone is still alive).
#[test]
fn one_address_in_use_keeps_all_of_its_owners_reservations() {
    require_root!();
    let n = TestNode::new();
    let o = octet();
    let dir = n.store("drnet");
    let used = format!("10.{o}.8.8");
    let other = "fd00:d0c::8";
    for ip in [used.as_str(), other] {
        std::fs::write(dir.join(ip), "half-alive\r\neth0").unwrap();
    }
    n.node
        .ip(&["addr", "add", &format!("{used}/32"), "dev", "lo"]);
    let (code, rep) = n.doctor(&["--fix", "--min-age", "0"]);
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(rep["removed"], json!([]), "{rep:#}");
    assert!(dir.join(&used).exists() && dir.join(other).exists());
    n.node
        .ip(&["addr", "del", &format!("{used}/32"), "dev", "lo"]);
    let (code, rep) = n.doctor(&["--fix", "--min-age", "0"]);
    assert_eq!(code, 0, "{rep:#}");
    assert!(
        mentions(&rep["removed"], "reservation", "half-alive"),
        "{rep:#}"
    );
    assert!(!dir.join(&used).exists() && !dir.join(other).exists());
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    let run = |args: &[&str]| {
        Command::new(cnibox())
            .arg("doctor")
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(run(&["--bogus"]).status.code(), Some(2));
    assert_eq!(run(&["--min-age", "x"]).status.code(), Some(2));
    assert_eq!(run(&["--cache-dir"]).status.code(), Some(2));
    let h = run(&["--help"]);
    assert_eq!(h.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&h.stdout).contains("--fix"));
}

/// `doctor --fix` in a loop (default --min-age) while 100 ADD/CHECK/DELs
/// run on two cnibox networks (ptp+ipMasq, bridge+portmap): every call
/// succeeds, the doctor removes only the planted leaks, and the containers
/// that live through it all keep their state.
#[test]
fn fix_in_a_loop_during_100_add_dels_removes_only_leaks() {
    require_root!();
    if !have_nft() {
        skip(SkipKind::Tool, "nft not installed");
        return;
    }
    let n = TestNode::new();
    let o = octet();
    let cb = bin_dir().display().to_string();
    n.conflist(
        "drcptp",
        json!([{"type": "ptp", "ipMasq": true, "ipam": n.ipam(&format!("10.{o}.20.0/24"))}]),
    );
    n.conflist(
        "drcbr",
        json!([
            {"type": "bridge", "bridge": "drcbr0", "isGateway": true, "ipam": n.ipam(&format!("10.{o}.21.0/24"))},
            {"type": "portmap", "capabilities": {"portMappings": true},
             "dataDir": n.data.path().join("portmap")}
        ]),
    );
    let cap = |port: u32| {
        json!({"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]})
            .to_string()
    };
    let nets = ["drcptp", "drcbr"];
    // Survivors, and leaks planted before the storm (made old enough).
    let mut keep = Vec::new();
    let mut leak_ids = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        for leak in [false, true] {
            let ns = TestNs::new("drk");
            let id = format!(
                "{}-{net}-{}",
                if leak { "leak" } else { "keep" },
                unique("")
            );
            let r = n.tool(&cb, "add", net, &id, &ns.path(), &cap(19000 + i as u32));
            assert_eq!(r.status, 0, "{} {}", r.stdout, r.stderr);
            if leak {
                leak_ids.push(id);
            } else {
                keep.push((ns, net.to_string(), id, first_ip(&r)));
            }
        }
    }
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find {} -type f -exec touch -d '1 hour ago' {{}} +",
            n.data.str()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let keep_res = n.reservations();

    let stop = std::sync::atomic::AtomicBool::new(false);
    // Each cycling container's lifetime: from its ADD's end to its DEL's
    // start, when nothing may remove its state.
    let lives: std::sync::Mutex<Vec<(String, Instant, Instant)>> = Default::default();
    let (removed, runs, failures) = std::thread::scope(|s| {
        let doctor = s.spawn(|| {
            let mut removed: Vec<(String, Instant, Instant)> = Vec::new();
            let mut runs = 0;
            let mut bad = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || runs == 0 {
                let start = Instant::now();
                let (code, rep) = n.doctor(&["--fix"]);
                let end = Instant::now();
                runs += 1;
                if code != 0 {
                    bad.push(format!("{rep:#}"));
                }
                for f in rep["removed"].as_array().unwrap() {
                    let what = format!("{} {} ({})", f["kind"], f["what"], f["why"]);
                    removed.push((what, start, end));
                }
            }
            (removed, runs, bad)
        });
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (n, cb, cap, lives) = (&n, &cb, &cap, &lives);
                s.spawn(move || {
                    let mut fails = Vec::new();
                    for k in 0..25 {
                        let net = nets[k % 2];
                        let ns = TestNs::new("drw");
                        let id = format!("cyc-{w}-{k}-{}", unique(""));
                        let c = cap(19100 + (w * 25 + k) as u32);
                        let mut added = None;
                        for cmd in ["add", "check", "del"] {
                            if cmd == "del" {
                                if let Some(t) = added {
                                    lives.lock().unwrap().push((id.clone(), t, Instant::now()));
                                }
                            }
                            let r = n.tool(cb, cmd, net, &id, &ns.path(), &c);
                            if r.status != 0 {
                                fails.push(format!("{cmd} {id}: {} {}", r.stdout, r.stderr));
                            } else if cmd == "add" {
                                added = Some(Instant::now());
                            }
                        }
                    }
                    fails
                })
            })
            .collect();
        let failures: Vec<String> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (removed, runs, bad) = doctor.join().unwrap();
        assert!(bad.is_empty(), "doctor --fix failed: {bad:?}");
        (removed, runs, failures)
    });
    eprintln!("{runs} doctor runs, removed: {removed:#?}");
    assert!(runs >= 2, "the doctor loop did not overlap the ADD/DELs");
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
    // Nothing of a container was removed by a doctor run that began and
    // ended within its life; only a planted leak or the state of a
    // container whose DEL was under way (what its DEL removes anyway).
    let lives = lives.into_inner().unwrap();
    assert_eq!(lives.len(), 100);
    let keep_ids: Vec<&String> = keep.iter().map(|k| &k.2).collect();
    for (r, start, end) in &removed {
        assert!(
            !keep_ids.iter().any(|k| r.contains(k.as_str())),
            "removed a survivor's: {r}"
        );
        if leak_ids.iter().any(|l| r.contains(l.as_str())) {
            continue;
        }
        let (id, born, dies) = lives
            .iter()
            .find(|(id, _, _)| r.contains(&format!("{id}/")) || r.contains(&format!("{id} ")))
            .unwrap_or_else(|| panic!("removed something unknown: {r}"));
        assert!(
            !(born < start && end < dies),
            "removed {r} while {id} was alive throughout"
        );
    }
    for l in &leak_ids {
        assert!(
            removed.iter().any(|r| r.0.contains(l.as_str())),
            "{l} not removed: {removed:#?}"
        );
    }
    // The survivors kept everything: reservations, rules, pings, DEL.
    let res = n.reservations();
    for (_, _, id, _) in &keep {
        assert!(res.iter().any(|r| r.contains(id.as_str())), "{id}: {res:?}");
        assert!(keep_res.iter().any(|r| r.contains(id.as_str())));
    }
    let fw = n.firewall();
    for (ns, net, id, ip) in &keep {
        assert!(fw.contains(id.as_str()), "rules of {id} gone:\n{fw}");
        assert!(n.node.ping(ip), "{id} at {ip}");
        let r = n.tool(&cb, "del", net, id, &ns.path(), &cap(19000));
        assert_eq!(r.status, 0, "{} {}", r.stdout, r.stderr);
    }
    assert!(n.reservations().is_empty(), "{:?}", n.reservations());
}
