//! Hostile input, table-driven (`cases.json` beside this file): every
//! applet gets malformed, oversized, mistyped and malicious configs,
//! environment variables and arguments. Each case asserts what a runtime and
//! an operator see: exit status 1, a CNI error object on stdout with the
//! expected code, a message naming the offending field, and NO change on
//! the node (links, addresses, routes, nf_tables ruleset and forwarding
//! sysctls of the node namespace, the container namespace, the host-local
//! data dir, the result cache and everything else under the test's root
//! directory, and /var/lib/cni).
//!
//! A case is:
//! - `applet`: loopback, ptp, bridge, host-local, static, tool (`cnibox
//!   tool`) or cnitool (the link);
//! - `cmd`: CNI_COMMAND (default ADD); plugins only;
//! - the config: `base` (default: the applet's, see `base_config`) with a
//!   JSON merge `patch` (null removes a key), or `stdin` (text), `stdin_hex`
//!   (bytes) or `stdin_gen` (`10mb`, `deep`, `many-keys`);
//! - `env`: variables to set (null unsets), `env_hex` for bytes that are
//!   not UTF-8; `args` and `conflist` for the tool;
//! - `code`: the expected CNI error code (plugins), or `exit` (the tool's
//!   status, default 1); `msg`: substrings the message (or, for the tool,
//!   stderr) must contain.
//!
//! Strings may use `{root}`, `{data}`, `{cache}`, `{netns}` (the container
//! namespace), `{file}` (a regular file), `{dir}` (a directory), `{bin}` (the
//! applets), `{netconf}` (the tool's config dir).
//!
//! After the cases, the base config of every applet is run once (ADD and
//! DEL) to show that each case failed for the reason it names.

#[path = "../common/mod.rs"]
mod common;
#[path = "../rel/mod.rs"]
mod rel;

use common::*;
use rel::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct World {
    node: TestNs,
    ctr: TestNs,
    root: TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            node: TestNs::new("badn"),
            ctr: TestNs::new("badc"),
            root: TempDir::new("cnibox-bad"),
        };
        std::fs::create_dir_all(w.data()).unwrap();
        std::fs::create_dir_all(w.cache()).unwrap();
        std::fs::write(w.root.path().join("a-file"), b"not a netns").unwrap();
        std::fs::create_dir_all(w.root.path().join("a-dir")).unwrap();
        w
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }
    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }
    fn netconf(&self) -> PathBuf {
        self.root.path().join("net.d")
    }

    fn subst(&self, s: &str) -> String {
        s.replace("{root}", &self.root.str())
            .replace("{data}", &self.data().display().to_string())
            .replace("{cache}", &self.cache().display().to_string())
            .replace("{netconf}", &self.netconf().display().to_string())
            .replace("{netns}", &self.ctr.path())
            .replace(
                "{file}",
                &self.root.path().join("a-file").display().to_string(),
            )
            .replace(
                "{dir}",
                &self.root.path().join("a-dir").display().to_string(),
            )
            .replace("{bin}", &bin_dir().display().to_string())
    }

    fn subst_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.subst(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.subst_value(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.subst_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let var = Path::new("/var/lib/cni");
        Snapshot::take(&self.node, Some(&self.ctr), &[self.root.path(), var])
    }
}

fn base_config(applet: &str, w: &World) -> Value {
    let ipam = json!({"type": "host-local", "subnet": "10.77.0.0/24",
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": w.data()});
    match applet {
        "ptp" => json!({"cniVersion": "1.1.0", "name": "badnet", "type": "ptp",
                        "ipMasq": true, "ipam": ipam}),
        "bridge" => json!({"cniVersion": "1.1.0", "name": "badnet", "type": "bridge",
                           "bridge": "cnibad0", "isGateway": true, "ipMasq": true,
                           "macspoofchk": true, "ipam": ipam}),
        "host-local" => json!({"cniVersion": "1.1.0", "name": "badnet", "type": "host-local",
                               "ipam": ipam}),
        "static" => json!({"cniVersion": "1.1.0", "name": "badnet", "type": "static",
                           "ipam": {"type": "static",
                                    "addresses": [{"address": "10.78.0.5/24", "gateway": "10.78.0.1"}],
                                    "routes": [{"dst": "0.0.0.0/0"}]}}),
        "loopback" => json!({"cniVersion": "1.1.0", "name": "badnet", "type": "loopback"}),
        // The tool's network list (conflist) when a case does not give one.
        "tool" | "cnitool" => json!({"cniVersion": "1.1.0", "name": "badnet",
                                     "plugins": [base_config("ptp", w)]}),
        other => panic!("no base config for {other}"),
    }
}

/// RFC 7396 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn stdin_of(case: &Value, w: &World, applet: &str) -> Vec<u8> {
    if let Some(s) = case["stdin"].as_str() {
        return w.subst(s).into_bytes();
    }
    if let Some(s) = case["stdin_hex"].as_str() {
        return hex(s);
    }
    if let Some(g) = case["stdin_gen"].as_str() {
        return match g {
            // Valid JSON, 10 MB: a string padding the base config.
            "10mb" => {
                let mut c = base_config(applet, w);
                c["padding"] = Value::String("x".repeat(10 << 20));
                serde_json::to_vec(&c).unwrap()
            }
            // 3.5 MB of whitespace before a valid config: under the limit.
            "deep" => {
                let mut s = "[".repeat(100_000);
                s.push_str(&"]".repeat(100_000));
                s.into_bytes()
            }
            "deep-in-ipam" => {
                let mut c = base_config(applet, w);
                let mut deep = "[".repeat(5000);
                deep.push_str(&"]".repeat(5000));
                let s = serde_json::to_string(&c["ipam"]).unwrap();
                let s = format!("{},\"extra\":{deep}}}", &s[..s.len() - 1]);
                c["ipam"] = Value::Null;
                let out = serde_json::to_string(&c).unwrap();
                out.replace("\"ipam\":null", &format!("\"ipam\":{s}"))
                    .into_bytes()
            }
            "many-keys" => {
                let mut c = base_config(applet, w);
                for i in 0..100_000 {
                    c[format!("k{i}")] = json!(i);
                }
                c["mtu"] = json!("not a number");
                serde_json::to_vec(&c).unwrap()
            }
            other => panic!("unknown stdin_gen {other}"),
        };
    }
    let mut c = match case["base"].as_str() {
        Some("none") => json!({}),
        Some(b) => base_config(b, w),
        None => base_config(applet, w),
    };
    if let Some(p) = case.get("patch") {
        merge(&mut c, &w.subst_value(p));
    }
    serde_json::to_vec(&c).unwrap()
}

/// Run one case; `Err` says what was wrong, and whether the node changed
/// (the world is then made anew, so one failure does not cascade).
fn run_case(case: &Value, w: &World) -> Result<(), (String, bool)> {
    let no = |m: &str| (m.to_string(), false);
    let applet = case["applet"].as_str().ok_or(no("case without applet"))?;
    let is_tool = applet == "tool" || applet == "cnitool";
    let mut env: BTreeMap<String, OsString> = BTreeMap::new();
    let mut args: Vec<OsString> = Vec::new();
    let stdin;
    let exe;
    if is_tool {
        let list = match case.get("conflist") {
            Some(Value::String(s)) => w.subst(s).into_bytes(),
            Some(v) => serde_json::to_vec(&w.subst_value(v)).unwrap(),
            None => {
                let mut c = base_config(applet, w);
                if let Some(p) = case.get("patch") {
                    merge(&mut c, &w.subst_value(p));
                }
                serde_json::to_vec(&c).unwrap()
            }
        };
        let _ = std::fs::remove_dir_all(w.netconf());
        std::fs::create_dir_all(w.netconf()).unwrap();
        std::fs::write(w.netconf().join("10-bad.conflist"), list).unwrap();
        env.insert("NETCONFPATH".into(), w.netconf().into());
        env.insert("CNI_PATH".into(), bin_dir().into());
        if applet == "tool" {
            args.push("tool".into());
            exe = cnibox();
        } else {
            exe = applet_path("cnitool");
        }
        for a in case["args"]
            .as_array()
            .ok_or(no("tool case without args"))?
        {
            args.push(w.subst(a.as_str().unwrap_or_default()).into());
        }
        if !case["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().is_some_and(|s| s.starts_with("--cache-dir")))
        {
            args.push("--cache-dir".into());
            args.push(w.cache().into());
        }
        stdin = Vec::new();
    } else {
        exe = applet_path(applet);
        let cmd = case["cmd"].as_str().unwrap_or("ADD");
        env.insert("CNI_COMMAND".into(), cmd.into());
        env.insert("CNI_CONTAINERID".into(), "ctr-bad".into());
        env.insert("CNI_NETNS".into(), w.ctr.path().into());
        env.insert("CNI_IFNAME".into(), "eth0".into());
        env.insert("CNI_PATH".into(), bin_dir().into());
        stdin = stdin_of(case, w, applet);
    }
    if let Some(vars) = case["env"].as_object() {
        for (k, v) in vars {
            match v.as_str() {
                Some(s) => {
                    env.insert(k.clone(), w.subst(s).into());
                }
                None => {
                    env.remove(k);
                }
            }
        }
    }
    if let Some(vars) = case["env_hex"].as_object() {
        for (k, v) in vars {
            env.insert(
                k.clone(),
                OsString::from_vec(hex(v.as_str().unwrap_or_default())),
            );
        }
    }

    let before = w.snapshot();
    let ran = run_raw(
        &exe,
        &args,
        &env,
        stdin,
        Some(&w.node),
        Duration::from_secs(30),
    );
    let after = w.snapshot();
    let mut problems = Vec::new();
    let diff = before.diff(&after);
    if !diff.is_empty() {
        problems.push(format!("the node changed:\n{diff}"));
    }
    let wants: Vec<String> = case["msg"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| w.subst(m.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if is_tool {
        let exit = case["exit"].as_i64().unwrap_or(1) as i32;
        if ran.status != exit {
            problems.push(format!("exit status {} (want {exit})", ran.status));
        }
        if !ran.stdout.is_empty() {
            problems.push(format!("stdout not empty: {}", ran.stdout_str()));
        }
        for m in &wants {
            if !ran.stderr.contains(m.as_str()) {
                problems.push(format!("stderr lacks {m:?}"));
            }
        }
    } else {
        let want = case["code"]
            .as_u64()
            .ok_or(no("plugin case without code"))?;
        if ran.status != 1 {
            problems.push(format!("exit status {} (want 1)", ran.status));
        }
        match ran.json() {
            None => problems.push("stdout is not a JSON object".into()),
            Some(v) => {
                if v["code"].as_u64() != Some(want) {
                    problems.push(format!("code {} (want {want})", v["code"]));
                }
                let text = format!(
                    "{} {}",
                    v["msg"].as_str().unwrap_or_default(),
                    v["details"].as_str().unwrap_or_default()
                );
                for m in &wants {
                    if !text.contains(m.as_str()) {
                        problems.push(format!("message lacks {m:?}"));
                    }
                }
                if v["msg"].as_str().is_none_or(str::is_empty) {
                    problems.push("no msg".into());
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err((
            format!(
                "{}\n  stdout: {}\n  stderr: {}",
                problems.join("\n  "),
                ran.stdout_str().chars().take(600).collect::<String>(),
                ran.stderr.chars().take(600).collect::<String>()
            ),
            !diff.is_empty(),
        ))
    }
}

fn applet_path(name: &str) -> PathBuf {
    applet(name)
}

/// The base configs work: ADD then DEL succeed for every applet, so each
/// case's failure is the one its message names.
fn controls(w: &World) -> Result<(), String> {
    for a in ["loopback", "ptp", "bridge", "host-local", "static"] {
        let conf = serde_json::to_vec(&base_config(a, w)).unwrap();
        for cmd in ["ADD", "DEL"] {
            let mut env: BTreeMap<String, OsString> = BTreeMap::new();
            for (k, v) in [
                ("CNI_COMMAND", cmd.to_string()),
                ("CNI_CONTAINERID", "ctr-control".into()),
                ("CNI_NETNS", w.ctr.path()),
                (
                    "CNI_IFNAME",
                    if a == "loopback" { "lo" } else { "eth0" }.into(),
                ),
                ("CNI_PATH", bin_dir().display().to_string()),
            ] {
                env.insert(k.into(), v.into());
            }
            let r = run_raw(
                &applet(a),
                &[],
                &env,
                conf.clone(),
                Some(&w.node),
                Duration::from_secs(30),
            );
            if r.status != 0 {
                return Err(format!(
                    "control {a} {cmd} failed: {} {}",
                    r.stdout_str(),
                    r.stderr
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn hostile_input_fails_cleanly_with_the_right_code_and_changes_nothing() {
    require_root!();
    // cases.json and one cases-<applet>.json per later applet.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("cases") && n.ends_with(".json")
        })
        .collect();
    files.sort();
    let mut cases: Vec<Value> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let more: Vec<Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        cases.extend(more);
    }
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(
            names.insert(c["name"].as_str().expect("case name").to_string()),
            "duplicate case {}",
            c["name"]
        );
    }

    let mut w = World::new();

    let only = std::env::var("BAD_INPUT_CASE").ok();
    let mut failures = Vec::new();
    let mut per_applet: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut ran = 0;
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        ran += 1;
        let applet = c["applet"].as_str().unwrap_or("?").to_string();
        let e = per_applet.entry(applet).or_default();
        e.0 += 1;
        match run_case(c, &w) {
            Ok(()) => e.1 += 1,
            Err((why, changed)) => {
                failures.push(format!("case {name}: {why}"));
                if changed {
                    w = World::new();
                }
            }
        }
    }
    let summary: Vec<String> = per_applet
        .iter()
        .map(|(a, (n, ok))| format!("{a} {ok}/{n}"))
        .collect();
    eprintln!(
        "bad input: {} of {ran} cases right ({})",
        ran - failures.len(),
        summary.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if only.is_none() {
        assert!(ran >= 100, "the corpus has {ran} cases");
        controls(&w).unwrap();
    }
    // What the controls made (the bridge, nf_tables tables) goes with the
    // namespaces.
}
