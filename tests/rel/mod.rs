//! Helpers of the reliability tests (faults, concurrency, hostile input,
//! file safety): what a node looks like from outside (links, addresses,
//! routes, the nf_tables ruleset, forwarding sysctls, state directories) so
//! a test can prove that nothing changed or that nothing was left behind,
//! and a raw plugin runner that can pass any bytes in the environment.
#![allow(dead_code)]

use crate::common::{bin_dir, ip_path, TestNs};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a plugin run printed.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Exit status, or 128 + signal.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Ran {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.stdout).ok()
    }
}

/// Run `exe` (argv0 = its file name) with exactly `env` (plus PATH), `args`
/// and `stdin`, inside `ns` when given, killing it after `timeout`.
pub fn run_raw(
    exe: &Path,
    args: &[OsString],
    env: &BTreeMap<String, OsString>,
    stdin: Vec<u8>,
    ns: Option<&TestNs>,
    timeout: Duration,
) -> Ran {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new(ip_path());
            c.args(["netns", "exec", &ns.name]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&stdin);
    });
    let pid = child.id() as i32;
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let mut killed = false;
    let out = loop {
        // Wake exactly at the deadline: random kills need their timing.
        let wait = if killed {
            Duration::from_millis(50)
        } else {
            timeout.saturating_sub(start.elapsed())
        };
        match rx.recv_timeout(wait) {
            Ok(out) => break out.expect("wait"),
            Err(_) if !killed && start.elapsed() >= timeout => {
                killed = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(_) => {}
        }
    };
    let _ = waiter.join();
    let _ = writer.join();
    use std::os::unix::process::ExitStatusExt;
    Ran {
        status: out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The applet's symlink in the test bin dir (argv0 picks the applet).
pub fn applet(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// `ip -j ARGS` in `ns` as JSON (an empty array for no output or failure).
pub fn ip_json(ns: &TestNs, args: &[&str]) -> Value {
    let out = Command::new(ip_path())
        .arg("-n")
        .arg(&ns.name)
        .arg("-j")
        .args(args)
        .output()
        .expect("ip");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]))
}

fn arr(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// Links of a namespace: name, kind, master, admin state (indexes and
/// MACs left out: they differ between equal states).
pub fn links(ns: &TestNs) -> Vec<String> {
    let details = ip_json(ns, &["-d", "link", "show"]);
    let names: BTreeMap<u64, String> = arr(&details)
        .iter()
        .map(|l| {
            (
                l["ifindex"].as_u64().unwrap_or(0),
                l["ifname"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut out: Vec<String> = arr(&details)
        .iter()
        .map(|l| {
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            format!(
                "{} kind={} master={} up={} mtu={}",
                l["ifname"].as_str().unwrap_or(""),
                l["linkinfo"]["info_kind"].as_str().unwrap_or("-"),
                l["master"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| names.get(&l["master"].as_u64().unwrap_or(0)).cloned())
                    .unwrap_or_default(),
                up,
                l["mtu"]
            )
        })
        .collect();
    out.sort();
    out
}

/// Addresses of a namespace (`ifname addr/prefix`), link-local v6 left out
/// (the kernel adds them to every link that comes up).
pub fn addrs(ns: &TestNs) -> Vec<String> {
    let mut out = Vec::new();
    for l in arr(&ip_json(ns, &["addr", "show"])) {
        for a in arr(&l["addr_info"]) {
            let local = a["local"].as_str().unwrap_or("");
            if local.starts_with("fe80:") {
                continue;
            }
            out.push(format!(
                "{} {}/{}",
                l["ifname"].as_str().unwrap_or(""),
                local,
                a["prefixlen"]
            ));
        }
    }
    out.sort();
    out
}

/// Routes of every table, both families (kernel link-local and local
/// routes of link-local addresses left out).
pub fn routes(ns: &TestNs) -> Vec<String> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        for r in arr(&ip_json(ns, &[fam, "route", "show", "table", "all"])) {
            let dst = r["dst"].as_str().unwrap_or("");
            if dst.starts_with("fe80:") || dst.starts_with("ff00:") || dst == "multicast" {
                continue;
            }
            out.push(format!(
                "{} {} dev={} via={} table={} scope={} type={}",
                fam,
                dst,
                r["dev"].as_str().unwrap_or(""),
                r["gateway"].as_str().unwrap_or(""),
                r["table"].as_str().unwrap_or("main"),
                r["scope"].as_str().unwrap_or(""),
                r["type"].as_str().unwrap_or("")
            ));
        }
    }
    out.sort();
    out
}

/// The forwarding sysctls of a namespace.
pub fn forwarding(ns: &TestNs) -> String {
    let out = ns.exec(&[
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/ipv6/conf/all/forwarding",
    ]);
    String::from_utf8_lossy(&out.stdout).replace('\n', " ")
}

/// Everything under `dir`: path, type, mode, size and a hash of the
/// contents, so a created, removed, changed or re-moded file shows.
/// Symlinks are listed with their target, never followed.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap_or_default();
                out.push(format!("{rel} -> {}", t.display()));
            } else if ft.is_dir() {
                out.push(format!("{rel}/ {:o}", md.mode() & 0o7777));
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push(format!(
                    "{rel} {:o} {} {:016x}",
                    md.mode() & 0o7777,
                    md.len(),
                    fnv(&bytes)
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for x in b {
        h ^= *x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A node as a user would check it after a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub sections: BTreeMap<&'static str, Vec<String>>,
}

impl Snapshot {
    /// The node namespace, the container namespace and the state dirs.
    pub fn take(node: &TestNs, ctr: Option<&TestNs>, dirs: &[&Path]) -> Snapshot {
        let mut s = BTreeMap::new();
        s.insert("node links", links(node));
        s.insert("node addresses", addrs(node));
        s.insert("node routes", routes(node));
        s.insert(
            "node nftables",
            node.nft_ruleset().lines().map(str::to_string).collect(),
        );
        s.insert("node forwarding", vec![forwarding(node)]);
        if let Some(c) = ctr {
            s.insert("container links", links(c));
            s.insert("container addresses", addrs(c));
            s.insert("container routes", routes(c));
        }
        let mut f = Vec::new();
        for d in dirs {
            f.extend(
                files(d)
                    .into_iter()
                    .map(|l| format!("{}: {l}", d.display())),
            );
        }
        s.insert("files", f);
        Snapshot { sections: s }
    }

    /// What differs, section by section ("" when equal).
    pub fn diff(&self, after: &Snapshot) -> String {
        let mut out = String::new();
        for (k, before) in &self.sections {
            let now = after.sections.get(k).cloned().unwrap_or_default();
            if *before != now {
                let gone: Vec<&String> = before.iter().filter(|l| !now.contains(l)).collect();
                let new: Vec<&String> = now.iter().filter(|l| !before.contains(l)).collect();
                out.push_str(&format!("{k}: removed {gone:?} added {new:?}\n"));
            }
        }
        out
    }
}
