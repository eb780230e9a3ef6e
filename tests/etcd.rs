//! The `etcd` IPAM applet against a real etcd (Debian's `etcd-server` and
//! `etcd-client`): clusters of one or three members started by the test on
//! free loopback ports in temp dirs, killed by PID when the test ends.
//! What etcd holds is read with `etcdctl`, not with our client.

mod common;
#[path = "common/etcd_cluster.rs"]
mod etcd_cluster;

use common::{skip, Call, SkipKind, TempDir};
use etcd_cluster::{have, Certs, Cluster};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Skip (a failure under CI) unless etcd and etcdctl are installed.
fn tools() -> bool {
    for t in ["etcd", "etcdctl"] {
        if !have(t) {
            skip(
                SkipKind::Tool,
                &format!("{t} not installed (apt: etcd-server etcd-client)"),
            );
            return false;
        }
    }
    true
}

fn conf(net: &str, endpoints: &[String], node: &str, extra: Value) -> Value {
    let mut ipam = json!({
        "type": "etcd",
        "endpoints": endpoints,
        "node": node,
        "timeout": 5,
        "ranges": [[{"subnet": "10.77.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        ipam[k] = v.clone();
    }
    json!({"cniVersion": "1.1.0", "name": net, "ipam": ipam})
}

fn call(cmd: &str, id: &str, conf: &Value) -> common::Reply {
    Call::attach("etcd", cmd, id, "/var/run/netns/none", "eth0")
        .config(conf)
        .run()
}

fn addr_of(r: &common::Reply) -> String {
    r.json()["ips"][0]["address"].as_str().unwrap().to_string()
}

/// Run `f` over `items` on `threads` threads; results in item order.
fn parallel<T: Send + Sync + Clone, R: Send>(
    threads: usize,
    items: &[T],
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let next = Mutex::new(0usize);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                if i >= items.len() {
                    return;
                }
                let r = f(items[i].clone());
                out.lock().unwrap()[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

const PREFIX: &str = "/cni/ipam";

/// The reservations (`<prefix>/<net>/<ip>` keys) in etcd.
fn reserved(c: &Cluster, net: &str) -> BTreeMap<String, Value> {
    let mut all = c.dump(&format!("{PREFIX}/{net}/"));
    all.retain(|k, _| !k.contains("/_owners/"));
    all
}

#[test]
fn two_nodes_hundreds_of_parallel_adds_on_one_24_no_duplicates_then_dels_empty_the_prefix() {
    if !tools() {
        return;
    }
    let c = Cluster::start(3);
    let net = "flat";
    let nodes = ["node-a", "node-b"];
    // 2 x 120 of the /24's 253 addresses, every ADD its own process.
    let jobs: Vec<(usize, String)> = (0..240).map(|i| (i % 2, format!("ctr-{i}"))).collect();
    let replies = parallel(16, &jobs, |(n, id)| {
        let r = call("ADD", &id, &conf(net, &c.urls, nodes[n], json!({})));
        (id, n, r)
    });
    let mut seen = HashSet::new();
    let mut by_id = BTreeMap::new();
    for (id, n, r) in &replies {
        r.ok();
        let a = addr_of(r);
        assert!(a.starts_with("10.77.0.") && a.ends_with("/24"), "{a}");
        assert!(seen.insert(a.clone()), "duplicate address {a}");
        by_id.insert(id.clone(), (a, nodes[*n]));
    }
    // Every address is accounted for in etcd, by the right owner and node.
    let dump = reserved(&c, net);
    assert_eq!(dump.len(), 240);
    for (id, (a, node)) in &by_id {
        let ip = a.split('/').next().unwrap();
        let v = &dump[&format!("{PREFIX}/{net}/{ip}")];
        assert_eq!(
            (v["containerID"].as_str(), v["ifname"].as_str()),
            (Some(id.as_str()), Some("eth0"))
        );
        assert_eq!(v["node"].as_str(), Some(*node));
        assert!(v["since"].as_str().unwrap().ends_with('Z'));
    }
    // CHECK with the ADD's result as prevResult; a foreign address fails it.
    let (id0, (a0, _)) = by_id.iter().next().unwrap();
    let mut cc = conf(net, &c.urls, "node-a", json!({}));
    cc["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": a0}]});
    call("CHECK", id0, &cc).ok();
    let other = &by_id.values().nth(1).unwrap().0;
    cc["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": other}]});
    assert_eq!(call("CHECK", id0, &cc).err_code(), 999);
    call("STATUS", "", &conf(net, &c.urls, "node-a", json!({}))).ok();
    // A DEL of an unknown attachment frees nothing.
    call("DEL", "nobody", &conf(net, &c.urls, "node-a", json!({}))).ok();
    assert_eq!(reserved(&c, net).len(), 240);

    let ids: Vec<(usize, String)> = jobs.clone();
    for r in parallel(16, &ids, |(n, id)| {
        call("DEL", &id, &conf(net, &c.urls, nodes[n], json!({})))
    }) {
        r.ok();
    }
    assert!(c.dump(&format!("{PREFIX}/{net}/")).is_empty());
    // DEL again: idempotent.
    call("DEL", "ctr-0", &conf(net, &c.urls, "node-a", json!({}))).ok();
}

#[test]
fn a_member_killed_during_adds_the_others_keep_serving_no_duplicate_no_lost_key() {
    if !tools() {
        return;
    }
    let mut c = Cluster::start(3);
    let net = "kill";
    let urls = c.urls.clone();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let jobs: Vec<String> = (0..90).map(|i| format!("k-{i}")).collect();
    let replies = std::thread::scope(|s| {
        let h = s.spawn(|| {
            parallel(6, &jobs, |id| {
                let node = if id.len() % 2 == 0 { "n1" } else { "n2" };
                let r = call("ADD", &id, &conf(net, &urls, node, json!({"timeout": 10})));
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (id, r)
            })
        });
        while done.load(std::sync::atomic::Ordering::SeqCst) < 20 {
            std::thread::sleep(Duration::from_millis(5));
        }
        c.kill(0);
        h.join().unwrap()
    });
    let mut seen = HashSet::new();
    let mut mine = BTreeMap::new();
    for (id, r) in &replies {
        r.ok();
        let ip = addr_of(r).split('/').next().unwrap().to_string();
        assert!(seen.insert(ip.clone()), "duplicate {ip}");
        mine.insert(format!("{PREFIX}/{net}/{ip}"), id.clone());
    }
    let dump = reserved(&c, net);
    let held: BTreeMap<String, String> = dump
        .iter()
        .map(|(k, v)| (k.clone(), v["containerID"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(held, mine, "etcd holds exactly the answered addresses");
}

#[test]
fn whole_cluster_down_coded_errors_within_the_timeout_then_gc_leaves_nothing() {
    if !tools() {
        return;
    }
    let mut c = Cluster::start(3);
    let net = "down";
    let urls = c.urls.clone();
    let n1 = |t: u64| conf(net, &urls, "n1", json!({"timeout": t}));
    call("ADD", "c1", &n1(5)).ok();
    call("ADD", "c2", &n1(5)).ok();
    call("ADD", "other", &conf(net, &urls, "n2", json!({}))).ok();
    // A crash between reserving and answering leaves a key of this node.
    let r = Call::attach("etcd", "ADD", "crashed", "/x", "eth0")
        .var("CNIBOX_FAULT", "etcd:before-answer:abort")
        .config(&n1(5))
        .run();
    assert_ne!(r.status, 0);
    assert_eq!(reserved(&c, net).len(), 4);

    for i in 0..3 {
        c.kill(i);
    }
    for cmd in ["ADD", "DEL", "CHECK", "GC"] {
        let mut cf = n1(2);
        if cmd == "GC" {
            cf["cni.dev/valid-attachments"] = json!([]);
        }
        let t = Instant::now();
        let r = call(cmd, "c3", &cf);
        let took = t.elapsed();
        assert_eq!(r.err_code(), 11, "{cmd}: {}", r.stdout);
        assert!(
            r.json()["msg"]
                .as_str()
                .unwrap()
                .contains("no etcd endpoint answered within 2.0s"),
            "{}",
            r.stdout
        );
        assert!(took < Duration::from_millis(3500), "{cmd} took {took:?}");
    }
    let t = Instant::now();
    let r = call("STATUS", "", &n1(2));
    assert_eq!(r.err_code(), 50, "{}", r.stdout);
    assert!(t.elapsed() < Duration::from_millis(3500));

    // c1's DEL failed while the cluster was down; after it returns, GC
    // with only c2 valid removes c1 and the crashed ADD's key, and keeps
    // the other node's.
    c.restart_all();
    let mut gc = n1(5);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c2", "ifname": "eth0"}]);
    call("GC", "", &gc).ok();
    // GC removed the owner index keys with the addresses.
    assert_eq!(c.dump(&format!("{PREFIX}/{net}/")).len(), 4);
    let owners: Vec<String> = reserved(&c, net)
        .values()
        .map(|v| v["containerID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        owners.iter().collect::<HashSet<_>>(),
        ["c2".to_string(), "other".to_string()].iter().collect()
    );
}

#[test]
fn requested_ips_owner_checked_release_and_exhaustion() {
    if !tools() {
        return;
    }
    let c = Cluster::start(1);
    let net = "req";
    let small = json!({"ranges": [[{"subnet": "10.78.0.0/29", "rangeStart": "10.78.0.2", "rangeEnd": "10.78.0.4"}]]});
    let cf = conf(net, &c.urls, "n1", small.clone());
    // CNI_ARGS IP, then runtimeConfig.ips, as host-local.
    let r = Call::attach("etcd", "ADD", "a", "/x", "eth0")
        .var("CNI_ARGS", "IP=10.78.0.3")
        .config(&cf)
        .run();
    assert_eq!(addr_of(r.ok()), "10.78.0.3/29");
    let mut rc = cf.clone();
    rc["runtimeConfig"] = json!({"ips": ["10.78.0.3"]});
    let r = call("ADD", "b", &rc);
    assert_eq!(r.err_code(), 999);
    assert!(
        r.stdout.contains("10.78.0.3 is not available"),
        "{}",
        r.stdout
    );
    rc["runtimeConfig"] = json!({"ips": ["10.78.0.4"]});
    assert_eq!(addr_of(call("ADD", "b", &rc).ok()), "10.78.0.4/29");
    // A second ADD of the same attachment is refused, as host-local.
    assert!(call("ADD", "a", &cf)
        .stdout
        .contains("duplicate allocation"));
    assert_eq!(addr_of(call("ADD", "c", &cf).ok()), "10.78.0.2/29");
    let r = call("STATUS", "", &cf);
    assert_eq!(r.err_code(), 50);
    assert!(r.stdout.contains("exhausted"), "{}", r.stdout);
    let r = call("ADD", "d", &cf);
    assert!(
        r.stdout.contains("no IP addresses available"),
        "{}",
        r.stdout
    );
    // DEL frees only what the attachment holds; then the address is free.
    call("DEL", "a", &cf).ok();
    call("DEL", "a", &cf).ok();
    assert_eq!(reserved(&c, net).len(), 2);
    call("STATUS", "", &cf).ok();
    assert_eq!(addr_of(call("ADD", "d", &cf).ok()), "10.78.0.3/29");
    // DEL needs only the connection part: a config whose ranges no
    // longer validate still releases (and CHECK then finds nothing).
    let mut broken = cf.clone();
    broken["ipam"]["ranges"] = json!("junk");
    call("DEL", "d", &broken).ok();
    assert_eq!(reserved(&c, net).len(), 2);
    assert_eq!(call("CHECK", "d", &cf).err_code(), 999);
    assert_eq!(addr_of(call("ADD", "d", &cf).ok()), "10.78.0.3/29");
    // A GC of node n2 never touches n1's keys.
    let mut gc = conf(net, &c.urls, "n2", small);
    gc["cni.dev/valid-attachments"] = json!([]);
    call("GC", "", &gc).ok();
    assert_eq!(reserved(&c, net).len(), 3);

    // `cnibox ipam ls --etcd` shows who holds what, from which node.
    let out = Command::new(common::cnibox())
        .args(["ipam", "ls", "--etcd", &c.urls.join(","), net])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NETWORK", "IP", "CONTAINER", "IFNAME", "NODE", "SINCE"]
    );
    let got: Vec<&[&str]> = rows[1..].iter().map(|r| &r[..5]).collect();
    assert_eq!(
        got,
        [
            &["req", "10.78.0.2", "c", "eth0", "n1"][..],
            &["req", "10.78.0.3", "d", "eth0", "n1"],
            &["req", "10.78.0.4", "b", "eth0", "n1"],
        ]
    );
    let out = Command::new(common::cnibox())
        .args(["ipam", "ls", "--json", "--etcd", &c.urls[0]])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["node"], "n1");
}

#[test]
fn config_errors_name_the_field_before_any_network() {
    let bad = |ipam: Value| {
        let mut ipam = ipam;
        ipam["type"] = json!("etcd");
        ipam["ranges"] = json!([[{"subnet": "10.79.0.0/24"}]]);
        let r = call(
            "ADD",
            "x",
            &json!({"cniVersion": "1.1.0", "name": "n", "ipam": ipam}),
        );
        assert_eq!(r.err_code(), 7, "{}", r.stdout);
        r.json()["msg"].as_str().unwrap().to_string()
    };
    assert!(bad(json!({})).starts_with("ipam.endpoints: "));
    assert!(bad(json!({"endpoints": ["tcp://a:1"]})).contains("ipam.endpoints: \"tcp://a:1\""));
    assert!(bad(json!({"endpoints": ["https://127.0.0.1:1"]}))
        .starts_with("etcd: ipam.caFile: required"));
    assert!(
        bad(json!({"endpoints": ["https://127.0.0.1:1"], "caFile": "/nonexistent/ca.pem"}))
            .starts_with("etcd: ipam.caFile: /nonexistent/ca.pem")
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate it signs (`name.pem`, `name.key`), with
/// 127.0.0.1 as IP SAN for servers.
fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
        ],
    );
}

fn make_cert(dir: &Path, ca: &str, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

#[test]
fn tls_with_client_certificates_right_cert_works_wrong_cert_fails_clearly() {
    if !tools() {
        return;
    }
    if !have("openssl") {
        skip(SkipKind::Tool, "openssl not installed (apt: openssl)");
        return;
    }
    let d = TempDir::new("etcd-tls-");
    let p = d.path();
    make_ca(p, "ca");
    make_ca(p, "rogue");
    make_cert(p, "ca", "server");
    make_cert(p, "ca", "client");
    make_cert(p, "rogue", "intruder");
    let f = |n: &str| p.join(n);
    let server = Certs {
        ca: f("ca.pem"),
        cert: f("server.pem"),
        key: f("server.key"),
    };
    let client = Certs {
        ca: f("ca.pem"),
        cert: f("client.pem"),
        key: f("client.key"),
    };
    let c = Cluster::start_with(1, Some(server), Some(client));
    let tls = |ca: &str, who: &str| json!({"caFile": f(ca), "certFile": f(&format!("{who}.pem")), "keyFile": f(&format!("{who}.key")), "timeout": 3});
    let net = "tls";
    let ok = conf(net, &c.urls, "n1", tls("ca.pem", "client"));
    let a = addr_of(call("ADD", "good", &ok).ok());
    assert!(a.starts_with("10.77.0."), "{a}");
    assert_eq!(reserved(&c, net).len(), 1);

    // A certificate from another CA: refused by the server, said clearly,
    // and quickly (no retrying until the timeout).
    let t = Instant::now();
    let r = call(
        "ADD",
        "bad",
        &conf(net, &c.urls, "n1", tls("ca.pem", "intruder")),
    );
    assert_eq!(r.err_code(), 999, "{}", r.stdout);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("TLS with etcd failed"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // No client certificate at all, and a server we do not trust.
    let mut none = conf(
        net,
        &c.urls,
        "n1",
        json!({"caFile": f("ca.pem"), "timeout": 3}),
    );
    assert!(call("ADD", "bad", &none).json()["msg"]
        .as_str()
        .unwrap()
        .contains("TLS with etcd failed"));
    none = conf(net, &c.urls, "n1", tls("rogue.pem", "client"));
    let msg = call("ADD", "bad", &none).json()["msg"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("TLS with etcd failed") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    assert_eq!(reserved(&c, net).len(), 1);
    call("DEL", "good", &ok).ok();
    assert!(reserved(&c, net).is_empty());
}

#[test]
fn username_and_password_auth() {
    if !tools() {
        return;
    }
    let mut c = Cluster::start(1);
    let urls = c.urls.clone();
    for args in [&["user", "add", "root:s3cret"][..], &["auth", "enable"]] {
        let out = c.etcdctl(&urls, args);
        assert!(out.status.success(), "{out:?}");
    }
    c.user = Some("root:s3cret".into());
    let net = "auth";
    let good = conf(
        net,
        &urls,
        "n1",
        json!({"username": "root", "password": "s3cret"}),
    );
    addr_of(call("ADD", "a", &good).ok());
    assert_eq!(reserved(&c, net).len(), 1);
    for extra in [json!({"username": "root", "password": "wrong"}), json!({})] {
        let t = Instant::now();
        let r = call("ADD", "b", &conf(net, &urls, "n1", extra));
        assert_eq!(r.err_code(), 999, "{}", r.stdout);
        let msg = r.json()["msg"].as_str().unwrap().to_string();
        assert!(msg.contains("etcd refused the request"), "{msg}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
    call("DEL", "a", &good).ok();
    assert!(reserved(&c, net).is_empty());
}
