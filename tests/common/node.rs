//! A namespace that plays the node, with its own host-local data dir and
//! CNI_PATH, for driving one main plugin the way a runtime does.

use super::*;
use serde_json::Value;

pub struct Node {
    pub host: TestNs,
    pub data: TempDir,
    /// CNI_PATH (our applets by default).
    pub path: String,
    applet: String,
}

impl Node {
    pub fn new(applet: &str) -> Node {
        Node {
            host: TestNs::new(&format!("{}h", &applet[..2])),
            data: TempDir::new(&format!("{applet}-data")),
            path: bin_dir().display().to_string(),
            applet: applet.to_string(),
        }
    }

    /// A node whose CNI_PATH finds Debian's Go host-local instead of ours
    /// (`None`, after saying why, when it is not installed).
    pub fn with_go_host_local(applet: &str) -> Option<Node> {
        if !Path::new("/usr/lib/cni/host-local").exists() {
            skip(
                SkipKind::Tool,
                "Debian's containernetworking-plugins not installed",
            );
            return None;
        }
        let mut n = Node::new(applet);
        let dir = n.data.path().join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(cnibox(), dir.join(applet)).unwrap();
        std::os::unix::fs::symlink("/usr/lib/cni/host-local", dir.join("host-local")).unwrap();
        n.path = dir.display().to_string();
        Some(n)
    }

    pub fn call(&self, cmd: &str, id: &str, netns: &str, conf: &Value) -> Reply {
        Call::attach(&self.applet, cmd, id, netns, "eth0")
            .var("CNI_PATH", &self.path)
            .in_ns(&self.host)
            .config(conf)
            .run()
    }

    /// The IP reservations host-local holds for `network`.
    pub fn reservations(&self, network: &str) -> Vec<String> {
        tree(&self.data.path().join(network))
            .into_iter()
            .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// The node's links matching `ours`, once they stop disappearing: a
    /// deleted namespace is torn down asynchronously by the kernel, taking
    /// the host end of its veth with it a moment later.
    pub fn leftover_links(&self, ours: impl Fn(&str) -> bool) -> Vec<String> {
        let mut links = Vec::new();
        for _ in 0..30 {
            links = self
                .host
                .link_names()
                .into_iter()
                .filter(|l| ours(l))
                .collect();
            if links.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        links
    }
}

/// `base` with the top-level keys of `extra` set (a null removes the key).
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// libcni's CHECK input: the config with the ADD result as prevResult.
pub fn with_prev(conf: &Value, result: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = result.clone();
    c
}
