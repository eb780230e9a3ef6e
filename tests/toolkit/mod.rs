//! Helpers for the `cnibox tool` tests: a config dir, a cache dir, the fake
//! recording plugin (tests/fixtures/fake-plugin.sh) and a way to run
//! `cnibox tool` as a user would, optionally inside a namespace that plays
//! the node.
#![allow(dead_code)]

use crate::common::{bin_dir, cnibox, Reply, TempDir, TestNs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn libcni_fixtures() -> PathBuf {
    fixtures().join("libcni-1.1.2")
}

/// One plugin call the fake plugin recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `NN-COMMAND-PLUGIN`
    pub tag: String,
    pub stdin: String,
    pub env: BTreeMap<String, String>,
}

impl Recorded {
    pub fn config(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdin).unwrap()
    }
}

/// A `cnibox tool` workspace.
pub struct Tool {
    pub net_d: TempDir,
    pub cache: TempDir,
    pub fake_bin: TempDir,
    pub rec: TempDir,
    pub vars: BTreeMap<String, String>,
    /// Run through this link name (`cnitool`) instead of `cnibox tool`.
    pub as_cnitool: bool,
}

impl Tool {
    pub fn new() -> Tool {
        let fake_bin = TempDir::new("cnibox-fakebin");
        for name in ["fake", "fake2", "fake3"] {
            let p = fake_bin.path().join(name);
            std::fs::copy(fixtures().join("fake-plugin.sh"), &p).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let t = Tool {
            net_d: TempDir::new("cnibox-netd"),
            cache: TempDir::new("cnibox-cache"),
            fake_bin,
            rec: TempDir::new("cnibox-rec"),
            vars: BTreeMap::new(),
            as_cnitool: false,
        };
        let path = format!("{}:{}:/usr/lib/cni", bin_dir().display(), t.fake_bin.str());
        let (net_d, rec) = (t.net_d.str(), t.rec.str());
        t.var("NETCONFPATH", &net_d)
            .var("CNI_PATH", &path)
            .var("FAKE_RECORD", &rec)
    }

    pub fn var(mut self, k: &str, v: &str) -> Tool {
        self.vars.insert(k.into(), v.into());
        self
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.vars.insert(k.into(), v.into());
    }

    pub fn unset(&mut self, k: &str) {
        self.vars.remove(k);
    }

    /// Write a file into the config dir.
    pub fn conf(&self, file: &str, text: &str) -> &Self {
        let p = self.net_d.path().join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn cache_file(&self, net: &str, cid: &str, ifname: &str) -> PathBuf {
        self.cache
            .path()
            .join("results")
            .join(format!("{net}-{cid}-{ifname}"))
    }

    fn command(&self, host: Option<&TestNs>) -> Command {
        let exe = if self.as_cnitool {
            bin_dir().join("cnitool")
        } else {
            cnibox()
        };
        let mut cmd = match host {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        if !self.as_cnitool {
            cmd.arg("tool");
        }
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.vars)
            .stdin(Stdio::null());
        cmd
    }

    fn finish(mut cmd: Command) -> Reply {
        let out = cmd.output().unwrap();
        Reply {
            status: out.status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
            }),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cnibox tool ARGS --cache-dir CACHE`.
    pub fn run(&self, args: &[&str]) -> Reply {
        let mut cmd = self.command(None);
        cmd.args(args).arg("--cache-dir").arg(self.cache.path());
        Self::finish(cmd)
    }

    /// The same, without adding --cache-dir.
    pub fn run_raw(&self, args: &[&str]) -> Reply {
        let mut cmd = self.command(None);
        cmd.args(args);
        Self::finish(cmd)
    }

    /// `ip netns exec NODE cnibox tool ARGS --cache-dir CACHE`.
    pub fn run_on(&self, node: &TestNs, args: &[&str]) -> Reply {
        let mut cmd = self.command(Some(node));
        cmd.args(args).arg("--cache-dir").arg(self.cache.path());
        Self::finish(cmd)
    }

    /// Every call the fake plugins recorded, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        read_recordings(self.rec.path())
    }

    /// Forget the recordings so far.
    pub fn clear_recorded(&self) {
        for e in std::fs::read_dir(self.rec.path()).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }

    /// Files in `results/`, sorted.
    pub fn results(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.cache.path().join("results"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Read a folder of `NN-COMMAND-PLUGIN.stdin/.env` recordings.
pub fn read_recordings(dir: &Path) -> Vec<Recorded> {
    let mut tags: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.strip_suffix(".stdin").map(str::to_string)
        })
        .collect();
    tags.sort();
    tags.into_iter()
        .map(|tag| {
            let stdin = std::fs::read_to_string(dir.join(format!("{tag}.stdin"))).unwrap();
            let env = std::fs::read_to_string(dir.join(format!("{tag}.env")))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Recorded { tag, stdin, env }
        })
        .collect()
}

/// The first directory in `dirs` holding `name`, for plugins that may come
/// from cnibox (once merged) or from Debian's reference package.
pub fn find_plugin(name: &str) -> Option<PathBuf> {
    [bin_dir().to_path_buf(), PathBuf::from("/usr/lib/cni")]
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// Does cnibox itself provide this plugin yet?
pub fn cnibox_has(name: &str) -> bool {
    bin_dir().join(name).exists()
}

pub fn reference_plugin(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from("/usr/lib/cni").join(name);
    p.exists().then_some(p)
}
