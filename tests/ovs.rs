//! The `ovs` applet against a real Open vSwitch: each test starts its own
//! ovsdb-server (temp database) and ovs-vswitchd (userspace `netdev`
//! datapath) inside a private netns that plays the node, and stops them by
//! PID. ovs-vsctl is used only to set up and to assert.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// ovsdb-server + ovs-vswitchd in the node netns, killed by PID on drop
/// (then the temp dir and the netns go, in field order).
struct Ovs {
    pids: Vec<i32>,
    dpdk_prefix: Option<String>,
    dir: TempDir,
    node: TestNs,
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} || test -x {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

const DPDK_VSWITCHD: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid file {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Ovs {
    /// None (after a SKIP) when Open vSwitch is not installed.
    fn start(dpdk: bool) -> Option<Ovs> {
        let tools = ["ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-vswitchd"];
        if let Some(t) = tools.iter().find(|t| !have(t)) {
            skip(
                SkipKind::Tool,
                &format!("{t} missing (apt package openvswitch-switch)"),
            );
            return None;
        }
        if dpdk && !Path::new(DPDK_VSWITCHD).exists() {
            skip(
                SkipKind::Tool,
                "ovs-vswitchd-dpdk missing (apt package openvswitch-switch-dpdk)",
            );
            return None;
        }
        let mut ovs = Ovs {
            pids: Vec::new(),
            dpdk_prefix: None,
            dir: TempDir::new("ovs"),
            node: TestNs::new("ovsn"),
        };
        let t = ovs.dir.str();
        let st = Command::new("ovsdb-tool")
            .args(["create", &format!("{t}/conf.db")])
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .status()
            .unwrap();
        assert!(st.success(), "ovsdb-tool create");
        let st = Command::new("ovsdb-server")
            .arg(format!("{t}/conf.db"))
            .arg(format!("--remote=punix:{t}/db.sock"))
            .arg(format!("--pidfile={t}/ovsdb.pid"))
            .arg(format!("--unixctl={t}/ovsdb.ctl"))
            .arg(format!("--log-file={t}/ovsdb.log"))
            .args(["--detach", "--no-chdir", "-vconsole:off"])
            .status()
            .unwrap();
        assert!(st.success(), "ovsdb-server");
        ovs.pids.push(read_pid(&Path::new(&t).join("ovsdb.pid")));
        ovs.vsctl_nowait(&["init"]);
        let vswitchd = if dpdk {
            let prefix = unique("cnibox");
            ovs.vsctl_nowait(&[
                "set",
                "Open_vSwitch",
                ".",
                "other_config:dpdk-init=true",
                "other_config:vhost-sock-dir=.",
                &format!(
                    "other_config:dpdk-extra=--no-huge --no-pci -m 512 --legacy-mem \
                     --file-prefix={prefix}"
                ),
            ]);
            ovs.dpdk_prefix = Some(prefix);
            DPDK_VSWITCHD
        } else {
            "ovs-vswitchd"
        };
        let st = Command::new("ip")
            .args(["netns", "exec", &ovs.node.name, "env"])
            .arg(format!("OVS_RUNDIR={t}"))
            .arg(vswitchd)
            .arg(format!("unix:{t}/db.sock"))
            .arg(format!("--pidfile={t}/vswitchd.pid"))
            .arg(format!("--unixctl={t}/vswitchd.ctl"))
            .arg(format!("--log-file={t}/vswitchd.log"))
            .args(["--detach", "--no-chdir", "-vconsole:off"])
            .status()
            .unwrap();
        assert!(st.success(), "ovs-vswitchd");
        ovs.pids.push(read_pid(&Path::new(&t).join("vswitchd.pid")));
        Some(ovs)
    }

    fn socket(&self) -> String {
        format!("{}/db.sock", self.dir.str())
    }

    fn run_vsctl(&self, extra: &[&str], args: &[&str]) -> std::process::Output {
        Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.socket()))
            .arg("--timeout=20")
            .args(extra)
            .args(args)
            .output()
            .unwrap()
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let out = self.run_vsctl(&[], args);
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn vsctl_nowait(&self, args: &[&str]) -> String {
        let out = self.run_vsctl(&["--no-wait"], args);
        assert!(out.status.success(), "ovs-vsctl {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn add_bridge(&self, name: &str) {
        self.add_bridge_on(name, "netdev");
    }

    fn add_bridge_on(&self, name: &str, datapath: &str) {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            &format!("datapath_type={datapath}"),
        ]);
    }

    fn ports(&self, bridge: &str) -> Vec<String> {
        self.vsctl(&["list-ports", bridge])
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn bridges(&self) -> Vec<String> {
        self.vsctl(&["list-br"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The port rows as `ovs-vsctl --format=json list Port` prints them.
    fn port_count(&self) -> usize {
        let s = self.vsctl(&["--format=json", "list", "Port"]);
        let v: Value = serde_json::from_str(&s).unwrap();
        v["data"].as_array().unwrap().len()
    }

    fn conf(&self, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.1.0",
            "name": "ovsnet",
            "type": "ovs",
            "bridge": "br0",
            "ovsdbSocket": self.socket(),
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.77.0.0/24"}]],
                "dataDir": format!("{}/ipam", self.dir.str()),
            }
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn call(&self, cmd: &str, id: &str, netns: &str, conf: &Value) -> Reply {
        Call::attach("ovs", cmd, id, netns, "eth0")
            .config(conf)
            .in_ns(&self.node)
            .run()
    }

    /// veth links left in the node netns.
    fn node_veths(&self) -> Vec<String> {
        self.node
            .ip_json(&["link", "show", "type", "veth"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for pid in self.pids.iter().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        for pid in self.pids.iter().rev() {
            let proc_dir = format!("/proc/{pid}");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&proc_dir).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if Path::new(&proc_dir).exists() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        if let Some(p) = &self.dpdk_prefix {
            let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{p}"));
        }
    }
}

fn addr(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn two_containers_ping_over_an_ovs_bridge_then_del_twice_leaves_nothing() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let (a, b) = (TestNs::new("ovsa"), TestNs::new("ovsb"));
    let conf = ovs.conf(json!({}));
    let ra = ovs.call("ADD", "ctr-a", &a.path(), &conf);
    ra.ok();
    let rb = ovs.call("ADD", "ctr-b", &b.path(), &conf);
    rb.ok();
    let (ra, rb) = (ra.json(), rb.json());
    assert_eq!(ra["interfaces"][1]["name"], "eth0");
    assert_eq!(ra["interfaces"][1]["sandbox"], a.path());
    assert_eq!(ra["ips"][0]["interface"], 1);
    let host_a = ra["interfaces"][0]["name"].as_str().unwrap().to_string();
    assert_eq!(ovs.ports("br0").len(), 2);
    assert!(ovs.ports("br0").contains(&host_a));
    assert!(a.ping(&addr(&rb)), "a cannot ping b over OVS");
    assert!(b.ping(&addr(&ra)), "b cannot ping a over OVS");

    // Our external_ids, as the operator sees them.
    let list = ovs.vsctl(&["list", "Port", &host_a]);
    for want in [
        "owner=cnibox",
        "containerID=ctr-a",
        "ifname=eth0",
        "network=ovsnet",
    ] {
        assert!(list.contains(want), "{want} missing from:\n{list}");
    }
    assert!(list.contains(&a.path()), "netns missing from:\n{list}");

    // CHECK with the result as prevResult.
    let mut check = conf.clone();
    check["prevResult"] = ra.clone();
    ovs.call("CHECK", "ctr-a", &a.path(), &check).ok();
    // A result that names another host port does not pass.
    let mut wrong = check.clone();
    wrong["prevResult"]["interfaces"][0]["name"] = json!("vethdeadbeef");
    ovs.call("CHECK", "ctr-a", &a.path(), &wrong).fails();

    for _ in 0..2 {
        ovs.call("DEL", "ctr-a", &a.path(), &conf).ok();
    }
    assert_eq!(ovs.ports("br0").len(), 1);
    assert!(!ovs.ports("br0").contains(&host_a));
    assert!(!a.link_names().contains(&"eth0".to_string()));
    // CHECK now fails: the port is gone.
    ovs.call("CHECK", "ctr-a", &a.path(), &check).fails();
    ovs.call("DEL", "ctr-b", &b.path(), &conf).ok();
    assert!(ovs.ports("br0").is_empty());
    assert!(ovs.node_veths().is_empty(), "{:?}", ovs.node_veths());
    // The bridge was the operator's: it stays.
    assert_eq!(ovs.bridges(), vec!["br0"]);
}

#[test]
fn vlan_10_and_20_do_not_ping_but_10_and_10_do() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let (a, b, c) = (
        TestNs::new("ovsa"),
        TestNs::new("ovsb"),
        TestNs::new("ovsc"),
    );
    let ra = ovs.call("ADD", "a", &a.path(), &ovs.conf(json!({"vlan": 10})));
    let rb = ovs.call("ADD", "b", &b.path(), &ovs.conf(json!({"vlan": 20})));
    let rc = ovs.call("ADD", "c", &c.path(), &ovs.conf(json!({"vlan": 10})));
    let (ra, rb, rc) = (ra.ok().json(), rb.ok().json(), rc.ok().json());
    let port_a = ra["interfaces"][0]["name"].as_str().unwrap();
    assert_eq!(ovs.vsctl(&["get", "Port", port_a, "tag"]), "10");
    assert!(a.ping(&addr(&rc)), "same VLAN must ping");
    assert!(!a.ping(&addr(&rb)), "VLAN 10 reached VLAN 20");
    assert!(!b.ping(&addr(&rc)), "VLAN 20 reached VLAN 10");
    for (id, ns) in [("a", &a), ("b", &b), ("c", &c)] {
        ovs.call("DEL", id, &ns.path(), &ovs.conf(json!({}))).ok();
    }
    assert!(ovs.ports("br0").is_empty());
}

#[test]
fn trunk_and_tag_read_back_from_ovs() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let a = TestNs::new("ovsa");
    let conf = ovs.conf(json!({
        "ipam": null,
        "trunk": [{"id": 42}, {"minID": 100, "maxID": 102}],
    }));
    let r = ovs.call("ADD", "t", &a.path(), &conf);
    let r = r.ok().json();
    assert!(r.get("ips").is_none() || r["ips"].as_array().unwrap().is_empty());
    let port = r["interfaces"][0]["name"].as_str().unwrap();
    assert_eq!(
        ovs.vsctl(&["get", "Port", port, "trunks"]),
        "[42, 100, 101, 102]"
    );
    assert_eq!(ovs.vsctl(&["get", "Port", port, "tag"]), "[]");
    ovs.call("DEL", "t", &a.path(), &conf).ok();
    assert!(ovs.ports("br0").is_empty());
}

#[test]
fn del_after_the_netns_is_gone_removes_the_port() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let a = TestNs::new("ovsa");
    let path = a.path();
    let conf = ovs.conf(json!({}));
    ovs.call("ADD", "gone", &path, &conf).ok();
    assert_eq!(ovs.ports("br0").len(), 1);
    drop(a);
    ovs.call("DEL", "gone", &path, &conf).ok();
    ovs.call("DEL", "gone", &path, &conf).ok();
    assert!(ovs.ports("br0").is_empty());
    assert!(ovs.node_veths().is_empty());
    assert_eq!(ovs.port_count(), 1, "only br0's own port is left");
}

#[test]
fn kill_9_during_add_then_del_leaves_no_port_and_no_veth() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    for point in ["ovs:after-veth", "ovs:after-port", "ovs:after-configure"] {
        let a = TestNs::new("ovsa");
        let conf = ovs.conf(json!({}));
        let r = Call::attach("ovs", "ADD", "killed", &a.path(), "eth0")
            .config(&conf)
            .var("CNIBOX_FAULT", &format!("{point}:abort"))
            .in_ns(&ovs.node)
            .run();
        assert_ne!(r.status, 0, "{point}: ADD was not killed");
        ovs.call("DEL", "killed", &a.path(), &conf).ok();
        assert!(ovs.ports("br0").is_empty(), "{point}: port left");
        assert!(ovs.node_veths().is_empty(), "{point}: veth left");
        assert!(!a.link_names().contains(&"eth0".to_string()));
    }
    // Killed after making its own bridge: DEL removes both.
    let a = TestNs::new("ovsa");
    let conf = ovs.conf(json!({"bridge": "cnibr", "createBridge": true, "datapathType": "netdev"}));
    let r = Call::attach("ovs", "ADD", "killed", &a.path(), "eth0")
        .config(&conf)
        .var("CNIBOX_FAULT", "ovs:after-port:abort")
        .in_ns(&ovs.node)
        .run();
    assert_ne!(r.status, 0);
    assert_eq!(ovs.bridges(), vec!["br0", "cnibr"]);
    ovs.call("DEL", "killed", &a.path(), &conf).ok();
    assert_eq!(ovs.bridges(), vec!["br0"]);
    assert!(ovs.node_veths().is_empty());
}

#[test]
fn a_port_ovs_refuses_is_an_add_error_and_rolled_back() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let shared = TempDir::new("ovsshr");
    let a = TestNs::new("ovsa");
    // The plain (non-DPDK) vswitchd cannot open a vhost-user port.
    let conf = ovs.conf(json!({
        "interfaceType": "dpdkvhostuserclient",
        "sharedDir": shared.str(),
    }));
    let r = ovs.call("ADD", "refused", &a.path(), &conf);
    assert_eq!(r.err_code(), 999);
    assert!(r.json()["msg"].as_str().unwrap().contains("OVS refused"));
    assert!(ovs.ports("br0").is_empty());
    assert_eq!(tree(shared.path()), Vec::<String>::new());
    // The address went back to host-local.
    let held: Vec<String> = tree(&ovs.dir.path().join("ipam/ovsnet"))
        .into_iter()
        .filter(|f| f.starts_with("10."))
        .collect();
    assert!(held.is_empty(), "addresses still held: {held:?}");
    assert_eq!(a.link_names(), vec!["lo"]);
}

#[test]
fn missing_bridge_is_a_config_error_and_changes_nothing() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    let a = TestNs::new("ovsa");
    let r = ovs.call("ADD", "x", &a.path(), &ovs.conf(json!({"bridge": "nobr"})));
    assert_eq!(r.err_code(), 7);
    assert!(ovs.bridges().is_empty());
    assert!(ovs.node_veths().is_empty());
    assert_eq!(a.link_names(), vec!["lo"]);
}

#[test]
fn create_bridge_makes_ours_and_del_removes_it_only_when_empty() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    let (a, b) = (TestNs::new("ovsa"), TestNs::new("ovsb"));
    let conf = ovs.conf(json!({"bridge": "cnibr", "createBridge": true, "datapathType": "netdev"}));
    let ra = ovs.call("ADD", "a", &a.path(), &conf);
    let rb = ovs.call("ADD", "b", &b.path(), &conf);
    let (_, rb) = (ra.ok().json(), rb.ok().json());
    assert_eq!(ovs.bridges(), vec!["cnibr"]);
    assert_eq!(
        ovs.vsctl(&["get", "Bridge", "cnibr", "datapath_type"]),
        "netdev"
    );
    assert_eq!(
        ovs.vsctl(&["get", "Bridge", "cnibr", "external_ids:owner"]),
        "cnibox"
    );
    assert!(a.ping(&addr(&rb)));
    ovs.call("DEL", "a", &a.path(), &conf).ok();
    assert_eq!(ovs.bridges(), vec!["cnibr"], "b still uses it");
    ovs.call("DEL", "b", &b.path(), &conf).ok();
    assert!(ovs.bridges().is_empty(), "our empty bridge stays");
    ovs.call("DEL", "b", &b.path(), &conf).ok();
}

#[test]
fn operator_ports_and_bridges_are_never_touched_by_del_or_gc() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    ovs.add_bridge("opbr");
    ovs.vsctl(&[
        "add-port",
        "br0",
        "opport",
        "--",
        "set",
        "Interface",
        "opport",
        "type=internal",
    ]);
    let a = TestNs::new("ovsa");
    let conf = ovs.conf(json!({}));
    ovs.call("ADD", "a", &a.path(), &conf).ok();
    // An empty operator bridge stays after our DEL ...
    let on_op = ovs.conf(json!({"bridge": "opbr", "ipam": null}));
    let b = TestNs::new("ovsb");
    ovs.call("ADD", "b", &b.path(), &on_op).ok();
    ovs.call("DEL", "b", &b.path(), &on_op).ok();
    assert!(ovs.bridges().contains(&"opbr".to_string()));
    // ... and GC with no valid attachment removes only ours.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    Call::new("ovs", "GC")
        .config(&gc)
        .in_ns(&ovs.node)
        .run()
        .ok();
    assert_eq!(ovs.ports("br0"), vec!["opport"]);
    assert_eq!(ovs.bridges(), vec!["br0", "opbr"]);
    assert!(ovs.node_veths().is_empty());
    ovs.call("DEL", "a", &a.path(), &conf).ok();
    assert_eq!(ovs.ports("br0"), vec!["opport"]);
}

#[test]
fn gc_keeps_valid_attachments() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let (a, b) = (TestNs::new("ovsa"), TestNs::new("ovsb"));
    let conf = ovs.conf(json!({"ipam": null}));
    let ra = ovs.call("ADD", "a", &a.path(), &conf).ok().json();
    ovs.call("ADD", "b", &b.path(), &conf).ok();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "a", "ifname": "eth0"}]);
    Call::new("ovs", "GC")
        .config(&gc)
        .in_ns(&ovs.node)
        .run()
        .ok();
    assert_eq!(
        ovs.ports("br0"),
        vec![ra["interfaces"][0]["name"].as_str().unwrap()]
    );
    ovs.call("DEL", "a", &a.path(), &conf).ok();
}

#[test]
fn tunnel_ports_are_made_once() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let (a, b) = (TestNs::new("ovsa"), TestNs::new("ovsb"));
    let conf = ovs.conf(json!({"tunnels": [{"remote": "192.0.2.7", "vni": 100}]}));
    ovs.call("ADD", "a", &a.path(), &conf).ok();
    ovs.call("ADD", "b", &b.path(), &conf).ok();
    let vx: Vec<String> = ovs
        .ports("br0")
        .into_iter()
        .filter(|p| p.starts_with("vx"))
        .collect();
    assert_eq!(vx.len(), 1, "{:?}", ovs.ports("br0"));
    assert_eq!(ovs.vsctl(&["get", "Interface", &vx[0], "type"]), "vxlan");
    assert_eq!(
        ovs.vsctl(&["get", "Interface", &vx[0], "options:remote_ip"]),
        "\"192.0.2.7\""
    );
    assert_eq!(
        ovs.vsctl(&["get", "Interface", &vx[0], "options:key"]),
        "\"100\""
    );
    ovs.call("DEL", "a", &a.path(), &conf).ok();
    ovs.call("DEL", "b", &b.path(), &conf).ok();
    assert_eq!(ovs.ports("br0"), vx, "the tunnel is shared and stays");
}

#[test]
fn status_needs_the_server_and_the_bridge() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    let status = |conf: &Value| {
        Call::new("ovs", "STATUS")
            .config(conf)
            .in_ns(&ovs.node)
            .run()
    };
    let conf = ovs.conf(json!({"ipam": null}));
    assert_eq!(status(&conf).err_code(), 50);
    ovs.add_bridge("br0");
    status(&conf).ok();
    let create = ovs.conf(json!({"ipam": null, "bridge": "other", "createBridge": true}));
    status(&create).ok();
    let nosock = ovs.conf(json!({"ipam": null, "ovsdbSocket": "/nonexistent/db.sock"}));
    assert_eq!(status(&nosock).err_code(), 50);
}

#[test]
fn bad_configs_are_refused_before_any_change() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let a = TestNs::new("ovsa");
    for bad in [
        json!({"vlan": 4096}),
        json!({"trunk": [{"minID": 5}]}),
        json!({"interfaceType": "tap"}),
        json!({"datapathType": "fast"}),
        json!({"tunnels": [{"remote": "nope", "vni": 1}]}),
        json!({"bridge": ""}),
        json!({"interfaceType": "dpdkvhostuserclient"}),
        json!({"mac": "01:00:5e:00:00:01"}),
        json!({"ovsdbTimeout": 0}),
    ] {
        let r = ovs.call("ADD", "bad", &a.path(), &ovs.conf(bad.clone()));
        assert_eq!(r.err_code(), 7, "{bad}: {}", r.stdout);
    }
    // L2 (no ipam) cannot be answered at 0.2.0: refused before any change.
    let old = ovs.conf(json!({"cniVersion": "0.2.0", "ipam": null}));
    assert_eq!(ovs.call("ADD", "bad", &a.path(), &old).err_code(), 1);
    assert!(ovs.ports("br0").is_empty());
    assert_eq!(a.link_names(), vec!["lo"]);
}

#[test]
fn vhost_user_client_and_server_ports_with_the_dpdk_build() {
    require_root!();
    let Some(ovs) = Ovs::start(true) else { return };
    ovs.add_bridge("br0");
    let shared = TempDir::new("ovsshr");
    let a = TestNs::new("ovsa");
    for (kind, cid) in [
        ("dpdkvhostuserclient", "0123456789abcdef0001"),
        ("dpdkvhostuser", "fedcba9876543210"),
    ] {
        let conf = ovs.conf(json!({
            "interfaceType": kind,
            "sharedDir": shared.str(),
            "ovsSocketDir": ovs.dir.str(),
            "vlan": 30,
        }));
        let r = ovs.call("ADD", cid, &a.path(), &conf);
        let r = r.ok().json();
        let name = format!("{}-eth0", &cid[..12]);
        let sock = format!("{}/{name}", shared.str());
        assert_eq!(r["interfaces"][0]["name"], name.as_str());
        assert_eq!(r["interfaces"][0]["socketPath"], sock.as_str());
        assert_eq!(r["ips"][0]["interface"], 0);
        assert_eq!(ovs.vsctl(&["get", "Interface", &name, "type"]), kind);
        let data_path = format!("{}/configData-{name}.json", shared.str());
        let data: Value = serde_json::from_slice(&std::fs::read(&data_path).unwrap()).unwrap();
        assert_eq!(data["containerId"], cid);
        assert_eq!(data["config"]["vhost"]["socketfile"], name.as_str());
        assert_eq!(
            data["config"]["bridge"],
            json!({"bridgeName": "br0", "vlanId": 30})
        );
        assert_eq!(
            data["ipResult"]["ips"][0]["address"],
            r["ips"][0]["address"]
        );
        assert_eq!(ovs.vsctl(&["get", "Port", &name, "tag"]), "30");
        if kind == "dpdkvhostuser" {
            assert!(Path::new(&sock).exists(), "server socket not moved in");
            assert_eq!(data["config"]["vhost"]["mode"], "client");
        } else {
            assert_eq!(
                ovs.vsctl(&["get", "Interface", &name, "options:vhost-server-path"]),
                format!("\"{sock}\"")
            );
            assert_eq!(data["config"]["vhost"]["mode"], "server");
        }
        let mut check = conf.clone();
        check["prevResult"] = r.clone();
        ovs.call("CHECK", cid, &a.path(), &check).ok();
        ovs.call("DEL", cid, &a.path(), &conf).ok();
        ovs.call("DEL", cid, &a.path(), &conf).ok();
        assert!(ovs.ports("br0").is_empty());
        assert_eq!(tree(shared.path()), Vec::<String>::new());
    }
    // GC with no valid attachment: the rows and the files go.
    let conf = ovs.conf(json!({
        "interfaceType": "dpdkvhostuserclient",
        "sharedDir": shared.str(),
    }));
    ovs.call("ADD", "0123456789abcdef0002", &a.path(), &conf)
        .ok();
    assert_eq!(tree(shared.path()).len(), 1, "configData written");
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    Call::new("ovs", "GC")
        .config(&gc)
        .in_ns(&ovs.node)
        .run()
        .ok();
    assert!(ovs.ports("br0").is_empty());
    assert_eq!(tree(shared.path()), Vec::<String>::new());
}

#[test]
fn vhost_user_socket_path_over_the_unix_limit_is_a_clear_error() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let a = TestNs::new("ovsa");
    let long = format!("/tmp/{}", "d".repeat(100));
    let conf = ovs.conf(json!({"interfaceType": "dpdkvhostuserclient", "sharedDir": long}));
    let r = ovs.call("ADD", "0123456789abcdef", &a.path(), &conf);
    assert_eq!(r.err_code(), 7);
    assert!(r.json()["msg"].as_str().unwrap().contains("unix socket"));
    assert!(!Path::new(&long).exists());
    assert!(ovs.ports("br0").is_empty());
}

#[test]
fn parallel_adds_make_the_bridge_once() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    let conf = ovs.conf(json!({"bridge": "cnibr", "createBridge": true, "datapathType": "netdev"}));
    let nss: Vec<TestNs> = (0..4).map(|_| TestNs::new("ovsp")).collect();
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (ovs, conf) = (&ovs, &conf);
                s.spawn(move || ovs.call("ADD", &format!("p{i}"), &ns.path(), conf))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &replies {
        r.ok();
    }
    assert_eq!(ovs.bridges(), vec!["cnibr"]);
    assert_eq!(ovs.ports("cnibr").len(), 4);
    for (i, ns) in nss.iter().enumerate() {
        ovs.call("DEL", &format!("p{i}"), &ns.path(), &conf).ok();
    }
    assert!(ovs.bridges().is_empty());
}

#[test]
fn mac_and_mtu_reach_the_container_interface() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let a = TestNs::new("ovsa");
    let conf = ovs.conf(json!({"mtu": 1400, "runtimeConfig": {"mac": "c2:11:22:33:44:55"}}));
    let r = ovs.call("ADD", "m", &a.path(), &conf).ok().json();
    assert_eq!(r["interfaces"][1]["mac"], "c2:11:22:33:44:55");
    let link = a.ip_json(&["link", "show", "eth0"]);
    assert_eq!(link[0]["address"], "c2:11:22:33:44:55");
    assert_eq!(link[0]["mtu"], 1400);
    ovs.call("DEL", "m", &a.path(), &conf).ok();
}

#[test]
fn del_with_ovsdb_down_still_removes_the_veth_and_reports_try_again() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let a = TestNs::new("ovsa");
    let conf = ovs.conf(json!({"ipam": null}));
    ovs.call("ADD", "d", &a.path(), &conf).ok();
    let down = ovs.conf(json!({"ipam": null, "ovsdbSocket": "/nonexistent/db.sock"}));
    let r = ovs.call("DEL", "d", &a.path(), &down);
    assert_eq!(r.err_code(), 11);
    assert_eq!(a.link_names(), vec!["lo"]);
    assert!(ovs.node_veths().is_empty());
    // With the server back, DEL finishes the job.
    ovs.call("DEL", "d", &a.path(), &conf).ok();
    assert!(ovs.ports("br0").is_empty());
}

#[test]
fn a_failed_add_rolls_back_only_its_own_port() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let (a, b) = (TestNs::new("ovsa"), TestNs::new("ovsb"));
    let conf = ovs.conf(json!({"ipam": null}));
    let first = ovs.call("ADD", "same", &a.path(), &conf).ok().json();
    for point in ["ovs:after-port", "ovs:after-configure"] {
        let r = Call::attach("ovs", "ADD", "same", &b.path(), "eth0")
            .config(&conf)
            .var("CNIBOX_FAULT", point)
            .in_ns(&ovs.node)
            .run();
        assert_eq!(r.err_code(), 999, "{point}");
        assert_eq!(
            ovs.ports("br0"),
            vec![first["interfaces"][0]["name"].as_str().unwrap()],
            "{point}"
        );
        assert_eq!(b.link_names(), vec!["lo"], "{point}");
    }
    ovs.call("DEL", "same", &a.path(), &conf).ok();
    assert!(ovs.ports("br0").is_empty());
}

/// The kernel datapath: this VM has no openvswitch module, so this runs in
/// the full-kernel lane (`make test-kernel`).
#[test]
fn system_datapath_two_containers_ping() {
    require_root!();
    if !Path::new("/sys/module/openvswitch").exists() {
        skip(
            SkipKind::Kernel,
            "no openvswitch kernel module (system datapath)",
        );
        return;
    }
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge_on("br0", "system");
    let (a, b) = (TestNs::new("ovsa"), TestNs::new("ovsb"));
    let conf = ovs.conf(json!({}));
    let ra = ovs.call("ADD", "a", &a.path(), &conf).ok().json();
    let rb = ovs.call("ADD", "b", &b.path(), &conf).ok().json();
    assert!(a.ping(&addr(&rb)));
    assert!(b.ping(&addr(&ra)));
    ovs.call("DEL", "a", &a.path(), &conf).ok();
    ovs.call("DEL", "b", &b.path(), &conf).ok();
    assert!(ovs.ports("br0").is_empty());
    assert!(ovs.node_veths().is_empty());
}

/// Two attachments come and go at once on a bridge cnibox makes and
/// removes: every call succeeds, and at the end no bridge is left.
#[test]
fn concurrent_add_del_churn_on_our_own_bridge() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    let conf = ovs.conf(
        json!({"bridge": "cnibr", "createBridge": true, "datapathType": "netdev", "ipam": null}),
    );
    let nss: Vec<TestNs> = (0..2).map(|_| TestNs::new("ovsq")).collect();
    std::thread::scope(|s| {
        for (i, ns) in nss.iter().enumerate() {
            let (ovs, conf) = (&ovs, &conf);
            s.spawn(move || {
                for round in 0..8 {
                    let id = format!("q{i}");
                    let add = ovs.call("ADD", &id, &ns.path(), conf);
                    assert_eq!(add.status, 0, "round {round}: {}", add.stdout);
                    let del = ovs.call("DEL", &id, &ns.path(), conf);
                    assert_eq!(del.status, 0, "round {round}: {}", del.stdout);
                }
            });
        }
    });
    assert!(ovs.bridges().is_empty(), "{:?}", ovs.bridges());
    assert!(ovs.node_veths().is_empty());
}

/// A stopped ovs-vswitchd never applies the change: ADD gives up after
/// ovsdbTimeout with "try again later" and takes back the port, the veth
/// and the address. A stopped ovsdb-server: the same, before any change.
#[test]
fn add_waits_a_bounded_time_and_rolls_back() {
    require_root!();
    let Some(ovs) = Ovs::start(false) else { return };
    ovs.add_bridge("br0");
    let a = TestNs::new("ovsa");
    let conf = ovs.conf(json!({"ovsdbTimeout": 0.5}));
    for (who, pid) in [("vswitchd", ovs.pids[1]), ("ovsdb-server", ovs.pids[0])] {
        let signal = |s: &str| {
            let st = Command::new("kill")
                .args([s, &pid.to_string()])
                .status()
                .unwrap();
            assert!(st.success());
        };
        signal("-STOP");
        let t = Instant::now();
        let r = ovs.call("ADD", "slow", &a.path(), &conf);
        let took = t.elapsed();
        signal("-CONT");
        assert_eq!(r.err_code(), 11, "{who}: {}", r.stdout);
        assert!(took < Duration::from_secs(5), "{who}: took {took:?}");
        assert!(ovs.ports("br0").is_empty(), "{who}");
        assert!(ovs.node_veths().is_empty(), "{who}");
        assert_eq!(a.link_names(), vec!["lo"], "{who}");
    }
    let held: Vec<String> = tree(&ovs.dir.path().join("ipam/ovsnet"))
        .into_iter()
        .filter(|f| f.starts_with("10."))
        .collect();
    assert!(held.is_empty(), "addresses still held: {held:?}");
    // Both back: the same ADD works.
    ovs.call("ADD", "slow", &a.path(), &conf).ok();
    ovs.call("DEL", "slow", &a.path(), &conf).ok();
}
