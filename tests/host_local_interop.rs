//! host-local against the Go reference (Debian's containernetworking-plugins
//! in /usr/lib/cni, which speaks cniVersion up to 1.0.0): golden results and
//! store bytes, and mixed nodes where both plugins share one store.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const GO_DIR: &str = "/usr/lib/cni";
const NET: &str = "mixnet";

macro_rules! require_go {
    () => {
        if !Path::new(GO_DIR).join("host-local").exists() {
            skip(
                SkipKind::Tool,
                &format!("the Go reference host-local is not installed in {GO_DIR}"),
            );
            return;
        }
    };
}

/// An IPAM call (no netns needed) to ours, or to Go's with `go`.
fn call(go: bool, cmd: &str, id: &str, ifname: &str) -> Call {
    let mut c = Call::attach("host-local", cmd, id, "/proc/self/ns/net", ifname)
        .var("CNI_NETNS_OVERRIDE", "1");
    if go {
        c.bin_dir = PathBuf::from(GO_DIR);
    }
    c
}

fn conf(version: &str, data: &TempDir, ipam: Value) -> Value {
    let mut i = json!({"type": "host-local", "dataDir": data.str()});
    for (k, v) in ipam.as_object().unwrap() {
        i[k] = v.clone();
    }
    json!({"cniVersion": version, "name": NET, "type": "ptp", "ipam": i})
}

fn ip_of(r: &Reply) -> String {
    r.ok();
    r.json()["ips"][0]["address"].as_str().unwrap().to_string()
}

/// Every file of a store except our `.cnibox/`, with bytes and mode.
fn store_files(data: &TempDir) -> Vec<(String, Vec<u8>, u32)> {
    let dir = data.path().join(NET);
    let mut out: Vec<(String, Vec<u8>, u32)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".cnibox")
        .map(|e| {
            let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
                mode,
            )
        })
        .collect();
    out.sort();
    out
}

fn reservation_names(data: &TempDir) -> Vec<String> {
    store_files(data)
        .into_iter()
        .map(|(n, _, _)| n)
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// 1.1.1's libcni prints an empty `"dns": {}` in 1.0.0 results; HEAD omits
/// it (the core prints HEAD's form). Everything else must be identical.
fn normalize(stdout: &str) -> Value {
    let mut v: Value = serde_json::from_str(stdout).unwrap();
    if v.get("dns") == Some(&json!({})) && v["cniVersion"] == "1.0.0" {
        v.as_object_mut().unwrap().remove("dns");
    }
    v
}

#[test]
fn golden_results_and_store_bytes_match_go() {
    require_go!();
    for v in ["0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
        let dirs = [TempDir::new("gold-go"), TempDir::new("gold-ours")];
        let mut outputs: Vec<Vec<(i32, String)>> = Vec::new();
        for (side, data) in dirs.iter().enumerate() {
            let go = side == 0;
            let c = conf(
                v,
                data,
                json!({"ranges": [[{"subnet": "10.9.0.0/29"}], [{"subnet": "fd00:9::/64"}]],
                       "routes": [{"dst": "0.0.0.0/0", "gw": "10.9.0.1"}, {"dst": "::/0"}]}),
            );
            let steps: Vec<Reply> = vec![
                call(go, "ADD", "c1", "eth0").config(&c).run(),
                call(go, "ADD", "c2", "eth0").config(&c).run(),
                call(go, "ADD", "c1", "eth1")
                    .var("CNI_ARGS", "IP=10.9.0.6")
                    .config(&c)
                    .run(),
                call(go, "ADD", "c1", "eth0").config(&c).run(),
                call(go, "DEL", "c2", "eth0").config(&c).run(),
                call(go, "ADD", "c3", "eth0").config(&c).run(),
                call(go, "ADD", "c4", "eth0").config(&c).run(),
                call(go, "ADD", "c5", "eth0").config(&c).run(),
                call(go, "DEL", "nobody", "eth0").config(&c).run(),
            ];
            outputs.push(steps.iter().map(|r| (r.status, r.stdout.clone())).collect());
        }
        for (i, (go, ours)) in outputs[0].iter().zip(&outputs[1]).enumerate() {
            assert_eq!(go.0, ours.0, "{v} step {i}: status ({} / {})", go.1, ours.1);
            if go.1.is_empty() || ours.1.is_empty() {
                assert_eq!(go.1, ours.1, "{v} step {i}");
                continue;
            }
            if go.0 == 0 {
                if v == "1.0.0" {
                    assert_eq!(normalize(&go.1), normalize(&ours.1), "{v} step {i}");
                } else {
                    assert_eq!(go.1, ours.1, "{v} step {i}: byte-identical result");
                }
            } else {
                let (g, o): (Value, Value) = (
                    serde_json::from_str(&go.1).unwrap(),
                    serde_json::from_str(&ours.1).unwrap(),
                );
                assert_eq!(g["code"], o["code"], "{v} step {i}");
                assert_eq!(g["msg"], o["msg"], "{v} step {i}");
            }
        }
        let (gf, of) = (store_files(&dirs[0]), store_files(&dirs[1]));
        let strip = |f: &[(String, Vec<u8>, u32)]| -> Vec<(String, Vec<u8>)> {
            f.iter().map(|(n, b, _)| (n.clone(), b.clone())).collect()
        };
        assert_eq!(strip(&gf), strip(&of), "{v}: same names and bytes");
        for (name, _, mode) in &of {
            let want = match name.as_str() {
                "lock" => 0o750,
                _ => 0o600,
            };
            assert_eq!(*mode, want, "{v}: {name} has HEAD's mode");
        }
        for (name, _, mode) in &gf {
            // Debian's 1.1.1 predates HEAD's 0600 (v1.4.0, 33ccedc6).
            let allowed: &[u32] = if name == "lock" {
                &[0o750]
            } else {
                &[0o644, 0o600]
            };
            assert!(allowed.contains(mode), "{v}: Go wrote {name} {mode:o}");
        }
        let dir_mode = |d: &TempDir| {
            std::fs::metadata(d.path().join(NET))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(dir_mode(&dirs[0]), 0o755);
        assert_eq!(dir_mode(&dirs[1]), 0o755);
    }
}

#[test]
fn mixed_node_reservations_are_shared_both_ways() {
    require_go!();
    let data = TempDir::new("mixed");
    let c = conf("1.0.0", &data, json!({"subnet": "10.7.0.0/24"}));
    // Go first, as on a node that switches to cnibox.
    assert_eq!(
        ip_of(&call(true, "ADD", "g1", "eth0").config(&c).run()),
        "10.7.0.2/24"
    );
    assert_eq!(
        ip_of(&call(true, "ADD", "g2", "eth0").config(&c).run()),
        "10.7.0.3/24"
    );
    // Ours continues Go's round robin and sees Go's reservations.
    assert_eq!(
        ip_of(&call(false, "ADD", "o1", "eth0").config(&c).run()),
        "10.7.0.4/24"
    );
    let dup = call(false, "ADD", "g1", "eth0").config(&c).run();
    assert_eq!(
        dup.json()["msg"],
        "failed to allocate for range 0: 10.7.0.2 has been allocated to g1, duplicate allocation is not allowed"
    );
    // Go sees ours, and continues after our last reservation.
    let dup = call(true, "ADD", "o1", "eth0").config(&c).run();
    assert_eq!(
        dup.json()["msg"],
        "failed to allocate for range 0: 10.7.0.4 has been allocated to o1, duplicate allocation is not allowed"
    );
    assert_eq!(
        ip_of(&call(true, "ADD", "g3", "eth0").config(&c).run()),
        "10.7.0.5/24"
    );
    assert_eq!(
        ip_of(&call(false, "ADD", "o2", "eth0").config(&c).run()),
        "10.7.0.6/24"
    );

    // CHECK both ways.
    call(false, "CHECK", "g2", "eth0").config(&c).run().ok();
    call(true, "CHECK", "o2", "eth0").config(&c).run().ok();

    // Ours releases Go's reservations, Go releases ours.
    call(false, "DEL", "g1", "eth0").config(&c).run().ok();
    call(true, "DEL", "o1", "eth0").config(&c).run().ok();
    assert_eq!(
        reservation_names(&data),
        ["10.7.0.3", "10.7.0.5", "10.7.0.6"]
    );
    // A legacy (ID-only) file is released by both.
    std::fs::write(data.path().join(NET).join("10.7.0.100"), "leg1").unwrap();
    std::fs::write(data.path().join(NET).join("10.7.0.101"), "leg2").unwrap();
    call(false, "DEL", "leg1", "eth0").config(&c).run().ok();
    call(true, "DEL", "leg2", "eth0").config(&c).run().ok();
    assert_eq!(
        reservation_names(&data),
        ["10.7.0.3", "10.7.0.5", "10.7.0.6"]
    );
    // After all of Go's changes our index is still right: released
    // attachments can come back, held ones are duplicates.
    assert_eq!(
        ip_of(&call(false, "ADD", "g1", "eth0").config(&c).run()),
        "10.7.0.7/24"
    );
    assert_eq!(
        call(false, "ADD", "g3", "eth0").config(&c).run().err_code(),
        999
    );
    assert_eq!(
        ip_of(&call(false, "ADD", "o1", "eth0").config(&c).run()),
        "10.7.0.8/24"
    );
}

#[test]
fn go_never_mistakes_our_index_for_reservations() {
    require_go!();
    let data = TempDir::new("mixed-idx");
    let c = conf("1.0.0", &data, json!({"subnet": "10.7.0.0/24"}));
    for id in ["a", "b", "c"] {
        call(false, "ADD", id, "eth0").config(&c).run().ok();
    }
    let aux = data.path().join(NET).join(".cnibox");
    let before: BTreeSet<String> = std::fs::read_dir(&aux)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert!(before.contains("stamp"));
    // Go's DEL walks every file (ours included) and removes content
    // matches; CHECK and the duplicate check read them all too.
    call(true, "DEL", "a", "eth0").config(&c).run().ok();
    assert_eq!(
        call(true, "CHECK", "a", "eth0").config(&c).run().err_code(),
        999
    );
    call(true, "ADD", "a", "eth0").config(&c).run().ok();
    call(true, "DEL", "b", "eth0").config(&c).run().ok();
    let after: BTreeSet<String> = std::fs::read_dir(&aux)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert!(
        before.is_subset(&after) || before == after,
        "{before:?} -> {after:?}"
    );
    for e in std::fs::read_dir(&aux).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        assert!(
            !bytes.contains(&b'\r'),
            "{:?} could match an owner",
            e.path()
        );
        assert!(
            String::from_utf8_lossy(&bytes).trim().contains('\n'),
            "{:?} has several lines",
            e.path()
        );
    }
    // And ours, after Go's changes, agrees with the files.
    call(false, "CHECK", "a", "eth0").config(&c).run().ok();
    assert_eq!(
        call(false, "CHECK", "b", "eth0")
            .config(&c)
            .run()
            .err_code(),
        999
    );
    call(false, "ADD", "b", "eth0").config(&c).run().ok();
}

#[test]
fn both_plugins_honour_the_lock() {
    require_go!();
    let data = TempDir::new("mixed-lock");
    let c = conf("1.0.0", &data, json!({"subnet": "10.7.0.0/24"}));
    call(false, "ADD", "first", "eth0").config(&c).run().ok();
    let lock_path = data.path().join(NET).join("lock");
    let lock = std::fs::File::open(&lock_path).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let spawn = |go: bool, id: &'static str| {
        let c = c.clone();
        std::thread::spawn(move || call(go, "ADD", id, "eth0").config(&c).run())
    };
    let ours = spawn(false, "ours");
    let theirs = spawn(true, "theirs");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !ours.is_finished() && !theirs.is_finished(),
        "both wait for the lock"
    );
    assert_eq!(
        reservation_names(&data),
        ["10.7.0.2"],
        "nothing reserved while locked"
    );
    drop(held);
    let (a, b) = (ip_of(&ours.join().unwrap()), ip_of(&theirs.join().unwrap()));
    assert_ne!(a, b);
    assert_eq!(reservation_names(&data).len(), 3);
}

#[test]
fn mixed_parallel_adds_get_distinct_addresses() {
    require_go!();
    let data = TempDir::new("mixed-par");
    let c = conf("1.0.0", &data, json!({"subnet": "10.7.0.0/24"}));
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || {
                let go = i % 2 == 0;
                let id = format!("{}{i}", if go { "go" } else { "rs" });
                (
                    go,
                    id.clone(),
                    call(go, "ADD", &id, "eth0").config(&c).run(),
                )
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for h in handles {
        let (go, id, r) = h.join().unwrap();
        assert!(seen.insert(ip_of(&r)), "{id} got a duplicate");
        ids.push((go, id));
    }
    assert_eq!(reservation_names(&data).len(), 64);
    // Each side finds the other's attachments.
    for (go, id) in ids.iter().take(8) {
        call(!go, "CHECK", id, "eth0").config(&c).run().ok();
    }
    for (go, id) in &ids {
        call(!go, "DEL", id, "eth0").config(&c).run().ok();
    }
    assert!(reservation_names(&data).is_empty());
}
