//! macvlan: a macvlan link on a node interface (the master), made straight
//! in the container (reference: plugins/main/macvlan). Without `ipam` (or
//! with `ipam: {}`) it is an L2 attachment that is only set up.
//!
//! Unlike the reference, a failed ADD never leaves the link or the
//! addresses behind (the reference keeps the link after an IPAM failure).

use crate::cni::result::CniResult;
use crate::cni::types::NetConf;
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::ipam;
use crate::steps::sublink::{self, AddFlow, Addressing, Expect, KindData, NewLink, Place, SubKind};
use serde::Deserialize;

pub const PLUGIN: Plugin = Plugin {
    name: "macvlan",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// macvlan's own keys (the common ones come from `NetConf`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MacvlanConf {
    /// Default: the interface of the first default route.
    master: String,
    /// bridge (default), private, vepa, passthru.
    mode: String,
    /// 0 (the master's) up to the master's MTU.
    mtu: i64,
    mac: String,
    #[serde(rename = "linkInContainer")]
    link_in_container: bool,
    /// Broadcast queue length; 0 leaves the kernel's.
    bcqueuelen: u32,
    #[serde(rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    mac: String,
}

/// The config after the checks that need no kernel.
struct Settings {
    common: NetConf,
    conf: MacvlanConf,
    mode: u32,
    mac: Option<[u8; 6]>,
    /// `ipam.type`, empty for L2.
    ipam: String,
}

fn settings(req: &Request) -> Result<Settings, CniError> {
    let common = req.net_conf()?;
    let conf: MacvlanConf = req.decode()?;
    let mode = sublink::macvlan_mode(&conf.mode)?;
    let mac = sublink::mac(&conf.mac, &req.args, &conf.runtime_config.mac)?;
    let ipam = common.ipam_type()?.to_string();
    Ok(Settings {
        common,
        conf,
        mode,
        mac,
        ipam,
    })
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let s = settings(req)?;
    let place = Place::open(&req.netns)?;
    let master_nl = place.master_nl(s.conf.link_in_container);
    let master = sublink::master(master_nl, &s.conf.master)?;
    let mtu = sublink::validate_mtu(s.conf.mtu, &master)?;
    let addressing = if s.ipam.is_empty() {
        Addressing::L2
    } else {
        Addressing::Ipam(s.ipam.clone())
    };
    let flow = AddFlow {
        plugin: "macvlan",
        link: NewLink {
            kind: SubKind::Macvlan {
                mode: s.mode,
                bcqueuelen: s.conf.bcqueuelen,
            },
            master: Some((master_nl, &master)),
            mtu,
            // The reference's NewLinkAttrs leaves the queue length alone.
            txqlen: None,
            mac: s.mac,
        },
        addressing,
        notify: true,
        dns: Some(sublink::config_dns(&s.common)),
    };
    sublink::add(req, &place, flow)
}

/// DEL needs nothing but the IPAM type: not the master, not the netns.
fn del(req: &Request) -> Result<(), CniError> {
    let ipam = req.net_conf()?.ipam_type()?.to_string();
    sublink::del(req, &ipam)
}

fn check(req: &Request) -> Result<(), CniError> {
    let s = settings(req)?;
    let place = Place::open(&req.netns)?;
    // As the reference: the master must still exist, the MTU still fit.
    let master = sublink::master(place.master_nl(s.conf.link_in_container), &s.conf.master)?;
    sublink::validate_mtu(s.conf.mtu, &master)?;
    if !s.ipam.is_empty() {
        ipam::check(req, &s.ipam)?;
    }
    let expect = Expect {
        data: KindData {
            macvlan_mode: Some(s.mode),
            ..Default::default()
        },
        routes: true,
        ..Default::default()
    };
    sublink::check(req, &s.common, &place, "macvlan", &expect)
}

fn status(req: &Request) -> Result<(), CniError> {
    ipam::status_if_any(req)
}

fn gc(req: &Request) -> Result<(), CniError> {
    ipam::gc_if_any(req)
}
