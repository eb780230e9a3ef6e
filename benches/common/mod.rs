//! What the bench drivers share (included by each as `mod common;`).

use nix::sched::{setns, CloneFlags};
use std::process::{Command, Stdio};

/// A named network namespace, deleted on drop.
pub struct Ns(pub String);

impl Ns {
    pub fn new(name: String) -> Ns {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip netns add {name}");
        let _ = Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status();
        Ns(name)
    }
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Run `f` on a thread that has entered `ns` (children it spawns inherit it).
pub fn in_ns<T: Send>(ns: &Ns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(ns.path()).expect("open netns");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("worker")
    })
}
