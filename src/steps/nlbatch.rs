//! Address, link and route changes queued and sent to the kernel in one
//! datagram (one round trip instead of one per change), each with its own
//! "already done is fine" policy. The kernel applies them in order, so a
//! route may follow the address or route it depends on in the same batch.

use crate::cni::CniError;
use crate::netlink::addr::addr_request;
use crate::netlink::attr::Msg;
use crate::netlink::bridge::port_flags_request;
use crate::netlink::consts::*;
use crate::netlink::link::ifinfomsg;
use crate::netlink::route::{describe_add, route_request, Route, RouteMode};
use crate::netlink::socket::Req;
use crate::netlink::Netlink;
use ipnet::IpNet;

#[derive(Default)]
pub struct Batch {
    reqs: Vec<Req>,
    /// Per request: EEXIST counts as success.
    exists_ok: Vec<bool>,
    /// Per request: "already gone" counts as success.
    gone_ok: Vec<bool>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(
        &mut self,
        what: String,
        ty: u16,
        flags: u16,
        body: Msg,
        exists_ok: bool,
        gone_ok: bool,
    ) {
        self.reqs.push(Req {
            what,
            ty,
            flags,
            body: body.into_bytes(),
        });
        self.exists_ok.push(exists_ok);
        self.gone_ok.push(gone_ok);
    }

    pub fn addr_add(&mut self, index: u32, net: &IpNet, flags: u32, exists_ok: bool) -> &mut Self {
        let what = format!("add address {net} to link #{index}");
        self.push(
            what,
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            addr_request(index, net, flags),
            exists_ok,
            false,
        );
        self
    }

    pub fn link_up(&mut self, index: u32) -> &mut Self {
        let body = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, IFF_UP, IFF_UP));
        self.push(
            format!("set link #{index} up"),
            RTM_SETLINK,
            0,
            body,
            false,
            false,
        );
        self
    }

    /// Enslave a link to a master (a bridge).
    pub fn set_master(&mut self, index: u32, master: u32) -> &mut Self {
        let mut body = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        body.put_u32(IFLA_MASTER, master);
        self.push(
            format!("set link #{index} master #{master}"),
            RTM_SETLINK,
            0,
            body,
            false,
            false,
        );
        self
    }

    /// Bridge port hairpin (and isolation when given).
    pub fn port_flags(&mut self, index: u32, hairpin: bool, isolated: Option<bool>) -> &mut Self {
        let body = port_flags_request(index, hairpin, isolated);
        self.push(
            format!("set bridge port #{index} flags"),
            RTM_SETLINK,
            0,
            body,
            false,
            false,
        );
        self
    }

    pub fn route_add(&mut self, r: &Route, mode: RouteMode, exists_ok: bool) -> &mut Self {
        let flags = mode.flags();
        let what = describe_add(r);
        self.push(
            what,
            RTM_NEWROUTE,
            flags,
            route_request(r, false),
            exists_ok,
            false,
        );
        self
    }

    /// Delete a route; one that is already gone is fine.
    pub fn route_del(&mut self, r: &Route) -> &mut Self {
        self.push(
            format!("delete route {}", r.dst),
            RTM_DELROUTE,
            0,
            route_request(r, true),
            false,
            true,
        );
        self
    }

    /// Queue `other`'s requests after ours.
    pub fn append(&mut self, other: Batch) -> &mut Self {
        self.reqs.extend(other.reqs);
        self.exists_ok.extend(other.exists_ok);
        self.gone_ok.extend(other.gone_ok);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Send everything; the first failure that the policy does not excuse
    /// is the error.
    pub fn run(self, nl: &Netlink) -> Result<(), CniError> {
        let results = nl.request_all(&self.reqs)?;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Err(e) if e.is_exists() && self.exists_ok[i] => {}
                Err(e) if e.is_gone() && self.gone_ok[i] => {}
                Err(e) => return Err(e.into()),
                Ok(()) => {}
            }
        }
        Ok(())
    }
}
