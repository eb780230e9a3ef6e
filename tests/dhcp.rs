//! dhcp IPAM and its daemon against a real DHCP server: dnsmasq in a
//! "server" namespace on a bridge `br0` (10.99.20.1/24). A "node" namespace
//! holds `up0`, a veth into that bridge, used as the macvlan master (and a
//! bridge `cbr0` wired the same way for the bridge plugin). Containers take
//! leases through our macvlan/bridge applets with `ipam: {type: dhcp}`, or
//! the dhcp plugin directly on a pre-made veth. Daemons (ours, or Debian's
//! Go `/usr/lib/cni/dhcp daemon`) run with their socket and lease directory
//! in a temp dir; every process is killed by PID on drop.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GO_DHCP: &str = "/usr/lib/cni/dhcp";

/// A child process killed (SIGKILL) and reaped on drop.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status();
    }
    /// SIGTERM, then wait (bounded) for the exit.
    fn term(mut self) -> Option<std::process::ExitStatus> {
        self.signal("-TERM");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_dnsmasq() -> bool {
    let found = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .iter()
        .any(|p| Path::new(p).exists());
    if !found {
        skip(SkipKind::Tool, "dnsmasq not installed (dnsmasq-base)");
    }
    found
}

fn have_go_dhcp() -> bool {
    let found = Path::new(GO_DHCP).exists();
    if !found {
        skip(
            SkipKind::Tool,
            "Debian's Go dhcp plugin not installed (containernetworking-plugins)",
        );
    }
    found
}

struct Lab {
    server: TestNs,
    node: TestNs,
    tmp: TempDir,
    dnsmasq: Option<Proc>,
}

impl Lab {
    fn new() -> Lab {
        let server = TestNs::new("dhs");
        let node = TestNs::new("dhn");
        server.ip(&["link", "add", "br0", "type", "bridge"]);
        server.ip(&["addr", "add", "10.99.20.1/24", "dev", "br0"]);
        server.ip(&["link", "set", "br0", "up"]);
        // up0 (node) <-> br0 (server): the macvlan master.
        server.ip(&["link", "add", "s0", "type", "veth", "peer", "name", "up0"]);
        server.ip(&["link", "set", "up0", "netns", &node.name]);
        server.ip(&["link", "set", "s0", "master", "br0", "up"]);
        node.ip(&["link", "set", "up0", "up"]);
        // cbr0 (node bridge) <-> br0: for the bridge plugin.
        node.ip(&["link", "add", "cbr0", "type", "bridge"]);
        node.ip(&["link", "set", "cbr0", "up"]);
        server.ip(&["link", "add", "s1", "type", "veth", "peer", "name", "up1"]);
        server.ip(&["link", "set", "up1", "netns", &node.name]);
        server.ip(&["link", "set", "s1", "master", "br0", "up"]);
        node.ip(&["link", "set", "up1", "master", "cbr0", "up"]);
        Lab {
            server,
            node,
            tmp: TempDir::new("dhcp-lab"),
            dnsmasq: None,
        }
    }

    /// Start dnsmasq on br0 with `range` (`first,last,secs`) and extra args.
    fn dnsmasq(&mut self, range: &str, extra: &[&str]) {
        let leases = self.leases_path();
        let mut cmd = Command::new(ip_path());
        cmd.args(["netns", "exec", &self.server.name, "dnsmasq"])
            .args([
                "--no-daemon",
                "--port=0",
                "--conf-file=/dev/null",
                "--interface=br0",
                "--bind-interfaces",
                "--log-dhcp",
                // No 3-second ping of each address before offering it.
                "--no-ping",
                &format!("--dhcp-range={range}"),
                &format!("--dhcp-leasefile={}", leases.display()),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.tmp.path().join("dnsmasq.log"))
                    .unwrap(),
            ));
        self.dnsmasq = Some(Proc(cmd.spawn().unwrap()));
        std::thread::sleep(Duration::from_millis(300));
    }

    fn leases_path(&self) -> PathBuf {
        self.tmp.path().join("dnsmasq.leases")
    }

    /// dnsmasq's lease lines (expiry, mac, ip, name, client id).
    fn leases(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.leases_path())
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    }

    /// The lease line whose client id is `<cid>/<net>/<ifname>`.
    fn lease_of(&self, cid: &str, net: &str) -> Option<Vec<String>> {
        let want: String = std::iter::once("00".to_string())
            .chain(
                format!("{cid}/{net}/eth0")
                    .bytes()
                    .map(|b| format!("{b:02x}")),
            )
            .collect::<Vec<_>>()
            .join(":");
        self.leases().into_iter().find(|l| l.get(4) == Some(&want))
    }

    fn socket(&self) -> String {
        self.tmp.path().join("dhcp.sock").display().to_string()
    }

    fn lease_dir(&self) -> String {
        self.tmp.path().join("leases").display().to_string()
    }

    /// Our daemon on the lab's socket; waits for the socket.
    fn our_daemon(&self, extra: &[&str]) -> Proc {
        let mut cmd = Command::new(bin_dir().join("dhcp"));
        cmd.arg("daemon")
            .args([
                "-socketpath",
                &self.socket(),
                "-leasedir",
                &self.lease_dir(),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.tmp.path().join("daemon.log"))
                    .unwrap(),
            ));
        self.spawn_daemon(cmd)
    }

    fn go_daemon(&self) -> Proc {
        let mut cmd = Command::new(GO_DHCP);
        cmd.args(["daemon", "-socketpath", &self.socket(), "-timeout", "3s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.spawn_daemon(cmd)
    }

    fn spawn_daemon(&self, mut cmd: Command) -> Proc {
        let _ = std::fs::remove_file(self.socket());
        let p = Proc(cmd.spawn().unwrap());
        let t = Instant::now();
        while !Path::new(&self.socket()).exists() {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "daemon socket never appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn conf(&self, plugin: &str) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": "dhnet",
            "type": plugin,
            "ipam": {"type": "dhcp", "daemonSocketPath": self.socket(), "leaseDir": self.lease_dir()},
        });
        match plugin {
            "macvlan" => c["master"] = json!("up0"),
            "bridge" => c["bridge"] = json!("cbr0"),
            _ => {}
        }
        c
    }

    /// A main plugin call run in the node namespace.
    fn call(&self, plugin: &str, cmd: &str, id: &str, ctr: &TestNs, conf: &Value) -> Reply {
        Call::attach(plugin, cmd, id, &ctr.path(), "eth0")
            .in_ns(&self.node)
            .config(conf)
            .run()
    }

    /// The dhcp plugin alone (`bin`: ours or Go's) on a container's eth0.
    fn ipam(&self, bin: &str, cmd: &str, id: &str, ctr: &TestNs, conf: &Value) -> Reply {
        let mut c = Call::attach("dhcp", cmd, id, &ctr.path(), "eth0").config(conf);
        if bin != "dhcp" {
            c.bin_dir = Path::new(bin).parent().unwrap().to_path_buf();
        }
        c.run()
    }

    /// A container with `eth0`, a veth whose peer is on br0 in the server.
    fn veth_container(&self) -> TestNs {
        let ctr = TestNs::new("dhc");
        let peer = unique("dv");
        self.server
            .ip(&["link", "add", &peer, "type", "veth", "peer", "name", "eth0"]);
        self.server.ip(&["link", "set", "eth0", "netns", &ctr.name]);
        self.server
            .ip(&["link", "set", &peer, "master", "br0", "up"]);
        ctr
    }
}

impl Drop for Lab {
    /// A failed test shows what dnsmasq and the daemon said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for f in ["dnsmasq.log", "daemon.log"] {
                let t = std::fs::read_to_string(self.tmp.path().join(f)).unwrap_or_default();
                eprintln!("--- {f}:\n{t}");
            }
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The result's single address and gateway, and its routes.
fn assert_reference_result(r: &Value) {
    let ips = r["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 1, "{r}");
    let addr = ips[0]["address"].as_str().unwrap();
    assert!(
        addr.starts_with("10.99.20.") && addr.ends_with("/24"),
        "{r}"
    );
    assert_eq!(ips[0]["gateway"], "10.99.20.1", "{r}");
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.99.20.1"}]),
        "{r}"
    );
}

fn addr_of(r: &Value) -> String {
    let a = r["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_string()
}

#[test]
fn go_daemon_serves_our_plugin_add_check_del() {
    require_root!();
    if !have_dnsmasq() || !have_go_dhcp() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let _d = lab.go_daemon();
    let ctr = lab.veth_container();
    let conf = lab.conf("bridge");
    let r = lab.ipam("dhcp", "ADD", "dh0001", &ctr, &conf);
    r.ok();
    assert_reference_result(&r.json());
    assert!(
        lab.lease_of("dh0001", "dhnet").is_some(),
        "{:?}",
        lab.leases()
    );
    // CHECK: the Go daemon lacks DHCP.Check; the plugin falls back to
    // Allocate (answered from the lease it holds) and compares.
    let mut prev = conf.clone();
    prev["prevResult"] = r.json();
    lab.ipam("dhcp", "CHECK", "dh0001", &ctr, &prev).ok();
    lab.ipam("dhcp", "DEL", "dh0001", &ctr, &conf).ok();
}

#[test]
fn our_daemon_serves_go_plugin() {
    require_root!();
    if !have_dnsmasq() || !have_go_dhcp() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "5s"]);
    let ctr = lab.veth_container();
    let conf = lab.conf("bridge");
    let r = lab.ipam(GO_DHCP, "ADD", "dh0002", &ctr, &conf);
    r.ok();
    assert_reference_result(&r.json());
    assert!(lab.lease_of("dh0002", "dhnet").is_some());
    lab.ipam(GO_DHCP, "DEL", "dh0002", &ctr, &conf).ok();
}

#[test]
fn macvlan_lease_release_reaches_server_beyond_reference() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "5s"]);
    let ctr = TestNs::new("dhc");
    let conf = lab.conf("macvlan");
    let r = lab.call("macvlan", "ADD", "mv0001", &ctr, &conf);
    r.ok();
    let res = r.json();
    assert_reference_result(&res);
    let ip = addr_of(&res);
    let lease = lab
        .lease_of("mv0001", "dhnet")
        .expect("dnsmasq shows the lease");
    assert_eq!(lease[2], ip);
    assert!(ctr.ping("10.99.20.1"), "container reaches the server");
    // Saved for a restart: 0600 under the lease dir.
    let files: Vec<_> = std::fs::read_dir(lab.lease_dir())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0].path()) & 0o777, 0o600);

    lab.call("macvlan", "DEL", "mv0001", &ctr, &conf).ok();
    wait_for("dnsmasq to drop the lease", Duration::from_secs(5), || {
        lab.lease_of("mv0001", "dhnet").is_none()
    });
    assert!(std::fs::read_dir(lab.lease_dir()).unwrap().next().is_none());
    assert_eq!(ctr.link_names(), vec!["lo"]);
    // A second DEL succeeds.
    lab.call("macvlan", "DEL", "mv0001", &ctr, &conf).ok();
}

/// Beyond the reference: its bridge deletes the link before IPAM DEL, so
/// the RELEASE never goes out; ours releases first and the server drops
/// the lease.
#[test]
fn bridge_lease_add_del_and_release_reaches_the_server() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "5s"]);
    let ctr = TestNs::new("dhc");
    let conf = lab.conf("bridge");
    let r = lab.call("bridge", "ADD", "br0001", &ctr, &conf);
    r.ok();
    assert_reference_result(&r.json());
    assert!(lab.lease_of("br0001", "dhnet").is_some());
    assert!(ctr.ping("10.99.20.1"));
    lab.call("bridge", "DEL", "br0001", &ctr, &conf).ok();
    assert_eq!(ctr.link_names(), vec!["lo"]);
    wait_for("dnsmasq to drop the lease", Duration::from_secs(5), || {
        lab.lease_of("br0001", "dhnet").is_none()
    });
}

#[test]
fn bounded_add_without_server_beyond_reference() {
    require_root!();
    let lab = Lab::new();
    let _d = lab.our_daemon(&["-timeout", "2s"]);
    let ctr = TestNs::new("dhc");
    let conf = lab.conf("macvlan");
    let t = Instant::now();
    let r = lab.call("macvlan", "ADD", "nos001", &ctr, &conf);
    r.fails();
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t.elapsed()
    );
    assert!(r.stdout.contains("no DHCPOFFER"), "{}", r.stdout);
    assert_eq!(ctr.link_names(), vec!["lo"], "no leaked link");
}

#[test]
fn one_address_range_second_add_fails_cleanly() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.10,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "5s"]);
    let (c1, c2) = (TestNs::new("dhc"), TestNs::new("dhc"));
    let conf = lab.conf("macvlan");
    let r = lab.call("macvlan", "ADD", "one001", &c1, &conf);
    r.ok();
    assert_eq!(addr_of(&r.json()), "10.99.20.10");
    let r2 = lab.call("macvlan", "ADD", "one002", &c2, &conf);
    r2.fails();
    assert!(r2.stdout.contains("DHCP"), "{}", r2.stdout);
    assert_eq!(c2.link_names(), vec!["lo"]);
    lab.call("macvlan", "DEL", "one001", &c1, &conf).ok();
}

/// dnsmasq leases last at least 2 minutes and it always sends T1 = half of
/// that (configured T1 is ignored), so a renewal comes after ~60 s.
const RENEWAL_WAIT: Duration = Duration::from_secs(80);

#[test]
fn daemon_restart_resumes_renewing_beyond_reference() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let d = lab.our_daemon(&["-timeout", "3s"]);
    let ctr = TestNs::new("dhc");
    let conf = lab.conf("macvlan");
    lab.call("macvlan", "ADD", "rn0001", &ctr, &conf).ok();
    let first: u64 = lab.lease_of("rn0001", "dhnet").unwrap()[0].parse().unwrap();
    assert!(
        d.term().is_some_and(|s| s.success()),
        "clean exit on SIGTERM"
    );
    assert!(!Path::new(&lab.socket()).exists(), "socket removed");
    // The lease survived in the lease directory.
    assert_eq!(std::fs::read_dir(lab.lease_dir()).unwrap().count(), 1);
    let _d2 = lab.our_daemon(&["-timeout", "3s"]);
    wait_for("a renewal after restart", RENEWAL_WAIT, || {
        lab.lease_of("rn0001", "dhnet")
            .map(|l| l[0].parse::<u64>().unwrap() >= first + 30)
            .unwrap_or(false)
    });
    lab.call("macvlan", "DEL", "rn0001", &ctr, &conf).ok();
    wait_for("the release", Duration::from_secs(5), || {
        lab.lease_of("rn0001", "dhnet").is_none()
    });
}

#[test]
fn del_with_daemon_down_sends_release_later_beyond_reference() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let d = lab.our_daemon(&["-timeout", "3s"]);
    let ctr = TestNs::new("dhc");
    // Plugin DEL without the main plugin, so the address stays on eth0
    // (as with macvlan, whose DEL calls IPAM before removing the link).
    lab.call("macvlan", "ADD", "pd0001", &ctr, &conf_for(&lab))
        .ok();
    assert!(d.term().is_some());
    let conf = lab.conf("macvlan");
    lab.ipam("dhcp", "DEL", "pd0001", &ctr, &conf).ok();
    assert!(lab.lease_of("pd0001", "dhnet").is_some());
    let _d2 = lab.our_daemon(&["-timeout", "3s"]);
    wait_for("the pending release", Duration::from_secs(5), || {
        lab.lease_of("pd0001", "dhnet").is_none()
    });
    lab.call("macvlan", "DEL", "pd0001", &ctr, &conf).ok();
}

fn conf_for(lab: &Lab) -> Value {
    lab.conf("macvlan")
}

#[test]
fn check_compares_lease_with_prev_result_beyond_reference() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "3s"]);
    let ctr = lab.veth_container();
    let conf = lab.conf("bridge");
    let r = lab.ipam("dhcp", "ADD", "ck0001", &ctr, &conf);
    r.ok();
    let mut good = conf.clone();
    good["prevResult"] = r.json();
    lab.ipam("dhcp", "CHECK", "ck0001", &ctr, &good).ok();
    let mut bad = good.clone();
    bad["prevResult"]["ips"][0]["address"] = json!("10.99.20.200/24");
    let r = lab.ipam("dhcp", "CHECK", "ck0001", &ctr, &bad);
    r.fails();
    assert!(r.stdout.contains("not in prevResult"), "{}", r.stdout);
    // A CHECK for a lease the daemon does not hold fails fast, no new lease.
    let t = Instant::now();
    lab.ipam("dhcp", "CHECK", "other1", &ctr, &good).fails();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(lab.lease_of("other1", "dhnet").is_none());
    lab.ipam("dhcp", "DEL", "ck0001", &ctr, &conf).ok();
}

#[test]
fn daemon_killed_during_add_is_a_clear_error() {
    require_root!();
    let lab = Lab::new();
    let d = lab.our_daemon(&["-timeout", "20s"]);
    let ctr = TestNs::new("dhc");
    let conf = lab.conf("macvlan");
    let pid = d.pid();
    let ctr_name = ctr.name.clone();
    let killer = std::thread::spawn(move || {
        // macvlan makes the link before it calls IPAM: once eth0 exists the
        // Allocate is under way (no server, 20 s bound).
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            let out = Command::new(ip_path())
                .args(["-n", &ctr_name, "link", "show", "eth0"])
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let t = Instant::now();
    let r = lab.call("macvlan", "ADD", "kd0001", &ctr, &conf);
    killer.join().unwrap();
    drop(d);
    r.fails();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(r.stdout.contains("DHCP.Allocate"), "{}", r.stdout);
    assert_eq!(ctr.link_names(), vec!["lo"], "no leaked link");
}

#[test]
fn daemon_flags_pidfile_and_sigterm_cleanup() {
    require_root!();
    let lab = Lab::new();
    let pidfile = lab.tmp.path().join("d.pid");
    let d = lab.our_daemon(&["-pidfile", pidfile.to_str().unwrap(), "--timeout=1s"]);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        d.pid().to_string()
    );
    assert!(d.term().is_some_and(|s| s.success()));
    assert!(!pidfile.exists());
    assert!(!Path::new(&lab.socket()).exists());
    // Go's flag errors.
    let out = Command::new(bin_dir().join("dhcp"))
        .args(["daemon", "-nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined: -nope"));
}

#[test]
fn no_daemon_add_fails_with_go_text() {
    let lab_tmp = TempDir::new("dhcp-nod");
    let sock = lab_tmp.path().join("none.sock");
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
        "ipam": {"type": "dhcp", "daemonSocketPath": sock}});
    let r = Call::attach("dhcp", "ADD", "x1", "/run/netns/cnibox-dhcp-none", "eth0")
        .config(&conf)
        .run();
    r.fails();
    assert!(
        r.stdout.contains(&format!(
            "error dialing DHCP daemon: dial unix {}: connect: no such file or directory",
            sock.display()
        )),
        "{}",
        r.stdout
    );
}

#[test]
fn status_reports_a_missing_daemon_beyond_reference() {
    require_root!();
    let lab = Lab::new();
    let mut conf = lab.conf("macvlan");
    conf["cniVersion"] = json!("1.1.0");
    let r = Call::new("dhcp", "STATUS").config(&conf).run();
    r.fails();
    assert_eq!(r.err_code(), 50, "{}", r.stdout);
    let _d = lab.our_daemon(&[]);
    Call::new("dhcp", "STATUS").config(&conf).run().ok();
}

#[test]
fn systemd_socket_activation() {
    require_root!();
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        skip(
            SkipKind::Tool,
            "systemd-socket-activate not installed (systemd)",
        );
        return;
    }
    let lab = Lab::new();
    let cmd = {
        let mut c = Command::new("systemd-socket-activate");
        c.args(["-l", &lab.socket()])
            .arg(bin_dir().join("dhcp"))
            .args(["daemon", "-socketpath", "/nonexistent/never.sock"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let _d = lab.spawn_daemon(cmd);
    // Any call is answered through the inherited socket: a Release of an
    // unknown lease succeeds.
    let ctr = TestNs::new("dhc");
    lab.ipam("dhcp", "DEL", "sa0001", &ctr, &lab.conf("bridge"))
        .ok();
}

#[test]
fn renewal_nak_takes_a_new_lease() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.20,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "3s"]);
    let ctr = TestNs::new("dhc");
    let conf = lab.conf("macvlan");
    let r = lab.call("macvlan", "ADD", "nk0001", &ctr, &conf);
    r.ok();
    let old = addr_of(&r.json());
    // The server forgets everything and now owns another range: the renewal
    // gets DHCPNAK and the daemon starts over with DISCOVER.
    drop(lab.dnsmasq.take());
    let _ = std::fs::remove_file(lab.leases_path());
    lab.dnsmasq("10.99.20.30,10.99.20.40,120", &["--dhcp-authoritative"]);
    wait_for("a lease in the new range", RENEWAL_WAIT, || {
        lab.lease_of("nk0001", "dhnet")
            .is_some_and(|l| l[2] != old && l[2].starts_with("10.99.20.3"))
    });
    let log = std::fs::read_to_string(lab.tmp.path().join("dnsmasq.log")).unwrap();
    assert!(log.contains("DHCPNAK"), "{log}");
    lab.call("macvlan", "DEL", "nk0001", &ctr, &conf).ok();
}

#[test]
fn concurrent_adds_for_one_attachment_share_one_exchange() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "5s"]);
    let ctr = lab.veth_container();
    let conf = lab.conf("bridge");
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| lab.ipam("dhcp", "ADD", "cc0001", &ctr, &conf)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: Vec<String> = replies.iter().map(|r| addr_of(&r.ok().json())).collect();
    assert!(addrs.iter().all(|a| *a == addrs[0]), "{addrs:?}");
    let log = std::fs::read_to_string(lab.tmp.path().join("dnsmasq.log")).unwrap();
    assert_eq!(log.matches("DHCPACK").count(), 1, "{log}");
    lab.ipam("dhcp", "DEL", "cc0001", &ctr, &conf).ok();
}

#[test]
fn provide_host_name_from_cni_args() {
    require_root!();
    if !have_dnsmasq() {
        return;
    }
    let mut lab = Lab::new();
    lab.dnsmasq("10.99.20.10,10.99.20.50,120", &[]);
    let _d = lab.our_daemon(&["-timeout", "5s"]);
    let ctr = lab.veth_container();
    let mut conf = lab.conf("bridge");
    conf["ipam"]["provide"] = json!([{"option": "host-name", "fromArg": "K8S_POD_NAME"}]);
    Call::attach("dhcp", "ADD", "hn0001", &ctr.path(), "eth0")
        .var("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web-1")
        .config(&conf)
        .run()
        .ok();
    assert_eq!(lab.lease_of("hn0001", "dhnet").unwrap()[3], "web-1");
    lab.ipam("dhcp", "DEL", "hn0001", &ctr, &conf).ok();
}
