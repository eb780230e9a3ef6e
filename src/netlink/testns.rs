//! Test support: a throwaway network namespace (`ip netns add`), deleted
//! when dropped, even when the test fails. Kernel tests skip (with a printed
//! reason) when not root or when `ip` is missing.

use super::Netlink;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The shared reference fixtures (Go's listings and caches), when this
/// checkout sits beside them; tests that need them skip without.
pub fn reference_fixtures() -> Option<std::path::PathBuf> {
    [
        std::path::PathBuf::from("/work/shared/reference/fixtures"),
        std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/reference/fixtures"
        )),
    ]
    .into_iter()
    .find(|p| p.join("goref-head-ptp-nftmasq.nft").exists())
}

/// A named network namespace under /run/netns.
pub struct TestNs {
    pub name: String,
}

impl TestNs {
    /// A fresh namespace, or `None` (reason printed) when kernel tests cannot
    /// run here.
    pub fn new(tag: &str) -> Option<TestNs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping kernel test {tag}: not root");
            return None;
        }
        let name = format!(
            "cnbx-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        match Command::new("ip").args(["netns", "add", &name]).status() {
            Ok(s) if s.success() => Some(TestNs { name }),
            other => {
                eprintln!("skipping kernel test {tag}: ip netns add failed: {other:?}");
                None
            }
        }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run `f` on a scoped thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(self.path()).expect("open test netns");
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into test netns");
                f()
            })
            .join()
            .expect("test netns worker panicked")
        })
    }

    /// Run `f` inside the namespace with a netfilter socket opened there.
    pub fn with_netfilter<T: Send>(&self, f: impl FnOnce(&Netlink) -> T + Send) -> T {
        self.run(|| f(&Netlink::netfilter().expect("netfilter socket in test netns")))
    }

    /// Run `f(0..n)` on `n` threads at once inside the namespace, each with
    /// its own netfilter socket, released together by a barrier so their
    /// transactions race (threads inherit the spawner's namespace).
    pub fn in_parallel(&self, n: usize, f: impl Fn(usize, &Netlink) + Sync) {
        self.run(|| {
            let barrier = std::sync::Barrier::new(n);
            std::thread::scope(|s| {
                for i in 0..n {
                    let (barrier, f) = (&barrier, &f);
                    s.spawn(move || {
                        let nl = Netlink::netfilter().expect("netfilter socket in test netns");
                        barrier.wait();
                        f(i, &nl);
                    });
                }
            });
        })
    }

    /// Run a command inside the namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }

    /// Run a command inside the namespace; its stdout, or a panic with its
    /// stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// True when `nft` is installed (a test tool only).
    pub fn have_nft() -> bool {
        Command::new("nft")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
