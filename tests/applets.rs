//! The multicall binary: dispatch by name, --list, install, symlinks/.

mod common;
use common::*;
use std::process::Command;

fn list() -> Vec<String> {
    let out = Command::new(cnibox()).arg("--list").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn committed_symlinks_folder_matches_the_applet_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("symlinks");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).expect("symlinks/ holds only symlinks");
            assert_eq!(
                target,
                std::path::PathBuf::from("cnibox"),
                "{:?} points at cnibox",
                e.file_name()
            );
            e.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    let mut want = list();
    want.sort();
    assert_eq!(
        names, want,
        "run scripts/mk-symlinks.sh after changing src/applets.rs"
    );
}

#[test]
fn list_is_sorted_and_has_the_core_plugins() {
    let l = list();
    let mut sorted = l.clone();
    sorted.sort();
    assert_eq!(l, sorted);
    assert!(l.contains(&"loopback".to_string()));
}

#[test]
fn dispatch_by_argv0_or_first_argument() {
    // `cnibox loopback` behaves like a `loopback` symlink.
    let out = Command::new(cnibox())
        .arg("loopback")
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("supportedVersions"));
    // The full path libcni passes as argv[0] is reduced to its basename.
    let r = Call::new("loopback", "VERSION").run();
    r.ok();
}

#[test]
fn unknown_name_prints_the_list_and_exits_2() {
    let out = Command::new(cnibox())
        .arg("no-such-applet")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown applet") && err.contains("loopback"),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    let out = Command::new(cnibox()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cnibox "));
    let out = Command::new(cnibox()).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("install"));
}

/// Run a freshly copied binary. While another test thread forks, the copy's
/// write descriptor can linger in its child for a moment (ETXTBSY); retry
/// as libcni does.
fn output_retrying_busy(cmd: &mut Command) -> std::process::Output {
    for _ in 0..50 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    cmd.output().unwrap()
}

#[test]
fn install_makes_relative_links_atomically_and_refreshes_them() {
    let dir = TempDir::new("install");
    std::fs::copy(cnibox(), dir.path().join("cnibox")).unwrap();
    // A stale file where a link belongs is replaced with --force (without
    // it, tests/cli.rs shows the install stops), then refreshed without.
    std::fs::write(dir.path().join("loopback"), b"old go binary").unwrap();
    for force in [true, false] {
        let out = output_retrying_busy(
            Command::new(dir.path().join("cnibox"))
                .arg("install")
                .args(force.then_some("--force"))
                .arg(dir.path()),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in list() {
        let link = dir.path().join(&name);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::path::PathBuf::from("cnibox"),
            "{name}"
        );
        // Plugins answer VERSION (they ignore arguments); cnitool its help.
        let out = output_retrying_busy(
            Command::new(&link)
                .arg("--help")
                .env("CNI_COMMAND", "VERSION"),
        );
        assert!(out.status.success(), "{name} runs through its link");
    }
    let leftovers: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|p| p.contains("tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary links left: {leftovers:?}"
    );
}

#[test]
fn a_panic_still_answers_in_cni_form() {
    // The test-only CNIBOX_TEST_PANIC hook does not exist in release builds;
    // this checks the hook's output shape through a debug build.
    let out = Command::new(cnibox())
        .arg("loopback")
        .env("CNI_COMMAND", "VERSION")
        .env("CNIBOX_TEST_PANIC", "1")
        .output()
        .unwrap();
    if !cfg!(debug_assertions) {
        return;
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{:?}", out));
    assert_eq!(v["code"], 999);
    assert!(v["msg"].as_str().unwrap().starts_with("internal error: "));
    assert_ne!(out.status.code(), Some(0));
}
