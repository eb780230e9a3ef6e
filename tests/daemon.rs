//! Thick mode: `cnibox daemon` on a unix socket and the shim (a config
//! with `cniboxDaemon`). Daemons are started by each test inside the
//! namespace that plays the node, on a socket in a temp dir, and stopped
//! by PID (SIGTERM, then SIGKILL) when the guard drops.

mod common;
use common::node::{with_prev, Node};
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running `cnibox daemon`, killed by PID on drop.
struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    pidfile: PathBuf,
    _dir: Option<TempDir>,
}

impl Daemon {
    /// Start in `host` (a netns playing the node) or here, with its socket
    /// in a fresh temp dir's `run/` subdirectory.
    fn start(host: Option<&TestNs>, extra: &[&str]) -> Daemon {
        let dir = TempDir::new("cniboxd");
        let socket = dir.path().join("run").join("cnibox.sock");
        let pidfile = dir.path().join("cnibox.pid");
        let mut d = Daemon::spawn(host, &socket, &pidfile, extra, None);
        d._dir = Some(dir);
        d
    }

    /// Start on a given socket (a restart), or with a whole command line
    /// in front (`wrap`: e.g. `unshare -m sh -c ...`).
    fn spawn(
        host: Option<&TestNs>,
        socket: &Path,
        pidfile: &Path,
        extra: &[&str],
        wrap: Option<Vec<String>>,
    ) -> Daemon {
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = host {
            argv.extend(["ip", "netns", "exec", &ns.name].map(String::from));
        }
        match wrap {
            Some(w) => argv.extend(w),
            None => {
                argv.push(cnibox().display().to_string());
                argv.push("daemon".into());
                argv.push(format!("--socket={}", socket.display()));
                argv.push(format!("--pidfile={}", pidfile.display()));
                argv.extend(extra.iter().map(|s| s.to_string()));
            }
        }
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let d = Daemon {
            child: Some(child),
            socket: socket.to_path_buf(),
            pidfile: pidfile.to_path_buf(),
            _dir: None,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not listen on {}", self.socket.display());
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// SIGTERM and the exit status (None: still running after 20 s).
    fn terminate(&mut self) -> Option<i32> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let child = self.child.as_mut().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One HTTP exchange; (status, body).
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        http(&self.socket, method, path, body)
    }

    /// The call `c` through `POST /cni` (applet named explicitly), as a
    /// Reply of what the shim would print and exit with.
    fn cni(&self, c: &Call) -> Reply {
        let env: HashMap<&String, &String> = c
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("CNI_"))
            .collect();
        let body = json!({
            "applet": c.applet,
            "env": env,
            "stdin": String::from_utf8(c.stdin.clone()).unwrap(),
        });
        let (status, text) = self.http("POST", "/cni", body.to_string().as_bytes());
        assert_eq!(status, 200, "POST /cni: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        Reply {
            status: v["exitCode"].as_i64().unwrap() as i32,
            stdout: v["stdout"].as_str().unwrap().to_string(),
            stderr: String::new(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() && self.terminate().is_none() {
            self.kill9();
        }
    }
}

/// Write a request with `Connection: close` and read the whole answer.
fn http(socket: &Path, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Random values (MACs, `veth…` host names) replaced by placeholders
/// numbered in order of first appearance: everything else must be equal
/// byte for byte.
fn normalise(s: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let Some(j) = rest.find('"') else { break };
        let tok = &rest[..j];
        let is_mac = tok.len() == 17
            && tok
                .split(':')
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if is_mac || (tok.starts_with("veth") && tok.len() > 4) {
            let n = seen.iter().position(|t| t == tok).unwrap_or_else(|| {
                seen.push(tok.to_string());
                seen.len() - 1
            });
            out.push_str(&format!("RANDOM{n}"));
        } else {
            out.push_str(tok);
        }
        out.push('"');
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    out
}

/// The node every parity case runs on: master links for macvlan, a
/// container netns, a data dir.
struct Parity {
    node: Node,
    daemon: Daemon,
}

/// One applet configuration: the applet, its config at a version, and
/// what the container needs first.
struct Case {
    applet: &'static str,
    conf: fn(&Node, &str) -> Value,
    /// Chained: the container needs `eth0` and the config a prevResult.
    chained: bool,
}

fn hl(node: &Node, subnet: &str) -> Value {
    json!({"type": "host-local", "ranges": [[{"subnet": subnet}]],
           "routes": [{"dst": "0.0.0.0/0"}], "dataDir": node.data.str()})
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            applet: "ptp",
            conf: |n, v| json!({"cniVersion": v, "name": "dptp", "type": "ptp", "ipMasq": false, "mtu": 1400, "ipam": hl(n, "10.61.0.0/24")}),
            chained: false,
        },
        Case {
            applet: "bridge",
            conf: |n, v| json!({"cniVersion": v, "name": "dbr", "type": "bridge", "bridge": "dbr0", "isGateway": true, "ipam": hl(n, "10.62.0.0/24")}),
            chained: false,
        },
        Case {
            applet: "host-local",
            conf: |n, v| json!({"cniVersion": v, "name": "dhl", "ipam": hl(n, "10.63.0.0/24")}),
            chained: false,
        },
        Case {
            applet: "static",
            conf: |_, v| json!({"cniVersion": v, "name": "dst", "ipam": {"type": "static", "addresses": [{"address": "10.64.0.5/24", "gateway": "10.64.0.1"}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.64.0.53"]}}}),
            chained: false,
        },
        Case {
            applet: "loopback",
            conf: |_, v| json!({"cniVersion": v, "name": "dlo", "type": "loopback"}),
            chained: false,
        },
        Case {
            applet: "macvlan",
            conf: |n, v| json!({"cniVersion": v, "name": "dmv", "type": "macvlan", "master": "dmv0", "ipam": hl(n, "10.65.0.0/24")}),
            chained: false,
        },
        Case {
            applet: "tuning",
            conf: |n, v| json!({"cniVersion": v, "name": "dtu", "type": "tuning", "mtu": 1300, "dataDir": n.data.str()}),
            chained: true,
        },
        Case {
            applet: "portmap",
            conf: |n, v| json!({"cniVersion": v, "name": "dpm", "type": "portmap", "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}, "dataDir": n.data.path().join("portmap")}),
            chained: true,
        },
    ]
}

const VERSIONS: [&str; 5] = ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

impl Parity {
    fn new() -> Parity {
        let node = Node::new("daemon");
        node.host.ip(&[
            "link", "add", "dmv0", "type", "veth", "peer", "name", "dmv0p",
        ]);
        node.host.ip(&["link", "set", "dmv0", "up"]);
        // A bridge with a set MAC: a fresh one takes its first port's MAC,
        // which would differ between the direct run and the daemon's.
        node.host.ip(&[
            "link",
            "add",
            "dbr0",
            "address",
            "02:00:00:00:0b:01",
            "type",
            "bridge",
        ]);
        let daemon = Daemon::start(Some(&node.host), &[]);
        Parity { node, daemon }
    }

    fn call(&self, applet: &str, cmd: &str, ctr: &TestNs, conf: &Value) -> Call {
        Call::attach(applet, cmd, "parity1", &ctr.path(), "eth0")
            .in_ns(&self.node.host)
            .config(conf)
    }

    /// ADD, CHECK (0.4.0 and later), DEL of `case` at `version`, run by
    /// `run` (direct or daemon); the replies in order.
    fn sequence(
        &self,
        case: &Case,
        version: &str,
        ctr: &TestNs,
        run: &dyn Fn(&Call) -> Reply,
    ) -> Vec<(String, Reply)> {
        let mut conf = (case.conf)(&self.node, version);
        if case.chained {
            let prev = json!({"cniVersion": version,
                "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:05", "sandbox": ctr.path()}],
                "ips": [{"address": "10.67.0.5/24", "interface": 0}]});
            conf = with_prev(&conf, &prev);
        }
        let mut out = Vec::new();
        let add = run(&self.call(case.applet, "ADD", ctr, &conf));
        let mut check_conf = conf.clone();
        if add.status == 0
            && !case.chained
            && case.applet != "host-local"
            && case.applet != "static"
        {
            check_conf = with_prev(&conf, &add.json());
        }
        out.push(("ADD".to_string(), add));
        if version != "0.3.1" && version != "0.2.0" {
            out.push((
                "CHECK".into(),
                run(&self.call(case.applet, "CHECK", ctr, &check_conf)),
            ));
        }
        out.push((
            "DEL".into(),
            run(&self.call(case.applet, "DEL", ctr, &conf)),
        ));
        out.push((
            "DEL again".into(),
            run(&self.call(case.applet, "DEL", ctr, &conf)),
        ));
        out
    }
}

/// Every applet and version: ADD/CHECK/DEL through the daemon prints the
/// same bytes (random MACs and veth names aside) and exits with the same
/// status as a direct exec on the same node, from the same state.
#[test]
fn every_applet_and_version_through_the_daemon_matches_a_direct_exec() {
    require_root!();
    let p = Parity::new();
    let mut diffs = Vec::new();
    let mut compared = 0;
    for case in cases() {
        for version in VERSIONS {
            // A 0.2.0 prevResult has no interfaces for chained plugins to use.
            if case.chained && version == "0.2.0" {
                continue;
            }
            let ctr = TestNs::new("dpc");
            if case.chained {
                ctr.ip(&[
                    "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
                ]);
            }
            let direct = p.sequence(&case, version, &ctr, &|c| c.run());
            // Same starting state: host-local's last-reserved marker gone.
            let _ = std::fs::remove_dir_all(
                p.node
                    .data
                    .path()
                    .join((case.conf)(&p.node, version)["name"].as_str().unwrap()),
            );
            let daemon = p.sequence(&case, version, &ctr, &|c| p.daemon.cni(c));
            let _ = std::fs::remove_dir_all(
                p.node
                    .data
                    .path()
                    .join((case.conf)(&p.node, version)["name"].as_str().unwrap()),
            );
            for ((cmd, d), (_, t)) in direct.iter().zip(&daemon) {
                compared += 1;
                if d.status != t.status || normalise(&d.stdout) != normalise(&t.stdout) {
                    diffs.push(format!(
                        "{} {version} {cmd}: direct {} {:?}\n  daemon {} {:?}\n  stderr {}",
                        case.applet, d.status, d.stdout, t.status, t.stdout, d.stderr
                    ));
                }
            }
            // The direct ADD worked (a parity of two failures proves little).
            assert_eq!(
                direct[0].1.status, 0,
                "{} {version} direct ADD: {:?} {}",
                case.applet, direct[0].1.stdout, direct[0].1.stderr
            );
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {compared} differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert!(compared >= 100, "compared {compared}");
}

/// Errors and VERSION: byte-identical without any normalising.
#[test]
fn errors_and_version_through_the_daemon_are_byte_identical() {
    require_root!();
    let p = Parity::new();
    let ctr = TestNs::new("dpe");
    let good = json!({"cniVersion": "1.0.0", "name": "derr", "type": "ptp",
                      "ipam": hl(&p.node, "10.68.0.0/24")});
    let calls = vec![
        p.call("ptp", "VERSION", &ctr, &good),
        p.call("bridge", "VERSION", &ctr, &good),
        p.call("ptp", "ADD", &ctr, &good).unset("CNI_NETNS"),
        p.call("ptp", "ADD", &ctr, &good).var("CNI_CONTAINERID", "../x"),
        p.call("ptp", "ADD", &ctr, &good).var("CNI_IFNAME", "a/b"),
        p.call("ptp", "BOGUS", &ctr, &good),
        p.call("ptp", "ADD", &ctr, &good).stdin("{not json"),
        p.call("ptp", "ADD", &ctr, &json!({"cniVersion": "9.9.9", "name": "x", "type": "ptp"})),
        p.call("ptp", "ADD", &ctr, &json!({"cniVersion": "1.0.0", "name": "x", "type": "ptp"})),
        p.call("macvlan", "ADD", &ctr, &json!({"cniVersion": "1.0.0", "name": "x", "type": "macvlan", "master": "nosuch0", "ipam": hl(&p.node, "10.69.0.0/24")})),
        p.call("ptp", "ADD", &ctr, &good).var("CNI_NETNS", "/run/netns/nosuch-dpe"),
        p.call("ptp", "CHECK", &ctr, &good),
        p.call("ptp", "DEL", &ctr, &good),
        p.call("ptp", "STATUS", &ctr, &json!({"cniVersion": "1.1.0", "name": "x", "type": "ptp", "ipam": hl(&p.node, "10.68.0.0/24")})),
        p.call("ptp", "GC", &ctr, &json!({"cniVersion": "1.0.0", "name": "x", "type": "ptp"})),
    ];
    for c in &calls {
        let d = c.run();
        let t = p.daemon.cni(c);
        assert_eq!(
            (d.status, &d.stdout),
            (t.status, &t.stdout),
            "{} {:?}",
            c.applet,
            c.env.get("CNI_COMMAND")
        );
    }
    assert!(p.node.reservations("derr").is_empty());
}

fn mode_of(p: &Path) -> u32 {
    mode(p)
}

/// Socket 0600 in a 0700 directory, pidfile, /status and /metrics, bad
/// requests refused, SIGTERM: exit 0, socket and pidfile gone.
#[test]
fn socket_modes_pidfile_status_metrics_and_clean_stop() {
    let mut d = Daemon::start(None, &[]);
    assert_eq!(mode_of(d.socket.parent().unwrap()), 0o700);
    assert_eq!(mode_of(&d.socket), 0o600);
    let pid = std::fs::read_to_string(&d.pidfile).unwrap();
    assert_eq!(pid.trim(), d.pid().to_string());

    let version = Call::new("ptp", "VERSION").stdin("{}");
    let r = d.cni(&version);
    assert_eq!((r.status, r.stdout.clone()), {
        let direct = version.run();
        (direct.status, direct.stdout)
    });

    let (st, body) = d.http("GET", "/status", b"");
    assert_eq!(st, 200);
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["pid"], d.pid());
    assert_eq!(s["inFlight"], 0);
    assert!(s["uptimeSeconds"].is_u64());
    let applets: Vec<&str> = s["applets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "ptp",
        "bridge",
        "host-local",
        "static",
        "loopback",
        "macvlan",
        "tuning",
        "portmap",
    ] {
        assert!(applets.contains(&a), "{a} in {applets:?}");
    }
    assert!(!applets.contains(&"tool"));

    let (st, m) = d.http("GET", "/metrics", b"");
    assert_eq!(st, 200);
    assert!(
        m.contains(
            "cnibox_daemon_requests_total{applet=\"ptp\",command=\"VERSION\",result=\"ok\"} 1\n"
        ),
        "{m}"
    );
    assert!(m.contains("cnibox_daemon_request_duration_seconds_count{command=\"VERSION\"} 1\n"));
    assert!(m.contains("# TYPE cnibox_daemon_in_flight gauge\n"));

    // Refused: unknown endpoint, wrong method, a non-CNI_ variable, an
    // unknown applet, an oversized body.
    assert_eq!(d.http("GET", "/nope", b"").0, 404);
    assert_eq!(d.http("GET", "/cni", b"").0, 405);
    let bad_env = json!({"applet": "ptp", "env": {"LD_PRELOAD": "/x.so"}, "stdin": "{}"});
    assert_eq!(
        d.http("POST", "/cni", bad_env.to_string().as_bytes()).0,
        400
    );
    let no_applet = json!({"applet": "tool", "env": {"CNI_COMMAND": "VERSION"}, "stdin": "{}"});
    assert_eq!(
        d.http("POST", "/cni", no_applet.to_string().as_bytes()).0,
        404
    );
    let huge = vec![b' '; 9 << 20];
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(
        format!(
            "POST /cni HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            huge.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    // `config` as a JSON value works too (curl-friendly).
    let (st, body) = d.http(
        "POST",
        "/cni",
        br#"{"env":{"CNI_COMMAND":"VERSION"},"config":{"cniVersion":"1.0.0","name":"n","type":"loopback"}}"#,
    );
    assert_eq!(st, 200);
    assert!(body.contains("supportedVersions"), "{body}");

    assert_eq!(d.terminate(), Some(0));
    assert!(!d.socket.exists(), "socket removed");
    assert!(!d.pidfile.exists(), "pidfile removed");
}

/// A second daemon on a live socket refuses to start; one on a stale
/// socket (its daemon was killed) takes it over.
#[test]
fn live_socket_is_not_stolen_stale_one_is_replaced() {
    let mut d = Daemon::start(None, &[]);
    let out = Command::new(cnibox())
        .args(["daemon", "--socket"])
        .arg(&d.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    d.kill9();
    assert!(d.socket.exists(), "a killed daemon leaves its socket");
    let d2 = Daemon::spawn(None, &d.socket, &d.pidfile, &[], None);
    assert_eq!(d2.http("GET", "/status", b"").0, 200);
}

/// Socket activation: `systemd-socket-activate` binds the socket and execs
/// the daemon with it on fd 3 (LISTEN_FDS=1, LISTEN_PID its pid) when the
/// first client connects. The daemon serves it, and at SIGTERM leaves it
/// in place (systemd owns it).
#[test]
fn socket_activation_uses_the_passed_socket() {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        skip(SkipKind::Tool, "systemd-socket-activate (apt: systemd)");
        return;
    }
    let dir = TempDir::new("cniboxd-sa");
    let path = dir.path().join("act.sock");
    let unused = dir.path().join("unused/never.sock");
    let child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&path)
        .arg(cnibox())
        .args(["daemon", "--socket"])
        .arg(&unused)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut d = Daemon {
        child: Some(child),
        socket: path.clone(),
        pidfile: dir.path().join("unused.pid"),
        _dir: None,
    };
    d.wait_ready();
    let (st, body) = d.http("GET", "/status", b"");
    assert_eq!(st, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["pid"], d.pid(), "the activated process serves");
    assert_eq!(d.terminate(), Some(0));
    assert!(path.exists(), "a socket systemd owns is not removed");
    assert!(!unused.exists() && !unused.parent().unwrap().exists());
}

/// A ptp config for the shim tests.
fn shim_conf(node: &Node, socket: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": "dshim", "type": "ptp", "ipMasq": false,
           "cniboxDaemon": socket, "ipam": hl(node, "10.70.0.0/16")})
}

/// No daemon at the socket (missing, or stale after a kill): code 11
/// within a bounded time, nothing done.
#[test]
fn shim_without_a_daemon_answers_code_11_quickly() {
    require_root!();
    let node = Node::new("daemon");
    let ctr = TestNs::new("dsa");
    let missing = node.data.path().join("none.sock");
    let started = Instant::now();
    let r = Call::attach("ptp", "ADD", "shim0", &ctr.path(), "eth0")
        .in_ns(&node.host)
        .config(&shim_conf(&node, &missing))
        .run();
    assert_eq!(r.err_code(), 11, "{}", r.stdout);
    assert!(r.json()["msg"].as_str().unwrap().contains("not reachable"));
    assert!(started.elapsed() < Duration::from_secs(6));
    // Stale: a socket file with nobody listening.
    let stale = node.data.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let r = Call::attach("ptp", "DEL", "shim0", &ctr.path(), "eth0")
        .in_ns(&node.host)
        .config(&shim_conf(&node, &stale))
        .run();
    assert_eq!(r.err_code(), 11, "{}", r.stdout);
    assert_eq!(ctr.link_names(), vec!["lo"]);
    assert!(node.reservations("dshim").is_empty());
    // A cniboxDaemon that is not a string is a config error.
    let mut bad = shim_conf(&node, &stale);
    bad["cniboxDaemon"] = json!(5);
    let r = Call::attach("ptp", "ADD", "shim0", &ctr.path(), "eth0")
        .in_ns(&node.host)
        .config(&bad)
        .run();
    assert_eq!(r.err_code(), 7);
}

/// One container of the parallel runs: its netns and ADD/DEL calls
/// through the shim.
fn shim_call(node: &Node, socket: &Path, cmd: &str, id: &str, ns: &TestNs) -> Reply {
    Call::attach("ptp", cmd, id, &ns.path(), "eth0")
        .config(&shim_conf(node, socket))
        .run()
}

fn assert_no_leaks(node: &Node, ctrs: &[TestNs]) {
    for c in ctrs {
        assert_eq!(c.link_names(), vec!["lo"], "container {} links", c.name);
    }
    assert!(
        node.reservations("dshim").is_empty(),
        "reservations left: {:?}",
        node.reservations("dshim")
    );
    let left = node.leftover_links(|l| l.starts_with("veth"));
    assert!(left.is_empty(), "host veths left: {left:?}");
}

/// 100 ADDs over 8 workers through the shim: 0 failures; each container
/// has its eth0 and a distinct address; 100 DELs: 0 leaks. The shim runs
/// outside the node's netns (it does no netlink): the daemon does the work.
#[test]
fn hundred_adds_over_eight_workers_through_the_shim() {
    require_root!();
    let node = Node::new("daemon");
    let d = Daemon::start(Some(&node.host), &[]);
    let ctrs: Vec<TestNs> = (0..100).map(|_| TestNs::new("dsh")).collect();
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let ips = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(ns) = ctrs.get(i) else { break };
                let r = shim_call(&node, &d.socket, "ADD", &format!("c{i}"), ns);
                if r.status != 0 {
                    failures.lock().unwrap().push(format!("c{i}: {}", r.stdout));
                    continue;
                }
                ips.lock()
                    .unwrap()
                    .push(r.json()["ips"][0]["address"].as_str().unwrap().to_string());
            });
        }
    });
    assert_eq!(failures.into_inner().unwrap(), Vec::<String>::new());
    let mut ips = ips.into_inner().unwrap();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 100, "distinct addresses");
    for c in &ctrs {
        assert!(c.link_names().contains(&"eth0".to_string()), "{}", c.name);
    }
    let (_, m) = d.http("GET", "/metrics", b"");
    assert!(
        m.contains(
            "cnibox_daemon_requests_total{applet=\"ptp\",command=\"ADD\",result=\"ok\"} 100\n"
        ),
        "{m}"
    );
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(ns) = ctrs.get(i) else { break };
                shim_call(&node, &d.socket, "DEL", &format!("c{i}"), ns).ok();
            });
        }
    });
    assert_no_leaks(&node, &ctrs);
}

/// The daemon killed with SIGKILL in the middle of a stream of ADDs, then
/// restarted: calls caught in flight or in the gap answer code 11 (never
/// anything else), a DEL+ADD retry succeeds, and after DEL of everything
/// nothing has leaked.
#[test]
fn daemon_killed_mid_stream_then_restarted_coded_errors_and_retry() {
    require_root!();
    let node = Node::new("daemon");
    let mut d = Daemon::start(Some(&node.host), &[]);
    let (socket, pidfile) = (d.socket.clone(), d.pidfile.clone());
    let ctrs: Vec<TestNs> = (0..48).map(|_| TestNs::new("dsk")).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let coded = AtomicUsize::new(0);
    let other = std::sync::Mutex::new(Vec::new());
    let restarted = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(ns) = ctrs.get(i) else { break };
                let id = format!("k{i}");
                let until = Instant::now() + Duration::from_secs(60);
                loop {
                    let r = shim_call(&node, &socket, "ADD", &id, ns);
                    if r.status == 0 {
                        break;
                    }
                    match r.json()["code"].as_u64() {
                        Some(11) => {
                            coded.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => other.lock().unwrap().push(format!("{id}: {}", r.stdout)),
                    }
                    assert!(Instant::now() < until, "{id} never succeeded");
                    std::thread::sleep(Duration::from_millis(100));
                    // The retry: DEL (may also meet the gap), then ADD.
                    while shim_call(&node, &socket, "DEL", &id, ns).status != 0 {
                        assert!(Instant::now() < until, "{id} DEL never succeeded");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Kill once a third are done, restart after a pause.
        s.spawn(|| {
            while done.load(Ordering::SeqCst) < 16 {
                std::thread::sleep(Duration::from_millis(5));
            }
            d.kill9();
            std::thread::sleep(Duration::from_millis(500));
            *restarted.lock().unwrap() = Some(Daemon::spawn(
                Some(&node.host),
                &socket,
                &pidfile,
                &[],
                None,
            ));
        });
    });
    assert_eq!(
        other.into_inner().unwrap(),
        Vec::<String>::new(),
        "only code 11 errors"
    );
    assert!(
        coded.load(Ordering::SeqCst) > 0,
        "the kill was seen by some call"
    );
    for c in &ctrs {
        assert!(c.link_names().contains(&"eth0".to_string()), "{}", c.name);
    }
    for (i, c) in ctrs.iter().enumerate() {
        shim_call(&node, &socket, "DEL", &format!("k{i}"), c).ok();
    }
    assert_no_leaks(&node, &ctrs);
    drop(restarted);
}

/// SIGTERM while an ADD is in flight (held on host-local's lock by the
/// test): the ADD finishes and is answered, then the daemon exits 0;
/// calls after that get code 11.
#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    require_root!();
    let node = Node::new("daemon");
    let mut d = Daemon::start(Some(&node.host), &[]);
    let ctr = TestNs::new("dst");
    // Make the network's dir and lock, then hold the lock for 2 s.
    let warm = TestNs::new("dsw");
    shim_call(&node, &d.socket, "ADD", "warm", &warm).ok();
    shim_call(&node, &d.socket, "DEL", "warm", &warm).ok();
    let lock = node.data.path().join("dshim").join("lock");
    assert!(lock.exists(), "host-local lock at {}", lock.display());
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "2"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::thread::scope(|s| {
        let add = s.spawn(|| shim_call(&node, &d.socket, "ADD", "term", &ctr));
        // Wait until the daemon counts it in flight.
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let (_, st) = d.http("GET", "/status", b"");
            if serde_json::from_str::<Value>(&st).unwrap()["inFlight"] == 1 {
                break;
            }
            assert!(Instant::now() < until, "ADD never in flight");
            std::thread::sleep(Duration::from_millis(20));
        }
        d.signal(nix::sys::signal::Signal::SIGTERM);
        std::thread::sleep(Duration::from_millis(200));
        // Stopped accepting: a new call is refused with code 11.
        let late = shim_call(&node, &d.socket, "ADD", "late", &TestNs::new("dsl"));
        assert_eq!(late.err_code(), 11, "{}", late.stdout);
        let r = add.join().unwrap();
        r.ok();
        assert_eq!(r.json()["interfaces"][1]["sandbox"], ctr.path());
    });
    let _ = holder.wait();
    assert_eq!(d.terminate(), Some(0));
    assert!(ctr.link_names().contains(&"eth0".to_string()));
    // Clean up through a direct call (the daemon is gone).
    Call::attach("ptp", "DEL", "term", &ctr.path(), "eth0")
        .in_ns(&node.host)
        .config(&shim_conf(&node, &d.socket))
        .var("CNIBOX_IN_DAEMON", "1")
        .run()
        .ok();
    assert!(node.reservations("dshim").is_empty());
}

/// Netns paths outside /proc, /run/netns, /var/run/netns are refused
/// (code 4) before anything runs.
#[test]
fn netns_outside_the_allowed_roots_is_refused() {
    require_root!();
    let node = Node::new("daemon");
    let d = Daemon::start(Some(&node.host), &[]);
    let ctr = TestNs::new("dnp");
    // A bind mount of the container netns at a path outside the roots.
    let outside = node.data.path().join("ns-outside");
    std::fs::write(&outside, b"").unwrap();
    let st = Command::new("mount")
        .args(["--bind", &ctr.path()])
        .arg(&outside)
        .status()
        .unwrap();
    assert!(st.success());
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(outside.clone());
    for netns in [
        outside.display().to_string(),
        "/run/netns/../../tmp/x".into(),
    ] {
        let r = Call::attach("ptp", "ADD", "np", &netns, "eth0")
            .config(&shim_conf(&node, &d.socket))
            .run();
        assert_eq!(r.err_code(), 4, "{netns}: {}", r.stdout);
        assert!(r.json()["msg"]
            .as_str()
            .unwrap()
            .contains("outside the paths"));
    }
    assert_eq!(ctr.link_names(), vec!["lo"]);
    assert!(node.reservations("dshim").is_empty());
}

/// Containerised-style: the daemon in its own mount namespace (a slave of
/// the host's, as a pod with HostToContainer propagation) where /run/netns
/// is an empty tmpfs and the host's is bind-mounted under `--hostprefix`; the shim on the "host" side names the host path, and
/// the result names it too.
#[test]
fn containerised_daemon_with_hostprefix() {
    require_root!();
    let node = Node::new("daemon");
    let dir = TempDir::new("cniboxd-c");
    let host = dir.path().join("host");
    std::fs::create_dir_all(host.join("run/netns")).unwrap();
    let socket = dir.path().join("sock/cnibox.sock");
    let pidfile = dir.path().join("pid");
    let script = format!(
        "mount --rbind /run/netns {h}/run/netns && mount -t tmpfs none /run/netns && \
         exec {exe} daemon --socket {s} --pidfile {p} --hostprefix {h}",
        h = host.display(),
        exe = cnibox().display(),
        s = socket.display(),
        p = pidfile.display()
    );
    let d = Daemon::spawn(
        Some(&node.host),
        &socket,
        &pidfile,
        &[],
        Some(vec![
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "slave".into(),
            "sh".into(),
            "-c".into(),
            script,
        ]),
    );
    let (_, st) = d.http("GET", "/status", b"");
    assert_eq!(
        serde_json::from_str::<Value>(&st).unwrap()["hostprefix"],
        host.display().to_string()
    );
    let ctr = TestNs::new("dct");
    let r = shim_call(&node, &socket, "ADD", "ctrd", &ctr);
    r.ok();
    assert_eq!(
        r.json()["interfaces"][1]["sandbox"],
        ctr.path(),
        "{}",
        r.stdout
    );
    assert!(ctr.link_names().contains(&"eth0".to_string()));
    // CHECK with the result as prevResult (it names the host path).
    Call::attach("ptp", "CHECK", "ctrd", &ctr.path(), "eth0")
        .config(&with_prev(&shim_conf(&node, &socket), &r.json()))
        .run()
        .ok();
    shim_call(&node, &socket, "DEL", "ctrd", &ctr).ok();
    assert_eq!(ctr.link_names(), vec!["lo"]);
    assert!(node.reservations("dshim").is_empty());
    // The bind mounts lived only in the daemon's namespace.
    assert!(std::fs::read_dir(host.join("run/netns"))
        .unwrap()
        .next()
        .is_none());
    drop(d);
}

/// `--max-connections`: a connection over the bound gets 503 at once (the
/// shim reports code 11), and is served again once one closes.
#[test]
fn connection_bound_answers_503_and_the_shim_code_11() {
    let d = Daemon::start(None, &["--max-connections", "2"]);
    // The readiness probe's connection has gone (it counts while open).
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, st) = d.http("GET", "/status", b"");
        if serde_json::from_str::<Value>(&st).unwrap()["connections"] == 1 {
            break;
        }
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(20));
    }
    let idle: Vec<UnixStream> = (0..2)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    // Both accepted and counted before the next one.
    std::thread::sleep(Duration::from_millis(300));
    let (st, body) = d.http("GET", "/status", b"");
    assert_eq!(st, 503, "{body}");
    let r = Call::new("ptp", "ADD")
        .var("CNI_CONTAINERID", "b1")
        .var("CNI_NETNS", "/run/netns/none")
        .var("CNI_IFNAME", "eth0")
        .config(
            &json!({"cniVersion": "1.0.0", "name": "n", "type": "ptp", "cniboxDaemon": d.socket}),
        )
        .run();
    assert_eq!(r.err_code(), 11, "{}", r.stdout);
    assert!(r.stdout.contains("busy"), "{}", r.stdout);
    drop(idle);
    let until = Instant::now() + Duration::from_secs(5);
    while d.http("GET", "/status", b"").0 != 200 {
        assert!(Instant::now() < until, "never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--socket-group`: the group may connect (directory 0710, socket 0660,
/// both owned by the group).
#[test]
fn socket_group_opens_the_socket_to_one_group() {
    require_root!();
    use std::os::unix::fs::MetadataExt;
    let d = Daemon::start(None, &["--socket-group", "4242"]);
    let dir = d.socket.parent().unwrap();
    assert_eq!(mode_of(dir), 0o710);
    assert_eq!(mode_of(&d.socket), 0o660);
    assert_eq!(std::fs::metadata(dir).unwrap().gid(), 4242);
    assert_eq!(std::fs::symlink_metadata(&d.socket).unwrap().gid(), 4242);
}

/// `cnibox tool` runs our applets in-process instead of exec'ing them; a
/// config naming the daemon is forwarded there too, as the exec would be.
#[test]
fn cnitool_in_process_path_forwards_to_the_daemon_too() {
    require_root!();
    let node = Node::new("daemon");
    let d = Daemon::start(Some(&node.host), &[]);
    let ctr = TestNs::new("dtl");
    let confdir = node.data.path().join("net.d");
    std::fs::create_dir_all(&confdir).unwrap();
    let mut plugin = shim_conf(&node, &d.socket);
    plugin.as_object_mut().unwrap().remove("cniVersion");
    plugin.as_object_mut().unwrap().remove("name");
    let list = json!({"cniVersion": "1.0.0", "name": "dshim", "plugins": [plugin]});
    std::fs::write(confdir.join("10-dshim.conflist"), list.to_string()).unwrap();
    let cache = node.data.path().join("cache");
    let tool = |verb: &str| {
        Command::new(ip_path())
            .args(["netns", "exec", &node.host.name])
            .arg(cnibox())
            .args([
                "tool",
                verb,
                "dshim",
                &ctr.path(),
                "--id",
                "tool1",
                "--cache-dir",
            ])
            .arg(&cache)
            .env("NETCONFPATH", &confdir)
            .env("CNI_PATH", bin_dir())
            .output()
            .unwrap()
    };
    let out = tool("add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ctr.link_names().contains(&"eth0".to_string()));
    let (_, m) = d.http("GET", "/metrics", b"");
    assert!(
        m.contains(
            "cnibox_daemon_requests_total{applet=\"ptp\",command=\"ADD\",result=\"ok\"} 1\n"
        ),
        "the ADD went through the daemon: {m}"
    );
    let out = tool("del");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ctr.link_names(), vec!["lo"]);
    assert!(node.reservations("dshim").is_empty());
}

/// `cnibox daemon --dhcp-socket` hosts the dhcp lease daemon: the dhcp
/// plugin's STATUS (code 50 when no lease daemon listens) passes through
/// it, and a DEL reaches it (the daemon answers; no pending release is
/// recorded for later, which is what a DEL with no daemon does).
#[test]
fn hosts_the_dhcp_lease_daemon_on_its_own_socket() {
    require_root!();
    let dir = TempDir::new("cniboxd-dhcp");
    let dhcp_sock = dir.path().join("dhcp.sock");
    let leases = dir.path().join("leases");
    let conf = json!({"cniVersion": "1.1.0", "name": "hosted", "type": "macvlan",
        "ipam": {"type": "dhcp", "daemonSocketPath": dhcp_sock, "leaseDir": leases}});
    let r = Call::new("dhcp", "STATUS").config(&conf).run();
    assert_eq!(r.err_code(), 50, "no lease daemon yet: {}", r.stdout);

    let d = Daemon::start(
        None,
        &[
            &format!("--dhcp-socket={}", dhcp_sock.display()),
            &format!("--dhcp-statedir={}", leases.display()),
        ],
    );
    assert!(d.socket.exists(), "the CNI socket");
    Call::new("dhcp", "STATUS").config(&conf).run().ok();
    Call::attach("dhcp", "DEL", "hosted1", "/run/netns/cnibox-none", "eth0")
        .config(&conf)
        .run()
        .ok();
    assert!(
        tree(&leases).iter().all(|p| !p.contains("pending")),
        "the DEL reached the hosted daemon, nothing left pending: {:?}",
        tree(&leases)
    );
    drop(d);
    assert!(
        !dhcp_sock.exists(),
        "the hosted socket is removed with the daemon"
    );
}
