//! VRF links (kind `vrf`, `IFLA_VRF_TABLE`) and the raw route lookups the
//! vrf plugin waits on.

use super::attr::{ip_from_bytes, Attrs, Msg};
use super::consts::*;
use super::link::{ifinfomsg, parse_link, Link};
use super::socket::{Netlink, NlError};
use ipnet::IpNet;
use std::net::IpAddr;

// linux/if_link.h
pub const IFLA_VRF_TABLE: u16 = 1;

/// RTM_NEWLINK for a VRF, as the reference's library sends it (down, with
/// an explicit txqlen 0; it is set up afterwards).
pub fn vrf_request(name: &str, table: u32) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
    m.put_str(IFLA_IFNAME, name);
    m.put_u32(IFLA_TXQLEN, 0);
    m.nest(IFLA_LINKINFO, |m| {
        m.put_str(IFLA_INFO_KIND, "vrf");
        m.nest(IFLA_INFO_DATA, |m| {
            m.put_u32(IFLA_VRF_TABLE, table);
        });
    });
    m
}

/// The VRF table of an RTM_NEWLINK payload of kind `vrf`.
pub fn parse_vrf_table(payload: &[u8]) -> Option<u32> {
    let info = Attrs::new(payload.get(16..)?).get(IFLA_LINKINFO)?;
    let info = info.nested();
    if info.get(IFLA_INFO_KIND)?.str()? != "vrf" {
        return None;
    }
    info.get(IFLA_INFO_DATA)?
        .nested()
        .get(IFLA_VRF_TABLE)?
        .u32()
}

impl Netlink {
    pub fn vrf_add(&self, name: &str, table: u32) -> Result<(), NlError> {
        self.request(
            &format!("create vrf {name} table {table}"),
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            vrf_request(name, table).as_bytes(),
        )
    }

    /// Every link, with its VRF table when it is a VRF.
    pub fn links_with_vrf_table(&self) -> Result<Vec<(Link, Option<u32>)>, NlError> {
        let m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        Ok(self
            .dump("dump links", RTM_GETLINK, m.as_bytes())?
            .iter()
            .filter_map(|r| Some((parse_link(&r.payload)?, parse_vrf_table(&r.payload))))
            .collect())
    }

    /// Whether table `table` holds a route of any type (local, unicast,
    /// ...) whose destination covers `ip`, other than a default route.
    pub fn table_has_route_to(&self, table: u32, ip: IpAddr) -> Result<bool, NlError> {
        let family = super::addr::family_of(&ip);
        let m = Msg::with_header(&[family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for r in self.dump("dump routes", RTM_GETROUTE, m.as_bytes())? {
            let p = &r.payload;
            let (Some(&len), Some(&t)) = (p.get(1), p.get(4)) else {
                continue;
            };
            let attrs = Attrs::new(p.get(12..).unwrap_or_default());
            let t = attrs
                .get(RTA_TABLE)
                .and_then(|a| a.u32())
                .unwrap_or(t as u32);
            let dst = attrs
                .get(RTA_DST)
                .and_then(|a| ip_from_bytes(a.payload))
                .and_then(|d| IpNet::new(d, len).ok());
            if t == table && len > 0 && dst.is_some_and(|d| d.contains(&ip)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vrf_golden_bytes_and_table_parsed_back() {
        let m = vrf_request("vrf-blue", 100);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &ifinfomsg(AF_UNSPEC, 0, 0, 0)[..],
            &[13, 0, 3, 0], b"vrf-blue\0", &[0, 0, 0],     // IFLA_IFNAME
            &[8, 0, 13, 0, 0, 0, 0, 0],                    // IFLA_TXQLEN 0
            &[24, 0, 18, 0x80],                            // IFLA_LINKINFO
            &[8, 0, 1, 0], b"vrf\0",                       //   IFLA_INFO_KIND
            &[12, 0, 2, 0x80],                             //   IFLA_INFO_DATA
            &[8, 0, 1, 0, 100, 0, 0, 0],                   //     IFLA_VRF_TABLE
        ].concat();
        assert_eq!(m.as_bytes(), &want[..]);
        assert_eq!(parse_vrf_table(m.as_bytes()), Some(100));
        let l = parse_link(m.as_bytes()).unwrap();
        assert_eq!((l.name.as_str(), l.kind.as_str()), ("vrf-blue", "vrf"));
    }

    #[test]
    fn non_vrf_links_have_no_table() {
        let m = super::super::link::bridge_request("br0", 0, false);
        assert_eq!(parse_vrf_table(m.as_bytes()), None);
    }
}
