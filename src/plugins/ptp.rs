//! ptp: a veth pair per container, routed through the host (reference:
//! plugins/main/ptp). Everything the container sends, its own subnet
//! included, goes to the gateway, which lives as a /32 (/128) on the host
//! end of every ptp veth.

use crate::cni::result::CniResult;
use crate::cni::types::valid_attachments;
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::consts::{IFA_F_NODAD, RT_SCOPE_HOST, RT_SCOPE_LINK};
use crate::netlink::route::{Route, RouteMode};
use crate::netlink::Netlink;
use crate::steps::iface::{self, ConfigureOptions};
use crate::steps::netns::NetNs;
use crate::steps::nlbatch::Batch;
use crate::steps::undo::Undo;
use crate::steps::veth::{self, VethOptions};
use crate::steps::{check, fault, ipam, masq, sysctl};
use ipnet::IpNet;
use serde::Deserialize;

pub const PLUGIN: Plugin = Plugin {
    name: "ptp",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// ptp's own keys (the common ones come from `NetConf`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PtpConf {
    #[serde(rename = "ipMasq")]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend")]
    ip_masq_backend: Option<String>,
    mtu: u32,
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = req.net_conf()?;
    let ptp: PtpConf = req.decode()?;
    masq::validate_backend(ptp.ip_masq_backend.as_deref())?;
    veth::validate_mtu(ptp.mtu)?;
    let ipam_type = ipam::ipam_type(&conf)?;

    // Everything that can be checked is checked before anything changes.
    let ns = NetNs::open(&req.netns)?;
    let cont_nl = ns.netlink()?;
    let host_nl = Netlink::route()?;
    veth::ensure_absent(&cont_nl, &req.ifname)?;

    let mut alloc = ipam::Allocation::new(req, &ipam_type)?;
    let mut result = std::mem::take(&mut alloc.result);
    fault::point("ptp:after-ipam")?;
    if result.ips.is_empty() {
        return Err(CniError::internal("IPAM plugin returned missing IP config"));
    }
    let mut gateways = Vec::new();
    for ip in &result.ips {
        let gw = ip.gateway.ok_or_else(|| {
            CniError::config(format!(
                "ipam: ptp needs a gateway for every address, {} has none",
                ip.address
            ))
        })?;
        gateways.push(gw);
    }
    sysctl::enable_forwarding(result.ips.iter().map(|ip| ip.address.addr()))?;

    let mut undo = Undo::new();
    let pair = veth::create(
        &host_nl,
        &ns,
        &cont_nl,
        &req.ifname,
        &VethOptions {
            mtu: ptp.mtu,
            container_mac: None,
        },
    )?;
    let host_index = pair.host.index;
    let host = &host_nl;
    undo.push(move || {
        let _ = host.link_del(host_index);
    });
    fault::point("ptp:after-veth")?;

    result.interfaces = pair.result_interfaces(&req.netns).into();
    for ip in &mut result.ips {
        ip.interface = Some(1);
    }

    // The container reaches its gateway on-link (added before the result's
    // routes, which go through it) ...
    let gw_routes: Vec<Route> = result
        .ips
        .iter()
        .zip(&gateways)
        .map(|(ip, gw)| {
            Route::new(IpNet::from(*gw), pair.container.index)
                .scope(RT_SCOPE_LINK)
                .src(ip.address.addr())
        })
        .collect();
    let opts = ConfigureOptions {
        nodad: true,
        sysctls: Vec::new(),
    };
    // ... and everything else, its own subnet included, through it: the
    // kernel's prefix route is replaced by `subnet via gw` (as the
    // reference, so `ip route` reads the same). All in one batch.
    let mut swap = Batch::new();
    for (ip, gw) in result.ips.iter().zip(&gateways) {
        let subnet = ip.address.trunc();
        swap.route_del(&Route::new(subnet, pair.container.index));
        let via = Route::new(subnet, pair.container.index)
            .via(*gw)
            .src(ip.address.addr());
        swap.route_add(&via, RouteMode::Add, true);
    }
    iface::configure(
        &ns,
        &cont_nl,
        &pair.container,
        &result,
        &opts,
        &gw_routes,
        swap,
    )?;
    fault::point("ptp:after-configure")?;

    // Host side: the gateway on the host end, a host route to the container.
    let mut host_side = Batch::new();
    for (ip, gw) in result.ips.iter().zip(&gateways) {
        let flags = if gw.is_ipv4() { 0 } else { IFA_F_NODAD };
        host_side.addr_add(host_index, &IpNet::from(*gw), flags, true);
        let route = Route::new(IpNet::from(ip.address.addr()), host_index).scope(RT_SCOPE_HOST);
        host_side.route_add(&route, RouteMode::Add, true);
    }
    host_side.run(&host_nl)?;

    fault::point("ptp:after-host")?;
    if ptp.ip_masq {
        let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
        masq::setup_undoable(
            &mut undo,
            ptp.ip_masq_backend.as_deref(),
            &ips,
            req.name(),
            &req.ifname,
            &req.container_id,
        )?;
    }
    fault::point("ptp:after-masq")?;

    if let Some(dns) = conf.dns_override() {
        result.dns = dns;
    }
    result.cni_version = req.version.clone();
    undo.commit();
    alloc.keep();
    Ok(result)
}

fn del(req: &Request) -> Result<(), CniError> {
    let ptp: PtpConf = req.decode()?;
    let ipam_type = ipam::ipam_type(&req.net_conf()?)?;
    // As the reference: IPAM first, and its failure is DEL's failure.
    ipam::del(req, &ipam_type)?;
    fault::point("ptp:del-after-ipam")?;

    // Masquerade rules are found by comment, not by the link's addresses:
    // no leak when the netns or the link is already gone (the reference
    // leaks here). They go first, on a socket kept open until the link is
    // deleted (see masq::teardown_on).
    let nft = if ptp.ip_masq {
        masq::netfilter_socket()?
    } else {
        None
    };
    let masq = match ptp.ip_masq {
        true => masq::teardown_on(nft.as_ref(), req.name(), &req.ifname, &req.container_id),
        false => Ok(()),
    };
    let link = veth::delete(&req.netns, &req.ifname);
    drop(nft);
    fault::point("ptp:del-after-link")?;
    link.and(masq)
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = req.net_conf()?;
    let ipam_type = ipam::ipam_type(&conf)?;
    let ns = NetNs::open(&req.netns)?;
    ipam::check(req, &ipam_type)?;
    let prev = check::prev_result(req, &conf, "ptp")?;
    let (idx, iface) = check::container_iface(&prev, &req.ifname, &req.netns)?;
    let nl = ns.netlink()?;
    let link = check::link(&nl, iface, Some("veth"))?;
    check::addresses_and_routes(&nl, &link, &prev, idx)
}

fn status(req: &Request) -> Result<(), CniError> {
    let ipam_type = ipam::ipam_type(&req.net_conf()?)?;
    ipam::status(req, &ipam_type)
}

fn gc(req: &Request) -> Result<(), CniError> {
    let ptp: PtpConf = req.decode()?;
    let ipam_type = ipam::ipam_type(&req.net_conf()?)?;
    // Keep going after errors and report them all (spec).
    let mut errors = Vec::new();
    if let Err(e) = ipam::gc(req, &ipam_type) {
        errors.push(e);
    }
    if ptp.ip_masq {
        if let Some(valid) = valid_attachments(&req.config)? {
            if let Err(e) = masq::gc(req.name(), &valid) {
                errors.push(e);
            }
        }
    }
    CniError::combine(errors)
}

/// Fuzzing only (`cargo fuzz`): every config check ADD makes before it
/// changes anything.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = req.net_conf().map(|c| c.dns_override());
    let _ = req.decode::<PtpConf>();
    let _ = req.net_conf().map(|c| ipam::ipam_type(&c));
}
