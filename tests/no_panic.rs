//! Any panic is a bug, and even a bug answers in CNI form: exactly one CNI
//! error object (code 999) on stdout and a failing exit status, never an
//! abort with no JSON. Checked for every applet (a panic before dispatch)
//! and inside plugins at fault points, including host-local running
//! in-process inside ptp and bridge. (Debug builds: the hooks that cause
//! the panics do not exist in release builds.)

mod common;

use common::*;
use serde_json::{json, Value};

fn one_cni_error(stdout: &str, what: &str) {
    let v: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not ONE JSON object ({e}): {stdout:?}"));
    assert_eq!(v["code"], 999, "{what}: {stdout}");
    assert!(
        v["msg"]
            .as_str()
            .unwrap_or("")
            .starts_with("internal error: "),
        "{what}: {stdout}"
    );
}

#[test]
fn every_applet_answers_a_panic_with_one_cni_error() {
    if !cfg!(debug_assertions) {
        return;
    }
    let applets = String::from_utf8(
        std::process::Command::new(cnibox())
            .arg("--list")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut n = 0;
    for a in applets.lines().chain(["tool", "inspect", "ipam"]) {
        let r = if a == "tool" || a == "inspect" || a == "ipam" {
            // Not links: run as `cnibox APPLET`.
            let out = std::process::Command::new(cnibox())
                .arg(a)
                .env("CNIBOX_TEST_PANIC", "1")
                .output()
                .unwrap();
            Reply {
                status: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::new(),
            }
        } else {
            Call::new(a, "ADD")
                .var("CNIBOX_TEST_PANIC", "1")
                .stdin("{}")
                .run()
        };
        assert_ne!(r.status, 0, "{a}");
        one_cni_error(&r.stdout, a);
        n += 1;
    }
    assert!(n >= 9, "{n} applets");
}

#[test]
fn a_panic_inside_a_plugin_answers_one_cni_error() {
    require_root!();
    if !cfg!(debug_assertions) {
        return;
    }
    let host = TestNs::new("pnh");
    let data = TempDir::new("pn-data");
    let ipam = json!({"type": "host-local", "subnet": "10.64.0.0/24", "dataDir": data.str()});
    for (applet, point) in [
        ("ptp", "ptp:after-veth"),
        ("ptp", "host-local:before-commit"),
        ("bridge", "bridge:after-spoofchk"),
        ("bridge", "host-local:after-reserve"),
        ("host-local", "host-local:before-commit"),
    ] {
        let ctr = TestNs::new("pnc");
        let conf = json!({"cniVersion": "1.1.0", "name": "pnet", "type": applet,
                          "bridge": "pnbr0", "macspoofchk": true, "ipam": ipam});
        let r = Call::attach(applet, "ADD", "pn1", &ctr.path(), "eth0")
            .var("CNIBOX_FAULT", &format!("{point}:panic"))
            .in_ns(&host)
            .config(&conf)
            .run();
        assert_ne!(r.status, 0, "{applet} {point}");
        one_cni_error(&r.stdout, &format!("{applet} {point}"));
        assert!(r.stdout.contains("injected panic at"), "{}", r.stdout);
        Call::attach(applet, "DEL", "pn1", &ctr.path(), "eth0")
            .in_ns(&host)
            .config(&conf)
            .run()
            .ok();
    }
}
