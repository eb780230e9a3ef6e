//! portmap chained after bridge + host-local, cnibox only, in a namespace
//! that plays the node. Echo servers are threads entered into the
//! container namespaces; clients are threads in the node, an "outside"
//! namespace or a container. `nft` is used only as a test tool to look.

mod common;
use common::node::{merged, with_prev, Node};
use common::*;
use nix::sched::{setns, CloneFlags};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NODE_IP: &str = "192.0.2.1";
const OUTSIDE_IP: &str = "192.0.2.2";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Run `f` on a thread inside `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// TCP and UDP echo servers on `port` inside a container: each answers
/// "<tag> saw <peer ip>". Stopped on drop.
struct Echo(Arc<AtomicBool>);

impl Echo {
    fn start(ns: &TestNs, tag: &str, port: u16) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let (tcp, udp) = in_ns(&ns.name, move || {
            let t = TcpListener::bind(("0.0.0.0", port)).unwrap();
            let u = UdpSocket::bind(("0.0.0.0", port)).unwrap();
            t.set_nonblocking(true).unwrap();
            u.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            (t, u)
        });
        let (s1, s2, t1, t2) = (stop.clone(), stop.clone(), tag.to_string(), tag.to_string());
        std::thread::spawn(move || {
            while !s1.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.write_all(format!("{t1} saw {}", peer.ip()).as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(format!("{t2} saw {}", peer.ip()).as_bytes(), peer);
                }
            }
        });
        Echo(stop)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a TCP client in `ns` reads from `to` (None: no connection).
fn tcp_get(ns: &TestNs, to: &str) -> Option<String> {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(&ns.name, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
}

/// The answer to one UDP datagram sent from `ns` (from `from_port`, 0 =
/// any) to `to`.
fn udp_get(ns: &TestNs, from_port: u16, to: &str) -> Option<String> {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(&ns.name, move || {
        let s = UdpSocket::bind(("0.0.0.0", from_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.send_to(b"ping", to).ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// A node with an address facing an "outside" namespace.
struct World {
    node: Node,
    outside: TestNs,
}

impl World {
    fn new() -> World {
        let node = Node::new("portmap");
        let outside = TestNs::new("pmo");
        node.host
            .ip(&["link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
        node.host
            .ip(&["link", "set", "up1", "netns", &outside.name]);
        node.host.ip(&["addr", "add", "192.0.2.1/24", "dev", "up0"]);
        node.host.ip(&["link", "set", "up0", "up"]);
        outside.ip(&["addr", "add", "192.0.2.2/24", "dev", "up1"]);
        outside.ip(&["link", "set", "up1", "up"]);
        World { node, outside }
    }

    fn bridge(&self) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": "pmnet", "type": "bridge", "bridge": "cnipm0",
            "isGateway": true, "hairpinMode": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.1.0/24"}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.node.data.str()}
        })
    }

    fn call(&self, applet: &str, cmd: &str, id: &str, netns: &str, conf: &Value) -> Reply {
        Call::attach(applet, cmd, id, netns, "eth0")
            .var("PATH", "/nonexistent")
            .in_ns(&self.node.host)
            .config(conf)
            .run()
    }

    /// bridge ADD then portmap ADD (prevResult = bridge's result) for
    /// `maps`; returns the portmap config with its prevResult.
    fn attach(&self, id: &str, ns: &TestNs, maps: Value) -> Value {
        let r = self.call("bridge", "ADD", id, &ns.path(), &self.bridge());
        let prev = r.ok().json();
        let conf = with_prev(&pm_conf(maps), &prev);
        let out = self.call("portmap", "ADD", id, &ns.path(), &conf);
        assert_eq!(out.ok().json(), prev, "portmap passes prevResult on");
        conf
    }

    fn detach(&self, id: &str, ns: &TestNs, conf: &Value) {
        self.call("portmap", "DEL", id, &ns.path(), conf).ok();
        self.call("bridge", "DEL", id, &ns.path(), &self.bridge())
            .ok();
    }

    fn rules_of(&self, id: &str) -> usize {
        comments(&self.node.host)
            .iter()
            .filter(|c| *c == id)
            .count()
    }
}

fn pm_conf(maps: Value) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": "pmnet", "type": "portmap",
        "runtimeConfig": {"portMappings": maps},
        "dataDir": owners_dir()
    })
}

/// Where this test process's portmap records live (not the node's
/// /var/lib/cni).
fn owners_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cnibox-portmap-{}", std::process::id()))
}

/// The comment of every rule in `nft -j list ruleset`.
fn comments(ns: &TestNs) -> Vec<String> {
    let out = ns.exec(&["nft", "-j", "list", "ruleset"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!({"nftables": []}));
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter_map(|r| r["comment"].as_str().map(String::from))
        .collect()
}

fn skip_without_nft() -> bool {
    if !have_nft() {
        skip(SkipKind::Tool, "nft is needed to read the rules back");
        return true;
    }
    false
}

#[test]
fn tcp_and_udp_reach_the_container_from_outside_the_node_localhost_and_hairpin() {
    require_root!();
    if skip_without_nft() {
        return;
    }
    let w = World::new();
    let (a, b) = (TestNs::new("pma"), TestNs::new("pmb"));
    let _ea = Echo::start(&a, "A", 80);
    let _eb = Echo::start(&b, "B", 80);
    let ca = w.attach(
        "ctr-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
               {"hostPort": 8080, "containerPort": 80, "protocol": "UDP"}]),
    );
    let cb = w.attach(
        "ctr-b",
        &b,
        json!([{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]),
    );
    let to = |p: u16| format!("{NODE_IP}:{p}");

    // from another namespace, through the node's address: no masquerade
    let want_outside = format!("A saw {OUTSIDE_IP}");
    assert_eq!(
        tcp_get(&w.outside, &to(8080)).as_deref(),
        Some(&*want_outside)
    );
    assert_eq!(
        udp_get(&w.outside, 0, &to(8080)).as_deref(),
        Some(&*want_outside)
    );
    assert_eq!(
        tcp_get(&w.outside, &to(8081)).as_deref(),
        Some(&*format!("B saw {OUTSIDE_IP}"))
    );
    // from the node itself (output chain), to its address and to localhost
    // (route_localnet on the bridge, masquerade of 127.0.0.1)
    assert!(tcp_get(&w.node.host, &to(8080))
        .unwrap()
        .starts_with("A saw "));
    assert_eq!(
        tcp_get(&w.node.host, "127.0.0.1:8080").as_deref(),
        Some("A saw 10.99.1.1")
    );
    let localnet = w
        .node
        .host
        .exec(&["cat", "/proc/sys/net/ipv4/conf/cnipm0/route_localnet"]);
    assert_eq!(String::from_utf8_lossy(&localnet.stdout).trim(), "1");
    // hairpin: the container reaches itself through the node's address
    // (the bridge port needs hairpinMode, as with the reference)
    assert_eq!(tcp_get(&a, &to(8080)).as_deref(), Some("A saw 10.99.1.1"));

    // CHECK passes with the rules in place
    w.call("portmap", "CHECK", "ctr-a", &a.path(), &ca).ok();

    // DEL of A: its port is closed, B's keeps working
    w.detach("ctr-a", &a, &ca);
    assert_eq!(w.rules_of("ctr-a"), 0);
    assert_eq!(tcp_get(&w.outside, &to(8080)), None);
    assert_eq!(
        tcp_get(&w.outside, &to(8081)).as_deref(),
        Some(&*format!("B saw {OUTSIDE_IP}"))
    );
    w.detach("ctr-b", &b, &cb);
    assert!(
        comments(&w.node.host).is_empty(),
        "{:?}",
        comments(&w.node.host)
    );
}

#[test]
fn udp_flows_that_started_before_the_mapping_are_flushed_from_conntrack() {
    require_root!();
    if skip_without_nft() {
        return;
    }
    let w = World::new();
    let (a, b) = (TestNs::new("pmua"), TestNs::new("pmub"));
    let _ea = Echo::start(&a, "A", 53);
    // B's ADD creates the nat chains, so the early flow gets a NAT binding
    // of its own (none) that only a conntrack flush can undo.
    let cb = w.attach(
        "ctr-b",
        &b,
        json!([{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]),
    );
    let to = format!("{NODE_IP}:5353");
    assert_eq!(udp_get(&w.outside, 40053, &to), None);
    let ca = w.attach(
        "ctr-a",
        &a,
        json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]),
    );
    assert_eq!(
        udp_get(&w.outside, 40053, &to).as_deref(),
        Some(&*format!("A saw {OUTSIDE_IP}"))
    );
    w.detach("ctr-a", &a, &ca);
    w.detach("ctr-b", &b, &cb);
}

/// `nft -j list table …` of both families without handles and metainfo.
fn tables_json(ns: &TestNs) -> Vec<Value> {
    let mut all = Vec::new();
    for fam in ["ip", "ip6"] {
        let out = ns.exec(&["nft", "-j", "list", "table", fam, "cni_hostport"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        all.extend(v["nftables"].as_array().unwrap().iter().cloned());
    }
    strip(all)
}

fn strip(v: Vec<Value>) -> Vec<Value> {
    v.into_iter()
        .filter(|o| o.get("metainfo").is_none())
        .map(|mut o| {
            for kind in ["table", "chain", "rule"] {
                if let Some(m) = o.get_mut(kind).and_then(Value::as_object_mut) {
                    m.remove("handle");
                }
            }
            o
        })
        .collect()
}

fn fixture_conf(node: &Node) -> (Value, Value) {
    let bridge = json!({
        "cniVersion": "1.0.0", "name": "pmfix", "type": "bridge", "bridge": "cnipm0", "isGateway": true,
        "ipam": {"type": "host-local",
                 "ranges": [[{"subnet": "10.99.1.0/24"}], [{"subnet": "fd99:1::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": node.data.str()}
    });
    let pm = merged(
        pm_conf(json!([
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
            {"hostPort": 9090, "containerPort": 90, "protocol": "tcp", "hostIP": "192.0.2.10"}
        ])),
        json!({"name": "pmfix", "backend": "nftables"}),
    );
    (bridge, pm)
}

#[test]
fn add_lists_like_go_heads_fixture_and_a_repeated_add_duplicates_nothing() {
    require_root!();
    if skip_without_nft() {
        return;
    }
    let node = Node::new("portmap");
    let ctr = TestNs::new("pmfx");
    let (bridge, pm) = fixture_conf(&node);
    let call = |applet: &str, cmd: &str, conf: &Value| {
        Call::attach(applet, cmd, "fixture0002", &ctr.path(), "eth0")
            .in_ns(&node.host)
            .config(conf)
            .run()
    };
    let prev = call("bridge", "ADD", &bridge).ok().json();
    let pm = with_prev(&pm, &prev);
    call("portmap", "ADD", &pm).ok();
    call("portmap", "ADD", &pm).ok();
    let want: Value =
        serde_json::from_slice(&std::fs::read(fixture("goref-head-portmap-nft.json")).unwrap())
            .unwrap();
    let want = strip(want["nftables"].as_array().unwrap().clone());
    assert_eq!(tables_json(&node.host), want);
    call("portmap", "CHECK", &pm).ok();
    call("portmap", "DEL", &pm).ok();
    assert!(comments(&node.host).is_empty());
    // CHECK now sees the rules missing
    assert_eq!(call("portmap", "CHECK", &pm).err_code(), 999);
    call("bridge", "DEL", &bridge).ok();
}

#[test]
fn go_made_rules_are_removed_by_del_without_port_mappings_or_netns_where_the_reference_leaks() {
    require_root!();
    if skip_without_nft() {
        return;
    }
    let node = Node::new("portmap");
    let f = fixture("goref-head-portmap-nft.nft");
    assert!(node
        .host
        .exec(&["nft", "-f", f.to_str().unwrap()])
        .status
        .success());
    let before = tables_json(&node.host);
    assert_eq!(comments(&node.host).len(), 8);
    // no runtimeConfig at all, and a netns that no longer exists
    let conf = json!({"cniVersion": "1.0.0", "name": "pmfix", "type": "portmap"});
    for _ in 0..2 {
        Call::attach(
            "portmap",
            "DEL",
            "fixture0002",
            "/run/netns/gone-pm",
            "eth0",
        )
        .in_ns(&node.host)
        .config(&conf)
        .run()
        .ok();
    }
    assert!(comments(&node.host).is_empty());
    // tables, chains and the shared jump rules stay (Go keeps them too)
    let after = tables_json(&node.host);
    let shared = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .filter(|o| o.get("rule").is_none_or(|r| r.get("comment").is_none()))
            .cloned()
            .collect()
    };
    assert_eq!(shared(&after), shared(&before));
    assert_eq!(after.len(), before.len() - 8);
}

/// A prevResult naming a container interface with one v4 address, for
/// plugin-only runs (no link needed: portmap never enters the netns).
fn fake_prev(ip: &str) -> Value {
    json!({"cniVersion": "1.0.0",
           "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
           "ips": [{"address": format!("{ip}/24"), "interface": 0}]})
}

#[test]
fn gc_removes_only_this_networks_containers_that_are_not_valid_attachments() {
    require_root!();
    if skip_without_nft() {
        return;
    }
    let node = Node::new("portmap");
    let maps = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    // DEL on a node that never had a table succeeds and creates nothing
    Call::attach("portmap", "DEL", "never-added", "/run/netns/x", "eth0")
        .in_ns(&node.host)
        .config(&pm_conf(maps.clone()))
        .run()
        .ok();
    assert_eq!(node.host.nft_ruleset().trim(), "");
    for (id, ip) in [("keep-me", "10.9.0.2"), ("stale-1", "10.9.0.3")] {
        let conf = with_prev(&pm_conf(maps.clone()), &fake_prev(ip));
        Call::attach("portmap", "ADD", id, "/run/netns/x", "eth0")
            .in_ns(&node.host)
            .config(&conf)
            .run()
            .ok();
    }
    // A container whose port forwards another network made is not this
    // network's to collect, valid list or not.
    let other = merged(
        with_prev(&pm_conf(maps.clone()), &fake_prev("10.9.0.4")),
        json!({"name": "othernet"}),
    );
    Call::attach("portmap", "ADD", "other-net", "/run/netns/x", "eth0")
        .in_ns(&node.host)
        .config(&other)
        .run()
        .ok();
    assert_eq!(comments(&node.host).len(), 9);
    let gc = merged(
        pm_conf(json!([])),
        json!({"cniVersion": "1.1.0", "cni.dev/valid-attachments": [{"containerID": "keep-me", "ifname": "eth0"}]}),
    );
    Call::new("portmap", "GC")
        .in_ns(&node.host)
        .config(&gc)
        .run()
        .ok();
    let mut left = comments(&node.host);
    left.sort();
    let mut want = vec!["keep-me"; 3];
    want.extend(["other-net"; 3]);
    assert_eq!(left, want, "{left:?}");
    // The records follow the rules: the stale one is gone.
    let recs = |net: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(owners_dir().join(net))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    assert_eq!(recs("pmnet"), vec!["keep-me"]);
    assert_eq!(recs("othernet"), vec!["other-net"]);
    for (id, c) in [
        ("keep-me", pm_conf(maps.clone())),
        ("other-net", other.clone()),
    ] {
        Call::attach("portmap", "DEL", id, "/run/netns/x", "eth0")
            .in_ns(&node.host)
            .config(&c)
            .run()
            .ok();
    }
    assert!(comments(&node.host).is_empty());
    assert!(recs("pmnet").is_empty() && recs("othernet").is_empty());
    Call::new("portmap", "STATUS")
        .in_ns(&node.host)
        .config(&merged(gc, json!({"cni.dev/valid-attachments": null})))
        .run()
        .ok();
}

#[test]
fn bad_protocol_and_overlong_container_id_fail_before_any_change() {
    require_root!();
    if skip_without_nft() {
        return;
    }
    let node = Node::new("portmap");
    let maps = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                      {"hostPort": 8081, "containerPort": 81, "protocol": "icmp"}]);
    let conf = with_prev(&pm_conf(maps), &fake_prev("10.9.0.2"));
    let r = Call::attach("portmap", "ADD", "ctr", "/run/netns/x", "eth0")
        .in_ns(&node.host)
        .config(&conf)
        .run();
    assert_eq!(r.err_code(), 7);
    assert!(
        r.stdout.contains("portMappings[1].protocol"),
        "{}",
        r.stdout
    );
    let good = with_prev(
        &pm_conf(json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])),
        &fake_prev("10.9.0.2"),
    );
    let r = Call::attach("portmap", "ADD", &"c".repeat(129), "/run/netns/x", "eth0")
        .in_ns(&node.host)
        .config(&good)
        .run();
    assert_eq!(r.err_code(), 4);
    assert!(r.stdout.contains("CNI_CONTAINERID"), "{}", r.stdout);
    assert_eq!(node.host.nft_ruleset().trim(), "");
    // 128 bytes is the longest comment nft reads back, and works
    let id = "c".repeat(128);
    Call::attach("portmap", "ADD", &id, "/run/netns/x", "eth0")
        .in_ns(&node.host)
        .config(&good)
        .run()
        .ok();
    assert_eq!(comments(&node.host), vec![id.clone(); 3]);
}

/// `iptables|ip6tables -t nat -S` in the node.
fn nat_rules(ns: &TestNs, bin: &str) -> String {
    String::from_utf8_lossy(&ns.exec(&[bin, "-t", "nat", "-S"]).stdout).into_owned()
}

#[test]
fn del_also_removes_what_gos_default_iptables_backend_made_for_the_container() {
    require_root!();
    let go = std::path::Path::new("/usr/lib/cni/portmap");
    if !go.exists()
        || !Command::new("iptables")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        skip(SkipKind::Tool, "needs Debian's Go portmap and iptables");
        return;
    }
    let node = Node::new("portmap");
    let mut prev = fake_prev("10.9.0.2");
    prev["ips"]
        .as_array_mut()
        .unwrap()
        .push(json!({"address": "fd00:9::2/64", "interface": 0}));
    let maps = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                      {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]);
    let conf = with_prev(&merged(pm_conf(maps), json!({"name": "pmgo"})), &prev);
    let mut add = Call::attach("portmap", "ADD", "go-ctr", "/run/netns/x", "eth0")
        .in_ns(&node.host)
        .config(&conf);
    add.bin_dir = go.parent().unwrap().to_path_buf();
    add.run().ok();
    // Go 1.1.1 names the chain CNI-DN-<21 hex of sha512(net+cid)>
    let chain = "CNI-DN-";
    for bin in ["iptables", "ip6tables"] {
        let s = nat_rules(&node.host, bin);
        assert_eq!(s.matches(&format!("-N {chain}")).count(), 1, "{bin}: {s}");
        assert!(s.contains("-j CNI-DN-"), "{s}");
    }
    // another container's chain stays
    let mut other = Call::attach("portmap", "ADD", "go-other", "/run/netns/x", "eth0")
        .in_ns(&node.host)
        .config(&with_prev(&conf, &fake_prev("10.9.0.3")));
    other.bin_dir = go.parent().unwrap().to_path_buf();
    other.run().ok();
    let del = json!({"cniVersion": "1.0.0", "name": "pmgo", "type": "portmap"});
    for _ in 0..2 {
        Call::attach("portmap", "DEL", "go-ctr", "/run/netns/gone", "eth0")
            .in_ns(&node.host)
            .config(&del)
            .run()
            .ok();
    }
    let v4 = nat_rules(&node.host, "iptables");
    assert_eq!(v4.matches("-N CNI-DN-").count(), 1, "{v4}");
    assert_eq!(
        v4.matches("-j CNI-DN-").count(),
        2,
        "go-other's tcp and udp jumps only: {v4}"
    );
    assert!(v4.contains("go-other") && !v4.contains("go-ctr"), "{v4}");
    let v6 = nat_rules(&node.host, "ip6tables");
    assert!(!v6.contains("CNI-DN-"), "{v6}");
    assert!(
        v4.contains("-N CNI-HOSTPORT-DNAT"),
        "shared chains stay: {v4}"
    );
}

/// `-S` lines sorted, so that insertion order does not matter.
fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn iptables_backend_makes_what_gos_makes_and_del_removes_it() {
    require_root!();
    let go = std::path::Path::new("/usr/lib/cni/portmap");
    if !go.exists()
        || !Command::new("iptables")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        skip(SkipKind::Tool, "needs Debian's Go portmap and iptables");
        return;
    }
    let (gonode, ours) = (Node::new("portmap"), Node::new("portmap"));
    let mut prev = fake_prev("10.9.0.2");
    prev["ips"]
        .as_array_mut()
        .unwrap()
        .push(json!({"address": "fd00:9::2/64", "interface": 0}));
    let maps = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                      {"hostPort": 8443, "containerPort": 443, "protocol": "tcp", "hostIP": "192.0.2.10"},
                      {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]);
    let conf = with_prev(
        &merged(
            pm_conf(maps),
            json!({"name": "pmipt", "backend": "iptables"}),
        ),
        &prev,
    );
    let call = |node: &Node, cmd: &str, bin: Option<&std::path::Path>| {
        let mut c = Call::attach("portmap", cmd, "ipt-ctr", "/run/netns/x", "eth0")
            .in_ns(&node.host)
            .config(&conf);
        if let Some(b) = bin {
            c.bin_dir = b.to_path_buf();
        }
        c.run()
    };
    call(&gonode, "ADD", go.parent()).ok();
    call(&ours, "ADD", None).ok();
    call(&ours, "ADD", None).ok();
    for bin in ["iptables", "ip6tables"] {
        let (g, o) = (nat_rules(&gonode.host, bin), nat_rules(&ours.host, bin));
        assert!(o.contains("-j DNAT"), "{o}");
        assert_eq!(sorted(&o), sorted(&g), "{bin}: ours first, Go's second");
    }
    assert!(
        comments(&ours.host).is_empty(),
        "no nf_tables rules of ours"
    );
    call(&ours, "CHECK", None).ok();
    call(&ours, "DEL", None).ok();
    for bin in ["iptables", "ip6tables"] {
        let o = nat_rules(&ours.host, bin);
        assert!(!o.contains("CNI-DN-"), "{bin}: {o}");
    }
    assert_eq!(call(&ours, "CHECK", None).err_code(), 999);
}
