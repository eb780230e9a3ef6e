//! `cnibox tool` against a real libcni run (tests/fixtures/libcni-1.1.2):
//! the same inputs must give libcni's cache bytes, libcni's plugin stdin
//! and environment, libcni's messages; caches libcni wrote must work for
//! DEL and GC. Also config discovery, CHECK/STATUS/GC rules, the cache's
//! crash safety and the command line. Needs no root: the plugins are the
//! fake recording script.

mod common;
mod toolkit;

use common::*;
use std::os::unix::fs::PermissionsExt;
use toolkit::*;

/// The runtime settings of the capture (see the fixture README).
fn libcni_env(t: Tool) -> Tool {
    t.var("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web<1>&").var(
        "CAP_ARGS",
        r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"<h>"}],"bandwidth":{"ingressRate":1000}}"#,
    )
}

fn fixture_tool() -> Tool {
    let t = libcni_env(Tool::new());
    for f in [
        "10-fixnet.conflist",
        "20-fixnet04.conflist",
        "30-fixconf.conf",
    ] {
        let text = std::fs::read_to_string(libcni_fixtures().join("net.d").join(f)).unwrap();
        t.conf(f, &text);
    }
    t
}

fn fixture_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(libcni_fixtures().join(rel)).unwrap()
}

/// `base64 -d`, to check the cache's `config` independently of our code.
fn base64_decode(s: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    child.wait_with_output().unwrap().stdout
}

const ATTACH: [&str; 4] = ["/run/netns/fixture", "--id", "fixture-cid", "-i"];

fn attach<'a>(cmd: &'a str, net: &'a str) -> Vec<&'a str> {
    let mut v = vec![cmd, net];
    v.extend_from_slice(&ATTACH);
    v.push("eth0");
    v
}

/// libcni HEAD adds `netns` after `networkName`; 1.1.2 had no such key.
fn with_netns(libcni_112: &[u8], net: &str) -> String {
    let s = String::from_utf8(libcni_112.to_vec()).unwrap();
    let anchor = format!("\"networkName\":\"{net}\",");
    assert!(s.contains(&anchor));
    s.replace(
        &anchor,
        &format!("{anchor}\"netns\":\"/run/netns/fixture\","),
    )
}

#[test]
fn cache_written_by_add_is_byte_for_byte_libcnis() {
    let t = fixture_tool();
    for net in ["fixnet", "fixnet04", "fixconf"] {
        t.run(&attach("add", net)).ok();
        let ours = std::fs::read(t.cache_file(net, "fixture-cid", "eth0")).unwrap();
        let theirs = fixture_bytes(&format!("results/{net}-fixture-cid-eth0"));
        assert_eq!(
            String::from_utf8(ours.clone()).unwrap(),
            with_netns(&theirs, net),
            "{net}: same bytes as libcni (plus HEAD's netns)"
        );
        assert_ne!(ours.last(), Some(&b'\n'), "no trailing newline");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&t.cache_file(net, "fixture-cid", "eth0")), 0o600);
        assert_eq!(mode(&t.cache.path().join("results")), 0o700);
    }
    assert_eq!(
        t.results(),
        vec![
            "fixconf-fixture-cid-eth0",
            "fixnet-fixture-cid-eth0",
            "fixnet04-fixture-cid-eth0"
        ],
        "no temporary files left behind"
    );
}

#[test]
fn add_prints_the_result_as_cnitool_does() {
    let t = fixture_tool();
    // 0.4.0 is printed the same by libcni 1.1.2 and HEAD: byte-for-byte.
    for net in ["fixnet04", "fixconf"] {
        let out = t.run(&attach("add", net));
        out.ok();
        assert_eq!(
            out.stdout.as_bytes(),
            &fixture_bytes(&format!("{net}.add.stdout"))[..],
            "{net}"
        );
    }
    // 1.0.0: HEAD prints through a map (sorted keys); same content.
    let out = t.run(&attach("add", "fixnet"));
    let theirs: serde_json::Value =
        serde_json::from_slice(&fixture_bytes("fixnet.add.stdout")).unwrap();
    assert_eq!(out.json(), theirs);
    assert!(out
        .stdout
        .starts_with("{\n    \"cniVersion\": \"1.0.0\",\n    \"dns\": {"));
}

/// Run the capture's call sequence and compare what the plugins got.
fn replay(net: &str, byte_exact_prev_result: bool) {
    let t = fixture_tool();
    let mut t = t;
    let msgs = String::from_utf8(fixture_bytes("messages.txt")).unwrap();
    let msg = |what: &str| {
        msgs.lines()
            .find_map(|l| l.strip_prefix(&format!("{net} {what}: ")))
            .unwrap()
            .to_string()
    };
    t.run(&attach("add", net)).ok();
    t.run(&attach("check", net)).ok();
    t.set("FAKE_FAIL", "DEL:fake");
    let out = t.run(&attach("del", net));
    out.fails();
    assert_eq!(out.stderr.trim_end(), msg("DEL failing"));
    assert!(
        t.cache_file(net, "fixture-cid", "eth0").exists(),
        "a failed DEL keeps the cache"
    );
    t.set("FAKE_FAIL", "");
    t.run(&attach("del", net)).ok();
    assert!(!t.cache_file(net, "fixture-cid", "eth0").exists());
    t.set("FAKE_FAIL", "ADD:fake2");
    let out = t.run(&attach("add", net));
    let want = msg("ADD failing");
    if want == "<nil>" {
        out.ok();
        t.run(&attach("del", net)).ok();
    } else {
        out.fails();
        assert_eq!(out.stderr.trim_end(), want);
        assert!(
            !t.cache_file(net, "fixture-cid", "eth0").exists(),
            "a failed ADD writes no cache"
        );
    }

    let theirs = read_recordings(&libcni_fixtures().join("recorded").join(net));
    let ours = t.recorded();
    let ours = &ours[..theirs.len()];
    for (o, g) in ours.iter().zip(&theirs) {
        assert_eq!(o.tag, g.tag, "same calls in the same order");
        let mut genv = g.env.clone();
        genv.insert("CNI_PATH".into(), t.vars["CNI_PATH"].clone());
        assert_eq!(o.env, genv, "{}: same CNI_* environment", o.tag);
        if byte_exact_prev_result || !g.stdin.contains("\"prevResult\"") {
            assert_eq!(o.stdin, g.stdin, "{}: same stdin bytes", o.tag);
        } else {
            assert_eq!(o.config(), g.config(), "{}: same stdin", o.tag);
        }
    }
}

#[test]
fn plugins_get_exactly_what_libcni_sends_them_0_4_0() {
    replay("fixnet04", true);
}

#[test]
fn plugins_get_exactly_what_libcni_sends_them_single_conf_file() {
    replay("fixconf", true);
}

#[test]
fn plugins_get_what_libcni_sends_them_1_0_0_with_heads_sorted_prev_result() {
    // libcni HEAD marshals a 1.x prevResult through a map (sorted keys);
    // 1.1.2 used struct order. Same document.
    replay("fixnet", false);
}

#[test]
fn messages_match_libcni() {
    let msgs = String::from_utf8(fixture_bytes("messages.txt")).unwrap();
    let msg = |what: &str| {
        msgs.lines()
            .find_map(|l| l.strip_prefix(&format!("{what}: ")))
            .unwrap()
            .to_string()
    };
    let t = Tool::new();
    t.conf(
        "old.conflist",
        r#"{"cniVersion":"0.3.1","name":"old","plugins":[{"type":"fake"}]}"#,
    );
    t.conf(
        "nope.conflist",
        r#"{"cniVersion":"0.4.0","name":"nope","plugins":[{"type":"nope"}]}"#,
    );
    let out = t.run(&["check", "old", "/x", "--id", "c"]);
    out.fails();
    assert_eq!(out.stderr.trim_end(), msg("CHECK 0.3.1"));
    let out = t.run(&["add", "old", "/x", "--id", "c", "-i", "a/b"]);
    assert_eq!(out.stderr.trim_end(), msg("ADD bad ifname"));
    let out = t.run(&["add", "nope", "/x", "--id", "c"]);
    let want =
        msg("ADD missing plugin").replace("/tmp/cap/bin", &t.vars["CNI_PATH"].replace(':', " "));
    assert_eq!(out.stderr.trim_end(), want);
    let out = t.run(&["add", "absent", "/x"]);
    assert_eq!(
        out.stderr.trim_end(),
        msg("LoadConfList absent").replace("/tmp/cap/net.d", &t.net_d.str())
    );
    let mut t = t;
    t.set("NETCONFPATH", "/tmp/cap/empty-no-such-dir");
    let out = t.run(&["add", "absent", "/x"]);
    assert_eq!(
        out.stderr.trim_end(),
        msg("LoadConfList empty dir").replace("/tmp/cap/empty", "/tmp/cap/empty-no-such-dir")
    );
}

/// Put libcni's cache files into our cache dir.
fn plant(t: &Tool, net: &str) {
    let dir = t.cache.path().join("results");
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{net}-fixture-cid-eth0");
    std::fs::copy(
        libcni_fixtures().join("results").join(&name),
        dir.join(&name),
    )
    .unwrap();
}

#[test]
fn del_works_from_a_cache_libcni_wrote() {
    let t = fixture_tool();
    plant(&t, "fixnet04");
    t.run(&attach("del", "fixnet04")).ok();
    assert!(!t.cache_file("fixnet04", "fixture-cid", "eth0").exists());
    let ours = t.recorded();
    let theirs = read_recordings(&libcni_fixtures().join("recorded/fixnet04"));
    // libcni's own DEL from the same cache: 06-DEL-fake2, 07-DEL-fake.
    assert_eq!(ours.len(), 2);
    assert_eq!(
        ours[0].stdin, theirs[6].stdin,
        "prevResult from libcni's cache"
    );
    assert_eq!(ours[1].stdin, theirs[7].stdin);
}

#[test]
fn check_works_from_a_cache_libcni_wrote() {
    let t = fixture_tool();
    plant(&t, "fixnet");
    t.run(&attach("check", "fixnet")).ok();
    let theirs = read_recordings(&libcni_fixtures().join("recorded/fixnet"));
    let ours = t.recorded();
    assert_eq!(ours[0].config(), theirs[2].config());
    assert_eq!(ours[1].config(), theirs[3].config());
}

#[test]
fn gc_works_from_a_cache_libcni_wrote() {
    // cnitool's gc: no valid list, so every cached attachment of the
    // network is deleted with the cached args and capability args (this
    // 1.1.2 cache has no netns: CNI_NETNS is empty). 1.0.0: no plugin GC.
    let t = Tool::new();
    t.conf(
        "10-fixnet.conflist",
        &String::from_utf8(fixture_bytes("net.d/10-fixnet.conflist")).unwrap(),
    );
    plant(&t, "fixnet");
    plant(&t, "fixnet04");
    t.run(&["gc", "fixnet", "/whatever"]).ok();
    assert_eq!(
        t.results(),
        vec!["fixnet04-fixture-cid-eth0"],
        "only this network's"
    );
    let ours = t.recorded();
    let theirs = read_recordings(&libcni_fixtures().join("recorded/fixnet"));
    let tags: Vec<&str> = ours.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(tags, vec!["00-DEL-fake2", "01-DEL-fake"]);
    for (o, g) in ours.iter().zip(&theirs[6..8]) {
        assert_eq!(o.config(), g.config(), "same config as libcni's DEL");
        let mut want = g.env.clone();
        want.insert("CNI_PATH".into(), t.vars["CNI_PATH"].clone());
        want.insert("CNI_NETNS".into(), String::new());
        assert_eq!(o.env, want, "args from the cache");
    }
}

#[test]
fn gc_at_1_1_0_deletes_the_stale_and_sends_both_attachment_keys() {
    let t = Tool::new();
    let conflist = String::from_utf8(fixture_bytes("net.d/10-fixnet.conflist"))
        .unwrap()
        .replace("\"1.0.0\"", "\"1.1.0\"");
    t.conf("10-fixnet.conflist", &conflist);
    plant(&t, "fixnet");
    // A second attachment (another container) that stays valid.
    let dir = t.cache.path().join("results");
    let other = std::fs::read_to_string(dir.join("fixnet-fixture-cid-eth0"))
        .unwrap()
        .replace("fixture-cid", "other-cid");
    std::fs::write(dir.join("fixnet-other-cid-eth0"), other).unwrap();
    t.run(&["gc", "fixnet", "--valid", "other-cid/eth0"]).ok();
    assert_eq!(t.results(), vec!["fixnet-other-cid-eth0"]);
    let rec = t.recorded();
    let tags: Vec<&str> = rec.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(
        tags,
        vec!["00-DEL-fake2", "01-DEL-fake", "02-GC-fake", "03-GC-fake2"]
    );
    assert_eq!(rec[0].env["CNI_CONTAINERID"], "fixture-cid");
    // The cached 1.0.0 result reaches DEL converted to 1.1.0.
    assert_eq!(rec[0].config()["prevResult"]["cniVersion"], "1.1.0");
    let list = r#"[{"containerID":"other-cid","ifname":"eth0"}]"#;
    assert_eq!(
        rec[2].stdin,
        format!(
            r#"{{"Name":"kept","capabilities":{{"bandwidth":false,"portMappings":true}},"cni.dev/attachments":{list},"cni.dev/valid-attachments":{list},"cniVersion":"1.1.0","dup":2,"name":"fixnet","note":"a\u003cb\u003e\u0026c \u2028","numbers":{{"big":1e+21,"float":1500,"huge":12345678901234567000,"int":1500,"neg":-2.5e-8,"ratio":1.5,"tiny":1e-7}},"runtimeConfig":{{"static":true}},"type":"fake"}}"#
        ),
        "GC gets the plugin config, name, version and both list keys"
    );
    for k in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"] {
        assert_eq!(rec[2].env[k], "", "{k} is empty for GC");
    }
    // cnitool's way: no list, so no keys, and everything cached goes.
    t.clear_recorded();
    t.run(&["gc", "fixnet"]).ok();
    assert!(t.results().is_empty());
    let rec = t.recorded();
    let gc = rec.iter().find(|r| r.tag.ends_with("GC-fake")).unwrap();
    assert!(!gc.stdin.contains("cni.dev/"), "{}", gc.stdin);
    // --valid '' is an empty list, sent as such.
    t.clear_recorded();
    t.run(&["gc", "fixnet", "--valid", ""]).ok();
    let rec = t.recorded();
    assert!(rec[0].stdin.contains(r#""cni.dev/valid-attachments":[]"#));
}

#[test]
fn gc_honours_disable_gc() {
    let t = Tool::new();
    t.conf(
        "10-fixnet.conflist",
        r#"{"cniVersion":"1.1.0","name":"fixnet","disableGC":"True","plugins":[{"type":"fake"}]}"#,
    );
    plant(&t, "fixnet");
    t.run(&["gc", "fixnet"]).ok();
    assert!(t.recorded().is_empty());
    assert_eq!(t.results().len(), 1);
}

#[test]
fn gc_with_no_cache_dir_still_sends_gc() {
    // libcni gives up silently when results/ cannot be listed; a missing
    // directory is simply "nothing cached" for us.
    let t = Tool::new();
    t.conf(
        "n.conflist",
        r#"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"fake"}]}"#,
    );
    t.run(&["gc", "n"]).ok();
    let rec = t.recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].tag, "00-GC-fake");
}

#[test]
fn gc_collects_every_error() {
    let mut t = Tool::new();
    t.conf(
        "n.conflist",
        r#"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"fake"},{"type":"fake2"}]}"#,
    );
    t.set("FAKE_FAIL", "GC:fake");
    let out = t.run(&["gc", "n"]);
    out.fails();
    assert_eq!(
        out.stderr.trim_end(),
        "failed to GC plugin fake: fake GC failure; fake"
    );
    assert_eq!(t.recorded().len(), 2, "fake2 still got its GC");
}

#[test]
fn corrupt_or_empty_cache_is_tolerated_on_del() {
    for junk in [
        &b""[..],
        b"{not json",
        b"{\"kind\":\"cniCacheV1\",\"config\":\"!!\"}",
    ] {
        let t = Tool::new();
        t.conf(
            "n.conflist",
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"fake"}]}"#,
        );
        let f = t.cache_file("n", "c", "eth0");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, junk).unwrap();
        let out = t.run(&["check", "n", "/x", "--id", "c"]);
        out.fails();
        assert!(
            out.stderr
                .starts_with("failed to get network \"n\" cached result: "),
            "{}",
            out.stderr
        );
        t.run(&["del", "n", "/x", "--id", "c"]).ok();
        let rec = t.recorded();
        assert_eq!(rec.len(), 1);
        assert!(!rec[0].stdin.contains("prevResult"), "no prevResult");
        assert!(!f.exists(), "the bad cache is gone");
    }
}

#[test]
fn legacy_cache_format_is_read() {
    let t = Tool::new();
    t.conf(
        "n.conflist",
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"fake"}]}"#,
    );
    let f = t.cache_file("n", "c", "eth0");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(
        &f,
        r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.9.0.2/24"}],"dns":{}}"#,
    )
    .unwrap();
    t.run(&["del", "n", "/x", "--id", "c"]).ok();
    let prev = &t.recorded()[0].config()["prevResult"];
    assert_eq!(
        prev["cniVersion"], "1.0.0",
        "converted to the config version"
    );
    assert_eq!(prev["ips"][0]["address"], "10.9.0.2/24");
}

#[test]
fn a_kill_between_write_and_rename_leaves_the_old_cache_intact() {
    let mut t = fixture_tool();
    t.run(&attach("add", "fixnet04")).ok();
    let f = t.cache_file("fixnet04", "fixture-cid", "eth0");
    let before = std::fs::read(&f).unwrap();
    t.set("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=changed");
    t.set("CNIBOX_TEST_KILL_BEFORE_RENAME", "1");
    let out = t.run(&attach("add", "fixnet04"));
    assert_eq!(out.status, 128 + 9, "killed: {out:?}");
    assert_eq!(std::fs::read(&f).unwrap(), before, "old cache intact");
    let names = t.results();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with(".fixnet04-fixture-cid-eth0."));
    assert_eq!(
        std::fs::metadata(t.cache.path().join("results").join(&names[0]))
            .unwrap()
            .len() as usize,
        before.len() + "changed".len() - "web\\u003c1\\u003e\\u0026".len(),
        "the temporary file was complete (never a zero-byte cache)"
    );
    // Listings and GC ignore the leftover.
    t.unset("CNIBOX_TEST_KILL_BEFORE_RENAME");
    let out = t.run(&["ls", "--json"]);
    out.ok();
    assert_eq!(out.json().as_array().unwrap().len(), 1);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    t.run(&attach("add", "fixnet04")).ok();
    assert!(std::fs::read_to_string(&f).unwrap().contains("changed"));
    assert_eq!(t.results().len(), 1, "the next write replaced the leftover");
}

#[test]
fn ls_lists_cached_attachments() {
    let t = fixture_tool();
    t.run(&attach("add", "fixnet")).ok();
    plant(&t, "fixnet04");
    std::fs::write(t.cache.path().join("results/legacy-x-eth0"), "{}").unwrap();
    let out = t.run(&["ls"]);
    out.ok();
    assert_eq!(
        out.stdout,
        "NETWORK   CONTAINER    IFNAME  NETNS               IPS\n\
         fixnet    fixture-cid  eth0    /run/netns/fixture  192.0.2.10/24,2001:db8::10/64\n\
         fixnet04  fixture-cid  eth0    -                   192.0.2.10/24,2001:db8::10/64\n"
    );
    assert!(out.stderr.contains("legacy-x-eth0"), "{}", out.stderr);
    let out = t.run(&["ls", "fixnet04", "--json"]);
    let v = out.json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["network"], "fixnet04");
    assert_eq!(v[0]["containerId"], "fixture-cid");
    assert_eq!(v[0]["cniVersion"], "0.4.0");
    assert_eq!(v[0]["ips"][1], "2001:db8::10/64");
    let empty = Tool::new();
    let out = empty.run(&["ls"]);
    assert!(
        out.stdout.starts_with("no cached attachments in "),
        "{}",
        out.stdout
    );
}

#[test]
fn config_discovery_follows_libcni() {
    let t = Tool::new();
    // Sorted: the first match wins; fragments in <dir>/<name>/*.conf are
    // appended (sorted) unless loadOnlyInlinedPlugins.
    t.conf(
        "20-a.conflist",
        r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"fake3"}]}"#,
    )
    .conf(
        "10-a.conflist",
        r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"fake"}]}"#,
    )
    .conf("a/2.conf", r#"{"type":"fake3"}"#)
    .conf("a/1.conf", r#"{"type":"fake2"}"#)
    .conf("a/ignored.json", r#"{"type":"nope"}"#);
    t.run(&["add", "a", "/x", "--id", "c"]).ok();
    let tags: Vec<String> = t.recorded().into_iter().map(|r| r.tag).collect();
    assert_eq!(tags, vec!["00-ADD-fake", "01-ADD-fake2", "02-ADD-fake3"]);
    let cfg = t.recorded()[1].config();
    assert_eq!(cfg["name"], "a");
    assert_eq!(cfg["cniVersion"], "1.0.0");
    // The cache's config is the conflist file only.
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.cache_file("a", "c", "eth0")).unwrap()).unwrap();
    assert_eq!(
        cache["config"],
        "eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoiYSIsInBsdWdpbnMiOlt7InR5cGUiOiJmYWtlIn1dfQ=="
    );

    let t = Tool::new();
    t.conf(
        "10-b.conflist",
        r#"{"name":"b","cniVersions":["0.4.0","1.0.0","42.0.0"],"loadOnlyInlinedPlugins":true,"plugins":[{"type":"fake"}]}"#,
    )
    .conf("b/1.conf", r#"{"type":"fake2"}"#);
    t.run(&["add", "b", "/x", "--id", "c"]).ok();
    let rec = t.recorded();
    assert_eq!(rec.len(), 1, "no fragments");
    assert_eq!(rec[0].config()["cniVersion"], "1.0.0", "highest supported");

    // A broken file before the match aborts the lookup.
    let t = Tool::new();
    t.conf("01-broken.conflist", "{").conf(
        "10-c.conflist",
        r#"{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"fake"}]}"#,
    );
    let out = t.run(&["add", "c", "/x"]);
    out.fails();
    assert!(
        out.stderr.starts_with("error parsing configuration list: "),
        "{}",
        out.stderr
    );

    // Only fragments: a conflist without plugins is fine if <name>/ has some.
    let t = Tool::new();
    t.conf("10-d.conflist", r#"{"cniVersion":"1.0.0","name":"d"}"#);
    let out = t.run(&["add", "d", "/x"]);
    assert_eq!(out.stderr.trim_end(), "no plugin configs found");
    t.conf("d/1.conf", r#"{"type":"fake"}"#);
    t.run(&["add", "d", "/x"]).ok();
}

#[test]
fn single_plugin_conf_files_are_wrapped_like_libcni() {
    let t = Tool::new();
    t.conf(
        "10-x.conflist",
        r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"fake"}]}"#,
    )
    .conf(
        "20-s.json",
        r#"{"cniVersion":"0.4.0","Name":"s","type":"fake","b":"<"}"#,
    );
    t.run(&["add", "s", "/x", "--id", "c"]).ok();
    let rec = t.recorded();
    assert_eq!(
        rec[0].stdin,
        r#"{"Name":"s","b":"\u003c","cniVersion":"0.4.0","name":"s","type":"fake"}"#
    );
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.cache_file("s", "c", "eth0")).unwrap()).unwrap();
    // The wrapper {"cniVersion","name","plugins":[conf]}, marshalled.
    let decoded = base64_decode(cache["config"].as_str().unwrap());
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        r#"{"cniVersion":"0.4.0","name":"s","plugins":[{"Name":"s","b":"\u003c","cniVersion":"0.4.0","type":"fake"}]}"#
    );
}

#[test]
fn runtime_config_only_for_enabled_capabilities() {
    let t = Tool::new().var(
        "CAP_ARGS",
        r#"{"mac":"02:00:00:00:00:09","ips":["10.0.0.5/24"]}"#,
    );
    t.conf(
        "n.conflist",
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"fake","capabilities":{"mac":true,"ips":false},"runtimeConfig":{"old":1}},
            {"type":"fake2","capabilities":{"bandwidth":true},"runtimeConfig":{"static":1}}]}"#,
    );
    t.run(&["add", "n", "/x", "--id", "c"]).ok();
    let rec = t.recorded();
    assert_eq!(
        rec[0].config()["runtimeConfig"],
        serde_json::json!({"mac":"02:00:00:00:00:09"}),
        "replaced by the enabled, supplied capabilities"
    );
    assert_eq!(
        rec[1].config()["runtimeConfig"],
        serde_json::json!({"static":1}),
        "no match: the static one passes through"
    );
}

#[test]
fn check_and_status_follow_the_version_rules() {
    let t = Tool::new();
    t.conf("a.conflist", r#"{"cniVersion":"1.0.0","name":"a","disableCheck":true,"plugins":[{"type":"fake"}]}"#)
        .conf("b.conflist", r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"fake"}]}"#)
        .conf("c.conflist", r#"{"cniVersion":"1.1.0","name":"c","plugins":[{"type":"fake"},{"type":"fake2"},{"type":"fake3"}]}"#);
    t.run(&["check", "a", "/x"]).ok();
    t.run(&["status", "b"]).ok();
    assert!(
        t.recorded().is_empty(),
        "disableCheck; STATUS below 1.1.0 runs nothing"
    );
    t.run(&["status", "c"]).ok();
    let tags: Vec<String> = t.recorded().into_iter().map(|r| r.tag).collect();
    assert_eq!(
        tags,
        vec!["00-STATUS-fake", "01-STATUS-fake2", "02-STATUS-fake3"]
    );
    let rec = t.recorded();
    assert_eq!(
        rec[0].stdin,
        r#"{"cniVersion":"1.1.0","name":"c","type":"fake"}"#
    );
    assert_eq!(rec[0].env["CNI_CONTAINERID"], "");
    t.clear_recorded();
    let mut t = t;
    t.set("FAKE_FAIL", "STATUS:fake2");
    let out = t.run(&["status", "c"]);
    out.fails();
    assert_eq!(out.stderr.trim_end(), "fake STATUS failure; fake2");
    assert_eq!(t.recorded().len(), 2, "stops at the first failure");
}

#[test]
fn del_runs_in_reverse_and_check_forward_with_the_cached_result() {
    let t = Tool::new();
    t.conf(
        "n.conflist",
        r#"{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"fake"},{"type":"fake2"},{"type":"fake3"}]}"#,
    );
    let added = t.run(&["add", "n", "/x", "--id", "c"]);
    added.ok();
    t.run(&["check", "n", "/x", "--id", "c"]).ok();
    t.run(&["del", "n", "/x", "--id", "c"]).ok();
    let rec = t.recorded();
    let tags: Vec<&str> = rec.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(
        tags,
        vec![
            "00-ADD-fake",
            "01-ADD-fake2",
            "02-ADD-fake3",
            "03-CHECK-fake",
            "04-CHECK-fake2",
            "05-CHECK-fake3",
            "06-DEL-fake3",
            "07-DEL-fake2",
            "08-DEL-fake"
        ]
    );
    for r in &rec[3..] {
        assert_eq!(r.config()["prevResult"], added.json(), "{}", r.tag);
    }
    // The second DEL has no cache: no prevResult, still fine.
    t.run(&["del", "n", "/x", "--id", "c"]).ok();
    assert!(!t.recorded()[9].stdin.contains("prevResult"));
    // Below 0.4.0 DEL never reads the cache, but we still remove it.
    let t = Tool::new();
    t.conf(
        "o.conflist",
        r#"{"cniVersion":"0.3.1","name":"o","plugins":[{"type":"fake"}]}"#,
    );
    t.run(&["add", "o", "/x", "--id", "c"]).ok();
    t.run(&["del", "o", "/x", "--id", "c"]).ok();
    assert!(!t.recorded()[1].stdin.contains("prevResult"));
    assert!(t.results().is_empty(), "libcni would leave it; we do not");
}

#[test]
fn cnitool_identity_and_arguments() {
    let mut t = Tool::new();
    t.as_cnitool = true;
    t.conf(
        "n.conflist",
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"fake"}]}"#,
    );
    // The container ID derives from the absolute, cleaned netns path.
    let mut cmd_dir = std::process::Command::new(bin_dir().join("cnitool"));
    cmd_dir
        .args(["add", "n", "netns//x/../y", "--cache-dir"])
        .arg(t.cache.path())
        .current_dir("/run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&t.vars)
        .env("CNI_IFNAME", "net7");
    let out = cmd_dir.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = t.recorded();
    // printf %s /run/netns/y | sha512sum | cut -c1-20
    let sha = std::process::Command::new("sh")
        .args(["-c", "printf %s /run/netns/y | sha512sum | cut -c1-20"])
        .output()
        .unwrap();
    let want_id = format!("cnitool-{}", String::from_utf8_lossy(&sha.stdout).trim());
    assert_eq!(rec[0].env["CNI_CONTAINERID"], want_id);
    assert_eq!(rec[0].env["CNI_NETNS"], "/run/netns/y");
    assert_eq!(rec[0].env["CNI_IFNAME"], "net7");
    assert!(t.cache_file("n", &want_id, "net7").exists());
    // -i beats CNI_IFNAME; del finds the same cache.
    let t2 = {
        let mut t2 = t;
        t2.set("CNI_IFNAME", "ignored");
        t2
    };
    let out = t2.run(&["del", "-i", "net7", "n", "/run/netns/y"]);
    out.ok();
    assert!(t2.results().is_empty());
}

#[test]
fn bad_cni_args_and_cap_args_are_errors() {
    let mut t = Tool::new();
    t.conf(
        "n.conflist",
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"fake"}]}"#,
    );
    t.set("CNI_ARGS", "A=1;B");
    let out = t.run(&["add", "n", "/x"]);
    out.fails();
    assert_eq!(out.stderr.trim_end(), r#"invalid CNI_ARGS pair "B""#);
    t.set("CNI_ARGS", "");
    t.set("CAP_ARGS", "[1]");
    t.run(&["add", "n", "/x"]).fails();
    assert!(t.recorded().is_empty());
}

#[test]
fn usage_and_help() {
    let t = Tool::new();
    for cmd in ["add", "check", "del", "gc", "status", "ls"] {
        let out = t.run_raw(&[cmd, "--help"]);
        out.ok();
        assert!(
            out.stdout.starts_with(&format!("usage: cnibox tool {cmd}")),
            "{}",
            out.stdout
        );
    }
    let out = t.run_raw(&[]);
    assert_eq!(out.status, 2, "no command is a usage error");
    assert!(out.stderr.contains("commands:"));
    let out = t.run_raw(&["help"]);
    out.ok();
    assert!(out.stdout.contains("commands:"));
    let out = t.run_raw(&["frobnicate"]);
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("unknown command \"frobnicate\""));
    let out = t.run_raw(&["add", "onlyname"]);
    assert_eq!(out.status, 2);
    assert!(out
        .stderr
        .contains("network name and namespace are required"));
    assert_eq!(t.run_raw(&["add", "n", "/x", "--bogus"]).status, 2);
    assert_eq!(t.run_raw(&["del", "n", "/x", "--valid", "a/b"]).status, 2);
    for applet in ["inspect", "ipam"] {
        let out = std::process::Command::new(cnibox())
            .args([applet, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(&format!("usage: cnibox {applet}"))
        );
    }
}
