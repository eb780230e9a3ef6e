//! bridge: containers on a Linux bridge, optionally routed through a gateway
//! address on it (reference: plugins/main/bridge). Without `ipam` (or with
//! `ipam: {}`) it is a pure L2 attachment.

use crate::cni::result::{CniResult, Interface, Route as ResultRoute};
use crate::cni::types::valid_attachments;
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::Netlink;
use crate::steps::bridge as br;
use crate::steps::iface::{self, ConfigureOptions};
use crate::steps::netns::NetNs;
use crate::steps::nlbatch::Batch;
use crate::steps::undo::Undo;
use crate::steps::veth::{self, VethOptions};
use crate::steps::{check, fault, ipam, masq, spoofchk, sysctl};
use ipnet::IpNet;
use std::net::IpAddr;

mod conf;
use conf::{settings, Settings};

pub const PLUGIN: Plugin = Plugin {
    name: "bridge",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

fn add(req: &Request) -> Result<CniResult, CniError> {
    let s = settings(req)?;
    // Only ADD needs the backend to be usable; DEL, CHECK, STATUS and GC
    // must not fail because an iptables binary went missing.
    if !s.ipam.is_empty() {
        masq::validate_backend(s.conf.ip_masq_backend.as_deref())?;
    }
    // macspoofchk names chains after the attachment: a name the kernel
    // would refuse fails here, before any change (ADD only: DEL of such an
    // attachment has nothing to remove and must succeed).
    if s.conf.macspoofchk {
        spoofchk::check_names(&req.container_id, &req.ifname)?;
    }
    let ns = NetNs::open(&req.netns)?;
    let cont_nl = ns.netlink()?;
    let host_nl = Netlink::route()?;
    veth::ensure_absent(&cont_nl, &req.ifname)?;
    // IPAM before the first change to the node (the reference runs it after
    // making the bridge and the veth): a bad IPAM config then changes
    // nothing, and the addresses are released again if a later step fails.
    // Except dhcp, whose daemon needs the container's link to ask on.
    let ipam_needs_link = s.ipam == "dhcp";
    let mut alloc = if s.ipam.is_empty() || ipam_needs_link {
        None
    } else {
        let a = ipam::Allocation::new(req, &s.ipam)?;
        fault::point("bridge:after-ipam")?;
        Some(a)
    };

    let bridge = br::ensure(
        &host_nl,
        &s.name,
        s.conf.mtu,
        s.conf.promisc,
        !s.vlans.is_empty(),
    )?;
    fault::point("bridge:after-bridge")?;
    let mut undo = Undo::new();
    let pair = veth::create(
        &host_nl,
        &ns,
        &cont_nl,
        &req.ifname,
        &VethOptions {
            mtu: s.conf.mtu,
            container_mac: s.mac,
        },
    )?;
    let host = &host_nl;
    let host_index = pair.host.index;
    undo.push(move || {
        let _ = host.link_del(host_index);
    });
    br::enslave(
        &host_nl,
        &pair.host,
        &bridge,
        s.conf.hairpin,
        s.conf.port_isolation,
        &s.vlans,
    )?;
    if ipam_needs_link {
        alloc = Some(ipam::Allocation::new(req, &s.ipam)?);
    }

    let mut result = CniResult {
        cni_version: req.version.clone(),
        interfaces: vec![Interface {
            name: bridge.name.clone(),
            mac: bridge.mac_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    result.interfaces.extend(pair.result_interfaces(&req.netns));

    fault::point("bridge:after-veth")?;
    if s.conf.macspoofchk {
        let (id, ifname) = (req.container_id.clone(), req.ifname.clone());
        undo.push(move || {
            let _ = spoofchk::teardown(&id, &ifname);
        });
        spoofchk::setup(
            &pair.host.name,
            &pair.container.mac_string(),
            &req.container_id,
            &req.ifname,
        )?;
    }

    fault::point("bridge:after-spoofchk")?;
    match &mut alloc {
        None => {
            if !s.conf.disable_container_iface {
                cont_nl.link_set_up(pair.container.index, true)?;
            }
        }
        Some(alloc) => configure_l3(
            req,
            &s,
            &ns,
            &cont_nl,
            &host_nl,
            &bridge,
            &pair.container,
            std::mem::take(&mut alloc.result),
            &mut result,
            &mut undo,
        )?,
    }

    if !s.conf.disable_container_iface {
        let up = br::wait_oper_up(&host_nl, pair.host.index)?;
        result.interfaces[1].mac = up.mac_string();
    }
    // The bridge MAC can change as ports join until it is pinned.
    if let Some(b) = host_nl.link_by_index(bridge.index)? {
        result.interfaces[0].mac = b.mac_string();
    }
    fault::point("bridge:before-result")?;
    if let Some(dns) = s.common.dns_override() {
        result.dns = dns;
    }
    undo.commit();
    if let Some(a) = alloc {
        a.keep();
    }
    Ok(result)
}

/// The L3 part of ADD: addresses and routes in the container, gateways on
/// the bridge (or its VLAN interface), forwarding and masquerade.
#[allow(clippy::too_many_arguments)]
fn configure_l3<'a>(
    req: &'a Request,
    s: &Settings,
    ns: &NetNs,
    cont_nl: &Netlink,
    host_nl: &'a Netlink,
    bridge: &crate::netlink::link::Link,
    container: &crate::netlink::link::Link,
    ipam_result: CniResult,
    result: &mut CniResult,
    undo: &mut Undo<'a>,
) -> Result<(), CniError> {
    result.ips = ipam_result.ips;
    result.routes = ipam_result.routes;
    result.dns = ipam_result.dns;
    if result.ips.is_empty() {
        return Err(CniError::internal("IPAM plugin returned missing IP config"));
    }
    let gateways = calc_gateways(result, s.conf.is_gw, s.conf.is_default_gw);

    let mut sysctls = Vec::new();
    let ifname = &req.ifname;
    if s.conf.enabledad {
        sysctls.push((
            sysctl::iface_path("ipv6", ifname, "enhanced_dad"),
            "1".to_string(),
        ));
    }
    let accept_dad = if s.conf.enabledad { "1" } else { "0" };
    sysctls.push((
        sysctl::iface_path("ipv6", ifname, "accept_dad"),
        accept_dad.to_string(),
    ));
    sysctls.push((
        sysctl::iface_path("ipv4", ifname, "arp_notify"),
        "1".to_string(),
    ));
    // accept_dad=0 (unless enabledad) already turns DAD off, as in the
    // reference, so addresses carry no nodad flag and `ip addr` reads the same.
    let opts = ConfigureOptions {
        nodad: false,
        sysctls,
    };
    iface::configure(ns, cont_nl, container, result, &opts, &[], Batch::new())?;

    if s.conf.is_gw && !gateways.is_empty() {
        let target = if s.conf.vlan > 0 {
            let vlan_if = vlan_gateway_iface(host_nl, bridge, s)?;
            result.interfaces.push(Interface {
                name: vlan_if.name.clone(),
                mac: vlan_if.mac_string(),
                ..Default::default()
            });
            vlan_if
        } else {
            bridge.clone()
        };
        for gw in &gateways {
            br::ensure_gateway(host_nl, &target, *gw, s.conf.force_address)?;
        }
        sysctl::enable_forwarding(gateways.iter().map(|g| g.addr()))?;
    }

    if s.conf.ip_masq {
        let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
        masq::setup_undoable(
            undo,
            s.conf.ip_masq_backend.as_deref(),
            &ips,
            req.name(),
            &req.ifname,
            &req.container_id,
        )?;
    }
    Ok(())
}

/// The reference's `calcGateways`: IPs point at the container interface
/// (index 2); with isGateway a missing gateway becomes network+1; with
/// isDefaultGateway each family gets a default route unless IPAM gave one
/// with a gateway. Returns the gateway addresses for the bridge.
fn calc_gateways(result: &mut CniResult, is_gw: bool, is_default_gw: bool) -> Vec<IpNet> {
    let mut gws = Vec::new();
    let mut default_found = [false, false];
    for i in 0..result.ips.len() {
        let ip = &mut result.ips[i];
        ip.interface = Some(2);
        if ip.gateway.is_none() && is_gw {
            ip.gateway = Some(next_ip(ip.address.network()));
        }
        let fam = if ip.is_v4() { 0 } else { 1 };
        let gw = ip.gateway;
        let addr = ip.address;
        if is_default_gw && !default_found[fam] {
            let default: IpNet = if fam == 0 {
                "0.0.0.0/0".parse().unwrap_or_default()
            } else {
                "::/0".parse().unwrap_or_default()
            };
            if !result
                .routes
                .iter()
                .any(|r| r.gw.is_some() && r.dst == default)
            {
                result.routes.push(ResultRoute::new(default, gw));
            }
            default_found[fam] = true;
        }
        if is_gw {
            if let Some(g) = gw {
                if let Ok(n) = IpNet::new(g, addr.prefix_len()) {
                    gws.push(n);
                }
            }
        }
    }
    gws
}

fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::from(u32::from(a).wrapping_add(1).to_be_bytes()),
        IpAddr::V6(a) => IpAddr::from(u128::from(a).wrapping_add(1).to_be_bytes()),
    }
}

/// `<bridge>.<vlan>`: a host-side veth whose peer is a port of the bridge in
/// the VLAN, carrying the gateway address for that VLAN.
fn vlan_gateway_iface(
    nl: &Netlink,
    bridge: &crate::netlink::link::Link,
    s: &Settings,
) -> Result<crate::netlink::link::Link, CniError> {
    let name = format!("{}.{}", bridge.name, s.conf.vlan);
    if let Some(l) = nl.link_by_name(&name)? {
        return Ok(l);
    }
    let host_ns = NetNs::current()?;
    let pair = match veth::create(
        nl,
        &host_ns,
        nl,
        &name,
        &VethOptions {
            mtu: bridge.mtu,
            container_mac: None,
        },
    ) {
        Ok(p) => p,
        // A concurrent ADD made it first.
        Err(e) => return nl.link_by_name(&name)?.ok_or(e),
    };
    // Only reached with `vlan` set, which excludes `vlanTrunk`: the port's
    // plan is the access VLAN alone, as for the container's port.
    br::enslave(nl, &pair.host, bridge, false, false, &s.vlans)?;
    nl.link_set_up(pair.container.index, true)?;
    Ok(pair.container)
}

fn del(req: &Request) -> Result<(), CniError> {
    let s = settings(req)?;
    // The firewall state goes even when the netns or link is already gone
    // (the reference leaks it). First, on a socket kept open until the link
    // is deleted (see masq::teardown_on).
    let mut errors = Vec::new();
    let masq_on = !s.ipam.is_empty() && s.conf.ip_masq;
    let nft = if masq_on || s.conf.macspoofchk {
        masq::netfilter_socket()?
    } else {
        None
    };
    // Masquerade first: a legacy iptables chain is removed by the binary,
    // whose sockets must close before any rule is deleted (see
    // masq::teardown_on).
    if masq_on {
        let (name, id) = (req.name(), &req.container_id);
        errors.extend(masq::teardown_on(nft.as_ref(), name, &req.ifname, id).err());
    }
    if let (true, Some(nl)) = (s.conf.macspoofchk, nft.as_ref()) {
        errors.extend(spoofchk::teardown_with(nl, &req.container_id, &req.ifname).err());
    }
    // dhcp releases its lease from the container's link, so before the
    // link goes (the reference deletes the link first and its RELEASE fails).
    let ipam_needs_link = s.ipam == "dhcp";
    if ipam_needs_link {
        errors.extend(ipam::del(req, &s.ipam).err());
    }
    let link = veth::delete(&req.netns, &req.ifname);
    drop(nft);
    fault::point("bridge:del-after-link")?;
    if let Err(e) = link {
        // The interface may still hold its address: keep the reservation,
        // or the next pod on this bridge could get the same IP. The
        // runtime's retry of DEL releases it.
        errors.insert(0, e);
        return CniError::combine(errors);
    }
    // IPAM after the link, as the reference.
    if !s.ipam.is_empty() && !ipam_needs_link {
        errors.extend(ipam::del(req, &s.ipam).err());
    }
    fault::point("bridge:del-after-ipam")?;
    CniError::combine(errors)
}

fn check(req: &Request) -> Result<(), CniError> {
    let s = settings(req)?;
    let ns = NetNs::open(&req.netns)?;
    // An L2 bridge has no IPAM to check (the reference fails it with "no
    // plugin name provided").
    if !s.ipam.is_empty() {
        ipam::check(req, &s.ipam)?;
    }
    let prev = check::prev_result(req, &s.common, "bridge")?;
    let host_nl = Netlink::route()?;

    let br_if = prev
        .interfaces
        .iter()
        .find(|i| i.name == s.name)
        .ok_or_else(|| {
            CniError::internal(format!(
                "CNI created bridge {} in host namespace was not found",
                s.name
            ))
        })?;
    if !br_if.sandbox.is_empty() {
        return Err(CniError::internal(format!(
            "Interface {} should not be in sandbox",
            br_if.name
        )));
    }
    let bridge = check::link(&host_nl, br_if, Some("bridge"))?;
    if bridge.is_promisc() != s.conf.promisc {
        return Err(CniError::internal(format!(
            "Bridge interface {} configured Promisc Mode {} doesn't match current state: {}",
            bridge.name,
            s.conf.promisc,
            bridge.is_promisc()
        )));
    }

    let (idx, cont_if) = check::container_iface(&prev, &req.ifname, &req.netns)?;
    let cont_nl = ns.netlink()?;
    let cont = check::link(&cont_nl, cont_if, Some("veth"))?;

    // The host end: a veth in the result whose peer is the container end
    // and whose master is the bridge.
    let host_ok = prev.interfaces.iter().filter(|i| i.name != s.name && i.sandbox.is_empty()).any(|i| {
        matches!(host_nl.link_by_name(&i.name), Ok(Some(l)) if l.kind == "veth" && l.index == cont.link && l.master == bridge.index)
    });
    if !host_ok {
        return Err(CniError::internal(format!(
            "CNI veth created for bridge {} was not found",
            s.name
        )));
    }
    check::addresses_and_routes(&cont_nl, &cont, &prev, idx)
}

fn status(req: &Request) -> Result<(), CniError> {
    let s = settings(req)?;
    if s.ipam.is_empty() {
        return Ok(());
    }
    ipam::status(req, &s.ipam)
}

fn gc(req: &Request) -> Result<(), CniError> {
    let s = settings(req)?;
    let mut errors = Vec::new();
    if !s.ipam.is_empty() {
        if let Err(e) = ipam::gc(req, &s.ipam) {
            errors.push(e);
        }
    }
    if let Some(valid) = valid_attachments(&req.config)? {
        if !s.ipam.is_empty() && s.conf.ip_masq {
            if let Err(e) = masq::gc(req.name(), &valid) {
                errors.push(e);
            }
        }
        if s.conf.macspoofchk {
            if let Err(e) = spoofchk::gc(&s.name, &valid) {
                errors.push(e);
            }
        }
    }
    CniError::combine(errors)
}

/// Fuzzing only (`cargo fuzz`): the whole config validation of ADD.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = settings(req);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_default_routes_and_interface_index() {
        let mut r = CniResult::parse_any(
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"},{"address":"fd00::5/64","gateway":"fd00::9"}],
                "routes":[{"dst":"::/0","gw":"fd00::1"}]}"#,
            "1.0.0",
        )
        .unwrap();
        let gws = calc_gateways(&mut r, true, true);
        assert_eq!(
            gws.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            vec!["10.1.0.1/24", "fd00::9/64"]
        );
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.1.0.1");
        assert!(r.ips.iter().all(|ip| ip.interface == Some(2)));
        // v4 default added; v6 default already present with a gateway.
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1].dst.to_string(), "0.0.0.0/0");
    }
}
