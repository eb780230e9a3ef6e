//! tap: a persistent tap device in the container (reference:
//! plugins/main/tap). Made with `/dev/net/tun` ioctls inside the container
//! netns under a temporary `vethXXXXXXXX` name, then given its MTU, MAC and
//! final name over netlink, enslaved to `bridge` (a bridge inside the
//! container) and set up; with IPAM it also gets addresses and routes.
//!
//! Differences from the reference, each tested: nothing is exec'd (the
//! reference runs `ip tuntap` unless `owner` and `group` are both set);
//! `mtu` and `mac` are applied on every path (the reference drops them on
//! its ioctl path); every failed ADD removes the tap and releases the IPs
//! (the reference leaks the tap when IPAM fails).

use crate::cni::args::CniArgs;
use crate::cni::result::{CniResult, Interface};
use crate::cni::types::Dns;
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::link::parse_mac;
use crate::netlink::tun::{self, TapSpec};
use crate::netlink::{Netlink, NlError};
use crate::steps::iface::{self, ConfigureOptions};
use crate::steps::netns::NetNs;
use crate::steps::nlbatch::Batch;
use crate::steps::undo::Undo;
use crate::steps::{check, fault, ipam, l2result, sysctl, veth};
use nix::errno::Errno;
use serde::Deserialize;
use std::path::Path;

pub const PLUGIN: Plugin = Plugin {
    name: "tap",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// tap's own keys (the common ones come from `NetConf`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TapConf {
    mac: String,
    mtu: u32,
    #[serde(rename = "multiQueue")]
    multi_queue: bool,
    owner: Option<u32>,
    group: Option<u32>,
    #[serde(rename = "selinuxContext")]
    selinux_context: String,
    bridge: String,
    #[serde(rename = "runtimeConfig")]
    runtime_config: MacHolder,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MacHolder {
    mac: String,
}

/// Where SELinux shows that it is active.
const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";

/// A tap takes 68 (ETH_MIN_MTU) to 65521 (65535 less its Ethernet
/// header); 0 leaves the default. Checked before any change.
fn validate_mtu(mtu: u32) -> Result<(), CniError> {
    if mtu == 0 || (68..=65521).contains(&mtu) {
        Ok(())
    } else {
        Err(CniError::config(format!(
            "mtu: invalid MTU {mtu} (a tap takes 68 to 65521)"
        )))
    }
}

/// The MAC to give the tap, if any. Precedence, last wins: config `mac` <
/// CNI_ARGS `MAC` < `runtimeConfig.mac`.
fn wanted_mac(req: &Request, tap: &TapConf) -> Result<Option<[u8; 6]>, CniError> {
    let mut src = (!tap.mac.is_empty()).then(|| ("mac", tap.mac.clone()));
    if let Some(m) = CniArgs::parse(&req.args, &["MAC"])?.get("MAC") {
        src = Some(("CNI_ARGS MAC", m.to_string()));
    }
    if !tap.runtime_config.mac.is_empty() {
        src = Some(("runtimeConfig.mac", tap.runtime_config.mac.clone()));
    }
    let Some((what, m)) = src else {
        return Ok(None);
    };
    let bad = |why: &str| {
        let msg = format!("{what}: invalid MAC address {m:?}{why}");
        // CNI_ARGS is the environment (code 4), the rest the config.
        if what.starts_with("CNI_ARGS") {
            CniError::env(msg)
        } else {
            CniError::config(msg)
        }
    };
    let mac = parse_mac(&m).ok_or_else(|| bad(""))?;
    if mac[0] & 1 == 1 {
        return Err(bad(" (a multicast address)"));
    }
    if mac == [0; 6] {
        return Err(bad(" (all zeros)"));
    }
    Ok(Some(mac))
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = req.net_conf()?;
    let tap: TapConf = req.decode()?;
    validate_mtu(tap.mtu)?;
    let mac = wanted_mac(req, &tap)?;
    if !tap.selinux_context.is_empty() && !Path::new(SELINUX_ENFORCE).exists() {
        return Err(CniError::unsupported(format!(
            "selinuxContext: {:?} cannot be applied: SELinux is not enabled on this node \
             ({SELINUX_ENFORCE} is missing)",
            tap.selinux_context
        )));
    }
    let ipam_type = conf.ipam_type()?.to_string();
    if ipam_type.is_empty() {
        l2result::refuse_old_version(&req.version)?;
    }

    // Everything that can be checked is checked before anything changes.
    let ns = NetNs::open(&req.netns)?;
    let nl = ns.netlink()?;
    veth::ensure_absent(&nl, &req.ifname)?;
    let bridge = match tap.bridge.as_str() {
        "" => None,
        b => Some(bridge_in_container(&nl, b)?),
    };

    let mut undo = Undo::new();
    let link = create_in(&ns, &nl, &tap)?;
    let index = link.index;
    let nl_ref = &nl;
    undo.push(move || {
        let _ = nl_ref.link_del(index);
    });
    fault::point("tap:after-create")?;

    // MTU and MAC on every path, then the final name, the bridge, up.
    nl.link_set_mtu_mac(index, tap.mtu, mac)?;
    nl.link_rename(index, &req.ifname).map_err(|e| {
        CniError::internal(format!(
            "failed to rename tap {} to {:?}: {e}",
            link.name, req.ifname
        ))
    })?;
    let mut batch = Batch::new();
    if let Some(master) = bridge {
        batch.set_master(index, master);
    }
    batch.link_up(index);
    batch.run(&nl)?;
    let link = nl
        .link_by_index(index)?
        .ok_or_else(|| CniError::internal(format!("tap {:?} vanished", req.ifname)))?;
    fault::point("tap:after-link")?;

    let iface = Interface {
        name: link.name.clone(),
        mac: link.mac_string(),
        sandbox: req.netns.clone(),
        ..Default::default()
    };
    let mut alloc = None;
    let mut result = CniResult::default();
    if !ipam_type.is_empty() {
        let a = alloc.insert(ipam::Allocation::new(req, &ipam_type)?);
        result = std::mem::take(&mut a.result);
        fault::point("tap:after-ipam")?;
        if result.ips.is_empty() {
            return Err(CniError::internal("IPAM plugin returned missing IP config"));
        }
        result.interfaces = vec![iface];
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        let opts = ConfigureOptions {
            nodad: false,
            // The reference sets arp_notify only (errors ignored).
            sysctls: vec![(
                sysctl::iface_path("ipv4", &req.ifname, "arp_notify"),
                "1".to_string(),
            )],
        };
        iface::configure(&ns, &nl, &link, &result, &opts, &[], Batch::new())?;
        fault::point("tap:after-configure")?;
    } else {
        result.interfaces = vec![iface];
    }

    // The config's dns replaces IPAM's, set or not (as the reference).
    result.dns = conf.dns.as_ref().map(Dns::from).unwrap_or_default();
    result.cni_version = req.version.clone();
    undo.commit();
    if let Some(a) = alloc {
        a.keep();
    }
    Ok(result)
}

/// The index of the bridge `name` inside the container.
fn bridge_in_container(nl: &Netlink, name: &str) -> Result<u32, CniError> {
    match nl.link_by_name(name)? {
        Some(l) if l.kind == "bridge" => Ok(l.index),
        Some(l) => Err(CniError::config(format!(
            "bridge: {name:?} in the container netns is a {:?} link, not a bridge",
            l.kind
        ))),
        None => Err(CniError::config(format!(
            "bridge: failed to get bridge {name:?}: no such link in the container netns"
        ))),
    }
}

/// How many temporary names to try.
const NAME_ATTEMPTS: usize = 10;

/// Create the tap under a temporary name inside `ns` (`/dev/net/tun` is
/// opened there, so the device is born there).
fn create_in(
    ns: &NetNs,
    nl: &Netlink,
    tap: &TapConf,
) -> Result<crate::netlink::link::Link, CniError> {
    let label = tap.selinux_context.as_str();
    for _ in 0..NAME_ATTEMPTS {
        let name = veth::random_veth_name();
        let spec = TapSpec {
            name: &name,
            multi_queue: tap.multi_queue,
            owner: tap.owner,
            group: tap.group,
        };
        // Outer error: the label; inner: the device.
        let made = ns.run(|| -> Result<Result<(), NlError>, CniError> {
            if !label.is_empty() {
                // This worker thread dies after the call: the label is
                // never seen by anything else.
                std::fs::write("/proc/thread-self/attr/current", label).map_err(|e| {
                    CniError::internal(format!(
                        "selinuxContext: failed to switch to {label:?}: {e}"
                    ))
                })?;
            }
            Ok(tun::create_tap(&spec))
        })??;
        match made {
            Ok(()) => {
                return nl.link_by_name(&name)?.ok_or_else(|| {
                    CniError::internal(format!("tap {name} vanished after creation"))
                })
            }
            // The name is taken: draw another.
            Err(e) if e.errno == Errno::EBUSY => continue,
            Err(e) => return Err(CniError::internal(format!("failed to create tap: {e}"))),
        }
    }
    Err(CniError::internal(
        "failed to create tap: no free temporary name",
    ))
}

fn del(req: &Request) -> Result<(), CniError> {
    let ipam_type = req.net_conf()?.ipam_type()?.to_string();
    // As the reference: IPAM first, and its failure is DEL's failure.
    if !ipam_type.is_empty() {
        ipam::del(req, &ipam_type)?;
    }
    fault::point("tap:del-after-ipam")?;
    // A missing netns or link is success.
    veth::delete(&req.netns, &req.ifname)
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = req.net_conf()?;
    let ipam_type = conf.ipam_type()?.to_string();
    let ns = NetNs::open(&req.netns)?;
    if !ipam_type.is_empty() {
        ipam::check(req, &ipam_type)?;
    }
    let prev = check::prev_result(req, &conf, "tap")?;
    let (idx, iface) = check::container_iface(&prev, &req.ifname, &req.netns)?;
    let nl = ns.netlink()?;
    // As the reference: the link, its addresses and routes (no kind or MAC
    // check).
    let link = nl
        .link_by_name(&iface.name)?
        .ok_or_else(|| CniError::internal(format!("failed to find interface {:?}", iface.name)))?;
    check::addresses_and_routes(&nl, &link, &prev, idx)
}

fn status(req: &Request) -> Result<(), CniError> {
    ipam::status_if_any(req)
}

fn gc(req: &Request) -> Result<(), CniError> {
    ipam::gc_if_any(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::skel::with_test_request;

    fn mac_of(conf: &str, args: &str) -> Result<Option<[u8; 6]>, CniError> {
        with_test_request(conf, args, |req| {
            let tap: TapConf = req.decode()?;
            wanted_mac(req, &tap)
        })
    }

    #[test]
    fn mac_precedence_config_then_cni_args_then_runtime_config() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"tap","mac":"02:00:00:00:00:01"}"#;
        assert_eq!(mac_of(conf, "").unwrap(), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            mac_of(conf, "MAC=02:00:00:00:00:02").unwrap(),
            Some([2, 0, 0, 0, 0, 2])
        );
        let rc = r#"{"cniVersion":"1.0.0","name":"n","type":"tap","mac":"02:00:00:00:00:01",
            "runtimeConfig":{"mac":"02:00:00:00:00:03"}}"#;
        assert_eq!(
            mac_of(rc, "MAC=02:00:00:00:00:02").unwrap(),
            Some([2, 0, 0, 0, 0, 3])
        );
    }

    #[test]
    fn bad_macs_name_their_source() {
        let bad = r#"{"cniVersion":"1.0.0","name":"n","type":"tap","mac":"01:00:5e:00:00:01"}"#;
        let e = mac_of(bad, "").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(
            e.msg.contains("mac") && e.msg.contains("multicast"),
            "{e:?}"
        );
        let ok = r#"{"cniVersion":"1.0.0","name":"n","type":"tap"}"#;
        let e = mac_of(ok, "MAC=zz").unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_ARGS MAC"), "{e:?}");
    }
}
