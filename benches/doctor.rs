//! `cnibox doctor` on a large node: 5,000 host-local reservations and
//! 5,000 masquerade rules (all of dead containers, the worst case: every
//! one is judged and listed), inspected read-only, inside a throwaway netns
//! that plays the node. Needs root, `ip` and `nft` (setup only).
//!
//! Env: N (objects of each kind, default 5000), ROUNDS (default 5), CNIBOX
//! (the binary; default the static build, else release, else debug), OUT
//! (default bench/results-doctor.md).

use sha2::{Digest, Sha512};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

fn hex(s: &str, n: usize) -> String {
    let d = Sha512::digest(s.as_bytes());
    let mut o: String = d.iter().map(|b| format!("{b:02x}")).collect();
    o.truncate(n);
    o
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CNIBOX") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for p in ["target/static/cnibox", "target/release/cnibox"] {
        if root.join(p).exists() {
            return root.join(p);
        }
    }
    PathBuf::from(env!("CARGO_BIN_EXE_cnibox"))
}

/// CPU time (user + system, ms) of the children waited for so far, from
/// /proc/self/stat (cutime, cstime; 100 ticks a second): wall time means
/// little on a loaded machine.
fn children_cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 16 and 17 of stat; `rest` starts at field 3.
    let t: f64 = f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap();
    t * 10.0
}

struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too, and must neither start a benchmark nor overwrite results.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("bench: not started (run `make bench`)");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let out = std::env::var("OUT").unwrap_or_else(|_| "bench/results-doctor.md".into());
    let bin = binary();
    let pid = std::process::id();
    let ns = Ns(format!("drbench{pid}"));
    assert!(Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());
    let work = std::env::temp_dir().join(format!("drbench{pid}"));
    let data = work.join("data");
    let net = "perfnet";
    std::fs::create_dir_all(data.join(net)).unwrap();
    std::fs::create_dir_all(work.join("cache")).unwrap();
    let mut rules = String::from("table inet cni_plugins_masquerade {\n chain masq_checks {\n");
    for i in 0..n {
        let ip = format!("10.251.{}.{}", i / 250, i % 250 + 2);
        let id = format!("perf{i:06}");
        std::fs::write(data.join(net).join(&ip), format!("{id}\r\neth0")).unwrap();
        let hash = format!("{}-{}", hex(net, 16), hex(&format!("eth0:{id}"), 16));
        rules.push_str(&format!(
            "  ip saddr {ip} ip daddr != 10.251.0.0/16 masquerade comment \"{hash}, net: {net}, if: eth0, id: {id}\"\n"
        ));
    }
    rules.push_str(" }\n}\n");
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &ns.0, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success());
    // Old enough not to count as an ADD in progress.
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find {} -type f -exec touch -d '1 hour ago' {{}} +",
            data.display()
        ))
        .status()
        .unwrap();

    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut inner = Vec::new();
    let mut leaked = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let c = children_cpu_ms();
        let o = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(&bin)
            .args(["doctor", "--json", "--min-age", "60"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--cache-dir")
            .arg(work.join("cache"))
            .output()
            .unwrap();
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        cpu.push(children_cpu_ms() - c);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        inner.push(v["elapsedMs"].as_f64().unwrap());
        leaked = v["leaked"].as_array().unwrap().len();
    }
    let _ = std::fs::remove_dir_all(&work);
    wall.sort_by(|a, b| a.total_cmp(b));
    inner.sort_by(|a, b| a.total_cmp(b));
    cpu.sort_by(|a, b| a.total_cmp(b));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let namespaces = std::fs::read_dir("/run/netns")
        .map(|r| r.count())
        .unwrap_or(0);
    let report = format!(
        "# cnibox doctor: inspection time\n\n\
         {n} host-local reservations + {n} masquerade rules (nf_tables), all of dead \
         containers (each judged and listed: {leaked} leaked), read-only, {rounds} rounds, \
         binary {}; {namespaces} named netns on the machine (each is entered to read its \
         addresses); load average {} on {} CPUs.\n\n\
         | measure | median | min | max |\n|---|---|---|---|\n\
         | inspection (doctor's own clock) | {:.0} ms | {:.0} ms | {:.0} ms |\n\
         | whole command (exec, JSON output) | {:.0} ms | {:.0} ms | {:.0} ms |\n\
         | CPU time of the whole command | {:.0} ms | {:.0} ms | {:.0} ms |\n",
        bin.display(),
        load.split_whitespace().next().unwrap_or("?"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        inner[rounds / 2],
        inner[0],
        inner[rounds - 1],
        wall[rounds / 2],
        wall[0],
        wall[rounds - 1],
        cpu[rounds / 2],
        cpu[0],
        cpu[rounds - 1],
    );
    print!("{report}");
    let _ = std::fs::write(&out, report);
}
