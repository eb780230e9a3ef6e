//! Delegation both ways: a plugin found in CNI_PATH is exec'ed as libcni
//! would, and when the file found is cnibox itself the applet runs
//! in-process with byte-identical results.

mod common;
use common::node::{merged, Node};
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

/// A fake IPAM plugin: logs its command and stdin, answers a fixed result
/// (or an error object with code 11 when asked to fail).
fn fake_ipam(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("fake-ipam");
    std::fs::write(
        &script,
        r#"#!/bin/sh
log="$(dirname "$0")/fake-ipam.log"
cat > "$log.stdin"
echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME" >> "$log"
echo "stderr from the fake ipam" >&2
if grep -q '"fail"' "$log.stdin"; then
    printf '{"code": 11, "msg": "try later", "details": "fake"}'
    exit 1
fi
case "$CNI_COMMAND" in
ADD) printf '{"cniVersion":"1.0.0","ips":[{"address":"10.44.0.9/24","gateway":"10.44.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.44.0.53"]}}' ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn ptp_execs_an_ipam_plugin_found_in_cni_path_as_libcni_would() {
    require_root!();
    let node = Node::new("ptp");
    let dir = node.data.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    fake_ipam(&dir);
    std::os::unix::fs::symlink(cnibox(), dir.join("ptp")).unwrap();
    let path = format!("/nonexistent-first:{}", dir.display());
    let ctr = TestNs::new("dlg");
    let conf =
        json!({"cniVersion": "1.0.0", "name": "dlg", "type": "ptp", "ipam": {"type": "fake-ipam"}});
    let add = Call::attach("ptp", "ADD", "dlg-1", &ctr.path(), "eth0")
        .var("CNI_PATH", &path)
        .in_ns(&node.host)
        .config(&conf)
        .run();
    add.ok();
    let r = add.json();
    assert_eq!(r["ips"][0]["address"], "10.44.0.9/24");
    assert_eq!(r["ips"][0]["interface"], 1);
    assert_eq!(r["dns"], json!({"nameservers": ["10.44.0.53"]}));
    assert!(
        add.stderr.contains("stderr from the fake ipam"),
        "stderr passed through: {}",
        add.stderr
    );
    // The delegate got the plugin's own config on stdin and our env with
    // CNI_COMMAND replaced.
    let stdin: Value =
        serde_json::from_slice(&std::fs::read(dir.join("fake-ipam.log.stdin")).unwrap()).unwrap();
    assert_eq!(stdin, conf);
    assert!(ctr.ping("10.44.0.1"));

    Call::attach("ptp", "DEL", "dlg-1", &ctr.path(), "eth0")
        .var("CNI_PATH", &path)
        .in_ns(&node.host)
        .config(&conf)
        .run()
        .ok();
    let log = std::fs::read_to_string(dir.join("fake-ipam.log")).unwrap();
    assert_eq!(log, "ADD dlg-1 eth0\nDEL dlg-1 eth0\n");

    // The delegate's error object reaches the runtime with its code.
    let mut failing = conf.clone();
    failing["ipam"]["fail"] = json!(true);
    let r = Call::attach("ptp", "ADD", "dlg-2", &ctr.path(), "eth0")
        .var("CNI_PATH", &path)
        .in_ns(&node.host)
        .config(&failing)
        .run();
    assert_eq!(r.err_code(), 11);
    assert_eq!(r.json()["msg"], "try later");
    assert_eq!(
        ctr.link_names(),
        vec!["lo".to_string()],
        "nothing made after the IPAM failure"
    );
}

/// `cnibox tool add` runs `static` (an IPAM applet) as the main plugin;
/// once through a symlink to cnibox (in-process) and once through a copy
/// (a different file: exec). The printed results are identical bytes.
#[test]
fn in_process_fast_path_gives_byte_identical_results() {
    let tmp = TempDir::new("fastpath");
    let linked = tmp.path().join("linked");
    let copied = tmp.path().join("copied");
    std::fs::create_dir_all(&linked).unwrap();
    std::fs::create_dir_all(&copied).unwrap();
    std::os::unix::fs::symlink(cnibox(), linked.join("static")).unwrap();
    std::fs::copy(cnibox(), copied.join("static")).unwrap();
    let confdir = tmp.path().join("net.d");
    std::fs::create_dir_all(&confdir).unwrap();
    for v in ["0.2.0", "0.4.0", "1.0.0", "1.1.0"] {
        let conf = merged(
            json!({"name": "fp", "plugins": [{"type": "static", "ipam": {"type": "static",
                "addresses": [{"address": "10.45.0.7/24", "gateway": "10.45.0.1"}, {"address": "fd45::7/64"}],
                "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.45.0.53"]}}}]}),
            json!({"cniVersion": v}),
        );
        std::fs::write(confdir.join("10-fp.conflist"), conf.to_string()).unwrap();
        let run = |path: &std::path::Path| {
            let cache = tmp.path().join(format!(
                "cache-{}",
                path.file_name().unwrap().to_string_lossy()
            ));
            let tool = |verb: &str| {
                let mut c = std::process::Command::new(cnibox());
                c.args(["tool", verb, "fp", "/proc/self/ns/net", "--id", "fastpath1"])
                    .arg("--cache-dir")
                    .arg(&cache)
                    .env("NETCONFPATH", &confdir)
                    .env("CNI_PATH", path)
                    .env("CNI_NETNS_OVERRIDE", "1");
                c
            };
            for _ in 0..50 {
                let out = tool("add")
                    .env("CNIBOX_TRACE_INVOKE", "1")
                    .output()
                    .unwrap();
                // A freshly copied binary can be briefly busy (ETXTBSY).
                if String::from_utf8_lossy(&out.stderr).contains("busy") {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                let _ = tool("del").output();
                return out;
            }
            panic!("binary stayed busy");
        };
        let a = run(&linked);
        let b = run(&copied);
        assert!(
            a.status.success(),
            "{v}: {}",
            String::from_utf8_lossy(&a.stderr)
        );
        assert!(
            b.status.success(),
            "{v}: {}",
            String::from_utf8_lossy(&b.stderr)
        );
        assert!(!a.stdout.is_empty());
        assert_eq!(
            a.stdout, b.stdout,
            "{v}: in-process and exec results differ"
        );
        let (ea, eb) = (
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr),
        );
        assert!(
            ea.contains("cnibox-invoke: static in-process"),
            "{v}: the symlink runs in-process: {ea}"
        );
        assert!(
            eb.contains("cnibox-invoke: static exec"),
            "{v}: the copy is exec'ed: {eb}"
        );
        assert!(String::from_utf8_lossy(&a.stdout).contains("10.45.0.7/24"));
    }
}
