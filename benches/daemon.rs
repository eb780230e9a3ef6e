//! Thick mode's cost: ptp + host-local ADD and DEL latency, direct exec vs
//! through `cnibox daemon`, side by side, rounds interleaved so machine
//! noise hits every mode alike.
//!
//! - direct: exec the `ptp` link in the node's netns (what a runtime does
//!   without the daemon);
//! - shim: exec the same link with `cniboxDaemon` in the config, from
//!   outside the node's netns (it only talks to the socket);
//! - POST: the request over a kept-alive socket, no exec (the daemon's own
//!   time, what a runtime speaking the API directly would see).
//!
//! Env: N (containers, default 100; QUICK=1: 20), CNIBOX (the binary),
//! OUT (default bench/results-daemon.md).

mod common;
use common::{in_ns, Ns};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

fn exec(plugin: &Path, env: &[(&str, String)], stdin: &[u8]) -> (Duration, bool) {
    let start = Instant::now();
    let mut child = Command::new(plugin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn plugin");
    let _ = child.stdin.take().map(|mut s| s.write_all(stdin));
    let out = child.wait_with_output().expect("wait");
    (start.elapsed(), out.status.success())
}

/// A kept-alive client: one POST /cni, the answer's exit code.
struct Client(BufReader<UnixStream>);

impl Client {
    fn post(&mut self, body: &str) -> (Duration, bool) {
        let start = Instant::now();
        let s = self.0.get_mut();
        write!(
            s,
            "POST /cni HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut len = 0;
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; len];
        self.0.read_exact(&mut answer).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        (start.elapsed(), v["exitCode"] == 0)
    }
}

#[derive(Default)]
struct Lat(Vec<Duration>);

impl Lat {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Direct,
    Shim,
    Post,
}

const MODES: [(Mode, &str); 3] = [
    (Mode::Direct, "direct exec"),
    (Mode::Shim, "shim exec -> daemon"),
    (Mode::Post, "POST /cni (kept-alive socket)"),
];

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too, and must neither start a benchmark nor overwrite results.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("bench: not started (run `make bench`)");
        return;
    }
    if nix::unistd::geteuid().as_raw() != 0 {
        println!("bench daemon: needs root (network namespaces); skipped");
        return;
    }
    let quick = std::env::var("QUICK").is_ok_and(|v| v == "1");
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20 } else { 100 });
    let cnibox = std::fs::canonicalize(
        std::env::var("CNIBOX").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cnibox").to_string()),
    )
    .expect("cnibox binary");
    let work = std::env::temp_dir().join(format!("cnibox-bench-daemon-{}", std::process::id()));
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for a in ["ptp", "host-local"] {
        std::os::unix::fs::symlink(&cnibox, bin.join(a)).unwrap();
    }
    let tag = std::process::id() % 10000;
    let node = Ns::new(format!("bdn{tag}"));
    let socket = work.join("run/cnibox.sock");
    let daemon = Daemon(
        Command::new("ip")
            .args(["netns", "exec", &node.0])
            .arg(&cnibox)
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon"),
    );
    let until = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < until, "daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = Client(BufReader::new(UnixStream::connect(&socket).unwrap()));

    let conf = |subnet: &str, shim: bool| {
        let mut c = serde_json::json!({
            "cniVersion": "1.0.0", "name": format!("bd{subnet}"), "type": "ptp", "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": format!("10.{subnet}.0.0/16"),
                     "dataDir": work.join("ipam")}
        });
        if shim {
            c["cniboxDaemon"] = serde_json::json!(socket);
        }
        c.to_string()
    };
    let confs = [conf("71", false), conf("72", true), conf("73", false)];
    let ctrs: Vec<Ns> = (0..n).map(|i| Ns::new(format!("bdc{tag}x{i}"))).collect();
    let mut add = [Lat::default(), Lat::default(), Lat::default()];
    let mut del = [Lat::default(), Lat::default(), Lat::default()];
    let mut failed = 0;
    let ptp = bin.join("ptp");
    for cmd in ["ADD", "DEL"] {
        for (i, ctr) in ctrs.iter().enumerate() {
            for (m, (mode, _)) in MODES.iter().enumerate() {
                let ifname = format!("eth{m}");
                let id = format!("bd{i}");
                let env = vec![
                    ("CNI_COMMAND", cmd.to_string()),
                    ("CNI_CONTAINERID", id.clone()),
                    ("CNI_NETNS", ctr.path()),
                    ("CNI_IFNAME", ifname.clone()),
                    ("CNI_PATH", bin.display().to_string()),
                ];
                let (t, ok) = match mode {
                    Mode::Direct => in_ns(&node, || exec(&ptp, &env, confs[m].as_bytes())),
                    Mode::Shim => exec(&ptp, &env, confs[m].as_bytes()),
                    Mode::Post => {
                        let vars: serde_json::Map<String, serde_json::Value> = env
                            .iter()
                            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                            .collect();
                        let body =
                            serde_json::json!({"applet": "ptp", "env": vars, "stdin": confs[m]});
                        client.post(&body.to_string())
                    }
                };
                failed += usize::from(!ok);
                if cmd == "ADD" {
                    add[m].0.push(t);
                } else {
                    del[m].0.push(t);
                }
            }
        }
    }
    drop(daemon);
    drop(ctrs);
    drop(node);
    let _ = std::fs::remove_dir_all(&work);

    let mut md = String::new();
    md.push_str("# Thick mode: direct exec vs through `cnibox daemon`\n\n");
    md.push_str(&format!(
        "`cargo bench --bench daemon` (benches/daemon.rs): ptp + host-local, cniVersion 1.0.0, \
         {n} containers, one call at a time, the three modes interleaved per container. \
         Binary: `{}`. Failed calls: {failed}.\n\n",
        cnibox.display()
    ));
    md.push_str(
        "| mode | ADD p50 ms | ADD p90 ms | DEL p50 ms | DEL p90 ms | ADD p50 vs direct |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|\n");
    let base = add[0].pct(0.5).as_secs_f64();
    for (m, (_, name)) in MODES.iter().enumerate() {
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {:.2}x |\n",
            ms(add[m].pct(0.5)),
            ms(add[m].pct(0.9)),
            ms(del[m].pct(0.5)),
            ms(del[m].pct(0.9)),
            add[m].pct(0.5).as_secs_f64() / base.max(1e-9)
        ));
    }
    md.push_str(
        "\nThe shim pays one exec (the same binary, which stops after reading the config) plus \
         a socket round trip; the daemon's own work is the POST row. Run `make bench` (static \
         release binary) for figures to compare across commits.\n",
    );
    print!("{md}");
    let out = PathBuf::from(
        std::env::var("OUT").unwrap_or_else(|_| "bench/results-daemon.md".to_string()),
    );
    std::fs::write(&out, md).expect("write results");
    assert_eq!(failed, 0, "some calls failed");
}
