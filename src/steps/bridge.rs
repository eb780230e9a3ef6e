//! Linux bridges: ensure one exists, enslave ports (hairpin, isolation,
//! VLANs), give it a gateway address with its MAC pinned, and wait for a
//! port to come up. Every step is idempotent so concurrent first ADDs on a
//! new bridge all succeed.

use super::nlbatch::Batch;
use super::sysctl;
use crate::cni::CniError;
use crate::netlink::bridge::PortVlan;
use crate::netlink::consts::{AF_INET, AF_INET6, IFA_F_NODAD, IF_OPER_UP};
use crate::netlink::link::Link;
use crate::netlink::Netlink;
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Create the bridge if missing (EEXIST is fine: a concurrent ADD made it),
/// check that the name really is a bridge, turn off RA, set promisc if
/// asked, bring it up. MTU and VLAN filtering apply only at creation.
pub fn ensure(
    nl: &Netlink,
    name: &str,
    mtu: u32,
    promisc: bool,
    vlan_filtering: bool,
) -> Result<Link, CniError> {
    // Usually the bridge is there already: look first, create only if not.
    let br = match nl.link_by_name(name)? {
        Some(br) => br,
        None => {
            match nl.bridge_add(name, mtu, vlan_filtering) {
                Ok(()) => {}
                // A concurrent first ADD made it a moment ago.
                Err(e) if e.is_exists() => {}
                Err(e) if e.is_unsupported() && vlan_filtering => {
                    return Err(CniError::unsupported(format!(
                        "could not add {name:?} with VLAN filtering: {e} (the kernel lacks bridge VLAN filtering)"
                    )))
                }
                Err(e) => return Err(CniError::internal(format!("could not add {name:?}: {e}"))),
            }
            nl.link_by_name(name)?.ok_or_else(|| {
                CniError::internal(format!("could not lookup {name:?}: link vanished"))
            })?
        }
    };
    if br.kind != "bridge" {
        return Err(CniError::config(format!(
            "bridge: {name:?} already exists but is not a bridge"
        )));
    }
    if promisc && !br.is_promisc() {
        nl.link_set_promisc(br.index, true)?;
    }
    // We own the routes on this interface (Go sets the same).
    let _ = sysctl::ensure(&sysctl::iface_path("ipv6", name, "accept_ra"), "0");
    if !br.is_up() {
        nl.link_set_up(br.index, true)?;
    }
    Ok(br)
}

/// VLAN settings of a port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VlanPlan {
    /// Access VLAN (PVID + untagged); 0 for none.
    pub access: u16,
    /// Tagged VLANs of a trunk port.
    pub trunk: Vec<u16>,
    pub preserve_default: bool,
}

impl VlanPlan {
    pub fn is_empty(&self) -> bool {
        self.access == 0 && self.trunk.is_empty()
    }

    /// The VLANs to add, in order.
    pub fn additions(&self) -> Vec<PortVlan> {
        let mut out = Vec::new();
        if self.access != 0 {
            out.push(PortVlan {
                vid: self.access,
                pvid: true,
                untagged: true,
            });
        } else if !self.trunk.is_empty() {
            // A trunk port keeps VLAN 1 as its native VLAN.
            out.push(PortVlan {
                vid: 1,
                pvid: true,
                untagged: true,
            });
        }
        out.extend(self.trunk.iter().map(|&vid| PortVlan {
            vid,
            pvid: false,
            untagged: false,
        }));
        out
    }
}

/// Attach `port` to `bridge` with its flags and VLANs.
pub fn enslave(
    nl: &Netlink,
    port: &Link,
    bridge: &Link,
    hairpin: bool,
    isolated: bool,
    vlans: &VlanPlan,
) -> Result<(), CniError> {
    let mut b = Batch::new();
    b.set_master(port.index, bridge.index).port_flags(
        port.index,
        hairpin,
        isolated.then_some(true),
    );
    b.run(nl).map_err(|e| {
        CniError::internal(format!(
            "failed to attach {:?} to bridge {}: {e}",
            port.name, bridge.name
        ))
    })?;
    if vlans.is_empty() {
        return Ok(());
    }
    if !vlans.preserve_default {
        for v in nl.vlans(port.index)? {
            nl.vlan_del(port.index, v.vid)?;
        }
    }
    for v in vlans.additions() {
        nl.vlan_add(port.index, v).map_err(|e| {
            if e.is_unsupported() {
                CniError::unsupported(format!(
                    "failed to set vlan {} on {}: {e}",
                    v.vid, port.name
                ))
            } else {
                CniError::internal(format!(
                    "failed to set vlan {} on {}: {e}",
                    v.vid, port.name
                ))
            }
        })?;
    }
    Ok(())
}

/// Put gateway `gw` (with the subnet's prefix) on `link` (Go's
/// `ensureAddr`): an equal address is fine; a different IPv4 address, or an
/// overlapping IPv6 one, is removed with `force` and an error otherwise.
/// Then pin the link's MAC to its current value so it stops following the
/// lowest port MAC as containers come and go.
pub fn ensure_gateway(nl: &Netlink, link: &Link, gw: IpNet, force: bool) -> Result<(), CniError> {
    let family = if gw.addr().is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    };
    let existing = nl.addrs(link.index, family)?;
    // In the kernel's order, as the reference walks them: reaching the
    // gateway itself settles it (the ADD that put it there pinned the MAC
    // already, and a second network's address listed after it is left
    // alone); a different IPv4 address, or an overlapping IPv6 one, before
    // it is replaced (forceAddress) or refused.
    // IPv6 link-local addresses (fe80::/10) never count as gateways.
    let link_local = |a: IpAddr| matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local());
    for a in existing.iter().filter(|a| !link_local(a.net.addr())) {
        if a.net == gw {
            return Ok(());
        }
        let overlaps = a.net.contains(&gw.addr()) || gw.contains(&a.net.addr());
        if family == AF_INET || overlaps {
            if force {
                nl.addr_del(link.index, &a.net)?;
            } else {
                return Err(CniError::internal(format!(
                    "{:?} already has an IP address different from {gw}",
                    link.name
                )));
            }
        }
    }
    {
        // No DAD on our own gateway: it is usable at once (the reference's
        // stays tentative for a second or two, and the first IPv6 packets
        // of a new pod go nowhere).
        let flags = if gw.addr().is_ipv4() { 0 } else { IFA_F_NODAD };
        match nl.addr_add(link.index, &gw, flags) {
            Err(e) if !e.is_exists() => {
                return Err(CniError::internal(format!(
                    "could not add IP address to {:?}: {e}",
                    link.name
                )))
            }
            _ => {}
        }
    }
    let current = nl
        .link_by_index(link.index)?
        .ok_or_else(|| CniError::internal(format!("{} vanished", link.name)))?;
    nl.link_set_mac(link.index, &current.mac)
        .map_err(|e| CniError::internal(format!("could not set bridge's mac: {e}")))?;
    Ok(())
}

/// Wait until a port is operationally up, polling with a short backoff
/// (about 2.5 s in all, as the reference allows; usually the first or
/// second look succeeds).
pub fn wait_oper_up(nl: &Netlink, index: u32) -> Result<Link, CniError> {
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut pause = Duration::from_millis(1);
    loop {
        let link = nl
            .link_by_index(index)?
            .ok_or_else(|| CniError::internal(format!("bridge port #{index} vanished")))?;
        if link.oper_state == IF_OPER_UP {
            return Ok(link);
        }
        if Instant::now() >= deadline {
            return Err(CniError::internal(format!(
                "bridge port in error state: {} is not up (operstate {})",
                link.name, link.oper_state
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_plans() {
        let access = VlanPlan {
            access: 100,
            trunk: vec![],
            preserve_default: false,
        };
        assert_eq!(
            access.additions(),
            vec![PortVlan {
                vid: 100,
                pvid: true,
                untagged: true
            }]
        );
        let trunk = VlanPlan {
            access: 0,
            trunk: vec![10, 20],
            preserve_default: true,
        };
        assert_eq!(
            trunk.additions(),
            vec![
                PortVlan {
                    vid: 1,
                    pvid: true,
                    untagged: true
                },
                PortVlan {
                    vid: 10,
                    pvid: false,
                    untagged: false
                },
                PortVlan {
                    vid: 20,
                    pvid: false,
                    untagged: false
                },
            ]
        );
        assert!(VlanPlan::default().additions().is_empty());
    }
}
