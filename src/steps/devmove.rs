//! Move an existing host device into a container and back (host-device):
//! always through a private temporary namespace (see [`super::private_ns`]),
//! never under a temporary name in the host, where udev or a network
//! manager could race with the rename.
//!
//! On the way in the device is renamed to the container's name and its
//! alias (`IFLA_IFALIAS`) is set to its original name, as the reference
//! does (so the reference's DEL still finds its way home). What the alias
//! overwrites, and the device's up state and MAC, are kept in a small
//! [`Saved`] record that the way out restores.

use super::netns::NetNs;
use super::private_ns;
use crate::cni::CniError;
use crate::netlink::link::{parse_mac, Link};
use crate::netlink::Netlink;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the host had before the move (the state file's content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Saved {
    /// The device's name in the host.
    pub name: String,
    /// Its alias before ours replaced it ("" if none).
    pub alias: String,
    pub up: bool,
    pub mac: String,
}

impl Saved {
    /// Write the record (write then rename: never half a file).
    pub fn write(&self, path: &Path) -> Result<(), CniError> {
        let io =
            |e: std::io::Error| CniError::io(format!("failed to write {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| CniError::internal(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The record at `path`, if there is a readable one.
    pub fn read(path: &Path) -> Option<Saved> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

/// The two ends of a move: a namespace and a socket in it.
pub struct Side<'a> {
    pub ns: &'a NetNs,
    pub nl: &'a Netlink,
}

fn find(nl: &Netlink, name: &str, wher: &str) -> Result<Link, CniError> {
    nl.link_by_name(name)?
        .ok_or_else(|| CniError::internal(format!("device {name:?} vanished from the {wher}")))
}

/// Move host device `dev` into `cont` as `ifname` and set it up there.
/// On failure the device is back in the host as it was.
pub fn move_in(
    host: &Side,
    dev: &Link,
    saved: &Saved,
    cont: &Side,
    ifname: &str,
) -> Result<Link, CniError> {
    // The common case in one request (one namespace change, which costs an
    // RCU grace period; the private namespace's way costs two): moved,
    // renamed and aliased by the kernel under RTNL.
    if cont.nl.link_by_name(ifname)?.is_none() && cont.nl.link_by_name(&dev.name)?.is_none() {
        match host
            .nl
            .link_move_as(dev.index, cont.ns.fd(), ifname, &saved.name, None)
        {
            Ok(()) => return set_up_in(cont, ifname, host, saved),
            Err(e) => {
                // Moved but refused the name (taken meanwhile): it goes
                // home (the container had no link of that name before).
                if host.nl.link_by_name(&dev.name)?.is_none() {
                    let _ = move_out(cont, &dev.name, host, saved);
                }
                return Err(CniError::internal(format!(
                    "failed to move {:?}: {e}",
                    dev.name
                )));
            }
        }
    }
    let tmp = private_ns::create()?;
    let tmp_nl = tmp.netlink()?;
    let tmp_side = Side {
        ns: &tmp,
        nl: &tmp_nl,
    };
    host.nl
        .link_set_netns(dev.index, tmp.fd())
        .map_err(|e| CniError::internal(format!("failed to move {:?}: {e}", dev.name)))?;
    let into_container = || -> Result<(), CniError> {
        let l = find(&tmp_nl, &dev.name, "temporary netns")?;
        tmp_nl.link_rename(l.index, ifname)?;
        tmp_nl.link_set_alias(l.index, &saved.name)?;
        tmp_nl.link_set_netns(l.index, cont.ns.fd())?;
        Ok(())
    };
    if let Err(e) = into_container() {
        // Whatever name it has now, it goes home.
        let now = if tmp_nl.link_by_name(ifname)?.is_some() {
            ifname
        } else {
            &dev.name
        };
        let _ = home_from(&tmp_side, now, host, saved, None);
        return Err(e);
    }
    set_up_in(cont, ifname, host, saved)
}

/// The last step in: up in the container (else back home).
fn set_up_in(cont: &Side, ifname: &str, host: &Side, saved: &Saved) -> Result<Link, CniError> {
    let l = find(cont.nl, ifname, "container")?;
    if let Err(e) = cont.nl.link_set_up(l.index, true) {
        let _ = move_out(cont, ifname, host, saved);
        return Err(e.into());
    }
    find(cont.nl, ifname, "container")
}

/// Move `name` from `from` back to the host as `saved` says: its name,
/// alias, MAC and up state. `Ok(false)` when `from` has no such link.
pub fn move_out(from: &Side, name: &str, host: &Side, saved: &Saved) -> Result<bool, CniError> {
    let Some(link) = from.nl.link_by_name(name)? else {
        return Ok(false);
    };
    // One request when neither name is taken in the host (see move_in).
    if host.nl.link_by_name(&saved.name)?.is_none() {
        let mac = parse_mac(&saved.mac).filter(|m| link.mac != *m);
        let moved = from.nl.link_move_as(
            link.index,
            host.ns.fd(),
            &saved.name,
            &saved.alias,
            mac.as_ref().map(|m| &m[..]),
        );
        match moved {
            Ok(()) => {
                if saved.up {
                    let l = find(host.nl, &saved.name, "host")?;
                    host.nl.link_set_up(l.index, true)?;
                }
                return Ok(true);
            }
            Err(e) => {
                // Moved but refused the name or MAC: back where it was,
                // under its name there, rather than half-restored.
                if from.nl.link_by_name(name)?.is_none() {
                    let here =
                        host.nl.links()?.into_iter().find(|l| {
                            (l.name == name || l.name == saved.name) && l.mac == link.mac
                        });
                    if let Some(l) = here {
                        let _ =
                            host.nl
                                .link_move_as(l.index, from.ns.fd(), name, &saved.name, None);
                    }
                }
                return Err(CniError::internal(format!(
                    "failed to return {name:?} to the host as {:?}: {e}",
                    saved.name
                )));
            }
        }
    }
    let tmp = private_ns::create()?;
    let tmp_nl = tmp.netlink()?;
    from.nl
        .link_set_netns(link.index, tmp.fd())
        .map_err(|e| CniError::internal(format!("failed to move {name:?} out: {e}")))?;
    let tmp_side = Side {
        ns: &tmp,
        nl: &tmp_nl,
    };
    home_from(&tmp_side, name, host, saved, Some(from))?;
    Ok(true)
}

/// From the temporary namespace `tmp` (where the device is called `now`)
/// to the host. If the host refuses it (its name taken meanwhile), the
/// device goes back to `back` under `now` rather than die with `tmp`.
fn home_from(
    tmp: &Side,
    now: &str,
    host: &Side,
    saved: &Saved,
    back: Option<&Side>,
) -> Result<(), CniError> {
    let l = find(tmp.nl, now, "temporary netns")?;
    let restore = || -> Result<(), CniError> {
        if now != saved.name {
            tmp.nl.link_rename(l.index, &saved.name)?;
        }
        tmp.nl.link_set_alias(l.index, &saved.alias)?;
        if let Some(mac) = parse_mac(&saved.mac) {
            if l.mac != mac {
                tmp.nl.link_set_mac(l.index, &mac)?;
            }
        }
        tmp.nl.link_set_netns(l.index, host.ns.fd())?;
        Ok(())
    };
    if let Err(e) = restore() {
        // Where it came from, as it was there: not destroyed with `tmp`.
        let _ = tmp.nl.link_rename(l.index, now);
        let _ = tmp.nl.link_set_alias(l.index, &saved.name);
        let to = back.unwrap_or(host);
        let _ = tmp.nl.link_set_netns(l.index, to.ns.fd());
        return Err(e.context(format!(
            "failed to return {now:?} to the host as {:?}",
            saved.name
        )));
    }
    if saved.up {
        let l = find(host.nl, &saved.name, "host")?;
        host.nl.link_set_up(l.index, true)?;
    }
    Ok(())
}

/// A device the container's namespace gave back when it died (physical
/// devices return to the initial namespace, keeping their alias, possibly
/// renamed `devN`): found by our alias, restored as `saved` says. `Ok(false)`
/// when it is not here (a virtual device dies with its namespace).
pub fn restore_returned(host: &Side, saved: &Saved) -> Result<bool, CniError> {
    for l in host.nl.links()? {
        // Our alias and, when we know it, the same MAC: never another
        // device that happens to carry that alias.
        let same_mac = parse_mac(&saved.mac).is_none_or(|m| l.mac == m);
        if !same_mac || host.nl.link_alias(l.index)?.as_deref() != Some(saved.name.as_str()) {
            continue;
        }
        if l.name != saved.name {
            host.nl.link_rename(l.index, &saved.name)?;
        }
        host.nl.link_set_alias(l.index, &saved.alias)?;
        if saved.up {
            host.nl.link_set_up(l.index, true)?;
        }
        return Ok(true);
    }
    Ok(false)
}
