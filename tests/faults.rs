//! Faults: the runtime (`cnibox tool`, running our plugins in-process) is
//! killed during ADD and DEL, at every injected fault point (`:abort`, a
//! kill with no cleanup) and by a real SIGKILL at random moments, for ptp
//! and bridge with host-local, ipMasq and (bridge) macspoofchk. Then DEL,
//! or GC with a valid list that lacks the attachment after its netns is
//! gone, must leave the node exactly as before the attachment: no veth, no
//! node address or route, no reservation, no nf_tables rule, no cache
//! entry; and the same container can be added (and deleted) again.
//!
//! Also here: the reboot simulation (GC of containers whose netns are gone,
//! by plugin GC and by `tool gc`, STATUS healthy) and 100 concurrent ADDs
//! then DELs across ptp and bridge sharing host-local's data dir and the
//! nf_tables table.
//!
//! `CNIBOX_FAULT_RANDOM=N` sets the random kills per plugin and command
//! (default 60 ADD and 30 DEL kills; trials are counted and printed).

mod common;
mod rel;

use common::*;
use rel::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ptp,
    Bridge,
    Macvlan,
    Tap,
    /// podman's default chain: bridge, portmap, firewall, tuning.
    Chain,
    /// ptp, then bandwidth and sbr on it.
    Routed,
}

impl Kind {
    fn net(self) -> &'static str {
        match self {
            Kind::Ptp => "relptp",
            Kind::Bridge => "relbr",
            Kind::Macvlan => "relmv",
            Kind::Tap => "reltap",
            Kind::Chain => "relchain",
            Kind::Routed => "relrouted",
        }
    }

    /// Whether GC alone (the netns gone, no cache entry) can clean up after
    /// a crash. bandwidth's ifb names hash network and container together,
    /// so GC cannot tell a stale ifb from another network's: DEL only.
    fn gc_cleans(self) -> bool {
        self != Kind::Routed
    }
}

/// The macvlan kind's parent link, one end of a veth pair in the node.
const MACVLAN_MASTER: &str = "relm0";

/// A node namespace with a config dir, a data dir and a result cache.
struct Node {
    host: TestNs,
    root: TempDir,
}

impl Node {
    fn new(kinds: &[Kind]) -> Node {
        let n = Node {
            host: TestNs::new("relh"),
            root: TempDir::new("cnibox-rel"),
        };
        for d in ["net.d", "data", "cache"] {
            std::fs::create_dir_all(n.root.path().join(d)).unwrap();
        }
        for k in kinds {
            n.write_conf(*k);
            if *k == Kind::Macvlan {
                n.host.ip(&[
                    "link",
                    "add",
                    MACVLAN_MASTER,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "relm1",
                ]);
                n.host.ip(&["link", "set", MACVLAN_MASTER, "up"]);
                n.host.ip(&["link", "set", "relm1", "up"]);
            }
        }
        n
    }

    fn dir(&self, d: &str) -> std::path::PathBuf {
        self.root.path().join(d)
    }

    fn plugin_confs(&self, k: Kind) -> Vec<Value> {
        let (subnet, subnet6) = match k {
            Kind::Ptp => ("10.61.0.0/16", "fd61::/64"),
            Kind::Bridge => ("10.62.0.0/16", "fd62::/64"),
            Kind::Macvlan => ("10.63.0.0/16", "fd63::/64"),
            Kind::Tap => ("10.64.0.0/16", "fd64::/64"),
            Kind::Chain => ("10.65.0.0/16", "fd65::/64"),
            Kind::Routed => ("10.66.0.0/16", "fd66::/64"),
        };
        // The newer kinds are IPv4 only: their IPv6 ADD waits out DAD (as
        // Go's ConfigureIface does), a second per trial; leaks are what is
        // tested here, and ptp and bridge cover dual-stack.
        let ranges = match k {
            Kind::Ptp | Kind::Bridge => json!([[{"subnet": subnet}], [{"subnet": subnet6}]]),
            _ => json!([[{"subnet": subnet}]]),
        };
        let ipam = json!({"type": "host-local",
            "ranges": ranges,
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": self.dir("data")});
        match k {
            Kind::Ptp => vec![json!({"type": "ptp", "ipMasq": true, "ipam": ipam})],
            Kind::Bridge => vec![
                json!({"type": "bridge", "bridge": "relbr0", "isGateway": true,
                                   "ipMasq": true, "macspoofchk": true, "ipam": ipam}),
            ],
            Kind::Macvlan => vec![
                json!({"type": "macvlan", "master": MACVLAN_MASTER, "mode": "bridge", "ipam": ipam}),
            ],
            Kind::Tap => {
                vec![json!({"type": "tap", "mtu": 1400, "multiQueue": true, "ipam": ipam})]
            }
            Kind::Chain => vec![
                json!({"type": "bridge", "bridge": "relbr1", "isGateway": true,
                       "ipMasq": true, "hairpinMode": true, "ipam": ipam}),
                json!({"type": "portmap", "snat": true, "dataDir": self.dir("data").join("portmap"),
                       "runtimeConfig": {"portMappings": [
                    {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"},
                    {"hostPort": 18053, "containerPort": 53, "protocol": "udp"}]}}),
                // Backups outside the snapshot: after a crash before the
                // cache write, GC cannot tell whose a backup is (Go's file
                // names no network); tests/tuning.rs covers DEL's removal.
                json!({"type": "firewall", "dataDir": self.dir("data").join("firewall")}),
                json!({"type": "tuning", "mtu": 1400, "promisc": true,
                       "dataDir": self.dir("tuning")}),
            ],
            Kind::Routed => vec![
                json!({"type": "ptp", "ipam": ipam}),
                json!({"type": "bandwidth", "ingressRate": 8_000_000, "ingressBurst": 800_000,
                       "egressRate": 8_000_000, "egressBurst": 800_000}),
                json!({"type": "sbr"}),
            ],
        }
    }

    fn write_conf(&self, k: Kind) {
        let list = json!({"cniVersion": "1.1.0", "name": k.net(), "plugins": self.plugin_confs(k)});
        std::fs::write(
            self.dir("net.d").join(format!("{}.conflist", k.net())),
            serde_json::to_vec_pretty(&list).unwrap(),
        )
        .unwrap();
    }

    /// `cnibox tool ARGS` in the node, with `fault` as CNIBOX_FAULT and a
    /// SIGKILL after `kill_after`.
    fn tool(&self, args: &[&str], fault: Option<&str>, kill_after: Option<Duration>) -> Ran {
        let mut env: BTreeMap<String, OsString> = BTreeMap::new();
        env.insert("NETCONFPATH".into(), self.dir("net.d").into());
        env.insert("CNI_PATH".into(), bin_dir().into());
        if let Some(f) = fault {
            env.insert("CNIBOX_FAULT".into(), f.into());
        }
        let mut a: Vec<OsString> = vec!["tool".into()];
        a.extend(args.iter().map(OsString::from));
        a.push("--cache-dir".into());
        a.push(self.dir("cache").into());
        run_raw(
            &cnibox(),
            &a,
            &env,
            Vec::new(),
            Some(&self.host),
            kill_after.unwrap_or(Duration::from_secs(60)),
        )
    }

    /// What must be the same after an attachment came and went. The
    /// allocator's cursor (`last_reserved_ip.*`) and cnibox's index are
    /// bookkeeping, not attachments.
    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::take(&self.host, None, &[&self.dir("data"), &self.dir("cache")]);
        if let Some(f) = s.sections.get_mut("files") {
            f.retain(|l| !l.contains("/last_reserved_ip.") && !l.contains("/.cnibox"));
        }
        s
    }

    /// A snapshot once the kernel has finished tearing down what the
    /// warm-up deleted (two in a row, 200 ms apart, agree; 5 s at most).
    fn settled_snapshot(&self) -> Snapshot {
        let start = Instant::now();
        let mut last = self.snapshot();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.snapshot();
            if now == last || start.elapsed() > Duration::from_secs(5) {
                return now;
            }
            last = now;
        }
    }

    /// The difference from `base`, waiting for the kernel to finish tearing
    /// down deleted namespaces ("" when none is left).
    fn leak(&self, base: &Snapshot) -> String {
        let start = Instant::now();
        loop {
            let d = base.diff(&self.snapshot());
            if d.is_empty() || start.elapsed() > Duration::from_secs(5) {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A small xorshift PRNG: the seed is printed, so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("CNIBOX_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("faults: random seed {seed} (CNIBOX_FAULT_SEED to repeat)");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug)]
enum Cleanup {
    /// DEL of the attachment (its netns still there).
    Del,
    /// The container is gone (netns deleted), then GC with a valid list
    /// that lacks it.
    Gc,
}

/// How one trial kills the runtime.
#[derive(Clone, Debug)]
enum Kill {
    Fault(&'static str),
    After(Duration),
}

#[derive(Default)]
struct Tally {
    trials: usize,
    leaks: Vec<String>,
    failures: Vec<String>,
    /// Random kills that landed before the command finished.
    killed: usize,
}

const SIGABRT_STATUS: i32 = 128 + 6;

/// ADD killed (`kill`), then `cleanup`, then the same container again.
fn add_crash(n: &Node, k: Kind, base: &Snapshot, kill: &Kill, cleanup: Cleanup, t: &mut Tally) {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let id = format!("rel-{}", SEQ.fetch_add(1, Ordering::SeqCst));
    let label = format!("{:?} ADD {kill:?} then {cleanup:?} ({id})", k);
    t.trials += 1;
    let ctr = TestNs::new("relc");
    let path = ctr.path();
    let r = match kill {
        Kill::Fault(p) => n.tool(
            &["add", k.net(), &path, "--id", &id],
            Some(&format!("{p}:abort")),
            None,
        ),
        Kill::After(d) => n.tool(&["add", k.net(), &path, "--id", &id], None, Some(*d)),
    };
    match kill {
        Kill::Fault(_) if r.status != SIGABRT_STATUS => {
            t.failures.push(format!(
                "{label}: the fault point was not reached (status {}): {}",
                r.status,
                r.stdout_str()
            ));
        }
        Kill::After(_) if r.status == 128 + 9 => t.killed += 1,
        _ => {}
    }
    if std::env::var_os("CNIBOX_FAULT_DEBUG").is_some() {
        eprintln!("{label}: status {}", r.status);
    }
    let ctr = match cleanup {
        Cleanup::Del => {
            let d = n.tool(&["del", k.net(), &path, "--id", &id], None, None);
            if d.status != 0 {
                t.failures.push(format!(
                    "{label}: DEL failed: {} {}",
                    d.stdout_str(),
                    d.stderr
                ));
            }
            Some(ctr)
        }
        Cleanup::Gc => {
            drop(ctr);
            let g = n.tool(&["gc", k.net(), "--valid", "someone-else/eth0"], None, None);
            if g.status != 0 {
                t.failures.push(format!("{label}: GC failed: {}", g.stderr));
            }
            None
        }
    };
    let leak = n.leak(base);
    if !leak.is_empty() {
        t.leaks.push(format!("{label}:\n{leak}"));
        return;
    }
    // The same container (a new netns after GC) is added and deleted again.
    let ctr = ctr.unwrap_or_else(|| TestNs::new("relc"));
    let path = ctr.path();
    let a = n.tool(&["add", k.net(), &path, "--id", &id], None, None);
    if a.status != 0 {
        t.failures.push(format!(
            "{label}: the next ADD failed: {} {}",
            a.stdout_str(),
            a.stderr
        ));
    }
    let d = n.tool(&["del", k.net(), &path, "--id", &id], None, None);
    if d.status != 0 {
        t.failures
            .push(format!("{label}: the next DEL failed: {}", d.stderr));
    }
    let leak = n.leak(base);
    if !leak.is_empty() {
        t.leaks
            .push(format!("{label} (after ADD+DEL again):\n{leak}"));
    }
}

/// A good ADD, then DEL killed, then `cleanup` again.
fn del_crash(n: &Node, k: Kind, base: &Snapshot, kill: &Kill, cleanup: Cleanup, t: &mut Tally) {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let id = format!("reld-{}", SEQ.fetch_add(1, Ordering::SeqCst));
    let label = format!("{:?} DEL {kill:?} then {cleanup:?} ({id})", k);
    t.trials += 1;
    let ctr = TestNs::new("relc");
    let path = ctr.path();
    let a = n.tool(&["add", k.net(), &path, "--id", &id], None, None);
    if a.status != 0 {
        t.failures.push(format!(
            "{label}: ADD failed: {} {}",
            a.stdout_str(),
            a.stderr
        ));
    }
    let r = match kill {
        Kill::Fault(p) => n.tool(
            &["del", k.net(), &path, "--id", &id],
            Some(&format!("{p}:abort")),
            None,
        ),
        Kill::After(d) => n.tool(&["del", k.net(), &path, "--id", &id], None, Some(*d)),
    };
    match kill {
        Kill::Fault(_) if r.status != SIGABRT_STATUS => t.failures.push(format!(
            "{label}: the fault point was not reached (status {})",
            r.status
        )),
        Kill::After(_) if r.status == 128 + 9 => t.killed += 1,
        _ => {}
    }
    match cleanup {
        Cleanup::Del => {
            let d = n.tool(&["del", k.net(), &path, "--id", &id], None, None);
            if d.status != 0 {
                t.failures
                    .push(format!("{label}: DEL again failed: {}", d.stderr));
            }
        }
        Cleanup::Gc => {
            drop(ctr);
            let g = n.tool(&["gc", k.net(), "--valid", "someone-else/eth0"], None, None);
            if g.status != 0 {
                t.failures.push(format!("{label}: GC failed: {}", g.stderr));
            }
        }
    }
    let leak = n.leak(base);
    if !leak.is_empty() {
        t.leaks.push(format!("{label}:\n{leak}"));
    }
}

/// The points every plugin with host-local IPAM passes on ADD.
const IPAM_ADD_POINTS: &[&str] = &[
    "host-local:mid-reserve",
    "host-local:after-reserve",
    "host-local:before-commit",
    "tool:before-cache",
];
const PTP_ADD_POINTS: &[&str] = &[
    "host-local:mid-reserve",
    "host-local:after-reserve",
    "host-local:before-commit",
    "ptp:after-ipam",
    "ptp:after-veth",
    "ptp:after-configure",
    "ptp:after-host",
    "ptp:after-masq",
    "tool:before-cache",
];
const BRIDGE_ADD_POINTS: &[&str] = &[
    "host-local:mid-reserve",
    "host-local:after-reserve",
    "host-local:before-commit",
    "bridge:after-ipam",
    "bridge:after-bridge",
    "bridge:after-veth",
    "bridge:after-spoofchk",
    "bridge:before-result",
    "tool:before-cache",
];
const PTP_DEL_POINTS: &[&str] = &[
    "host-local:del-after-release",
    "ptp:del-after-ipam",
    "ptp:del-after-link",
    "tool:del-before-cache",
];
const BRIDGE_DEL_POINTS: &[&str] = &[
    "bridge:del-after-link",
    "host-local:del-after-release",
    "bridge:del-after-ipam",
    "tool:del-before-cache",
];

fn random_trials() -> (usize, usize) {
    match std::env::var("CNIBOX_FAULT_RANDOM")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => (n, n.div_ceil(2)),
        None => (60, 30),
    }
}

/// Every fault point and random kills, for one plugin.
fn crash_everywhere(k: Kind) {
    let n = Node::new(&[k]);
    // Warm up: the bridge, the nf_tables tables and chains, forwarding and
    // the store's files exist from the first attachment on and stay.
    let ctr = TestNs::new("relw");
    let mut add_times = Vec::new();
    let mut del_times = Vec::new();
    for i in 0..3 {
        let id = format!("warm{i}");
        let t0 = Instant::now();
        let a = n.tool(&["add", k.net(), &ctr.path(), "--id", &id], None, None);
        assert_eq!(a.status, 0, "warm-up ADD: {} {}", a.stdout_str(), a.stderr);
        add_times.push(t0.elapsed());
        let t0 = Instant::now();
        let d = n.tool(&["del", k.net(), &ctr.path(), "--id", &id], None, None);
        assert_eq!(d.status, 0, "warm-up DEL: {}", d.stderr);
        del_times.push(t0.elapsed());
    }
    drop(ctr);
    let base = n.settled_snapshot();
    assert!(
        base.sections["node links"].len() > 1 || !matches!(k, Kind::Bridge | Kind::Chain),
        "the bridge is part of the baseline"
    );
    add_times.sort();
    del_times.sort();
    let (t_add, t_del) = (add_times[1], del_times[1]);

    let mut t = Tally::default();
    let (add_points, del_points) = match k {
        Kind::Ptp => (PTP_ADD_POINTS, PTP_DEL_POINTS),
        Kind::Bridge => (BRIDGE_ADD_POINTS, BRIDGE_DEL_POINTS),
        Kind::Macvlan | Kind::Tap | Kind::Chain | Kind::Routed => (IPAM_ADD_POINTS, &[][..]),
    };
    let cleanups: &[Cleanup] = if k.gc_cleans() {
        &[Cleanup::Del, Cleanup::Gc]
    } else {
        &[Cleanup::Del]
    };
    for &cleanup in cleanups {
        for p in add_points {
            add_crash(&n, k, &base, &Kill::Fault(p), cleanup, &mut t);
        }
        for p in del_points {
            del_crash(&n, k, &base, &Kill::Fault(p), cleanup, &mut t);
        }
    }
    let mut rng = Rng::new();
    let (adds, dels) = random_trials();
    for i in 0..adds {
        // Anywhere from the start to a little after a normal ADD's end.
        let d = Duration::from_micros(rng.below(t_add.as_micros() as u64 * 11 / 10));
        let cleanup = if i % 3 == 2 && k.gc_cleans() {
            Cleanup::Gc
        } else {
            Cleanup::Del
        };
        add_crash(&n, k, &base, &Kill::After(d), cleanup, &mut t);
    }
    for i in 0..dels {
        let d = Duration::from_micros(rng.below(t_del.as_micros() as u64 * 11 / 10));
        let cleanup = if i % 3 == 2 && k.gc_cleans() {
            Cleanup::Gc
        } else {
            Cleanup::Del
        };
        del_crash(&n, k, &base, &Kill::After(d), cleanup, &mut t);
    }
    eprintln!(
        "faults {k:?}: {} trials ({} fault points x2 cleanups, {adds} random ADD kills, {dels} random DEL kills, {} of them landed mid-command; ADD {t_add:?}, DEL {t_del:?}), {} leaks, {} other failures",
        t.trials,
        add_points.len() + del_points.len(),
        t.killed,
        t.leaks.len(),
        t.failures.len()
    );
    assert!(
        t.leaks.is_empty() && t.failures.is_empty(),
        "{} leaks:\n{}\n{} failures:\n{}",
        t.leaks.len(),
        t.leaks.join("\n"),
        t.failures.len(),
        t.failures.join("\n")
    );
}

#[test]
fn ptp_crashes_anywhere_in_add_and_del_leave_nothing_after_del_or_gc() {
    require_root!();
    crash_everywhere(Kind::Ptp);
}

#[test]
fn bridge_crashes_anywhere_in_add_and_del_leave_nothing_after_del_or_gc() {
    require_root!();
    crash_everywhere(Kind::Bridge);
}

#[test]
fn macvlan_crashes_anywhere_in_add_and_del_leave_nothing_after_del_or_gc() {
    require_root!();
    crash_everywhere(Kind::Macvlan);
}

#[test]
fn tap_crashes_anywhere_in_add_and_del_leave_nothing_after_del_or_gc() {
    require_root!();
    crash_everywhere(Kind::Tap);
}

#[test]
fn podman_chain_crashes_anywhere_leave_nothing_after_del_or_gc() {
    require_root!();
    crash_everywhere(Kind::Chain);
}

#[test]
fn ptp_bandwidth_sbr_chain_crashes_anywhere_leave_nothing_after_del() {
    require_root!();
    crash_everywhere(Kind::Routed);
}

/// Reservations of an attachment (files holding `id\r\n...`).
fn reservations_of(n: &Node, net: &str, id: &str) -> Vec<String> {
    let dir = n.dir("data").join(net);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<std::net::IpAddr>().is_ok() {
            let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
            if owner.split("\r\n").next() == Some(id) {
                out.push(name);
            }
        }
    }
    out
}

fn masq_comments(n: &Node) -> String {
    n.host.nft_ruleset()
}

#[test]
fn reboot_gc_releases_what_gone_containers_held_and_status_stays_healthy() {
    require_root!();
    let n = Node::new(&[Kind::Ptp, Kind::Bridge]);
    let mut ctrs = Vec::new();
    // Through the tool (cached) and straight through the plugin (no cache,
    // as a runtime that lost its cache would leave it).
    for (i, k) in [
        Kind::Ptp,
        Kind::Bridge,
        Kind::Ptp,
        Kind::Bridge,
        Kind::Ptp,
        Kind::Bridge,
    ]
    .into_iter()
    .enumerate()
    {
        let ctr = TestNs::new("relr");
        let id = format!("boot-{i}");
        if i < 4 {
            let a = n.tool(&["add", k.net(), &ctr.path(), "--id", &id], None, None);
            assert_eq!(a.status, 0, "{}", a.stderr);
        } else {
            let mut conf = n.plugin_confs(k).remove(0);
            conf["cniVersion"] = json!("1.1.0");
            conf["name"] = json!(k.net());
            let r = Call::attach(
                conf["type"].as_str().unwrap(),
                "ADD",
                &id,
                &ctr.path(),
                "eth0",
            )
            .in_ns(&n.host)
            .config(&conf)
            .run();
            r.ok();
        }
        assert_eq!(reservations_of(&n, k.net(), &id).len(), 2, "{id}");
        ctrs.push((k, id, ctr));
    }
    let status = |k: Kind| n.tool(&["status", k.net()], None, None);
    for k in [Kind::Ptp, Kind::Bridge] {
        assert_eq!(status(k).status, 0, "STATUS before");
    }
    // "Reboot": every container but boot-0 and boot-1 is gone.
    let survivors: Vec<(Kind, String, TestNs)> = ctrs.drain(..2).collect();
    let gone: Vec<(Kind, String)> = ctrs.drain(..).map(|(k, id, _ns)| (k, id)).collect();
    std::thread::sleep(Duration::from_millis(300));

    // bridge: GC straight through the plugin (reservations, masquerade and
    // spoof-check rules; the cache is the runtime's business) ...
    let mut conf = n.plugin_confs(Kind::Bridge).remove(0);
    conf["cniVersion"] = json!("1.1.0");
    conf["name"] = json!("relbr");
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "boot-1", "ifname": "eth0"}]);
    Call::new("bridge", "GC")
        .in_ns(&n.host)
        .config(&conf)
        .run()
        .ok();
    // ... ptp: GC through the tool (stale cache entries DEL'd, then plugin GC).
    let g = n.tool(&["gc", "relptp", "--valid", "boot-0/eth0"], None, None);
    assert_eq!(g.status, 0, "{}", g.stderr);
    // The bridge's cache entry of boot-3 is still there (plugin GC does not
    // touch the cache); tool gc removes it too.
    let g = n.tool(&["gc", "relbr", "--valid", "boot-1/eth0"], None, None);
    assert_eq!(g.status, 0, "{}", g.stderr);

    let rules = masq_comments(&n);
    for (k, id) in &gone {
        assert!(
            reservations_of(&n, k.net(), id).is_empty(),
            "{id}: reservations released"
        );
        assert!(
            !rules.contains(&format!("id: {id}\"")),
            "{id}: masquerade rule removed"
        );
        assert!(
            !rules.contains(&format!("macspoofchk-{id}-")),
            "{id}: spoof check removed"
        );
        assert!(
            !n.dir("cache")
                .join("results")
                .join(format!("{}-{id}-eth0", k.net()))
                .exists(),
            "{id}: cache entry removed"
        );
    }
    for (k, id, _) in &survivors {
        assert_eq!(reservations_of(&n, k.net(), id).len(), 2, "{id} kept");
        assert!(rules.contains(&format!("id: {id}\"")), "{id}: rule kept");
        assert!(
            n.dir("cache")
                .join("results")
                .join(format!("{}-{id}-eth0", k.net()))
                .exists(),
            "{id}: cache kept"
        );
    }
    assert!(
        rules.contains("macspoofchk-boot-1-eth0"),
        "boot-1's spoof check kept"
    );
    for k in [Kind::Ptp, Kind::Bridge] {
        let s = status(k);
        assert_eq!(s.status, 0, "STATUS after GC: {}", s.stderr);
    }
    // And the survivors still work.
    for (k, id, ctr) in &survivors {
        let c = n.tool(&["check", k.net(), &ctr.path(), "--id", id], None, None);
        assert_eq!(c.status, 0, "CHECK {id}: {}", c.stderr);
        let d = n.tool(&["del", k.net(), &ctr.path(), "--id", id], None, None);
        assert_eq!(d.status, 0, "DEL {id}: {}", d.stderr);
    }
}

#[test]
fn a_hundred_concurrent_adds_then_dels_over_8_workers_lose_nothing() {
    require_root!();
    const N: usize = 100;
    const WORKERS: usize = 8;
    let n = Node::new(&[Kind::Ptp, Kind::Bridge]);
    let base = n.snapshot();
    let ctrs: Vec<TestNs> = (0..N).map(|_| TestNs::new("relq")).collect();
    let kind = |i: usize| {
        if i.is_multiple_of(2) {
            Kind::Ptp
        } else {
            Kind::Bridge
        }
    };
    let id = |i: usize| format!("conc-{i}");

    let run_all = |cmd: &'static str| -> Vec<(usize, Ran)> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..WORKERS {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= N {
                        break;
                    }
                    let r = n.tool(
                        &[cmd, kind(i).net(), &ctrs[i].path(), "--id", &id(i)],
                        None,
                        None,
                    );
                    out.lock().unwrap().push((i, r));
                });
            }
        });
        out.into_inner().unwrap()
    };

    let adds = run_all("add");
    let failed: Vec<String> = adds
        .iter()
        .filter(|(_, r)| r.status != 0)
        .map(|(i, r)| format!("ADD {}: {} {}", id(*i), r.stdout_str(), r.stderr))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} ADDs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // No address handed out twice, and each is what the container has.
    let mut seen = BTreeSet::new();
    for (i, r) in &adds {
        let v = r.json().expect("result");
        for ip in v["ips"].as_array().unwrap() {
            let a = ip["address"].as_str().unwrap().to_string();
            assert!(seen.insert(a.clone()), "{a} handed out twice");
        }
        assert_eq!(
            reservations_of(&n, kind(*i).net(), &id(*i)).len(),
            2,
            "{}",
            id(*i)
        );
    }
    assert_eq!(seen.len(), 2 * N);
    let rules = n.host.nft_ruleset();
    for i in 0..N {
        assert!(
            rules.contains(&format!("id: {}\"", id(i))),
            "masquerade rule of {}",
            id(i)
        );
        if kind(i) == Kind::Bridge {
            assert!(
                rules.contains(&format!("macspoofchk-{}-eth0", id(i))),
                "spoof check of {}",
                id(i)
            );
        }
        assert!(
            n.dir("cache")
                .join("results")
                .join(format!("{}-{}-eth0", kind(i).net(), id(i)))
                .exists(),
            "cache of {}",
            id(i)
        );
    }
    let veths = links(&n.host)
        .iter()
        .filter(|l| l.starts_with("veth"))
        .count();
    assert_eq!(veths, N, "one host veth per container");

    let dels = run_all("del");
    let failed: Vec<String> = dels
        .iter()
        .filter(|(_, r)| r.status != 0)
        .map(|(i, r)| format!("DEL {}: {}", id(*i), r.stderr))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} DELs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // What stays is what the first attachment made for all: the bridge
    // and the nf_tables tables and chains (empty of attachments).
    let after = n.snapshot();
    let diff = base.diff(&after);
    for line in diff.lines() {
        // The stores' directories and locks, the cache directory.
        let only_dirs = line.starts_with("files: removed [] added [")
            && line
                .split("\", \"")
                .all(|f| f.contains("/ 7") || f.contains("/lock 750 0 "));
        let ok = only_dirs
            || line.starts_with("node links: removed [] added [\"relbr0 kind=bridge")
            || line.starts_with("node nftables: removed []")
            || line.starts_with("node forwarding:")
            || line.starts_with("node addresses: removed [] added [\"relbr0 ")
            || line.starts_with("node routes: removed [] added [") && !line.contains("veth");
        assert!(ok, "left after 100 DELs: {line}");
    }
    let rules = n.host.nft_ruleset();
    assert!(
        !rules.contains("id: conc-"),
        "masquerade rules left:\n{rules}"
    );
    assert!(
        !rules.contains("macspoofchk-conc-"),
        "spoof checks left:\n{rules}"
    );
    for k in [Kind::Ptp, Kind::Bridge] {
        let left: Vec<String> = std::fs::read_dir(n.dir("data").join(k.net()))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
            .collect();
        assert!(left.is_empty(), "{:?}: reservations left: {left:?}", k);
    }
    let cache: Vec<_> = std::fs::read_dir(n.dir("cache").join("results"))
        .unwrap()
        .flatten()
        .collect();
    assert!(cache.is_empty(), "cache entries left");
    assert!(
        !links(&n.host).iter().any(|l| l.starts_with("veth")),
        "veths left"
    );
}

#[test]
fn forty_concurrent_adds_then_dels_of_the_wave_two_chains_lose_nothing() {
    require_root!();
    const N: usize = 40;
    const WORKERS: usize = 8;
    let kinds = [Kind::Chain, Kind::Routed, Kind::Macvlan, Kind::Tap];
    let n = Node::new(&kinds);
    // Warm up: what the first attachment of each kind makes for all (the
    // bridge, the nf_tables tables and chains, the firewall's chains).
    let warm = TestNs::new("relw");
    for k in kinds {
        let a = n.tool(&["add", k.net(), &warm.path(), "--id", "warm"], None, None);
        assert_eq!(
            a.status,
            0,
            "warm-up ADD {k:?}: {} {}",
            a.stdout_str(),
            a.stderr
        );
        let d = n.tool(&["del", k.net(), &warm.path(), "--id", "warm"], None, None);
        assert_eq!(d.status, 0, "warm-up DEL {k:?}: {}", d.stderr);
    }
    drop(warm);
    let base = n.settled_snapshot();
    let ctrs: Vec<TestNs> = (0..N).map(|_| TestNs::new("relq")).collect();
    let kind = |i: usize| kinds[i % kinds.len()];
    let id = |i: usize| format!("conc2-{i}");
    let run_all = |cmd: &'static str| -> Vec<(usize, Ran)> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..WORKERS {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= N {
                        break;
                    }
                    let args = [cmd, kind(i).net(), &ctrs[i].path(), "--id", &id(i)];
                    let r = n.tool(&args, None, None);
                    out.lock().unwrap().push((i, r));
                });
            }
        });
        out.into_inner().unwrap()
    };
    let adds = run_all("add");
    let failed: Vec<String> = adds
        .iter()
        .filter(|(_, r)| r.status != 0)
        .map(|(i, r)| {
            format!(
                "ADD {} {:?}: {} {}",
                id(*i),
                kind(*i),
                r.stdout_str(),
                r.stderr
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} ADDs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let mut seen = BTreeSet::new();
    for (i, r) in &adds {
        let v = r.json().expect("result");
        for ip in v["ips"].as_array().unwrap() {
            let a = ip["address"].as_str().unwrap().to_string();
            assert!(seen.insert(a.clone()), "{a} handed out twice ({})", id(*i));
        }
    }
    assert_eq!(seen.len(), N, "one address per container");
    let rules = n.host.nft_ruleset();
    for i in (0..N).filter(|i| kind(*i) == Kind::Chain) {
        assert!(
            rules.contains(&format!("comment \"{}\"", id(i))),
            "port forwards of {}",
            id(i)
        );
    }
    let dels = run_all("del");
    let failed: Vec<String> = dels
        .iter()
        .filter(|(_, r)| r.status != 0)
        .map(|(i, r)| format!("DEL {} {:?}: {}", id(*i), kind(*i), r.stderr))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} DELs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    drop(ctrs);
    let leak = n.leak(&base);
    assert!(leak.is_empty(), "left after {N} ADDs and DELs:\n{leak}");
}
