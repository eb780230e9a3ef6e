//! Address, link and route changes queued and sent to the kernel in one
//! datagram (one round trip instead of one per change), each with its own
//! "already done is fine" policy. The kernel applies them in order, so a
//! route may follow the address or route it depends on in the same batch.

use crate::cni::CniError;
use crate::netlink::route::{Route, RouteMode};
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

    fn push(&mut self, req: Req, exists_ok: bool, gone_ok: bool) -> &mut Self {
        self.reqs.push(req);
        self.exists_ok.push(exists_ok);
        self.gone_ok.push(gone_ok);
        self
    }

    pub fn addr_add(&mut self, index: u32, net: &IpNet, flags: u32, exists_ok: bool) -> &mut Self {
        self.push(Req::addr_add(index, net, flags), exists_ok, false)
    }

    pub fn link_up(&mut self, index: u32) -> &mut Self {
        self.push(Req::link_set_up(index, true), false, false)
    }

    /// Enslave a link to a master (a bridge).
    pub fn set_master(&mut self, index: u32, master: u32) -> &mut Self {
        self.push(Req::link_set_master(index, master), false, false)
    }

    /// Bridge port hairpin (and isolation when given).
    pub fn port_flags(&mut self, index: u32, hairpin: bool, isolated: Option<bool>) -> &mut Self {
        self.push(Req::port_flags(index, hairpin, isolated), false, false)
    }

    pub fn route_add(&mut self, r: &Route, mode: RouteMode, exists_ok: bool) -> &mut Self {
        self.push(Req::route_add(r, mode), exists_ok, false)
    }

    /// Delete a route; one that is already gone is fine.
    pub fn route_del(&mut self, r: &Route) -> &mut Self {
        self.push(Req::route_del(r), false, true)
    }
    /// Queue `other`'s requests after ours.
    pub fn append(&mut self, other: Batch) -> &mut Self {
        self.reqs.extend(other.reqs);
        self.exists_ok.extend(other.exists_ok);
        self.gone_ok.extend(other.gone_ok);
        self
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
