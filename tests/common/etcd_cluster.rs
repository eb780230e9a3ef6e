//! An etcd cluster for tests and benches: members on free loopback ports
//! in a temp dir, killed by PID (SIGKILL) and removed on drop. Included by
//! path (`#[path]`) from tests/etcd.rs and benches/etcd.rs.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A temporary directory removed on drop.
pub struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "cnibox-etcd-{}x{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Client TLS files for etcdctl and for the plugin.
#[derive(Clone)]
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A cluster of members on loopback; every member is killed (SIGKILL, by
/// PID) and the data removed on drop.
pub struct Cluster {
    dir: Dir,
    args: Vec<Vec<String>>,
    procs: Vec<Option<Child>>,
    pub urls: Vec<String>,
    /// Server TLS (the cluster requires client certificates when set).
    pub tls: Option<Certs>,
    /// `user:password` for etcdctl once auth is enabled.
    pub user: Option<String>,
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None, None)
    }

    /// `server`: (ca, cert, key) of the server side; `client`: what
    /// etcdctl uses.
    pub fn start_with(n: usize, server: Option<Certs>, client: Option<Certs>) -> Cluster {
        let dir = Dir::new();
        let ports = free_ports(2 * n);
        let scheme = if server.is_some() { "https" } else { "http" };
        let urls: Vec<String> = (0..n)
            .map(|i| format!("{scheme}://127.0.0.1:{}", ports[2 * i]))
            .collect();
        let peers: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let initial: Vec<String> = (0..n).map(|i| format!("m{i}={}", peers[i])).collect();
        let token = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut args = Vec::new();
        for i in 0..n {
            let mut a: Vec<String> = [
                "--name",
                &format!("m{i}"),
                "--data-dir",
                &dir.path().join(format!("m{i}")).display().to_string(),
                "--listen-client-urls",
                &urls[i],
                "--advertise-client-urls",
                &urls[i],
                "--listen-peer-urls",
                &peers[i],
                "--initial-advertise-peer-urls",
                &peers[i],
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-token",
                &token,
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some(s) = &server {
                for (k, v) in [
                    ("--trusted-ca-file", &s.ca),
                    ("--cert-file", &s.cert),
                    ("--key-file", &s.key),
                ] {
                    a.push(k.into());
                    a.push(v.display().to_string());
                }
                a.push("--client-cert-auth".into());
            }
            args.push(a);
        }
        let mut c = Cluster {
            dir,
            args,
            procs: (0..n).map(|_| None).collect(),
            urls,
            tls: client,
            user: None,
        };
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_healthy(&(0..n).collect::<Vec<_>>());
        c
    }

    pub fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))
            .unwrap();
        let child = Command::new("etcd")
            .args(&self.args[i])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs[i] = Some(child);
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart_all(&mut self) {
        for i in 0..self.procs.len() {
            self.spawn(i);
        }
        self.wait_healthy(&(0..self.procs.len()).collect::<Vec<_>>());
    }

    pub fn etcdctl(&self, endpoints: &[String], args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--command-timeout=5s");
        if let Some(t) = &self.tls {
            cmd.arg(format!("--cacert={}", t.ca.display()))
                .arg(format!("--cert={}", t.cert.display()))
                .arg(format!("--key={}", t.key.display()));
        }
        if let Some(u) = &self.user {
            cmd.arg(format!("--user={u}"));
        }
        cmd.args(args).output().unwrap()
    }

    pub fn wait_healthy(&self, members: &[usize]) {
        let t = Instant::now();
        for &i in members {
            loop {
                let out = self.etcdctl(&self.urls[i..=i], &["endpoint", "health"]);
                if out.status.success() {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "etcd member {i} not healthy: {}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Every key under `prefix` and its value, read by etcdctl from the
    /// members still alive.
    pub fn dump(&self, prefix: &str) -> BTreeMap<String, Value> {
        let alive: Vec<String> = (0..self.urls.len())
            .filter(|i| self.procs[*i].is_some())
            .map(|i| self.urls[i].clone())
            .collect();
        let out = self.etcdctl(&alive, &["get", "--prefix", prefix]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .map(|kv| {
                let v = kv.get(1).copied().unwrap_or_default();
                let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
                (kv[0].to_string(), v)
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}
