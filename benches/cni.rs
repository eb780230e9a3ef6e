//! `make bench`: cnibox side by side with the Go reference plugins, in one
//! run, driven by the same client the way a runtime calls plugins (exec by
//! path, CNI_* env, config on stdin, from a thread in the node's netns).
//! Reference and cnibox rounds are interleaved so machine noise hits both.
//!
//! Env: N (containers per case, default 100), WORKERS (default "4,8"),
//! CASES (comma list, default all), QUICK=1 (small N, skips the 60k scale
//! point), CNIBOX (the binary), REFERENCE (dir, default /usr/lib/cni),
//! OUT (default bench/results.md).

mod common;
use common::{in_ns, Ns};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Reference,
    Cnibox,
}

struct Env {
    n: usize,
    workers: Vec<usize>,
    cases: Vec<String>,
    quick: bool,
    reference: PathBuf,
    ours: PathBuf,
    work: PathBuf,
    tag: String,
}

impl Env {
    fn bin_dir(&self, side: Side) -> PathBuf {
        match side {
            Side::Reference => self.reference.clone(),
            Side::Cnibox => self.work.join("bin"),
        }
    }
}

/// One plugin exec, timed from spawn to exit.
fn exec(plugin: &Path, env: &[(&str, String)], stdin: &[u8]) -> (Duration, bool, Vec<u8>) {
    let start = Instant::now();
    let mut child = Command::new(plugin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn plugin");
    let _ = child.stdin.take().map(|mut s| s.write_all(stdin));
    let out = child.wait_with_output().expect("wait");
    (start.elapsed(), out.status.success(), out.stdout)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Default, Clone)]
struct Stats {
    samples: Vec<Duration>,
    failures: usize,
}

impl Stats {
    fn sorted(&self) -> Vec<Duration> {
        let mut s = self.samples.clone();
        s.sort();
        s
    }
    fn p50(&self) -> Duration {
        pct(&self.sorted(), 0.5)
    }
    fn p90(&self) -> Duration {
        pct(&self.sorted(), 0.9)
    }
    fn p99(&self) -> Duration {
        pct(&self.sorted(), 0.99)
    }
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 10.0 {
        format!("{v:.1} ms")
    } else if v >= 0.1 {
        format!("{v:.2} ms")
    } else {
        format!("{:.0} µs", v * 1000.0)
    }
}

fn ratio(reference: Duration, ours: Duration) -> String {
    if ours.is_zero() || reference.is_zero() {
        return "-".into();
    }
    format!("{:.1}x", reference.as_secs_f64() / ours.as_secs_f64())
}

/// The plugins of a case for one side, in chain order (one for a single
/// plugin). `ctr` numbers the container, for per-container host ports.
fn case_chain(
    case: &str,
    side: Side,
    data: &Path,
    idx: usize,
    ctr: usize,
) -> Option<Vec<serde_json::Value>> {
    let ipam = |subnet: &str| serde_json::json!({"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data});
    // Debian's reference plugins speak up to 1.0.0 and have only the
    // iptables masquerade and portmap backends; cnibox uses its defaults
    // (nftables over netlink). The version is the same for both sides.
    let _ = side;
    let port = 20000 + (idx % 40) * 1000 + ctr % 1000;
    let portmap = serde_json::json!({"type": "portmap", "snat": true, "dataDir": data.join("portmap"),
        "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}});
    let tuning = serde_json::json!({"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}});
    let bridge = |br: &str, subnet: &str| serde_json::json!({"type": "bridge", "bridge": br, "isGateway": true, "ipMasq": true, "hairpinMode": true, "ipam": ipam(subnet)});
    Some(match case {
        "ptp" => vec![serde_json::json!({"type": "ptp", "ipam": ipam("10.200.0.0/16")})],
        "ptp-masq" => {
            vec![serde_json::json!({"type": "ptp", "ipMasq": true, "ipam": ipam("10.201.0.0/16")})]
        }
        "bridge" => vec![
            serde_json::json!({"type": "bridge", "bridge": "benchbr0", "isGateway": true, "ipam": ipam("10.202.0.0/16")}),
        ],
        "bridge-masq" => vec![
            serde_json::json!({"type": "bridge", "bridge": "benchbr1", "isGateway": true, "ipMasq": true, "ipam": ipam("10.203.0.0/16")}),
        ],
        "loopback" => vec![serde_json::json!({"type": "loopback"})],
        "macvlan" => vec![
            serde_json::json!({"type": "macvlan", "master": MACVLAN_MASTER, "mode": "bridge", "ipam": ipam("10.204.0.0/16")}),
        ],
        // What podman/nerdctl put in every default conflist (firewall
        // aside), and the same without tuning.
        "bridge-portmap-tuning" => vec![bridge("benchbr2", "10.205.0.0/16"), portmap, tuning],
        "bridge-portmap" => vec![bridge("benchbr3", "10.206.0.0/16"), portmap],
        // podman's default conflist, firewall included.
        "bridge-portmap-firewall-tuning" => vec![
            bridge("benchbr4", "10.207.0.0/16"),
            portmap,
            serde_json::json!({"type": "firewall", "dataDir": data.join("firewall")}),
            tuning,
        ],
        "bridge-portmap-bandwidth" => vec![
            bridge("benchbr5", "10.209.0.0/16"),
            portmap,
            serde_json::json!({"type": "bandwidth", "runtimeConfig": {"bandwidth": {
                "ingressRate": 100_000_000, "ingressBurst": 1_000_000,
                "egressRate": 100_000_000, "egressBurst": 1_000_000}}}),
        ],
        "host-device" => vec![
            serde_json::json!({"type": "host-device", "device": format!("hd{ctr}"), "ipam": ipam("10.208.0.0/16")}),
        ],
        "tap" => vec![serde_json::json!({"type": "tap", "ipam": ipam("10.210.0.0/16")})],
        "ipvlan" => vec![
            serde_json::json!({"type": "ipvlan", "master": MACVLAN_MASTER, "ipam": ipam("10.211.0.0/16")}),
        ],
        "vlan" => vec![
            serde_json::json!({"type": "vlan", "master": MACVLAN_MASTER, "vlanId": 100 + ctr % 3000, "ipam": ipam("10.212.0.0/16")}),
        ],
        "dummy" => vec![serde_json::json!({"type": "dummy", "ipam": ipam("10.213.0.0/16")})],
        _ => return None,
    })
}

/// Whether the reference has every plugin of `case`'s chain (Debian's
/// 1.1.1 has no tap and no dummy): cnibox-only cases run one side.
fn reference_has(env: &Env, case: &str) -> bool {
    case_chain(case, Side::Reference, Path::new("/"), 0, 0)
        .unwrap_or_default()
        .iter()
        .all(|p| {
            env.reference
                .join(p["type"].as_str().unwrap_or(""))
                .exists()
        })
}

/// Why this kernel cannot run `case` (a link kind it lacks), probed in a
/// namespace of its own.
fn kernel_lacks(case: &str) -> Option<String> {
    let add: &[&str] = match case {
        "ipvlan" => &["link", "add", "t0", "link", "p0", "type", "ipvlan"],
        "vlan" => &["link", "add", "t0", "link", "p0", "type", "vlan", "id", "5"],
        "dummy" => &["link", "add", "t0", "type", "dummy"],
        _ => return None,
    };
    let ns = Ns::new(format!("bprobe{}", std::process::id() % 100000));
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(["-n", &ns.0])
            .args(args)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let _ = ip(&["link", "add", "p0", "type", "veth", "peer", "name", "p1"]);
    (!ip(add)).then(|| format!("this kernel has no {case} links (the kernel lane has them)"))
}

/// The parent link the macvlan case hangs its containers on, made in the
/// node netns by `prepare_node`.
const MACVLAN_MASTER: &str = "bm0";

/// What a case needs in the node netns before its first ADD.
fn prepare_node(case: &str, node: &Ns, n: usize) {
    if case == "host-device" {
        // One device per container (host-device moves it in and back).
        let batch: String = (0..n)
            .map(|i| format!("link add hd{i} type veth peer name hp{i}\n"))
            .collect();
        let mut c = Command::new("ip")
            .args(["-n", &node.0, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("ip -batch");
        let _ = c.stdin.take().map(|mut s| s.write_all(batch.as_bytes()));
        assert!(
            c.wait().map(|s| s.success()).unwrap_or(false),
            "host-device links in {}",
            node.0
        );
    }
    if ["macvlan", "ipvlan", "vlan"].contains(&case) {
        let ok = Command::new("ip")
            .args(["-n", &node.0, "link", "add", MACVLAN_MASTER, "type", "veth"])
            .args(["peer", "name", "bm1"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "macvlan master in {}", node.0);
        for l in [MACVLAN_MASTER, "bm1"] {
            let _ = Command::new("ip")
                .args(["-n", &node.0, "link", "set", l, "up"])
                .status();
        }
    }
}

/// Run a chain as libcni does: ADD in order, each plugin given the previous
/// one's result as `prevResult`; DEL in reverse, each given the chain's
/// ADD result. Returns the wall time, success, and the last ADD result.
fn exec_chain(
    bin: &Path,
    chain: &[serde_json::Value],
    name: &str,
    env: &[(&str, String)],
    added: Option<&[u8]>,
) -> (Duration, bool, Vec<u8>) {
    let del = added.is_some();
    let start = Instant::now();
    let mut prev: Option<serde_json::Value> = added.and_then(|a| serde_json::from_slice(a).ok());
    let mut out = Vec::new();
    let mut all_ok = true;
    let order: Vec<&serde_json::Value> = if del {
        chain.iter().rev().collect()
    } else {
        chain.iter().collect()
    };
    for plugin in order {
        let mut conf = plugin.clone();
        conf["cniVersion"] = "1.0.0".into();
        conf["name"] = name.into();
        if let Some(p) = &prev {
            conf["prevResult"] = p.clone();
        }
        let ty = conf["type"].as_str().unwrap_or("loopback").to_string();
        let (_, ok, stdout) = exec(&bin.join(&ty), env, conf.to_string().as_bytes());
        all_ok &= ok;
        if !del && ok {
            prev = serde_json::from_slice(&stdout).ok();
            out = stdout;
        }
        if !ok && !del {
            break;
        }
    }
    (start.elapsed(), all_ok, out)
}

struct CaseResult {
    add: BTreeMap<&'static str, Stats>,
    del: BTreeMap<&'static str, Stats>,
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Reference => "reference",
        Side::Cnibox => "cnibox",
    }
}

/// Serial ADD then DEL over N fresh namespaces per side, interleaved in
/// rounds of 10.
fn run_case(env: &Env, case: &str, idx: usize) -> CaseResult {
    let mut res = CaseResult {
        add: BTreeMap::new(),
        del: BTreeMap::new(),
    };
    let sides: Vec<Side> = if reference_has(env, case) {
        vec![Side::Reference, Side::Cnibox]
    } else {
        vec![Side::Cnibox]
    };
    let nodes: Vec<Ns> = sides
        .iter()
        .map(|s| Ns::new(format!("bn{}{}{}", &side_name(*s)[..1], idx, env.tag)))
        .collect();
    for n in &nodes {
        prepare_node(case, n, env.n);
    }
    let datas: Vec<PathBuf> = sides
        .iter()
        .map(|s| {
            let d = env.work.join(format!("data-{case}-{}", side_name(*s)));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let round = 10.min(env.n).max(1);
    let mut done = 0;
    let mut r = 0;
    while done < env.n {
        let count = round.min(env.n - done);
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for si in order {
            let side = sides[si];
            let bin = env.bin_dir(side);
            let name = format!("bench{idx}");
            let ctrs: Vec<Ns> = (0..count)
                .map(|i| {
                    Ns::new(format!(
                        "bc{}{}x{}x{}{}",
                        &side_name(side)[..1],
                        idx,
                        done + i,
                        r,
                        env.tag
                    ))
                })
                .collect();
            let (adds, dels) = in_ns(&nodes[si], || {
                let mut adds = Stats::default();
                let mut dels = Stats::default();
                let chains: Vec<_> = (0..ctrs.len())
                    .map(|i| case_chain(case, side, &datas[si], idx, done + i).unwrap())
                    .collect();
                let mut results = Vec::new();
                for (i, c) in ctrs.iter().enumerate() {
                    let e = cni_env("ADD", &format!("ctr{}", done + i), &c.path(), &bin);
                    let (t, ok, out) = exec_chain(&bin, &chains[i], &name, &e, None);
                    adds.samples.push(t);
                    adds.failures += (!ok) as usize;
                    results.push(out);
                }
                for (i, c) in ctrs.iter().enumerate() {
                    let e = cni_env("DEL", &format!("ctr{}", done + i), &c.path(), &bin);
                    let (t, ok, _) = exec_chain(&bin, &chains[i], &name, &e, Some(&results[i]));
                    dels.samples.push(t);
                    dels.failures += (!ok) as usize;
                }
                (adds, dels)
            });
            let a = res.add.entry(side_name(side)).or_default();
            a.samples.extend(adds.samples);
            a.failures += adds.failures;
            let d = res.del.entry(side_name(side)).or_default();
            d.samples.extend(dels.samples);
            d.failures += dels.failures;
        }
        done += count;
        r += 1;
    }
    res
}

fn cni_env(cmd: &str, id: &str, netns: &str, path: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", cmd.to_string()),
        ("CNI_CONTAINERID", id.to_string()),
        ("CNI_NETNS", netns.to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", path.display().to_string()),
    ]
}

/// W workers ADD then DEL N containers; wall time of each phase.
fn run_parallel(
    env: &Env,
    case: &str,
    idx: usize,
    side: Side,
    workers: usize,
) -> (Duration, Duration, usize) {
    let node = Ns::new(format!(
        "bp{}{}w{}{}",
        &side_name(side)[..1],
        idx,
        workers,
        env.tag
    ));
    let data = env
        .work
        .join(format!("pdata-{case}-{}-{workers}", side_name(side)));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    prepare_node(case, &node, env.n);
    let bin = env.bin_dir(side);
    let name = format!("bench{idx}");
    let chains: Vec<_> = (0..env.n)
        .map(|i| case_chain(case, side, &data, idx, i).unwrap())
        .collect();
    let results: Vec<std::sync::Mutex<Vec<u8>>> = (0..env.n).map(|_| Default::default()).collect();
    let ctrs: Vec<Ns> = (0..env.n)
        .map(|i| {
            Ns::new(format!(
                "bq{}{}w{}x{}{}",
                &side_name(side)[..1],
                idx,
                workers,
                i,
                env.tag
            ))
        })
        .collect();
    let failures = AtomicUsize::new(0);
    let mut walls = Vec::new();
    for cmd in ["ADD", "DEL"] {
        let next = AtomicUsize::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    in_ns(&node, || loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= ctrs.len() {
                            break;
                        }
                        let e = cni_env(cmd, &format!("pctr{i}"), &ctrs[i].path(), &bin);
                        let ok = if cmd == "ADD" {
                            let (_, ok, out) = exec_chain(&bin, &chains[i], &name, &e, None);
                            *results[i].lock().unwrap() = out;
                            ok
                        } else {
                            let added = results[i].lock().unwrap().clone();
                            exec_chain(&bin, &chains[i], &name, &e, Some(&added)).1
                        };
                        if !ok {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                });
            }
        });
        walls.push(start.elapsed());
    }
    (walls[0], walls[1], failures.load(Ordering::SeqCst))
}

/// The time of one exec of `plugin` with `cmd`, median over `reps`.
fn per_exec(
    plugin: &Path,
    env_vars: &[(&str, String)],
    stdin: &[u8],
    reps: usize,
) -> (Duration, bool) {
    let mut s = Stats::default();
    let mut all_ok = true;
    for _ in 0..reps {
        let (t, ok, _) = exec(plugin, env_vars, stdin);
        all_ok &= ok;
        s.samples.push(t);
    }
    (s.p50(), all_ok)
}

/// Peak RSS in KiB of one run, from /usr/bin/time.
fn peak_rss(
    plugin: &Path,
    env_vars: &[(&str, String)],
    stdin: &[u8],
    node: Option<&Ns>,
) -> Option<u64> {
    if !Path::new("/usr/bin/time").exists() {
        return None;
    }
    let run = || {
        let mut child = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg(plugin)
            .env_clear()
            .envs(env_vars.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let _ = child.stdin.take().map(|mut s| s.write_all(stdin));
        let out = child.wait_with_output().ok()?;
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()?
            .trim()
            .parse()
            .ok()
    };
    match node {
        Some(n) => in_ns(n, run),
        None => run(),
    }
}

/// `count` reservation files in a /16, in the host-local format.
fn populate(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let ip = format!("10.210.{}.{}", (i + 2) / 256, (i + 2) % 256);
        std::fs::write(dir.join(ip), format!("filler{i}\r\neth0")).unwrap();
    }
}

fn host_local_scale(env: &Env, side: Side, count: usize, reps: usize) -> Duration {
    let data = env.work.join(format!("scale-{}-{count}", side_name(side)));
    let _ = std::fs::remove_dir_all(&data);
    populate(&data.join("scale"), count);
    let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "scale", "type": "host-local",
        "ipam": {"type": "host-local", "subnet": "10.210.0.0/16", "dataDir": data}})
    .to_string();
    let plugin = env.bin_dir(side).join("host-local");
    let mut s = Stats::default();
    for i in 0..reps {
        let mut e = cni_env(
            "ADD",
            &format!("scalectr{i}"),
            "/proc/1/ns/net",
            &env.bin_dir(side),
        );
        e.push(("CNI_NETNS_OVERRIDE", "1".into()));
        let (t, ok, _) = exec(&plugin, &e, conf.as_bytes());
        s.samples.push(t);
        s.failures += (!ok) as usize;
        e[0].1 = "DEL".into();
        exec(&plugin, &e, conf.as_bytes());
    }
    let _ = std::fs::remove_dir_all(&data);
    s.p50()
}

/// The kernel floor: the same netlink work done by `ip -batch`.
fn floor(env: &Env, n: usize) -> (Duration, Duration) {
    let node = Ns::new(format!("bfl{}", env.tag));
    let ctrs: Vec<Ns> = (0..n)
        .map(|i| Ns::new(format!("bfc{i}x{}", env.tag)))
        .collect();
    let mut add = String::new();
    let mut del = String::new();
    for (i, c) in ctrs.iter().enumerate() {
        add.push_str(&format!(
            "link add fl{i} type veth peer name eth0 netns {}\n",
            c.0
        ));
        add.push_str(&format!("link set fl{i} up\n"));
        add.push_str(&format!("addr add 10.250.0.1/32 dev fl{i}\n"));
        add.push_str(&format!(
            "route add 10.250.{}.{}/32 dev fl{i} scope host\n",
            (i + 2) / 256,
            (i + 2) % 256
        ));
        del.push_str(&format!("link del fl{i}\n"));
    }
    let run = |script: &str| {
        let f = env.work.join("floor.batch");
        std::fs::write(&f, script).unwrap();
        let start = Instant::now();
        let ok = Command::new("ip")
            .args(["-n", &node.0, "-batch"])
            .arg(&f)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip -batch");
        start.elapsed() / n as u32
    };
    (run(&add), run(&del))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too, and must not start a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("bench: not started (run `make bench`)");
        return;
    }
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("bench: needs root (network namespaces)");
        std::process::exit(1);
    }
    let quick = std::env::var("QUICK").map(|v| v == "1").unwrap_or(false);
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20 } else { 100 });
    let workers: Vec<usize> = std::env::var("WORKERS")
        .unwrap_or_else(|_| if quick { "4".into() } else { "4,8".into() })
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let all = [
        "ptp-masq",
        "ptp",
        "bridge-masq",
        "bridge",
        "loopback",
        "macvlan",
        "bridge-portmap",
        "bridge-portmap-tuning",
        "bridge-portmap-firewall-tuning",
        "bridge-portmap-bandwidth",
        "host-device",
        "tap",
        "ipvlan",
        "vlan",
        "dummy",
    ];
    let cases: Vec<String> = std::env::var("CASES")
        .map(|c| c.split(',').map(str::to_string).collect())
        .unwrap_or_else(|_| all.iter().map(|s| s.to_string()).collect());
    let ours =
        PathBuf::from(std::env::var("CNIBOX").unwrap_or_else(|_| "target/static/cnibox".into()));
    let ours = std::fs::canonicalize(&ours).expect("CNIBOX binary (run make build)");
    let reference =
        PathBuf::from(std::env::var("REFERENCE").unwrap_or_else(|_| "/usr/lib/cni".into()));
    assert!(
        reference.join("ptp").exists(),
        "reference plugins missing in {}",
        reference.display()
    );
    let work = std::env::temp_dir().join(format!("cnibox-bench-{}", std::process::id()));
    std::fs::create_dir_all(work.join("bin")).unwrap();
    std::fs::copy(&ours, work.join("bin/cnibox")).unwrap();
    let st = Command::new(work.join("bin/cnibox"))
        .arg("install")
        .arg(work.join("bin"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let env = Env {
        n,
        workers,
        cases,
        quick,
        reference,
        ours,
        work,
        tag: format!("{}", std::process::id() % 10000),
    };

    let mut md = String::new();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    md.push_str(&format!("# cnibox vs the Go reference plugins\n\n{date}, {} cores, kernel {}. N={} namespaces per case and side, interleaved rounds of 10.\n",
        std::thread::available_parallelism().map(|p| p.get()).unwrap_or(0),
        Command::new("uname").arg("-r").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default(),
        env.n));
    md.push_str("Reference: Debian's containernetworking-plugins (Go, 1.1.1) in /usr/lib/cni; its masquerade backend is iptables. cnibox: the static binary, masquerade over nf_tables netlink.\nAbsolute figures vary from run to run on a shared VM; compare the ratios within one run.\n\n");

    let (floor_add, floor_del) = floor(&env, env.n.min(50));
    md.push_str("## Serial ADD/DEL latency\n\n| case | reference p50 / p90 / p99 | cnibox p50 / p90 / p99 | ratio (p50) | kernel floor |\n|---|---|---|---|---|\n");
    for (idx, case) in env.cases.iter().enumerate() {
        if let Some(why) = kernel_lacks(case) {
            eprintln!("SKIP: bench {case}: {why}");
            md.push_str(&format!("| {case} | SKIP: {why} | | | |\n"));
            continue;
        }
        eprintln!("bench: {case} (serial)");
        let r = run_case(&env, case, idx);
        for (what, map, fl) in [("ADD", &r.add, floor_add), ("DEL", &r.del, floor_del)] {
            let b = &map["cnibox"];
            let Some(a) = map.get("reference") else {
                let fail = if b.failures > 0 {
                    format!(" (failures: cnibox {})", b.failures)
                } else {
                    String::new()
                };
                md.push_str(&format!(
                    "| {case} {what} | n/a (not in Debian's 1.1.1) | {} / {} / {}{fail} | - | - |\n",
                    ms(b.p50()),
                    ms(b.p90()),
                    ms(b.p99()),
                ));
                continue;
            };
            let fail = if a.failures + b.failures > 0 {
                format!(" (failures: ref {}, cnibox {})", a.failures, b.failures)
            } else {
                String::new()
            };
            let floor = if ["ptp", "ptp-masq", "bridge", "bridge-masq"].contains(&case.as_str()) {
                ms(fl)
            } else {
                "-".into()
            };
            md.push_str(&format!(
                "| {case} {what} | {} / {} / {} | {} / {} / {} | {}{fail} | {floor} |\n",
                ms(a.p50()),
                ms(a.p90()),
                ms(a.p99()),
                ms(b.p50()),
                ms(b.p90()),
                ms(b.p99()),
                ratio(a.p50(), b.p50())
            ));
        }
    }
    md.push_str("\nThe floor is `ip -batch` doing the host side of a ptp ADD (veth with the peer created in the container netns, up, /32 address, host route) or deleting the veth; DEL waits for the kernel (RCU), so it bounds DEL from below.\n");

    md.push_str("\n## Parallel (wall time for N ADDs, then N DELs)\n\n| case | workers | reference ADD / DEL | cnibox ADD / DEL | ratio (ADD) | failures ref / cnibox |\n|---|---|---|---|---|---|\n");
    for (idx, case) in env
        .cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_str() != "loopback")
        .filter(|(_, c)| kernel_lacks(c).is_none() && reference_has(&env, c))
    {
        for &w in &env.workers {
            eprintln!("bench: {case} x{w}");
            let (ra, rd, rf) = run_parallel(&env, case, idx + 20, Side::Reference, w);
            let (oa, od, of) = run_parallel(&env, case, idx + 20, Side::Cnibox, w);
            md.push_str(&format!(
                "| {case} | {w} | {} / {} | {} / {} | {} | {rf} / {of} |\n",
                ms(ra),
                ms(rd),
                ms(oa),
                ms(od),
                ratio(ra, oa)
            ));
        }
    }

    eprintln!("bench: per-exec");
    md.push_str("\n## Per exec (median of 200)\n\n| call | reference | cnibox | ratio |\n|---|---|---|---|\n");
    let v = serde_json::json!({"cniVersion": "1.0.0"}).to_string();
    let reps = if env.quick { 50 } else { 200 };
    let (t_true, _) = per_exec(Path::new("/bin/true"), &[], b"", reps);
    for plugin in ["ptp", "host-local", "loopback"] {
        let e = vec![("CNI_COMMAND", "VERSION".to_string())];
        let (a, _) = per_exec(
            &env.bin_dir(Side::Reference).join(plugin),
            &e,
            v.as_bytes(),
            reps,
        );
        let (b, _) = per_exec(
            &env.bin_dir(Side::Cnibox).join(plugin),
            &e,
            v.as_bytes(),
            reps,
        );
        md.push_str(&format!(
            "| {plugin} VERSION | {} | {} | {} |\n",
            ms(a),
            ms(b),
            ratio(a, b)
        ));
    }
    let status_conf = serde_json::json!({"cniVersion": "1.1.0", "name": "st", "type": "ptp", "ipam": {"type": "host-local", "subnet": "10.220.0.0/24", "dataDir": env.work.join("status")}}).to_string();
    let se = vec![
        ("CNI_COMMAND", "STATUS".to_string()),
        ("CNI_PATH", env.bin_dir(Side::Cnibox).display().to_string()),
    ];
    let (b, ok) = per_exec(
        &env.bin_dir(Side::Cnibox).join("ptp"),
        &se,
        status_conf.as_bytes(),
        reps,
    );
    md.push_str(&format!("| ptp STATUS (with host-local) | n/a (1.1.1 has no STATUS; HEAD: 5.1 ms in baseline.md) | {}{} | - |\n", ms(b), if ok { "" } else { " (failed)" }));
    let hl_conf = serde_json::json!({"cniVersion": "1.0.0", "name": "hl", "type": "host-local", "ipam": {"type": "host-local", "subnet": "10.221.0.0/16"}});
    let mut hl = BTreeMap::new();
    for side in [Side::Reference, Side::Cnibox] {
        let mut c = hl_conf.clone();
        c["ipam"]["dataDir"] = serde_json::json!(env.work.join(format!("hl-{}", side_name(side))));
        let c = c.to_string();
        let mut add = Stats::default();
        let mut del = Stats::default();
        for i in 0..reps {
            let mut e = cni_env(
                "ADD",
                &format!("hl{i}"),
                "/proc/1/ns/net",
                &env.bin_dir(side),
            );
            e.push(("CNI_NETNS_OVERRIDE", "1".into()));
            add.samples
                .push(exec(&env.bin_dir(side).join("host-local"), &e, c.as_bytes()).0);
            e[0].1 = "DEL".into();
            del.samples
                .push(exec(&env.bin_dir(side).join("host-local"), &e, c.as_bytes()).0);
        }
        hl.insert(side_name(side), (add.p50(), del.p50()));
    }
    md.push_str(&format!(
        "| host-local ADD | {} | {} | {} |\n",
        ms(hl["reference"].0),
        ms(hl["cnibox"].0),
        ratio(hl["reference"].0, hl["cnibox"].0)
    ));
    md.push_str(&format!(
        "| host-local DEL | {} | {} | {} |\n",
        ms(hl["reference"].1),
        ms(hl["cnibox"].1),
        ratio(hl["reference"].1, hl["cnibox"].1)
    ));
    md.push_str(&format!(
        "| /bin/true (exec floor) | {} | {} | - |\n",
        ms(t_true),
        ms(t_true)
    ));

    eprintln!("bench: memory and size");
    md.push_str("\n## Peak RSS per invocation (KiB, /usr/bin/time %M)\n\n| call | reference | cnibox |\n|---|---|---|\n");
    let rss_node = Ns::new(format!("brss{}", env.tag));
    let rss_ctr = Ns::new(format!("brssc{}", env.tag));
    for (what, plugin, cmd, conf) in [
        ("VERSION", "ptp", "VERSION", v.clone()),
        ("ptp ADD (+host-local)", "ptp", "ADD", {
            let mut c =
                case_chain("ptp", Side::Cnibox, &env.work.join("rss"), 90, 0).unwrap()[0].clone();
            c["cniVersion"] = "1.0.0".into();
            c["name"] = "bench90".into();
            c.to_string()
        }),
        ("host-local ADD", "host-local", "ADD", {
            let mut c = hl_conf.clone();
            c["ipam"]["dataDir"] = serde_json::json!(env.work.join("rss-hl"));
            c.to_string()
        }),
    ] {
        let mut row = vec![];
        for side in [Side::Reference, Side::Cnibox] {
            let mut e = cni_env(
                cmd,
                &format!("rss-{}", side_name(side)),
                &rss_ctr.path(),
                &env.bin_dir(side),
            );
            if plugin == "host-local" {
                e[2].1 = "/proc/1/ns/net".into();
                e.push(("CNI_NETNS_OVERRIDE", "1".into()));
            }
            row.push(
                peak_rss(
                    &env.bin_dir(side).join(plugin),
                    &e,
                    conf.as_bytes(),
                    Some(&rss_node),
                )
                .map(|k| k.to_string())
                .unwrap_or("n/a".into()),
            );
            let mut d = e.clone();
            d[0].1 = "DEL".into();
            in_ns(&rss_node, || {
                exec(&env.bin_dir(side).join(plugin), &d, conf.as_bytes())
            });
        }
        md.push_str(&format!("| {what} | {} | {} |\n", row[0], row[1]));
    }
    let ref_size: u64 = std::fs::read_dir(&env.reference)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let ref_count = std::fs::read_dir(&env.reference)
        .map(|d| d.count())
        .unwrap_or(0);
    let our_size = std::fs::metadata(&env.ours).map(|m| m.len()).unwrap_or(0);
    md.push_str(&format!(
        "\n## Size on disk\n\n| reference ({ref_count} binaries in {}) | cnibox (one static binary) | ratio |\n|---|---|---|\n| {:.1} MB | {:.2} MB | {:.0}x |\n",
        env.reference.display(), ref_size as f64 / 1e6, our_size as f64 / 1e6, ref_size as f64 / our_size.max(1) as f64
    ));

    eprintln!("bench: host-local at scale");
    md.push_str("\n## host-local ADD with existing reservations in a /16 (median)\n\n| reservations | reference | cnibox | ratio |\n|---|---|---|---|\n");
    let points: Vec<usize> = if env.quick {
        vec![0, 10_000]
    } else {
        vec![0, 10_000, 60_000]
    };
    for count in points {
        let reps = if count >= 60_000 { 5 } else { 15 };
        let a = host_local_scale(&env, Side::Reference, count, reps);
        let b = host_local_scale(&env, Side::Cnibox, count, reps);
        md.push_str(&format!(
            "| {count} | {} | {} | {} |\n",
            ms(a),
            ms(b),
            ratio(a, b)
        ));
    }

    print!("{md}");
    let out = PathBuf::from(std::env::var("OUT").unwrap_or_else(|_| "bench/results.md".into()));
    if let Some(p) = out.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    std::fs::write(&out, &md).unwrap();
    eprintln!("bench: written to {}", out.display());
    let _ = std::fs::remove_dir_all(&env.work);
}
