//! ipvlan: an ipvlan link on a node interface (the master), made straight
//! in the container (reference: plugins/main/ipvlan). Chained after another
//! plugin without an IPAM type, it takes that plugin's addresses (and, with
//! no `master`, that plugin's single interface as its master).
//!
//! Unlike the reference, a failed ADD removes the link, DEL needs neither
//! the master nor a default route, and CHECK works without `master`.

use crate::cni::result::CniResult;
use crate::cni::types::NetConf;
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::ipam;
use crate::steps::sublink::{self, AddFlow, Addressing, Expect, KindData, NewLink, Place, SubKind};
use serde::Deserialize;

pub const PLUGIN: Plugin = Plugin {
    name: "ipvlan",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// ipvlan's own keys (the common ones come from `NetConf`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IpvlanConf {
    /// Default: the prevResult's single interface, else the interface of
    /// the first default route.
    master: String,
    /// l2 (default), l3, l3s.
    mode: String,
    /// 0 (the master's) up to the master's MTU.
    mtu: i64,
    #[serde(rename = "linkInContainer")]
    link_in_container: bool,
}

/// The config after the checks that need no kernel.
struct Settings {
    common: NetConf,
    conf: IpvlanConf,
    mode: u16,
    /// The prevResult, parsed, when there is one.
    prev: Option<CniResult>,
}

fn settings(req: &Request) -> Result<Settings, CniError> {
    let common = req.net_conf()?;
    let conf: IpvlanConf = req.decode()?;
    let mode = sublink::ipvlan_mode(&conf.mode)?;
    let prev = match &common.prev_result {
        None => None,
        Some(v) => Some(
            CniResult::parse_as(v, &req.version)
                .map_err(|e| e.context("prevResult: could not parse prevResult"))?,
        ),
    };
    Ok(Settings {
        common,
        conf,
        mode,
        prev,
    })
}

/// The master's name: the config's, else the prevResult's single named
/// interface, else "" (the default-route interface).
fn master_name(s: &Settings) -> Result<String, CniError> {
    if !s.conf.master.is_empty() {
        return Ok(s.conf.master.clone());
    }
    match &s.prev {
        None => Ok(String::new()),
        Some(p) if p.interfaces.len() == 1 && !p.interfaces[0].name.is_empty() => {
            Ok(p.interfaces[0].name.clone())
        }
        Some(_) => Err(CniError::config(
            "master: chained master failure. PrevResult lacks a single named interface",
        )),
    }
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let s = settings(req)?;
    let ipam_type = s.common.ipam_type()?.to_string();
    // Chained: no IPAM type and a prevResult with addresses. Otherwise the
    // IPAM is required (checked before anything changes).
    let addressing = match &s.prev {
        Some(p) if ipam_type.is_empty() && !p.ips.is_empty() => Addressing::Chained(p.clone()),
        _ => Addressing::Ipam(ipam::ipam_type(&s.common)?),
    };
    let master_name = master_name(&s)?;
    let place = Place::open(&req.netns)?;
    let master_nl = place.master_nl(s.conf.link_in_container);
    let master = sublink::master(master_nl, &master_name)?;
    let mtu = sublink::validate_mtu(s.conf.mtu, &master)?;
    let flow = AddFlow {
        plugin: "ipvlan",
        link: NewLink {
            kind: SubKind::Ipvlan { mode: s.mode },
            master: Some((master_nl, &master)),
            mtu,
            // The reference's LinkAttrs literal sends a queue length of 0.
            txqlen: Some(0),
            mac: None,
        },
        addressing,
        notify: true,
        dns: Some(sublink::config_dns(&s.common)),
    };
    sublink::add(req, &place, flow)
}

/// DEL needs nothing but the IPAM type: not the master, not a default
/// route (the reference resolves both and fails without them), not the
/// netns.
fn del(req: &Request) -> Result<(), CniError> {
    let ipam = req.net_conf()?.ipam_type()?.to_string();
    sublink::del(req, &ipam)
}

fn check(req: &Request) -> Result<(), CniError> {
    let s = settings(req)?;
    let place = Place::open(&req.netns)?;
    let ipam_type = s.common.ipam_type()?.to_string();
    if !ipam_type.is_empty() {
        ipam::check(req, &ipam_type)?;
    }
    // The prevResult here is ipvlan's own: only a configured master can be
    // checked (the reference fails every CHECK without one).
    if !s.conf.master.is_empty() {
        sublink::master(place.master_nl(s.conf.link_in_container), &s.conf.master)?;
    }
    let expect = Expect {
        data: KindData {
            ipvlan_mode: Some(s.mode),
            ..Default::default()
        },
        routes: true,
        ..Default::default()
    };
    sublink::check(req, &s.common, &place, "ipvlan", &expect)
}

fn status(req: &Request) -> Result<(), CniError> {
    ipam::status_if_any(req)
}

fn gc(req: &Request) -> Result<(), CniError> {
    ipam::gc_if_any(req)
}
