//! host-local IPAM (reference: plugins/ipam/host-local): addresses from
//! configured ranges, reserved in a directory of one file per address that
//! the Go plugin reads and writes too, so a node can switch between the two
//! in either direction with live containers.
//!
//! Beyond the reference: GC and STATUS; an owner index so calls stay fast
//! as the pool fills; a rollback that releases only what the failed ADD
//! reserved; DEL that works when the config no longer validates; CHECK that
//! compares prevResult's addresses with the reservations.
//!
//! Runs in-process inside ptp and bridge as well as exec'ed: no global
//! state, the lock is released when the store is dropped.

mod alloc;
mod config;
mod index;
mod store;

use crate::cni::error::code;
use crate::cni::result::{CniResult, IpConfig};
use crate::cni::types::{parse_ip, valid_attachments};
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::ipranges::dns;
use index::{Index, Item};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use store::{owner_key, split_owner, Store};

pub const PLUGIN: Plugin = Plugin {
    name: "host-local",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

fn open_store(data_dir: &Path, name: &str, create: bool) -> Result<Option<Store>, CniError> {
    Store::open(data_dir, name, create).map_err(|e| {
        CniError::io(format!(
            "failed to open the store {}: {e}",
            data_dir.join(name).display()
        ))
    })
}

fn load_index(store: &Store) -> Result<Index, CniError> {
    Index::load(store).map_err(|e| {
        CniError::io(format!(
            "failed to read the store {}: {e}",
            store.path().display()
        ))
    })
}

/// Save the index; a failure costs only speed (the next call rebuilds it).
fn commit(index: &mut Index, store: &Store) {
    if let Err(e) = index.commit(store) {
        eprintln!(
            "host-local: could not save the index of {}: {e}",
            store.path().display()
        );
    }
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = config::load(req)?;
    let dns = if conf.ranges.resolv_conf.is_empty() {
        Default::default()
    } else {
        dns::read(&conf.ranges.resolv_conf)?
    };
    let store = open_store(&conf.data_dir, &conf.name, true)?
        .ok_or_else(|| CniError::io("the store could not be created"))?;
    let mut index = load_index(&store)?;

    let (wanted, left_over) = conf.ranges.requested_by_set();
    let mut ips: Vec<IpConfig> = Vec::new();
    let mut failure = None;
    for (i, (set, wanted)) in conf.ranges.sets.iter().zip(wanted).enumerate() {
        match alloc::get(
            &store,
            &mut index,
            set,
            i,
            &req.container_id,
            &req.ifname,
            wanted,
        ) {
            Ok(a) => ips.push(IpConfig {
                interface: None,
                address: IpNet::new(a.ip, a.prefix)
                    .map_err(|e| CniError::internal(e.to_string()))?,
                gateway: Some(a.gateway),
            }),
            Err(e) => {
                failure = Some(e.context(format!("failed to allocate for range {i}")));
                break;
            }
        }
    }
    if failure.is_none() {
        failure = left_over;
    }
    if let Some(e) = failure {
        // Release exactly what this call reserved (the reference releases
        // everything the attachment holds, including an earlier ADD's).
        let owner = owner_key(&req.container_id, &req.ifname);
        for ipc in &ips {
            let name = ipc.address.addr().to_string();
            let _ = store.release(&name);
            let _ = index.remove(&store, &name, &owner);
        }
        commit(&mut index, &store);
        return Err(e);
    }
    crate::steps::fault::point("host-local:before-commit")?;
    commit(&mut index, &store);
    Ok(CniResult {
        cni_version: req.version.clone(),
        ips,
        routes: conf.ranges.routes,
        dns,
        ..Default::default()
    })
}

fn del(req: &Request) -> Result<(), CniError> {
    let data_dir = config::store_dir(req)?;
    let Some(store) = open_store(&data_dir, req.name(), false)? else {
        return Ok(());
    };
    let mut index = load_index(&store)?;
    let held = index.owned_by(&store, &req.container_id, &req.ifname)?;
    // `id\r\nifname` files; only when there are none, legacy `id` files.
    let (names, owner) = if held.current.is_empty() {
        (held.legacy, req.container_id.trim().to_string())
    } else {
        (held.current, owner_key(&req.container_id, &req.ifname))
    };
    for name in names {
        // The index says whose it is; the file has the last word, so a
        // stale index can never release another container's address.
        match store.read_owner(&name) {
            Ok(Some(o)) if o == owner => {}
            found => {
                // Correct the index as we go (it is saved with this call).
                let _ = index.remove(&store, &name, &owner);
                if let Ok(Some(actual)) = found {
                    let _ = index.insert(&store, &name, &actual);
                }
                continue;
            }
        }
        // As the reference, a file that cannot be removed does not fail DEL
        // (the runtime would retry forever); it is reported on stderr.
        match store.release(&name) {
            Ok(_) => {
                let _ = index.remove(&store, &name, &owner);
            }
            Err(e) => eprintln!(
                "host-local: failed to release {}: {e}",
                store.path().join(&name).display()
            ),
        }
        crate::steps::fault::point("host-local:del-after-release")?;
    }
    commit(&mut index, &store);
    Ok(())
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = config::load(req)?;
    let not_found = || {
        CniError::internal(format!(
            "host-local: Failed to find address added by container {}",
            req.container_id
        ))
    };
    let Some(store) = open_store(&conf.data_dir, &conf.name, false)? else {
        return Err(not_found());
    };
    let mut index = load_index(&store)?;
    let held = index.owned_by(&store, &req.container_id, &req.ifname)?;
    commit(&mut index, &store);
    if held.is_empty() {
        return Err(not_found());
    }

    // Beyond the reference: every prevResult address inside our ranges must
    // be reserved by this attachment.
    let prev = match req.config.get("prevResult") {
        None | Some(crate::cni::json::GoValue::Null) => return Ok(()),
        Some(v) => CniResult::parse_as(v, &req.version)
            .map_err(|e| e.context("failed to parse prevResult"))?,
    };
    let key = owner_key(&req.container_id, &req.ifname);
    for ipc in &prev.ips {
        let ip = ipc.address.addr().to_canonical();
        if !conf.ranges.sets.iter().any(|s| s.contains(ip)) {
            continue;
        }
        let owner = store.read_owner(&ip.to_string())?;
        let ours = owner
            .as_deref()
            .is_some_and(|o| o == key || o == req.container_id.trim());
        if !ours {
            return Err(CniError::internal(format!(
                "host-local: address {ip} in prevResult is not reserved by container {} interface {}",
                req.container_id, req.ifname
            )));
        }
    }
    Ok(())
}

/// STATUS: ready unless the store cannot be written or a range set has no
/// free address left (code 50, "not available").
fn status(req: &Request) -> Result<(), CniError> {
    let conf = config::load(req)?;
    let unavailable = |msg: String| CniError::new(code::NOT_AVAILABLE, msg);
    writable(&conf.data_dir.join(&conf.name)).map_err(|e| {
        unavailable(format!(
            "host-local: data directory {} is not writable: {e}",
            conf.data_dir.join(&conf.name).display()
        ))
    })?;
    let Some(store) = open_store(&conf.data_dir, &conf.name, false)? else {
        return exhausted_sets(&conf, &[]).map_err(unavailable);
    };
    let mut index = load_index(&store)?;
    let items = index.all(&store)?;
    commit(&mut index, &store);
    exhausted_sets(&conf, &items).map_err(unavailable)
}

/// Can we create files in `dir`, or, if it does not exist yet, in the
/// nearest existing ancestor (where ADD would create it)?
fn writable(dir: &Path) -> std::io::Result<()> {
    use nix::unistd::{access, AccessFlags};
    let mut p = dir;
    loop {
        match std::fs::symlink_metadata(p) {
            Ok(_) => {
                return access(p, AccessFlags::W_OK | AccessFlags::X_OK)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match p.parent() {
                Some(parent) if parent != p && !parent.as_os_str().is_empty() => p = parent,
                _ => return Ok(()),
            },
            Err(e) => return Err(e),
        }
    }
}

/// The first range set every allocatable address of which is reserved.
fn exhausted_sets(conf: &config::Config, items: &[Item]) -> Result<(), String> {
    let taken: Vec<IpAddr> = items
        .iter()
        .filter(|it| !it.owner.is_empty())
        .filter_map(|it| parse_ip(&it.name))
        .collect();
    for (i, set) in conf.ranges.sets.iter().enumerate() {
        let used = taken.iter().filter(|ip| set.allocatable(**ip)).count() as u128;
        if used >= set.capacity() {
            return Err(format!(
                "host-local: range set {i} is exhausted: no IP addresses available in range set: {set}"
            ));
        }
    }
    Ok(())
}

/// GC (spec 1.1): release every reservation whose attachment is not in
/// `cni.dev/valid-attachments`. No list means do nothing; an empty list
/// means release everything. `lock` and `last_reserved_ip.*` are not
/// reservations and are never touched; a legacy (ID-only) file is kept if
/// any valid attachment has its container ID. Every error is reported, none
/// stops the sweep.
fn gc(req: &Request) -> Result<(), CniError> {
    let Some(valid) = valid_attachments(&req.config)? else {
        return Ok(());
    };
    let data_dir = config::store_dir(req)?;
    let Some(store) = open_store(&data_dir, req.name(), false)? else {
        return Ok(());
    };
    let pairs: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    let is_valid = |owner: &str| match split_owner(owner) {
        (id, Some(ifname)) => pairs.contains(&(id, ifname)),
        (id, None) => ids.contains(id),
    };

    let mut errors = Vec::new();
    let mut kept = Vec::new();
    let entries = store
        .list()
        .map_err(|e| CniError::io(format!("failed to list {}: {e}", store.path().display())))?;
    for e in entries {
        if parse_ip(&e.name).is_none() {
            continue;
        }
        // A symlink named like an address is not a reservation anyone made
        // through a plugin: it only blocks the address. Remove it (unlink
        // never follows it).
        let owner = if e.is_file {
            match store.read_owner(&e.name) {
                Ok(Some(o)) => Some(o),
                Ok(None) => None,
                Err(err) => {
                    errors.push(format!("{}: {err}", store.path().join(&e.name).display()));
                    continue;
                }
            }
        } else {
            None
        };
        if let Some(o) = &owner {
            if is_valid(o) {
                kept.push(Item {
                    name: e.name,
                    owner: o.clone(),
                });
                continue;
            }
        }
        if let Err(err) = store.release(&e.name) {
            errors.push(format!(
                "failed to release {}: {err}",
                store.path().join(&e.name).display()
            ));
            if let Some(o) = owner {
                kept.push(Item {
                    name: e.name,
                    owner: o,
                });
            }
        }
    }
    // A file that could not be read may have an owner the index would
    // miss: then the index is saved but not trusted.
    let mut index = Index::from_items(kept, errors.is_empty());
    commit(&mut index, &store);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::io(format!(
            "host-local: garbage collection failed: {}",
            errors.join("; ")
        )))
    }
}

/// Fuzzing only (`cargo fuzz`): the config loader and the store readers.
#[cfg(fuzzing)]
pub mod fuzz {
    use super::*;

    /// Config, CNI_ARGS and runtimeConfig parsing, range canonicalization.
    pub fn config(req: &Request) {
        let _ = config::load(req);
        let _ = config::store_dir(req);
    }

    /// The index's codecs on arbitrary bytes.
    pub fn index_codec(bytes: &[u8]) {
        index::fuzz_codec(bytes);
    }

    /// Read a store whose files hold arbitrary bytes, as every command
    /// does: the index (trusted or rebuilt), owners, `last_reserved_ip`.
    pub fn read_store(data_dir: &Path, name: &str) {
        let Ok(Some(store)) = Store::open(data_dir, name, false) else {
            return;
        };
        if let Ok(mut idx) = Index::load(&store) {
            let _ = idx.owned_by(&store, "c1", "eth0");
            let _ = idx.all(&store);
        }
        if let Ok(entries) = store.list() {
            for e in entries {
                let _ = store.read_owner(&e.name);
            }
        }
        let _ = store.last_reserved(0);
    }
}

#[cfg(test)]
mod tests {
    //! In-process use, as ptp and bridge delegate to host-local: nothing
    //! may leak between calls (descriptors, the lock).
    use super::*;
    use crate::cni::skel;
    use crate::cni::{Env, Invoker};
    use std::path::PathBuf;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "cnibox-hl-inproc-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    /// Descriptors of this process open on something under `dir`.
    fn fds_under(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .map(|rd| {
                rd.flatten()
                    .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(dir)))
                    .count()
            })
            .unwrap_or(0)
    }

    fn run(cmd: &str, id: &str, data: &Path) -> crate::cni::invoke::Output {
        let env: Env = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_NETNS_OVERRIDE", "1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
        ]
        .into_iter()
        .collect();
        let conf = format!(
            r#"{{"cniVersion":"1.1.0","name":"inproc","ipam":{{"type":"host-local","subnet":"10.3.0.0/24","dataDir":"{}"}}}}"#,
            data.display()
        );
        skel::run(&PLUGIN, &env, &mut conf.as_bytes(), &Invoker::exec_only())
    }

    #[test]
    fn in_process_calls_leak_no_descriptor_and_release_the_lock() {
        let data = tmp("leak");
        for i in 0..20 {
            let out = run("ADD", &format!("c{i}"), &data);
            assert_eq!(out.status, 0, "{}", String::from_utf8_lossy(&out.stdout));
            // A failing call must not keep anything open either.
            assert_eq!(run("ADD", &format!("c{i}"), &data).status, 1);
            assert_eq!(run("CHECK", &format!("c{i}"), &data).status, 0);
            assert_eq!(fds_under(&data), 0, "after call {i}");
        }
        assert_eq!(run("STATUS", "", &data).status, 0);
        // Two threads of one process contend for the lock like processes
        // do (flock is per open file); neither deadlocks.
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let data = data.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let id = format!("t{t}-{i}");
                        assert_eq!(run("ADD", &id, &data).status, 0);
                        assert_eq!(run("DEL", &id, &data).status, 0);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(fds_under(&data), 0);
        std::fs::remove_dir_all(&data).unwrap();
    }
}
