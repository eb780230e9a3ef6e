//! What is alive on the node: network namespaces (bind mounts under the
//! netns directories and every process's `/proc/<pid>/ns/net`, told apart
//! by device and inode), the addresses configured in each of them, and the
//! libcni cache's attachments whose namespace still exists.
//!
//! Every other kind of state is judged against this: an object is leaked
//! only when nothing here refers to it.

use crate::netlink::consts::AF_UNSPEC;
use crate::netlink::Netlink;
use crate::steps::netns::{NetNs, NsError};
use crate::tool::cache;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Is a cached attachment's namespace still there?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsState {
    Alive,
    Gone,
    /// No netns recorded, or it could not be looked at.
    Unknown,
}

pub struct Attachment {
    pub file: PathBuf,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub state: NsState,
}

pub struct Live {
    /// Namespaces seen, by (device, inode).
    pub namespaces: usize,
    /// Addresses configured in any live namespace (this one included).
    pub ips: HashSet<IpAddr>,
    /// Could every namespace's addresses be read? When not, an object
    /// whose only evidence is an address is of unknown owner.
    pub ips_complete: bool,
    pub cache: Vec<Attachment>,
    /// Container IDs with an attachment whose netns exists (or may).
    pub alive_ids: HashSet<String>,
    /// Container IDs found dead so far (cache entries whose netns is gone,
    /// and owners of leaked objects), with the network: the names Go and
    /// cnibox derive from (network, container ID) are matched against
    /// these.
    pub dead: BTreeSet<(String, String)>,
    /// The IDs of `dead`, for quick lookups.
    pub(super) dead_ids: HashSet<String>,
    /// ID -> the netns path of its cache entry, for those whose netns is
    /// gone.
    pub gone_ns: HashMap<String, String>,
    /// Every (network, container ID) pair met anywhere.
    pub known: BTreeSet<(String, String)>,
    /// The ids this namespace gives the live namespaces (a veth names its
    /// peer's namespace by such an id).
    pub nsids: HashSet<i32>,
    pub errors: Vec<String>,
}

impl Live {
    pub fn is_alive_id(&self, id: &str) -> bool {
        self.alive_ids.contains(id)
    }

    /// Does any live container ID start with `prefix` (a container ID cut
    /// short in a comment)?
    pub fn alive_id_prefix(&self, prefix: &str) -> bool {
        self.alive_ids.iter().any(|a| a.starts_with(prefix))
    }

    pub fn is_dead_id(&self, id: &str) -> bool {
        self.dead_ids.contains(id)
    }

    pub fn mark_dead(&mut self, network: &str, id: &str) {
        self.dead.insert((network.to_string(), id.to_string()));
        self.dead_ids.insert(id.to_string());
    }
}

/// Every namespace file to look at: entries of the netns directories and
/// each process's, deduplicated by (device, inode).
fn namespaces(netns_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut out = Vec::new();
    let mut consider = |p: PathBuf| {
        if let Ok(m) = std::fs::metadata(&p) {
            if seen.insert((m.dev(), m.ino())) {
                out.push(p);
            }
        }
    };
    consider(PathBuf::from("/proc/self/ns/net"));
    for dir in netns_dirs {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                consider(e.path());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                consider(e.path().join("ns/net"));
            }
        }
    }
    out
}

/// The addresses of a namespace, and the id `here` (a socket in this
/// namespace) gives it.
fn look_into(path: &Path, here: Option<&Netlink>) -> Result<(Vec<IpAddr>, Option<i32>), String> {
    let p = path.to_string_lossy();
    let ns = match NetNs::open(&p) {
        Ok(ns) => ns,
        // Gone, or a file under a netns dir with nothing mounted on it (an
        // `ip netns add` or `del` half way): no namespace to look into.
        Err(NsError::NotExist(_) | NsError::NotNs(_)) => return Ok((Vec::new(), None)),
        Err(e) => return Err(e.to_string()),
    };
    let addrs = ns
        .run(|| Netlink::route().and_then(|nl| nl.addrs(0, AF_UNSPEC)))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let nsid = here.and_then(|h| h.nsid_of_fd(ns.fd()).ok().flatten());
    Ok((addrs.into_iter().map(|a| a.net.addr()).collect(), nsid))
}

fn ns_state(path: &str) -> NsState {
    if path.is_empty() {
        return NsState::Unknown;
    }
    match NetNs::open(path) {
        Ok(_) => NsState::Alive,
        Err(e) if e.is_not_exist() => NsState::Gone,
        Err(_) => NsState::Unknown,
    }
}

pub fn gather(cache_dir: &Path, netns_dirs: &[PathBuf]) -> Live {
    let mut live = Live {
        namespaces: 0,
        ips: HashSet::new(),
        ips_complete: true,
        cache: Vec::new(),
        alive_ids: HashSet::new(),
        dead: BTreeSet::new(),
        dead_ids: HashSet::new(),
        nsids: HashSet::new(),
        gone_ns: HashMap::new(),
        known: BTreeSet::new(),
        errors: Vec::new(),
    };
    let nss = namespaces(netns_dirs);
    live.namespaces = nss.len();
    let here = Netlink::route().ok();
    for p in &nss {
        match look_into(p, here.as_ref()) {
            Ok((a, nsid)) => {
                live.ips.extend(a);
                live.nsids.extend(nsid);
            }
            // A process that exited meanwhile: its namespace went with it
            // (or is still seen through another path).
            Err(_) if !p.exists() => {}
            Err(e) => {
                live.ips_complete = false;
                live.errors
                    .push(format!("addresses of {}: {e}", p.display()));
            }
        }
    }
    match cache::attachments(cache_dir) {
        Ok((found, _skipped)) => {
            for a in found {
                let state = ns_state(&a.info.netns);
                let at = Attachment {
                    file: a.file,
                    network: a.info.network_name,
                    container_id: a.info.container_id,
                    ifname: a.info.if_name,
                    netns: a.info.netns,
                    state,
                };
                live.known
                    .insert((at.network.clone(), at.container_id.clone()));
                if state == NsState::Gone {
                    live.gone_ns
                        .insert(at.container_id.clone(), at.netns.clone());
                    live.dead
                        .insert((at.network.clone(), at.container_id.clone()));
                } else {
                    live.alive_ids.insert(at.container_id.clone());
                }
                live.cache.push(at);
            }
        }
        Err(e) => live.errors.push(format!("libcni cache: {e}")),
    }
    // An ID with a live attachment on one network is not dead on another
    // one by cache evidence alone: its container is running.
    let alive = live.alive_ids.clone();
    live.dead.retain(|(_, c)| !alive.contains(c));
    live.dead_ids = live.dead.iter().map(|(_, c)| c.clone()).collect();
    live.gone_ns.retain(|c, _| !alive.contains(c));
    live
}
