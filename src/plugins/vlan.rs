//! vlan: an 802.1q VLAN link on a node interface (the master), made
//! straight in the container (reference: plugins/main/vlan). IPAM is
//! required.
//!
//! Unlike the reference, a failed ADD removes the link, and DEL needs
//! neither the master (the NIC may be gone) nor the netns.

use crate::cni::result::CniResult;
use crate::cni::types::NetConf;
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::ipam;
use crate::steps::sublink::{self, AddFlow, Addressing, Expect, KindData, NewLink, Place, SubKind};
use serde::Deserialize;

pub const PLUGIN: Plugin = Plugin {
    name: "vlan",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// vlan's own keys (the common ones come from `NetConf`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VlanConf {
    /// Required.
    master: String,
    /// 0 to 4094.
    #[serde(rename = "vlanId")]
    vlan_id: i64,
    /// 0 (the master's) up to the master's MTU.
    mtu: i64,
    #[serde(rename = "linkInContainer")]
    link_in_container: bool,
}

/// The config after the checks that need no kernel.
struct Settings {
    common: NetConf,
    conf: VlanConf,
    id: u16,
    ipam: String,
}

fn settings(req: &Request) -> Result<Settings, CniError> {
    let common = req.net_conf()?;
    let conf: VlanConf = req.decode()?;
    if conf.master.is_empty() {
        return Err(CniError::config(
            "master: \"master\" field is required. It specifies the host interface name to create the VLAN for",
        ));
    }
    if !(0..=4094).contains(&conf.vlan_id) {
        return Err(CniError::config(format!(
            "vlanId: invalid VLAN ID {} (must be between 0 and 4094 inclusive)",
            conf.vlan_id
        )));
    }
    let ipam = ipam::ipam_type(&common)?;
    Ok(Settings {
        id: conf.vlan_id as u16,
        common,
        conf,
        ipam,
    })
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let s = settings(req)?;
    let place = Place::open(&req.netns)?;
    let master_nl = place.master_nl(s.conf.link_in_container);
    let master = sublink::master(master_nl, &s.conf.master)?;
    let mtu = sublink::validate_mtu(s.conf.mtu, &master)?;
    let flow = AddFlow {
        plugin: "vlan",
        link: NewLink {
            kind: SubKind::Vlan { id: s.id },
            master: Some((master_nl, &master)),
            mtu,
            // The reference's LinkAttrs literal sends a queue length of 0.
            txqlen: Some(0),
            mac: None,
        },
        addressing: Addressing::Ipam(s.ipam.clone()),
        notify: false,
        dns: Some(sublink::config_dns(&s.common)),
    };
    sublink::add(req, &place, flow)
}

/// DEL needs nothing but the IPAM type: not the master (the reference
/// fails when the NIC is gone), not the netns.
fn del(req: &Request) -> Result<(), CniError> {
    let ipam = req.net_conf()?.ipam_type()?.to_string();
    sublink::del(req, &ipam)
}

fn check(req: &Request) -> Result<(), CniError> {
    let s = settings(req)?;
    let place = Place::open(&req.netns)?;
    ipam::check(req, &s.ipam)?;
    let master = sublink::master(place.master_nl(s.conf.link_in_container), &s.conf.master)?;
    let mtu = sublink::validate_mtu(s.conf.mtu, &master)?;
    let expect = Expect {
        data: KindData {
            vlan_id: Some(s.id),
            ..Default::default()
        },
        mtu: (mtu > 0).then_some(mtu),
        routes: true,
        ..Default::default()
    };
    sublink::check(req, &s.common, &place, "vlan", &expect)
}

fn status(req: &Request) -> Result<(), CniError> {
    ipam::status(req, &ipam::ipam_type(&req.net_conf()?)?)
}

fn gc(req: &Request) -> Result<(), CniError> {
    ipam::gc_if_any(req)
}
