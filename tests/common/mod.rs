//! Helpers shared by the integration tests: run applets through their
//! symlinked names, throwaway network namespaces that clean up after
//! themselves, and skip-with-a-reason for what this kernel lacks.
#![allow(dead_code)]

pub mod node;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub fn cnibox() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cnibox"))
}

/// A directory of symlinks named after every applet, pointing at the
/// test build of cnibox: our CNI_PATH.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // One fixed directory under cargo's per-target scratch space: links
        // are added when missing, so nothing piles up between runs.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cni-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(cnibox()).arg("--list").output().unwrap();
        for name in String::from_utf8(out.stdout).unwrap().lines() {
            let link = dir.join(name);
            if std::fs::read_link(&link).ok().as_deref() != Some(cnibox().as_path()) {
                let _ = std::fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink(cnibox(), &link);
            }
        }
        dir
    })
}

/// Where `ip` lives on this machine (found once in the test's PATH).
pub fn ip_path() -> &'static Path {
    static IP: OnceLock<PathBuf> = OnceLock::new();
    IP.get_or_init(|| {
        let path = std::env::var("PATH").unwrap_or_default();
        let found = path
            .split(':')
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
            .map(|d| Path::new(d).join("ip"))
            .find(|p| p.is_file());
        found.unwrap_or_else(|| PathBuf::from("ip"))
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // Read from /proc to avoid a dependency just for getuid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Skip a test that needs root and network namespaces, saying why.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            $crate::common::skip(
                $crate::common::SkipKind::Root,
                "needs root for network namespaces",
            );
            return;
        }
    };
}

/// Why a test did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipKind {
    /// A kernel feature this kernel lacks: the full-kernel lane
    /// (`make test-kernel`) runs the test for real.
    Kernel,
    /// A tool or package `.ci/run` installs: under `CI=true` this is a
    /// failure, not a skip.
    Tool,
    /// Not root.
    Root,
}

/// Say why the current test stops here: `SKIP: reason` on stderr and a line
/// in the skip log (`$CARGO_TARGET_TMPDIR/skips/`) that the end-of-run
/// summary reads. Call it, then `return`.
pub fn skip(kind: SkipKind, reason: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIP: {reason}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skips");
    let _ = std::fs::create_dir_all(&dir);
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.log", std::process::id())))
    {
        let _ = writeln!(
            f,
            "{kind:?}\t{exe}::{test}\t{}",
            reason.replace(['\n', '\t'], " ")
        );
    }
    if kind == SkipKind::Tool && std::env::var("CI").as_deref() == Ok("true") {
        panic!("under CI=true a missing tool is a failure: {reason}");
    }
}

/// Whether this kernel can make a link of `kind` (`ip link add ... type
/// kind`), probed once per kind in a throwaway netns.
pub fn kernel_has_link_kind(kind: &str) -> bool {
    static SEEN: OnceLock<std::sync::Mutex<BTreeMap<String, bool>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(v) = seen.lock().unwrap().get(kind) {
        return *v;
    }
    let ns = TestNs::new("probe");
    let mut args = vec!["link", "add", "probe0"];
    match kind {
        "vlan" | "ipvlan" | "macvlan" => {
            let _ = Command::new(ip_path())
                .args([
                    "-n", &ns.name, "link", "add", "probem", "type", "veth", "peer", "probep",
                ])
                .output();
            args.extend(["link", "probem"]);
        }
        _ => {}
    }
    args.extend(["type", kind]);
    if kind == "vlan" {
        args.extend(["id", "10"]);
    }
    if kind == "vrf" {
        args.extend(["table", "10"]);
    }
    let ok = Command::new(ip_path())
        .arg("-n")
        .arg(&ns.name)
        .args(&args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    seen.lock().unwrap().insert(kind.to_string(), ok);
    ok
}

/// Skip (kind Kernel) unless this kernel has link kind `$kind`.
#[macro_export]
macro_rules! require_link_kind {
    ($kind:expr) => {
        if !$crate::common::kernel_has_link_kind($kind) {
            $crate::common::skip(
                $crate::common::SkipKind::Kernel,
                &format!(
                    "this kernel cannot make {} links (make test-kernel runs this)",
                    $kind
                ),
            );
            return;
        }
    };
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct TestNs {
    pub name: String,
}

impl TestNs {
    pub fn new(prefix: &str) -> TestNs {
        let name = unique(prefix);
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        let ns = TestNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run `ip ARGS` inside this namespace; panics on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip -n {} {:?}: {}",
            self.name,
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ip -j ARGS` parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let s = self.ip(&full);
        if s.trim().is_empty() {
            return serde_json::Value::Array(vec![]);
        }
        serde_json::from_str(&s).unwrap()
    }

    /// `nft list ruleset` in the namespace (no handles, so equal rulesets
    /// print the same); empty when `nft` is missing.
    pub fn nft_ruleset(&self) -> String {
        let out = self.exec(&["nft", "list", "ruleset"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run any command inside the namespace.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .unwrap()
    }

    pub fn ping(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "2", ip])
            .status
            .success()
    }

    pub fn link_names(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// One plugin invocation: env vars and stdin, run through the applet's
/// symlinked name (as a runtime does), optionally inside a namespace that
/// plays the host.
pub struct Call {
    pub applet: String,
    pub env: BTreeMap<String, String>,
    pub stdin: Vec<u8>,
    pub host_ns: Option<String>,
    pub bin_dir: PathBuf,
}

#[derive(Debug)]
pub struct Reply {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} / {}", self.stdout, self.stderr))
    }

    /// The error code of a failed call, asserting the CNI error contract.
    pub fn err_code(&self) -> u64 {
        assert_eq!(
            self.status, 1,
            "expected failure, stdout={} stderr={}",
            self.stdout, self.stderr
        );
        let v = self.json();
        assert!(v["msg"].is_string(), "error has msg: {}", self.stdout);
        v["code"].as_u64().unwrap()
    }

    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.status, 0,
            "expected success: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn fails(&self) -> &Self {
        assert_eq!(
            self.status, 1,
            "expected failure: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Call {
    pub fn new(applet: &str, command: &str) -> Call {
        let mut env = BTreeMap::new();
        env.insert("CNI_COMMAND".to_string(), command.to_string());
        env.insert("CNI_PATH".to_string(), bin_dir().display().to_string());
        Call {
            applet: applet.to_string(),
            env,
            stdin: Vec::new(),
            host_ns: None,
            bin_dir: bin_dir().to_path_buf(),
        }
    }

    /// ADD/DEL/CHECK with the usual attachment variables.
    pub fn attach(applet: &str, command: &str, id: &str, netns: &str, ifname: &str) -> Call {
        Call::new(applet, command)
            .var("CNI_CONTAINERID", id)
            .var("CNI_NETNS", netns)
            .var("CNI_IFNAME", ifname)
    }

    pub fn var(mut self, k: &str, v: &str) -> Call {
        self.env.insert(k.to_string(), v.to_string());
        self
    }

    pub fn unset(mut self, k: &str) -> Call {
        self.env.remove(k);
        self
    }

    pub fn stdin(mut self, s: impl AsRef<[u8]>) -> Call {
        self.stdin = s.as_ref().to_vec();
        self
    }

    pub fn config(self, v: &serde_json::Value) -> Call {
        let s = serde_json::to_vec(v).unwrap();
        self.stdin(s)
    }

    pub fn in_ns(mut self, ns: &TestNs) -> Call {
        self.host_ns = Some(ns.name.clone());
        self
    }

    pub fn run(&self) -> Reply {
        let exe = self.bin_dir.join(&self.applet);
        let mut cmd = match &self.host_ns {
            Some(ns) => {
                // Absolute: a test may give the plugin a PATH without `ip`.
                let mut c = Command::new(ip_path());
                c.args(["netns", "exec", ns]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let input = self.stdin.clone();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        Reply {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn str(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A listing of everything under a directory (paths relative to it), to
/// assert that a failed call changed nothing.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if p.is_dir() {
                    walk(base, &p, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Is the `nft` tool here (a test tool only: cnibox never runs it)?
pub fn have_nft() -> bool {
    Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Permission bits of `p` itself (a symlink is not followed).
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}
