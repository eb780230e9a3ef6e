//! The command line as a newcomer meets it: `cnibox install` argument
//! handling, one exit-code convention for every command (help 0 on stdout,
//! usage error 2 on stderr, failure 1), messages and empty answers that say
//! what happened, and the README's debugging session run verbatim.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `cnibox ARGS` (or ARGS through an applet link named `argv0`) in `cwd`.
fn run_in(cwd: &Path, argv0: Option<&str>, args: &[&str]) -> Output {
    let prog = match argv0 {
        Some(name) => bin_dir().join(name),
        None => cnibox(),
    };
    Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .env_remove("CNI_COMMAND")
        .env("NETCONFPATH", cwd.join("no-net.d"))
        .output()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    let cwd = TempDir::new("cli");
    run_in(cwd.path(), None, args)
}

#[test]
fn every_command_help_is_0_on_stdout_and_usage_errors_are_2_on_stderr() {
    let cwd = TempDir::new("cli-codes");
    // (link name or None for `cnibox`, arguments, exit status)
    let cases: &[(Option<&str>, &[&str], i32)] = &[
        (None, &[], 2),
        (None, &["--help"], 0),
        (None, &["-h"], 0),
        (None, &["help"], 0),
        (None, &["--bogus"], 2),
        (None, &["no-such-applet"], 2),
        (None, &["--list", "extra"], 2),
        (None, &["--version", "extra"], 2),
        (None, &["install", "--help"], 0),
        (None, &["install", "-h"], 0),
        (None, &["install", "--bogus"], 2),
        (None, &["install", "a", "b"], 2),
        (None, &["tool"], 2),
        (None, &["tool", "--help"], 0),
        (None, &["tool", "help"], 0),
        (None, &["tool", "help", "gc"], 0),
        (None, &["tool", "help", "bogus"], 2),
        (None, &["tool", "bogus"], 2),
        (None, &["tool", "add"], 2),
        (None, &["tool", "add", "net"], 2),
        (None, &["tool", "add", "net", "/ns", "extra"], 2),
        (None, &["tool", "add", "net", "/ns", "--bogus"], 2),
        (None, &["tool", "del", "--help"], 0),
        (None, &["tool", "status"], 2),
        (None, &["tool", "status", "--help"], 0),
        (None, &["tool", "gc"], 2),
        (None, &["tool", "ls", "a", "b"], 2),
        (None, &["tool", "ls", "--valid", "x/eth0"], 2),
        (Some("cnitool"), &[], 2),
        (Some("cnitool"), &["--help"], 0),
        (Some("cnitool"), &["bogus"], 2),
        (None, &["ipam"], 2),
        (None, &["ipam", "--help"], 0),
        (None, &["ipam", "help"], 0),
        (None, &["ipam", "bogus"], 2),
        (None, &["ipam", "ls", "--bogus"], 2),
        (None, &["ipam", "ls", "a", "b"], 2),
        (None, &["ipam", "ls", "--data-dir"], 2),
        (None, &["inspect"], 2),
        (None, &["inspect", "--help"], 0),
        (None, &["inspect", "--bogus"], 2),
        (None, &["inspect", "a", "b"], 2),
    ];
    for (argv0, args, code) in cases {
        let out = run_in(cwd.path(), *argv0, args);
        let what = format!("{} {args:?}", argv0.unwrap_or("cnibox"));
        assert_eq!(out.status.code(), Some(*code), "{what}: {out:?}");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        if *code == 0 {
            assert!(stdout.contains("usage:"), "{what}: help on stdout");
            assert!(stderr.is_empty(), "{what}: nothing on stderr: {stderr}");
        } else {
            assert!(stdout.is_empty(), "{what}: nothing on stdout: {stdout}");
            assert!(
                stderr.contains("usage:"),
                "{what}: the usage on stderr: {stderr}"
            );
            let first = stderr.lines().next().unwrap_or("");
            assert!(
                first.starts_with("cnibox") && !first.starts_with("cnibox 0"),
                "{what}: the first line says which command and what is wrong: {first}"
            );
        }
    }
    assert_eq!(
        tree(cwd.path()),
        Vec::<String>::new(),
        "no usage error or help made anything (no directory named --help)"
    );
}

#[test]
fn tool_help_has_one_usage_line_per_command() {
    let out = run(&["tool", "--help"]);
    let help = text(&out.stdout);
    for line in [
        "usage: cnibox tool add|check|del [options] <network> <netns>",
        "       cnibox tool status <network>\n",
        "       cnibox tool gc [--valid ID/IFNAME,...] [--cache-dir DIR] <network>\n",
        "       cnibox tool ls [--json] [--cache-dir DIR] [<network>]\n",
    ] {
        assert!(help.contains(line), "{line:?} in:\n{help}");
    }
    let out = run(&["tool", "status"]);
    assert!(
        text(&out.stderr).starts_with("cnibox tool: status: network name is required\n"),
        "status needs no namespace: {}",
        text(&out.stderr)
    );
}

#[test]
fn install_help_and_bad_arguments_change_nothing() {
    let dir = TempDir::new("install-args");
    let out = run_in(dir.path(), None, &["install", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.starts_with("usage: cnibox install [--force] [DIR]\n"));
    assert!(help.contains("--force"), "{help}");
    for args in [
        &["install", "--frob"][..],
        &["install", "a", "b"],
        &["install", "-x", "a"],
    ] {
        let out = run_in(dir.path(), None, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).starts_with("cnibox install: "),
            "{args:?}"
        );
    }
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
}

#[test]
fn install_refuses_a_missing_directory_or_a_file() {
    let dir = TempDir::new("install-missing");
    let missing = dir.path().join("a/b");
    let out = run(&["install", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "cnibox install: {} does not exist (create it first: mkdir -p {})\n",
            missing.display(),
            missing.display()
        )
    );
    assert!(!dir.path().join("a").exists(), "no part of the path made");
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let out = run(&["install", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not a directory"));
    // `--` ends the options: a directory may start with a dash.
    let dashed = dir.path().join("-d");
    std::fs::create_dir(&dashed).unwrap();
    let out = Command::new(cnibox())
        .args(["install", "--", "-d"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dashed.join("loopback").is_symlink());
}

fn applet_names() -> Vec<String> {
    let out = Command::new(cnibox()).arg("--list").output().unwrap();
    text(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn install_without_cnibox_in_dir_makes_absolute_links_and_says_so() {
    let dir = TempDir::new("install-abs");
    let out = run(&["install", &dir.str()]);
    assert!(out.status.success(), "{out:?}");
    let me = std::fs::canonicalize(cnibox()).unwrap();
    assert_eq!(
        text(&out.stdout),
        format!(
            "installed {} applet links in {} -> {}\n",
            applet_names().len(),
            dir.str(),
            me.display()
        )
    );
    assert_eq!(std::fs::read_link(dir.path().join("ptp")).unwrap(), me);
}

#[test]
fn install_keeps_what_is_not_a_cnibox_link_unless_forced() {
    let dir = TempDir::new("install-force");
    // Already ours: a link to a cnibox elsewhere is refreshed without --force.
    std::os::unix::fs::symlink("/somewhere/else/cnibox", dir.path().join("loopback")).unwrap();
    // Not ours: a Go plugin binary and a link to something else.
    std::fs::write(dir.path().join("ptp"), b"go binary").unwrap();
    std::os::unix::fs::symlink("/usr/lib/cni/bridge", dir.path().join("bridge")).unwrap();
    let before = tree(dir.path());
    let out = run(&["install", &dir.str()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}/ptp", dir.str()))
            && err.contains(&format!("{}/bridge", dir.str()))
            && !err.contains("loopback")
            && err.contains("nothing was changed")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(tree(dir.path()), before, "nothing changed");
    assert_eq!(std::fs::read(dir.path().join("ptp")).unwrap(), b"go binary");

    let out = run(&["install", "--force", &dir.str()]);
    assert!(out.status.success(), "{out:?}");
    let me = std::fs::canonicalize(cnibox()).unwrap();
    for name in applet_names() {
        assert_eq!(
            std::fs::read_link(dir.path().join(&name)).unwrap(),
            me,
            "{name}"
        );
    }
    // Refreshing our own links needs no --force.
    let out = run(&["install", &dir.str()]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn ipam_ls_says_when_there_is_nothing() {
    let dir = TempDir::new("ipam-empty");
    std::fs::create_dir_all(dir.path().join("net1")).unwrap();
    std::fs::write(dir.path().join("net1/lock"), "").unwrap();
    let out = run(&["ipam", "ls", "--data-dir", &dir.str(), "net1"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "net1: no reservations\n");
    let out = run(&["ipam", "ls", "--data-dir", &dir.str()]);
    assert_eq!(text(&out.stdout), "net1: no reservations\n");
    // A network host-local never stored anything for: say where we looked.
    let out = run(&["ipam", "ls", "--data-dir", &dir.str(), "nonet"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "cnibox ipam: no reservations for network \"nonet\": host-local has no store at \
             {}/nonet (if its config sets dataDir, pass it with --data-dir)\n",
            dir.str()
        )
    );
}

#[test]
fn debugging_applets_say_what_where_and_why() {
    let dir = TempDir::new("msgs");
    let missing = format!("{}/blue", dir.str());
    let out = run(&["inspect", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("cnibox inspect: opening network namespace {missing}: no such file or directory\n")
    );
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let out = run(&["inspect", file.to_str().unwrap()]);
    assert_eq!(
        text(&out.stderr),
        format!(
            "cnibox inspect: opening network namespace {}: not a network namespace\n",
            file.display()
        )
    );
    // A data dir that is a file.
    let out = run(&["ipam", "ls", "--data-dir", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("cnibox ipam: reading {}: not a directory\n", file.display())
    );
    for out in [
        run(&["inspect", &missing]),
        run(&["ipam", "ls", "--data-dir", file.to_str().unwrap()]),
        run(&["install", &missing]),
    ] {
        let err = text(&out.stderr);
        assert!(
            !err.contains("os error") && !err.contains("Statfs"),
            "no Rust- or Go-internal wording: {err}"
        );
    }
}

#[test]
fn tool_status_says_what_happened() {
    let dir = TempDir::new("status");
    let confs = dir.path().join("net.d");
    std::fs::create_dir(&confs).unwrap();
    std::fs::write(
        confs.join("old.conflist"),
        r#"{"cniVersion":"1.0.0","name":"old","plugins":[{"type":"ptp"}]}"#,
    )
    .unwrap();
    let out = Command::new(cnibox())
        .args(["tool", "status", "old"])
        .env("NETCONFPATH", &confs)
        .env("CNI_PATH", bin_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "old: STATUS needs cniVersion 1.1.0; this network is 1.0.0 (nothing was asked)\n"
    );
    std::fs::write(
        confs.join("new.conflist"),
        r#"{"cniVersion":"1.1.0","name":"new","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    let out = Command::new(cnibox())
        .args(["tool", "status", "new"])
        .env("NETCONFPATH", &confs)
        .env("CNI_PATH", bin_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "new: ready (1 plugin answered STATUS)\n");
}

/// The shell block between the README's debugging-session markers.
fn readme_session() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let begin = "<!-- debugging-session:begin -->\n```sh\n";
    let end = "```\n<!-- debugging-session:end -->";
    let from = readme.find(begin).expect("README has the begin marker") + begin.len();
    let to = from + readme[from..].find(end).expect("README has the end marker");
    readme[from..to].to_string()
}

#[test]
fn readme_debugging_session_runs_verbatim() {
    require_root!();
    let session = readme_session();
    assert!(session.contains("cnibox tool add mynet /run/netns/blue"));
    // The session runs at a repository root after `make build`: give it one
    // whose target/static/cnibox is this test build.
    let root = TempDir::new("readme-session");
    std::fs::create_dir_all(root.path().join("target/static")).unwrap();
    std::os::unix::fs::symlink(cnibox(), root.path().join("target/static/cnibox")).unwrap();
    std::fs::write(root.path().join("session.sh"), &session).unwrap();
    // A throwaway node namespace (the ptp host ends land there), and inside
    // `ip netns exec`'s own mount namespace, fresh tmpfs over /run/netns and
    // /var/lib: `blue`, host-local's default store and libcni's cache exist
    // only for this run, whatever the machine has.
    let node = TestNs::new("readme");
    let out = Command::new("ip")
        .args(["netns", "exec", &node.name, "sh", "-c"])
        .arg(
            "mount -t tmpfs readme-netns /run/netns && \
             mount -t tmpfs readme-varlib /var/lib && \
             cd \"$1\" && exec sh -eux session.sh",
        )
        .arg("sh")
        .arg(root.path())
        .env("TMPDIR", root.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "the README session fails:\n{stdout}\n{stderr}"
    );
    for want in [
        "installed ",
        "\"address\": \"10.99.0.2/24\"",
        "mynet: ready (1 plugin answered STATUS)",
        "  default via 10.99.0.1 dev eth0",
        "mynet    10.99.0.2  cnitool-",
        "mynet: no reservations",
    ] {
        assert!(stdout.contains(want), "{want:?} in:\n{stdout}\n{stderr}");
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("mynet")
            && l.contains("/run/netns/blue")
            && l.ends_with("10.99.0.2/24")),
        "tool ls shows the cached attachment:\n{stdout}"
    );
    // Columns are as wide as the widest cell (an IPv6 link-local address
    // may or may not be there yet): compare the words.
    assert!(
        stdout.lines().any(|l| l
            .split_whitespace()
            .take(3)
            .eq(["eth0", "10.99.0.2/24", "global"])),
        "inspect shows eth0 and its address:\n{stdout}"
    );
    assert!(
        node.ip(&["-o", "link", "show", "type", "veth"]).is_empty(),
        "DEL removed the ptp host end"
    );
    let left: Vec<String> = tree(root.path())
        .into_iter()
        .filter(|p| p.starts_with("tmp."))
        .collect();
    assert!(
        left.is_empty(),
        "the session removed its temp dir: {left:?}"
    );
}
