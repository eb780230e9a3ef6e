//! `make bench` (or `cargo bench --bench ovs`): the `ovs` applet's veth
//! ADD/DEL side by side with the same work done the usual scripted way
//! (`ip link add ... type veth peer ... netns`, `ip link set up`, then
//! `ovs-vsctl add-port ... tag=... external_ids:...`, which also waits for
//! vswitchd; DEL: `ovs-vsctl --if-exists del-port` + `ip link del`), in one
//! run against one ovsdb-server + ovs-vswitchd (netdev datapath) started
//! here in a private netns and stopped by PID. Rounds are interleaved.
//!
//! Env: N (containers per round, default 20; QUICK=1: 5), ROUNDS (default
//! 3), CNIBOX (binary, default target/static/cnibox), OUT (default
//! bench/results-ovs.md).

mod common;
use common::{in_ns, Ns};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// ovsdb-server + ovs-vswitchd, killed by PID on drop, temp dir removed.
struct Ovs {
    pids: Vec<String>,
    dir: PathBuf,
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for p in &self.pids {
            let _ = Command::new("kill").args(["-TERM", p]).status();
        }
        for p in &self.pids {
            let proc_dir = format!("/proc/{p}");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&proc_dir).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if Path::new(&proc_dir).exists() {
                let _ = Command::new("kill").args(["-KILL", p]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn pid_of(path: &Path) -> String {
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.trim().is_empty() {
                return s.trim().to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no pid file {}", path.display());
}

fn start_ovs(dir: &Path, node: &Ns) -> Ovs {
    std::fs::create_dir_all(dir).unwrap();
    let mut ovs = Ovs {
        pids: Vec::new(),
        dir: dir.to_path_buf(),
    };
    let t = dir.display().to_string();
    assert!(run(Command::new("ovsdb-tool")
        .args(["create", &format!("{t}/conf.db")])
        .arg("/usr/share/openvswitch/vswitch.ovsschema")));
    assert!(run(Command::new("ovsdb-server")
        .arg(format!("{t}/conf.db"))
        .arg(format!("--remote=punix:{t}/db.sock"))
        .arg(format!("--pidfile={t}/ovsdb.pid"))
        .arg(format!("--unixctl={t}/ovsdb.ctl"))
        .arg(format!("--log-file={t}/ovsdb.log"))
        .args(["--detach", "--no-chdir", "-vconsole:off"])));
    ovs.pids.push(pid_of(&dir.join("ovsdb.pid")));
    assert!(run(Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{t}/db.sock"))
        .args(["--no-wait", "init"])));
    assert!(run(Command::new("ip")
        .args(["netns", "exec", &node.0, "env"])
        .arg(format!("OVS_RUNDIR={t}"))
        .arg("ovs-vswitchd")
        .arg(format!("unix:{t}/db.sock"))
        .arg(format!("--pidfile={t}/vswitchd.pid"))
        .arg(format!("--unixctl={t}/vswitchd.ctl"))
        .arg(format!("--log-file={t}/vswitchd.log"))
        .args(["--detach", "--no-chdir", "-vconsole:off"])));
    ovs.pids.push(pid_of(&dir.join("vswitchd.pid")));
    assert!(run(Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{t}/db.sock"))
        .args(["--timeout=20", "add-br", "br0", "--", "set", "bridge"])
        .args(["br0", "datapath_type=netdev"])));
    ovs
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Script,
    Cnibox,
}

fn cnibox_call(bin: &Path, cmd: &str, id: &str, netns: &str, conf: &str) -> bool {
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", bin.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cnibox");
    let _ = child.stdin.take().unwrap().write_all(conf.as_bytes());
    child.wait().map(|s| s.success()).unwrap_or(false)
}

fn script_add(db: &str, i: usize, ns: &Ns) -> bool {
    let host = format!("bvh{i}");
    run(Command::new("ip")
        .args(["link", "add", &host, "type", "veth", "peer", "name", "eth0"])
        .args(["netns", &ns.0]))
        && run(Command::new("ip").args(["link", "set", &host, "up"]))
        && run(Command::new("ip").args(["-n", &ns.0, "link", "set", "eth0", "up"]))
        && run(Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{db}"))
            .args(["--timeout=20", "add-port", "br0", &host, "tag=10"])
            .args(["--", "set", "Port", &host])
            .arg("external_ids:owner=script")
            .arg(format!("external_ids:containerID=c{i}")))
}

fn script_del(db: &str, i: usize, ns: &Ns) -> bool {
    let host = format!("bvh{i}");
    run(Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{db}"))
        .args(["--timeout=20", "--if-exists", "del-port", "br0", &host]))
        && run(Command::new("ip").args(["-n", &ns.0, "link", "del", "eth0"]))
}

/// One round: N ADDs then N DELs, each timed; the per-call times.
fn round(side: Side, bin: &Path, db: &str, nss: &[Ns]) -> (Vec<Duration>, Vec<Duration>, usize) {
    let conf = format!(
        r#"{{"cniVersion":"1.1.0","name":"benchnet","type":"ovs","bridge":"br0","ovsdbSocket":"{db}","vlan":10}}"#
    );
    let (mut adds, mut dels, mut fails) = (Vec::new(), Vec::new(), 0);
    for (i, ns) in nss.iter().enumerate() {
        let t = Instant::now();
        let ok = match side {
            Side::Cnibox => cnibox_call(bin, "ADD", &format!("c{i}"), &ns.path(), &conf),
            Side::Script => script_add(db, i, ns),
        };
        adds.push(t.elapsed());
        fails += usize::from(!ok);
    }
    for (i, ns) in nss.iter().enumerate() {
        let t = Instant::now();
        let ok = match side {
            Side::Cnibox => cnibox_call(bin, "DEL", &format!("c{i}"), &ns.path(), &conf),
            Side::Script => script_del(db, i, ns),
        };
        dels.push(t.elapsed());
        fails += usize::from(!ok);
    }
    (adds, dels, fails)
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() - 1) * p / 100]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("bench: not started (run `make bench`)");
        return;
    }
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("bench: needs root (network namespaces)");
        std::process::exit(1);
    }
    for tool in ["ovsdb-server", "ovs-vswitchd", "ovs-vsctl"] {
        if !run(Command::new("sh").args(["-c", &format!("command -v {tool}")])) {
            eprintln!("bench ovs: {tool} missing (apt package openvswitch-switch): skipped");
            return;
        }
    }
    let quick = std::env::var("QUICK").map(|v| v == "1").unwrap_or(false);
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5 } else { 20 });
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let ours =
        PathBuf::from(std::env::var("CNIBOX").unwrap_or_else(|_| "target/static/cnibox".into()));
    let ours = std::fs::canonicalize(&ours).expect("CNIBOX binary (run make build)");
    let out = std::env::var("OUT").unwrap_or_else(|_| "bench/results-ovs.md".into());

    let pid = std::process::id();
    let work = std::env::temp_dir().join(format!("cnibox-bench-ovs-{pid}"));
    std::fs::create_dir_all(work.join("bin")).unwrap();
    let bin = work.join("bin/ovs");
    std::os::unix::fs::symlink(&ours, &bin).unwrap();
    let node = Ns::new(format!("bovsn{pid}"));
    let ovs = start_ovs(&work.join("ovs"), &node);
    let db = format!("{}/db.sock", ovs.dir.display());
    let nss: Vec<Ns> = (0..n).map(|i| Ns::new(format!("bovs{pid}c{i}"))).collect();

    let mut acc = [
        (Vec::new(), Vec::new(), 0usize),
        (Vec::new(), Vec::new(), 0),
    ];
    in_ns(&node, || {
        for r in 0..rounds {
            // Alternate which side goes first.
            let order = if r % 2 == 0 {
                [Side::Script, Side::Cnibox]
            } else {
                [Side::Cnibox, Side::Script]
            };
            for side in order {
                let (a, d, f) = round(side, &bin, &db, &nss);
                let slot = &mut acc[usize::from(side == Side::Cnibox)];
                slot.0.extend(a);
                slot.1.extend(d);
                slot.2 += f;
            }
        }
    });
    drop(nss);
    drop(ovs);
    drop(node);
    let _ = std::fs::remove_dir_all(&work);

    let [mut script, mut ours_r] = acc;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut md = String::new();
    md.push_str("# ovs: cnibox vs ovs-vsctl + ip\n\n");
    md.push_str(&format!(
        "{cores} cores; N={n} containers per round, {rounds} interleaved rounds per side; \
         one ovsdb-server + ovs-vswitchd (netdev datapath) in a private netns.\n\
         Script side: `ip link add veth peer netns` + 2 x `ip link set up` + `ovs-vsctl add-port \
         tag external_ids` (waits for vswitchd); DEL: `ovs-vsctl --if-exists del-port` + `ip link del`.\n\
         cnibox side: the `ovs` applet (L2, vlan 10), which also waits for vswitchd (cur_cfg) and \
         reads Interface.error.\n\n"
    ));
    md.push_str(
        "| op | ovs-vsctl + ip p50 / p90 | cnibox p50 / p90 | ratio (p50) |\n|---|---|---|---|\n",
    );
    for (op, s, c) in [
        ("ADD", &mut script.0, &mut ours_r.0),
        ("DEL", &mut script.1, &mut ours_r.1),
    ] {
        let (s50, s90, c50, c90) = (pct(s, 50), pct(s, 90), pct(c, 50), pct(c, 90));
        md.push_str(&format!(
            "| {op} | {} / {} | {} / {} | {:.2}x |\n",
            ms(s50),
            ms(s90),
            ms(c50),
            ms(c90),
            s50.as_secs_f64() / c50.as_secs_f64().max(1e-9)
        ));
    }
    md.push_str(&format!(
        "\nFailures: script {}, cnibox {}.\n",
        script.2, ours_r.2
    ));
    print!("{md}");
    if let Some(parent) = Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&out, md).expect("write results");
}
