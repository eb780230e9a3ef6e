//! `make bench` (or `cargo bench --bench etcd`): ADD latency and ADDs per
//! second of the `etcd` IPAM with 1 and 3 members, from 1 and from 4
//! concurrent nodes (each node a stream of ADDs, each ADD its own process,
//! as a runtime calls it), with host-local on the same machine as the
//! reference point (each node its own data dir, as on real nodes).
//! Writes bench/results-etcd.md.
//!
//! Env: N (ADDs per node, default 200; QUICK=1: 50), CNIBOX (the binary,
//! default the one cargo built), OUT (default bench/results-etcd.md).

#[path = "../tests/common/etcd_cluster.rs"]
mod etcd_cluster;

use etcd_cluster::{have, Cluster};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn add(bin: &Path, conf: &[u8], id: &str) -> Duration {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/var/run/netns/none")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(conf).unwrap();
    let out = child.wait_with_output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "ADD failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    took
}

struct Row {
    backend: String,
    nodes: usize,
    adds: usize,
    p50: f64,
    p99: f64,
    rate: f64,
}

/// `nodes` concurrent streams of `n` ADDs each; `conf(node)` is the
/// config of a node.
fn run(
    bin: &Path,
    backend: &str,
    nodes: usize,
    n: usize,
    conf: impl Fn(usize) -> Vec<u8> + Sync,
) -> Row {
    let start = Instant::now();
    let mut lat: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..nodes)
            .map(|k| {
                let conf = conf(k);
                s.spawn(move || {
                    (0..n)
                        .map(|i| add(bin, &conf, &format!("b{k}-{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Row {
        backend: backend.to_string(),
        nodes,
        adds: lat.len(),
        p50: ms(lat[lat.len() / 2]),
        p99: ms(lat[(lat.len() * 99 / 100).min(lat.len() - 1)]),
        rate: lat.len() as f64 / wall.as_secs_f64(),
    }
}

fn applet_link(bin: &Path, dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(bin, &link).unwrap();
    link
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
    if !have("etcd") || !have("etcdctl") {
        eprintln!("bench etcd: etcd/etcdctl not installed, skipped");
        return;
    }
    let quick = std::env::var("QUICK").is_ok_and(|v| v == "1");
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 50 } else { 200 });
    let bin = PathBuf::from(
        std::env::var("CNIBOX").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cnibox").to_string()),
    );
    let out =
        PathBuf::from(std::env::var("OUT").unwrap_or_else(|_| "bench/results-etcd.md".into()));
    let work = std::env::temp_dir().join(format!("cnibox-bench-etcd-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let etcd_bin = applet_link(&bin, &work, "etcd");
    let hl_bin = applet_link(&bin, &work, "host-local");
    let ranges = json!([[{"subnet": "10.200.0.0/16"}]]);

    let mut rows = Vec::new();
    for nodes in [1, 4] {
        let net = format!("hl{nodes}");
        let work = &work;
        let ranges = &ranges;
        rows.push(run(&hl_bin, "host-local (reference)", nodes, n, |k| {
            let c = json!({"cniVersion": "1.1.0", "name": net, "ipam": {"type": "host-local",
                "dataDir": work.join(format!("hl-node{k}")), "ranges": ranges}});
            serde_json::to_vec(&c).unwrap()
        }));
    }
    for members in [1, 3] {
        let cluster = Cluster::start(members);
        for nodes in [1, 4] {
            let net = format!("m{members}n{nodes}");
            let urls = &cluster.urls;
            let ranges = &ranges;
            rows.push(run(
                &etcd_bin,
                &format!("etcd, {members} member(s)"),
                nodes,
                n,
                |k| {
                    let c = json!({"cniVersion": "1.1.0", "name": net, "ipam": {"type": "etcd",
                    "endpoints": urls, "node": format!("node{k}"), "ranges": ranges}});
                    serde_json::to_vec(&c).unwrap()
                },
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&work);

    let mut md = String::from(
        "# etcd IPAM: ADD latency and throughput\n\n\
         Each ADD is one process (exec, config on stdin, as a runtime calls it), against etcd \
         3.4 on loopback (members in a temp dir, WAL fsync on). \"Nodes\" are concurrent \
         streams of ADDs with different `node` values; host-local runs the same streams, each \
         node on its own data dir. Pool: one /16.\n\n\
         | backend | nodes | ADDs | p50 ms | p99 ms | ADDs/s |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.0} |\n",
            r.backend, r.nodes, r.adds, r.p50, r.p99, r.rate
        ));
    }
    md.push_str(&format!(
        "\nBinary: {}. N={n} per node.\n\n\
         An etcd ADD is three round trips: one read (the attachment's owner index and the \
         node's hint), one read of 16 candidates, one create txn (the only raft write and \
         WAL fsync). Nodes start from different parts of the pool, so concurrent nodes \
         rarely contend for an address; the cost is etcd's commit latency, not conflicts.\n",
        bin.display()
    ));
    print!("{md}");
    if let Some(d) = out.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    std::fs::write(&out, md).unwrap();
    eprintln!("wrote {}", out.display());
}
