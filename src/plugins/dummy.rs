//! dummy: a dummy link in the container, addressed by IPAM (reference:
//! plugins/main/dummy). The result keeps the IPAM's `dns`.

use crate::cni::result::CniResult;
use crate::cni::types::NetConf;
use crate::cni::{version, CniError, Plugin, Request};
use crate::steps::ipam;
use crate::steps::sublink::{self, AddFlow, Addressing, Expect, NewLink, Place, SubKind};

pub const PLUGIN: Plugin = Plugin {
    name: "dummy",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// `ipam.type`, which dummy requires (code 7 naming the field).
fn required_ipam(conf: &NetConf) -> Result<String, CniError> {
    match conf.ipam_type()? {
        "" => Err(CniError::config(
            "ipam: dummy interface requires an IPAM configuration",
        )),
        t => Ok(t.to_string()),
    }
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let ipam = required_ipam(&req.net_conf()?)?;
    let place = Place::open(&req.netns)?;
    let flow = AddFlow {
        plugin: "dummy",
        link: NewLink {
            kind: SubKind::Dummy,
            master: None,
            mtu: 0,
            // The reference's LinkAttrs literal sends a queue length of 0.
            txqlen: Some(0),
            mac: None,
        },
        addressing: Addressing::Ipam(ipam),
        notify: false,
        // Unlike the other plugins here, the IPAM's dns stays.
        dns: None,
    };
    sublink::add(req, &place, flow)
}

/// DEL: without IPAM nothing was ever allocated (ADD refuses such a
/// config), so only the link goes; the reference fails here instead.
fn del(req: &Request) -> Result<(), CniError> {
    let ipam = req.net_conf()?.ipam_type()?.to_string();
    sublink::del(req, &ipam)
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = req.net_conf()?;
    let ipam = required_ipam(&conf)?;
    let place = Place::open(&req.netns)?;
    ipam::check(req, &ipam)?;
    // As the reference: the link must be up; routes are not checked.
    let expect = Expect {
        up: true,
        routes: false,
        ..Default::default()
    };
    sublink::check(req, &conf, &place, "dummy", &expect)
}

fn status(req: &Request) -> Result<(), CniError> {
    ipam::status(req, &required_ipam(&req.net_conf()?)?)
}

fn gc(req: &Request) -> Result<(), CniError> {
    ipam::gc_if_any(req)
}
