//! Neighbours (RTM_*NEIGH): permanent entries, delete, dump.
//!
//! No plugin of this wave uses them; they are kept, with golden tests, for
//! the wave-2 plugins (../shared/reference/plugins-wave2.md).
#![allow(dead_code)]

use super::addr::family_of;
use super::attr::{ip_bytes, ip_from_bytes, ne_u32, Attrs, Msg};
use super::consts::*;
use super::socket::{Netlink, NlError};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neigh {
    pub index: u32,
    pub ip: IpAddr,
    pub mac: Vec<u8>,
    pub state: u16,
}

/// The 12-byte `struct ndmsg`.
fn ndmsg(family: u8, index: u32, state: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = family;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..10].copy_from_slice(&state.to_ne_bytes());
    h
}

pub fn neigh_request(index: u32, ip: &IpAddr, mac: Option<&[u8]>, state: u16) -> Msg {
    let mut m = Msg::with_header(&ndmsg(family_of(ip), index, state));
    m.put(NDA_DST, &ip_bytes(ip));
    if let Some(mac) = mac {
        m.put(NDA_LLADDR, mac);
    }
    m
}

pub fn parse_neigh(payload: &[u8]) -> Option<Neigh> {
    let index = ne_u32(payload, 4)?;
    let state = u16::from_ne_bytes(payload.get(8..10)?.try_into().ok()?);
    let mut ip = None;
    let mut mac = Vec::new();
    for a in Attrs::new(payload.get(12..)?) {
        match a.ty {
            NDA_DST => ip = ip_from_bytes(a.payload),
            NDA_LLADDR => mac = a.payload.to_vec(),
            _ => {}
        }
    }
    Some(Neigh {
        index,
        ip: ip?,
        mac,
        state,
    })
}

impl Netlink {
    /// Add (or replace) a permanent neighbour entry.
    pub fn neigh_set_permanent(&self, index: u32, ip: &IpAddr, mac: &[u8]) -> Result<(), NlError> {
        let m = neigh_request(index, ip, Some(mac), NUD_PERMANENT);
        self.request(
            &format!("add neighbour {ip}"),
            RTM_NEWNEIGH,
            NLM_F_CREATE | NLM_F_REPLACE,
            m.as_bytes(),
        )
    }

    pub fn neigh_del(&self, index: u32, ip: &IpAddr) -> Result<(), NlError> {
        let m = neigh_request(index, ip, None, 0);
        self.request_delete(
            &format!("delete neighbour {ip}"),
            RTM_DELNEIGH,
            m.as_bytes(),
        )
    }

    pub fn neighs(&self, family: u8) -> Result<Vec<Neigh>, NlError> {
        let m = Msg::with_header(&ndmsg(family, 0, 0));
        Ok(self
            .dump("dump neighbours", RTM_GETNEIGH, m.as_bytes())?
            .iter()
            .filter_map(|r| parse_neigh(&r.payload))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_neighbour_golden_bytes() {
        let m = neigh_request(
            2,
            &"10.0.0.1".parse().unwrap(),
            Some(&[2, 0, 0, 0, 0, 1]),
            NUD_PERMANENT,
        );
        #[rustfmt::skip]
        let want = [
            2u8, 0, 0, 0, 2, 0, 0, 0, 0x80, 0, 0, 0,   // ndmsg
            8, 0, 1, 0, 10, 0, 0, 1,                   // NDA_DST
            10, 0, 2, 0, 2, 0, 0, 0, 0, 1, 0, 0,       // NDA_LLADDR
        ];
        assert_eq!(m.as_bytes(), &want[..]);
        let n = parse_neigh(&want).unwrap();
        assert_eq!(n.ip.to_string(), "10.0.0.1");
        assert_eq!(n.state, NUD_PERMANENT);
    }
}
