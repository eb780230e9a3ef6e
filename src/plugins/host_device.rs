//! host-device: move an existing host device into the container, and back
//! on DEL (reference: plugins/main/host-device). The device is found by
//! `device` > `hwaddr` > `kernelpath` > `pciBusID` > `runtimeConfig.deviceID`
//! (PCI or auxiliary); a PCI device bound to a DPDK driver has no netdev and
//! is left in place. Moves go through a private temporary namespace
//! (steps::devmove); the original name is kept in `IFLA_IFALIAS`, as the
//! reference does.
//!
//! Differences from the reference, each tested: an alias the device already
//! had is kept in a state file (`<dataDir>/<containerID>_<ifname>.json`,
//! dataDir `/var/lib/cni/host-device` unless configured) and restored on DEL,
//! with the device's up state and MAC; every failed ADD moves the device
//! back and releases the IPs; DEL succeeds with the netns gone (IPs released)
//! and on a second DEL. A device whose container netns died before DEL: a
//! physical one that the kernel gave back is found by its alias and
//! restored; a virtual one was destroyed with the netns, and DEL says so on
//! stderr and succeeds with nothing to do.

use crate::cni::result::{CniResult, Interface};
use crate::cni::types::Dns;
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::link::{parse_mac, Link};
use crate::netlink::Netlink;
use crate::steps::devmove::{self, Saved, Side};
use crate::steps::iface::{self, ConfigureOptions};
use crate::steps::netns::NetNs;
use crate::steps::nlbatch::Batch;
use crate::steps::sysfs_net::{first_netdev, pci_is_dpdk, pci_netdev, SYS};
use crate::steps::undo::Undo;
use crate::steps::{check, fault, ipam, l2result, veth};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const PLUGIN: Plugin = Plugin {
    name: "host-device",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HostDevConf {
    device: String,
    hwaddr: String,
    kernelpath: String,
    #[serde(rename = "pciBusID")]
    pci_bus_id: String,
    #[serde(rename = "runtimeConfig")]
    runtime_config: RuntimeConf,
    /// Ours: where the state files live.
    #[serde(rename = "dataDir")]
    data_dir: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConf {
    #[serde(rename = "deviceID")]
    device_id: String,
}

const DEFAULT_DATA_DIR: &str = "/var/lib/cni/host-device";

/// What the config points at.
enum Target {
    /// A netdev in the host, by name.
    Link(String),
    /// A PCI device bound to a DPDK driver: nothing to move.
    Dpdk,
}

/// A sysfs name component given in the config (no path tricks).
fn sysfs_name(field: &str, v: &str) -> Result<(), CniError> {
    if v.is_empty() || v == "." || v == ".." || v.contains('/') || v.contains('\0') {
        return Err(CniError::config(format!(
            "{field}: invalid device address {v:?}"
        )));
    }
    Ok(())
}

/// Which device the config means, in the reference's order, everything
/// checked before anything changes.
fn resolve(hd: &HostDevConf, host: &Netlink, sys: &Path) -> Result<Target, CniError> {
    if !hd.device.is_empty() {
        return Ok(Target::Link(hd.device.clone()));
    }
    if !hd.hwaddr.is_empty() {
        let mac = parse_mac(&hd.hwaddr).ok_or_else(|| {
            CniError::config(format!("hwaddr: invalid MAC address {:?}", hd.hwaddr))
        })?;
        let found = host.links()?.into_iter().find(|l| l.mac == mac);
        return found.map(|l| Target::Link(l.name)).ok_or_else(|| {
            CniError::config(format!(
                "hwaddr: failed to find physical interface with MAC {}",
                hd.hwaddr
            ))
        });
    }
    if !hd.kernelpath.is_empty() {
        let p = Path::new(&hd.kernelpath);
        let clean = p.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::RootDir
            )
        });
        if !hd.kernelpath.starts_with("/sys/devices/") || !clean {
            return Err(CniError::config(format!(
                "kernelpath: kernel device path {:?} must be absolute and begin with /sys/devices/",
                hd.kernelpath
            )));
        }
        return first_netdev(&p.join("net"))
            .map(Target::Link)
            .ok_or_else(|| {
                CniError::config(format!(
                    "kernelpath: failed to find network device in kernel path {:?}",
                    hd.kernelpath
                ))
            });
    }
    let (field, pci) = if !hd.pci_bus_id.is_empty() {
        ("pciBusID", hd.pci_bus_id.as_str())
    } else {
        (
            "runtimeConfig.deviceID",
            hd.runtime_config.device_id.as_str(),
        )
    };
    if pci.is_empty() {
        return Err(CniError::config(
            "specify either \"device\", \"hwaddr\", \"kernelpath\" or \"pciBusID\"",
        ));
    }
    sysfs_name(field, pci)?;
    if sys.join("bus/pci/devices").join(pci).exists() {
        if pci_is_dpdk(sys, pci) {
            return Ok(Target::Dpdk);
        }
        return pci_netdev(sys, pci).map(Target::Link).ok_or_else(|| {
            CniError::config(format!("{field}: no net device found for PCI device {pci}"))
        });
    }
    if field == "runtimeConfig.deviceID" {
        let aux = sys.join("bus/auxiliary/devices").join(pci);
        if aux.exists() {
            return first_netdev(&aux.join("net"))
                .map(Target::Link)
                .ok_or_else(|| {
                    CniError::config(format!(
                        "{field}: no net device found for auxiliary device {pci}"
                    ))
                });
        }
        return Err(CniError::config(format!(
            "{field}: runtime config DeviceID {pci} not found or unsupported"
        )));
    }
    Err(CniError::config(format!(
        "{field}: PCI device {pci} not found"
    )))
}

/// `<dataDir>/<containerID>_<ifname>.json` (both validated by the skel).
fn state_path(req: &Request, hd: &HostDevConf) -> PathBuf {
    let dir = if hd.data_dir.is_empty() {
        DEFAULT_DATA_DIR
    } else {
        &hd.data_dir
    };
    Path::new(dir).join(format!("{}_{}.json", req.container_id, req.ifname))
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = req.net_conf()?;
    let hd: HostDevConf = req.decode()?;
    let ipam_type = conf.ipam_type()?.to_string();
    if ipam_type.is_empty() {
        l2result::refuse_old_version(&req.version)?;
    }
    let host_nl = Netlink::route()?;
    let target = resolve(&hd, &host_nl, Path::new(SYS))?;
    let ns = NetNs::open(&req.netns)?;
    let cont_nl = ns.netlink()?;
    let host_ns = NetNs::current()?;
    let host = Side {
        ns: &host_ns,
        nl: &host_nl,
    };
    let cont = Side {
        ns: &ns,
        nl: &cont_nl,
    };

    let mut undo = Undo::new();
    let mut moved: Option<Link> = None;
    if let Target::Link(name) = &target {
        let dev = host_nl.link_by_name(name)?.ok_or_else(|| {
            CniError::config(format!("device: failed to find host device {name:?}"))
        })?;
        veth::ensure_absent(&cont_nl, &req.ifname)?;
        let saved = Saved {
            name: dev.name.clone(),
            alias: host_nl.link_alias(dev.index)?.unwrap_or_default(),
            up: dev.is_up(),
            mac: dev.mac_string(),
        };
        let state = state_path(req, &hd);
        saved.write(&state)?;
        let st = state.clone();
        undo.push(move || {
            let _ = std::fs::remove_file(st);
        });
        fault::point("host-device:after-state")?;
        let link = devmove::move_in(&host, &dev, &saved, &cont, &req.ifname)?;
        let (host, cont, ifname) = (&host, &cont, req.ifname.clone());
        undo.push(move || {
            if let Err(e) = devmove::move_out(cont, &ifname, host, &saved) {
                eprintln!("cnibox: moving {ifname} back after a failed ADD: {e}");
            }
        });
        moved = Some(link);
    }
    fault::point("host-device:after-move")?;

    let mut result = CniResult {
        interfaces: moved
            .iter()
            .map(|l| Interface {
                name: l.name.clone(),
                mac: l.mac_string(),
                sandbox: req.netns.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut alloc = None;
    if !ipam_type.is_empty() {
        let a = alloc.insert(ipam::Allocation::new(req, &ipam_type)?);
        let mut r = std::mem::take(&mut a.result);
        fault::point("host-device:after-ipam")?;
        if r.ips.is_empty() {
            return Err(CniError::internal("IPAM plugin returned missing IP config"));
        }
        for ip in &mut r.ips {
            ip.interface = Some(0);
        }
        r.interfaces = std::mem::take(&mut result.interfaces);
        result = r;
        if let Some(link) = &moved {
            let opts = ConfigureOptions::default();
            iface::configure(&ns, &cont_nl, link, &result, &opts, &[], Batch::new())?;
        }
        fault::point("host-device:after-configure")?;
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

fn del(req: &Request) -> Result<(), CniError> {
    let conf = req.net_conf()?;
    let hd: HostDevConf = req.decode()?;
    let ipam_type = conf.ipam_type()?.to_string();
    // IPAM first (as the reference), and even with the netns gone (where
    // the reference fails before it and leaks the IPs).
    if !ipam_type.is_empty() {
        ipam::del(req, &ipam_type)?;
    }
    fault::point("host-device:del-after-ipam")?;
    let pci = [&hd.pci_bus_id, &hd.runtime_config.device_id]
        .into_iter()
        .find(|p| !p.is_empty());
    if pci.is_some_and(|p| sysfs_name("pciBusID", p).is_ok() && pci_is_dpdk(Path::new(SYS), p)) {
        return Ok(()); // DPDK: nothing was moved.
    }
    let state = state_path(req, &hd);
    let saved = Saved::read(&state);
    let host_nl = Netlink::route()?;
    let host_ns = NetNs::current()?;
    let host = Side {
        ns: &host_ns,
        nl: &host_nl,
    };
    match NetNs::open_for_del(&req.netns)? {
        None => {
            if let Some(s) = &saved {
                if !devmove::restore_returned(&host, s)? {
                    eprintln!(
                        "cnibox: host-device: {:?} left with its netns and did not come back \
                         (a virtual device is destroyed with its netns); nothing to do",
                        s.name
                    );
                }
            }
        }
        Some(ns) => {
            let cont_nl = ns.netlink()?;
            let cont = Side {
                ns: &ns,
                nl: &cont_nl,
            };
            if let Some(link) = cont_nl.link_by_name(&req.ifname)? {
                // Our record, else the reference's alias (a device the Go
                // plugin moved in).
                let saved = match saved {
                    Some(s) => s,
                    None => {
                        let alias = cont_nl.link_alias(link.index)?.unwrap_or_default();
                        if alias.is_empty() {
                            return Err(CniError::internal(format!(
                                "failed to find original ifname for {:?} (alias is not set)",
                                req.ifname
                            )));
                        }
                        Saved {
                            name: alias,
                            ..Default::default()
                        }
                    }
                };
                devmove::move_out(&cont, &req.ifname, &host, &saved)?;
            }
        }
    }
    match std::fs::remove_file(&state) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CniError::io(format!(
            "failed to remove {}: {e}",
            state.display()
        ))),
        _ => Ok(()),
    }
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = req.net_conf()?;
    let hd: HostDevConf = req.decode()?;
    let ipam_type = conf.ipam_type()?.to_string();
    let ns = NetNs::open(&req.netns)?;
    if !ipam_type.is_empty() {
        ipam::check(req, &ipam_type)?;
    }
    let prev = check::prev_result(req, &conf, "host-device")?;
    if matches!(
        resolve(&hd, &Netlink::route()?, Path::new(SYS)),
        Ok(Target::Dpdk)
    ) {
        return Ok(());
    }
    let (idx, iface) = check::container_iface(&prev, &req.ifname, &req.netns)?;
    let nl = ns.netlink()?;
    let link = check::link(&nl, iface, None)?;
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

    /// A fake sysfs: a PCI NIC, a virtio NIC, a DPDK-bound PCI device and
    /// an auxiliary (SF) device.
    fn fake_sys() -> PathBuf {
        let root = std::env::temp_dir().join(format!("hd-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pci = root.join("bus/pci/devices");
        let mk = |p: PathBuf| std::fs::create_dir_all(p).unwrap();
        mk(pci.join("0000:01:00.0/net/enp1s0"));
        mk(pci.join("0000:01:00.1/virtio3/net/eth7"));
        mk(pci.join("0000:02:00.0"));
        mk(root.join("bus/pci/drivers/vfio-pci"));
        std::os::unix::fs::symlink(
            "../../../bus/pci/drivers/vfio-pci",
            pci.join("0000:02:00.0/driver"),
        )
        .unwrap();
        mk(root.join("bus/auxiliary/devices/mlx5_core.sf.2/net/enp3s0f0s1"));
        root
    }

    fn conf(json: &str) -> HostDevConf {
        serde_json::from_str(json).unwrap()
    }

    fn name(t: Result<Target, CniError>) -> String {
        match t.unwrap() {
            Target::Link(n) => n,
            Target::Dpdk => "DPDK".into(),
        }
    }

    #[test]
    fn lookups_in_the_reference_order_through_sysfs() {
        let sys = fake_sys();
        let nl = Netlink::route().unwrap();
        let r = |j: &str| resolve(&conf(j), &nl, &sys);
        assert_eq!(name(r(r#"{"pciBusID":"0000:01:00.0"}"#)), "enp1s0");
        assert_eq!(name(r(r#"{"pciBusID":"0000:01:00.1"}"#)), "eth7");
        assert_eq!(name(r(r#"{"pciBusID":"0000:02:00.0"}"#)), "DPDK");
        assert_eq!(
            name(r(r#"{"runtimeConfig":{"deviceID":"0000:01:00.0"}}"#)),
            "enp1s0"
        );
        assert_eq!(
            name(r(r#"{"runtimeConfig":{"deviceID":"mlx5_core.sf.2"}}"#)),
            "enp3s0f0s1"
        );
        // device wins over everything else, pciBusID over deviceID.
        assert_eq!(
            name(r(r#"{"device":"d0","pciBusID":"0000:01:00.0"}"#)),
            "d0"
        );
        assert_eq!(
            name(r(
                r#"{"pciBusID":"0000:01:00.1","runtimeConfig":{"deviceID":"0000:01:00.0"}}"#
            )),
            "eth7"
        );
        let e = r(r#"{"runtimeConfig":{"deviceID":"nope.0"}}"#)
            .err()
            .unwrap();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("not found or unsupported"), "{e:?}");
        let e = r(r#"{"pciBusID":"../0000:01:00.0"}"#).err().unwrap();
        assert!(e.msg.starts_with("pciBusID"), "{e:?}");
        let _ = std::fs::remove_dir_all(&sys);
    }

    #[test]
    fn kernelpath_must_stay_under_sys_devices() {
        let nl = Netlink::route().unwrap();
        for bad in [
            "/etc",
            "/sys/devices/../../etc",
            "sys/devices/x",
            "/sys/devicesX/y",
        ] {
            let c = HostDevConf {
                kernelpath: bad.into(),
                ..Default::default()
            };
            let e = resolve(&c, &nl, Path::new(SYS)).err().unwrap();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.contains("/sys/devices/"), "{bad}: {e:?}");
        }
    }
}
