//! The protocol contract, table-driven: every bad input gets exit 1, a JSON
//! error object on stdout with the exact code, and changes nothing.

mod common;
use common::*;
use serde_json::json;

const ID: &str = "proto-test-1";

struct Case {
    name: &'static str,
    command: &'static str,
    /// Env overrides: `None` value removes the variable.
    env: Vec<(&'static str, Option<String>)>,
    stdin: Vec<u8>,
    code: u64,
    /// A word the message must contain (naming the field or variable).
    mentions: &'static str,
}

fn conf(version: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"cniVersion": version, "name": "proto", "type": "loopback"}))
        .unwrap()
}

fn case(
    name: &'static str,
    command: &'static str,
    stdin: Vec<u8>,
    code: u64,
    mentions: &'static str,
) -> Case {
    Case {
        name,
        command,
        env: vec![],
        stdin,
        code,
        mentions,
    }
}

fn with_env(mut c: Case, k: &'static str, v: Option<&str>) -> Case {
    c.env.push((k, v.map(str::to_string)));
    c
}

fn cases(netns: &str, tmp: &TempDir) -> Vec<Case> {
    let good = conf("1.0.0");
    let regular_file = tmp.path().join("file");
    std::fs::write(&regular_file, b"x").unwrap();
    let file = regular_file.display().to_string();
    let dir = tmp.str();
    let mut v = vec![
        case("unknown command", "FOO", good.clone(), 4, "CNI_COMMAND"),
        with_env(
            case(
                "missing container id",
                "ADD",
                good.clone(),
                4,
                "CNI_CONTAINERID",
            ),
            "CNI_CONTAINERID",
            None,
        ),
        with_env(
            case(
                "empty container id",
                "ADD",
                good.clone(),
                4,
                "CNI_CONTAINERID",
            ),
            "CNI_CONTAINERID",
            Some(""),
        ),
        with_env(
            case("missing netns on ADD", "ADD", good.clone(), 4, "CNI_NETNS"),
            "CNI_NETNS",
            None,
        ),
        with_env(
            case("missing ifname", "ADD", good.clone(), 4, "CNI_IFNAME"),
            "CNI_IFNAME",
            None,
        ),
        with_env(
            case("missing path", "ADD", good.clone(), 4, "CNI_PATH"),
            "CNI_PATH",
            None,
        ),
        with_env(
            case("DEL missing ifname", "DEL", good.clone(), 4, "CNI_IFNAME"),
            "CNI_IFNAME",
            None,
        ),
        with_env(
            case(
                "DEL missing container id",
                "DEL",
                good.clone(),
                4,
                "CNI_CONTAINERID",
            ),
            "CNI_CONTAINERID",
            None,
        ),
        with_env(
            case("CHECK missing netns", "CHECK", good.clone(), 4, "CNI_NETNS"),
            "CNI_NETNS",
            None,
        ),
        with_env(
            case("GC missing path", "GC", conf("1.1.0"), 4, "CNI_PATH"),
            "CNI_PATH",
            None,
        ),
        with_env(
            case(
                "STATUS missing path",
                "STATUS",
                conf("1.1.0"),
                4,
                "CNI_PATH",
            ),
            "CNI_PATH",
            None,
        ),
        with_env(
            case(
                "container id with ../",
                "ADD",
                good.clone(),
                4,
                "containerID",
            ),
            "CNI_CONTAINERID",
            Some("../etc"),
        ),
        with_env(
            case("container id with /", "ADD", good.clone(), 4, "containerID"),
            "CNI_CONTAINERID",
            Some("a/b"),
        ),
        with_env(
            case(
                "container id with newline",
                "ADD",
                good.clone(),
                4,
                "containerID",
            ),
            "CNI_CONTAINERID",
            Some("a\nb"),
        ),
        with_env(
            case(
                "container id leading dash",
                "ADD",
                good.clone(),
                4,
                "containerID",
            ),
            "CNI_CONTAINERID",
            Some("-a"),
        ),
        with_env(
            case(
                "container id with space",
                "DEL",
                good.clone(),
                4,
                "containerID",
            ),
            "CNI_CONTAINERID",
            Some("a b"),
        ),
        with_env(
            case("ifname 16 chars", "ADD", good.clone(), 4, "interface name"),
            "CNI_IFNAME",
            Some("abcdefghijklmnop"),
        ),
        with_env(
            case("ifname dot", "ADD", good.clone(), 4, "interface name"),
            "CNI_IFNAME",
            Some("."),
        ),
        with_env(
            case("ifname dotdot", "DEL", good.clone(), 4, "interface name"),
            "CNI_IFNAME",
            Some(".."),
        ),
        with_env(
            case("ifname slash", "ADD", good.clone(), 4, "interface name"),
            "CNI_IFNAME",
            Some("a/b"),
        ),
        with_env(
            case("ifname colon", "ADD", good.clone(), 4, "interface name"),
            "CNI_IFNAME",
            Some("a:b"),
        ),
        with_env(
            case("ifname space", "ADD", good.clone(), 4, "interface name"),
            "CNI_IFNAME",
            Some("a b"),
        ),
        case("empty stdin", "ADD", vec![], 6, "network config"),
        case(
            "truncated JSON",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"#.to_vec(),
            6,
            "network config",
        ),
        case("not JSON", "ADD", b"hello".to_vec(), 6, "network config"),
        case("JSON array", "ADD", b"[]".to_vec(), 6, "network config"),
        case(
            "JSON string",
            "DEL",
            br#""x""#.to_vec(),
            6,
            "network config",
        ),
        case(
            "name wrong type",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":5}"#.to_vec(),
            6,
            "name",
        ),
        case(
            "trailing garbage",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"a"} x"#.to_vec(),
            6,
            "network config",
        ),
        case(
            "invalid UTF-8",
            "ADD",
            b"{\"cniVersion\":\"1.0.0\",\"name\":\"a\xff\"}".to_vec(),
            6,
            "network config",
        ),
        case(
            "NUL bytes",
            "ADD",
            b"{\"name\":\"a\"}\0\0".to_vec(),
            6,
            "network config",
        ),
        case(
            "deep nesting",
            "ADD",
            "[".repeat(10_000).into_bytes(),
            6,
            "network config",
        ),
        case(
            "missing name",
            "ADD",
            br#"{"cniVersion":"1.0.0"}"#.to_vec(),
            7,
            "network name",
        ),
        case(
            "empty name",
            "DEL",
            br#"{"cniVersion":"1.0.0","name":""}"#.to_vec(),
            7,
            "network name",
        ),
        case(
            "name with ../",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"../etc"}"#.to_vec(),
            7,
            "network name",
        ),
        case(
            "name with /",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"a/b"}"#.to_vec(),
            7,
            "network name",
        ),
        case(
            "name with newline",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"a\nb"}"#.to_vec(),
            7,
            "network name",
        ),
        case("unknown version", "ADD", conf("9.9.9"), 1, "incompatible"),
        case(
            "inexact version string",
            "ADD",
            conf("1.0"),
            1,
            "incompatible",
        ),
        case(
            "DEL with unknown version",
            "DEL",
            conf("2.0.0"),
            1,
            "incompatible",
        ),
        case(
            "version wrong type",
            "ADD",
            br#"{"cniVersion":1,"name":"a"}"#.to_vec(),
            6,
            "cniVersion",
        ),
        case("CHECK on 0.3.1", "CHECK", conf("0.3.1"), 1, "CHECK"),
        case(
            "CHECK with no version (0.1.0)",
            "CHECK",
            br#"{"name":"a"}"#.to_vec(),
            1,
            "CHECK",
        ),
        case("GC on 1.0.0", "GC", conf("1.0.0"), 1, "GC"),
        case("STATUS on 0.4.0", "STATUS", conf("0.4.0"), 1, "STATUS"),
        case(
            "huge stdin",
            "ADD",
            {
                let mut b = br#"{"cniVersion":"1.0.0","name":"a","pad":""#.to_vec();
                b.extend(std::iter::repeat_n(b'x', 5 << 20));
                b.extend_from_slice(b"\"}");
                b
            },
            7,
            "stdin",
        ),
        case(
            "prevResult of another version family",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"a","prevResult":{"cniVersion":"0.4.0"}}"#.to_vec(),
            6,
            "prevResult",
        ),
        case(
            "prevResult not an object",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"a","prevResult":5}"#.to_vec(),
            6,
            "prevResult",
        ),
        with_env(
            case(
                "netns is a regular file",
                "ADD",
                good.clone(),
                4,
                "CNI_NETNS",
            ),
            "CNI_NETNS",
            Some(&file),
        ),
        with_env(
            case("netns is a directory", "ADD", good.clone(), 4, "CNI_NETNS"),
            "CNI_NETNS",
            Some(&dir),
        ),
        with_env(
            case("netns does not exist", "ADD", good.clone(), 4, "CNI_NETNS"),
            "CNI_NETNS",
            Some("/run/netns/no-such-ns-x"),
        ),
        with_env(
            case("netns is our own", "ADD", good.clone(), 8, "netns"),
            "CNI_NETNS",
            Some("/proc/self/ns/net"),
        ),
        with_env(
            case("DEL netns is our own", "DEL", good.clone(), 8, "netns"),
            "CNI_NETNS",
            Some("/proc/self/ns/net"),
        ),
    ];
    for c in &mut v {
        if !c.env.iter().any(|(k, _)| *k == "CNI_NETNS") {
            c.env.push(("CNI_NETNS", Some(netns.to_string())));
        }
    }
    v
}

fn lo_flags(ns: &TestNs) -> serde_json::Value {
    ns.ip_json(&["link", "show", "lo"])[0]["flags"].clone()
}

#[test]
fn bad_input_table_gives_exact_codes_and_changes_nothing() {
    require_root!();
    let ns = TestNs::new("proto");
    ns.ip(&["link", "set", "lo", "down"]);
    let tmp = TempDir::new("proto-tmp");
    let before = lo_flags(&ns);
    let host_lo_before = std::process::Command::new("ip")
        .args(["-j", "link", "show", "lo"])
        .output()
        .unwrap()
        .stdout;
    let table = cases(&ns.path(), &tmp);
    assert!(table.len() >= 40, "at least 40 cases, have {}", table.len());
    let mut failures = Vec::new();
    for c in &table {
        let mut call = Call::attach("loopback", c.command, ID, "", "eth0").stdin(&c.stdin);
        for (k, v) in &c.env {
            call = match v {
                Some(v) => call.var(k, v),
                None => call.unset(k),
            };
        }
        let r = call.run();
        let ok = r.status == 1
            && serde_json::from_str::<serde_json::Value>(&r.stdout)
                .map(|v| {
                    v["code"].as_u64() == Some(c.code)
                        && v["msg"]
                            .as_str()
                            .map(|m| format!("{m} {}", v["details"].as_str().unwrap_or("")))
                            .unwrap_or_default()
                            .contains(c.mentions)
                })
                .unwrap_or(false);
        if !ok {
            failures.push(format!(
                "{}: want code {} mentioning {:?}, got status {} stdout {}",
                c.name, c.code, c.mentions, r.status, r.stdout
            ));
        }
        assert_eq!(lo_flags(&ns), before, "{} changed the container", c.name);
    }
    let host_lo_after = std::process::Command::new("ip")
        .args(["-j", "link", "show", "lo"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(host_lo_before, host_lo_after, "host lo untouched");
    assert!(
        tree(tmp.path()) == vec!["file".to_string()],
        "no files created"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
    eprintln!("{} bad-input cases passed", table.len());
}

#[test]
fn version_reply_is_go_bytes_and_ignores_stdin() {
    let r = Call::new("loopback", "VERSION").stdin("garbage").run();
    r.ok();
    assert_eq!(
        r.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
}

#[test]
fn no_command_prints_about_to_stderr_and_exits_0() {
    let r = Call::new("loopback", "").unset("CNI_COMMAND").run();
    assert_eq!(r.status, 0);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with("CNI loopback plugin v"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(
        "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
    ));
}

#[test]
fn error_object_is_indented_and_carries_cni_version() {
    let r = Call::attach("loopback", "ADD", ID, "/run/netns/none-such", "eth0")
        .unset("CNI_PATH")
        .stdin(conf("0.4.0"))
        .run();
    assert_eq!(r.status, 1);
    assert_eq!(
        r.stdout,
        "{\n    \"cniVersion\": \"1.1.0\",\n    \"code\": 4,\n    \"msg\": \"required env variables [CNI_PATH] missing\"\n}"
    );
    // Once the config's version is known, errors carry it.
    let r = Call::new("loopback", "GC").stdin(conf("1.0.0")).run();
    let v = r.json();
    assert_eq!(
        (v["cniVersion"].as_str(), v["code"].as_u64()),
        (Some("1.0.0"), Some(1))
    );
}

#[test]
fn keys_are_case_insensitive_and_unknown_keys_ignored() {
    // Go's decoder: "NAME" matches name, unknown keys are ignored, the last
    // duplicate wins (here a valid name after an invalid one).
    let r = Call::new("loopback", "STATUS")
        .stdin(br#"{"CNIVERSION":"1.1.0","name":"../bad","NAME":"good","whatever":{"x":1}}"#)
        .run();
    r.ok();
}

#[test]
fn status_and_gc_succeed_at_1_1_0() {
    Call::new("loopback", "STATUS")
        .stdin(conf("1.1.0"))
        .run()
        .ok();
    Call::new("loopback", "GC")
        .stdin(br#"{"cniVersion":"1.1.0","name":"proto","cni.dev/valid-attachments":[]}"#)
        .run()
        .ok();
}
