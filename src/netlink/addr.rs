//! Addresses (RTM_*ADDR): add (with NODAD and IFA_FLAGS), delete, dump.

use super::attr::{ip_bytes, ip_from_bytes, ne_u32, Attrs, Msg};
use super::consts::*;
use super::socket::{Netlink, NlError, Req};
use ipnet::IpNet;
use std::net::IpAddr;

/// An address as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    /// The local address with its prefix length.
    pub net: IpNet,
    pub scope: u8,
    /// All IFA_F_* flags (IFA_FLAGS when present, else the 8-bit field).
    pub flags: u32,
}

impl Addr {
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }

    pub fn dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
}

pub fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// The 8-byte `struct ifaddrmsg`.
fn ifaddrmsg(family: u8, prefix: u8, flags: u8, scope: u8, index: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0] = family;
    h[1] = prefix;
    h[2] = flags;
    h[3] = scope;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h
}

/// RTM_NEWADDR body. IPv4 addresses get a broadcast address below /31, as
/// the Go netlink library adds one (so `ip addr` shows the same `brd`).
pub fn addr_request(index: u32, net: &IpNet, flags: u32) -> Msg {
    let ip = net.addr();
    let mut m = Msg::with_header(&ifaddrmsg(
        family_of(&ip),
        net.prefix_len(),
        (flags & 0xff) as u8,
        0,
        index,
    ));
    let bytes = ip_bytes(&ip);
    m.put(IFA_LOCAL, &bytes).put(IFA_ADDRESS, &bytes);
    if let IpNet::V4(v4) = net {
        if v4.prefix_len() < 31 {
            m.put(IFA_BROADCAST, &v4.broadcast().octets());
        }
    }
    if flags > 0xff {
        m.put_u32(IFA_FLAGS, flags);
    }
    m
}

pub fn parse_addr(payload: &[u8]) -> Option<Addr> {
    let family = *payload.first()?;
    let prefix = *payload.get(1)?;
    let mut flags = *payload.get(2)? as u32;
    let scope = *payload.get(3)?;
    let index = ne_u32(payload, 4)?;
    let mut local = None;
    let mut address = None;
    for a in Attrs::new(payload.get(8..)?) {
        match a.ty {
            IFA_LOCAL => local = ip_from_bytes(a.payload),
            IFA_ADDRESS => address = ip_from_bytes(a.payload),
            IFA_FLAGS => flags = a.u32().unwrap_or(flags),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS may be
    // a point-to-point peer); IPv6 only sends IFA_ADDRESS.
    let ip = local.or(address)?;
    if (family == AF_INET) != ip.is_ipv4() {
        return None;
    }
    Some(Addr {
        index,
        net: IpNet::new(ip, prefix).ok()?,
        scope,
        flags,
    })
}

impl Req {
    /// Add an address. `flags` are IFA_F_* (NODAD, NOPREFIXROUTE, ...).
    pub fn addr_add(index: u32, net: &IpNet, flags: u32) -> Req {
        Req::new(
            format!("add address {net} to link #{index}"),
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            addr_request(index, net, flags),
        )
    }
}

impl Netlink {
    pub fn addr_add(&self, index: u32, net: &IpNet, flags: u32) -> Result<(), NlError> {
        self.run(&Req::addr_add(index, net, flags))
    }

    /// Delete an address; one that is already gone is success.
    pub fn addr_del(&self, index: u32, net: &IpNet) -> Result<(), NlError> {
        let what = format!("delete address {net} from link #{index}");
        self.request_delete(&what, RTM_DELADDR, addr_request(index, net, 0).as_bytes())
    }

    /// Addresses of one link (index > 0) or all links, of one family
    /// (AF_INET/AF_INET6) or both (AF_UNSPEC).
    pub fn addrs(&self, index: u32, family: u8) -> Result<Vec<Addr>, NlError> {
        let m = Msg::with_header(&ifaddrmsg(family, 0, 0, 0, index));
        let all = self.dump("dump addresses", RTM_GETADDR, m.as_bytes())?;
        Ok(all
            .iter()
            .filter_map(|r| parse_addr(&r.payload))
            .filter(|a| index == 0 || a.index == index)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_address_golden_bytes_with_broadcast() {
        let m = addr_request(3, &"10.1.2.3/24".parse().unwrap(), IFA_F_NODAD);
        #[rustfmt::skip]
        let want = [
            2u8, 24, 2, 0, 3, 0, 0, 0,     // ifaddrmsg: AF_INET /24 NODAD scope 0 index 3
            8, 0, 2, 0, 10, 1, 2, 3,       // IFA_LOCAL
            8, 0, 1, 0, 10, 1, 2, 3,       // IFA_ADDRESS
            8, 0, 4, 0, 10, 1, 2, 255,     // IFA_BROADCAST
        ];
        assert_eq!(m.as_bytes(), &want[..]);
    }

    #[test]
    fn v6_flags_above_a_byte_go_in_ifa_flags() {
        let m = addr_request(
            1,
            &"fd00::2/64".parse().unwrap(),
            IFA_F_NODAD | IFA_F_NOPREFIXROUTE,
        );
        let b = m.as_bytes();
        assert_eq!(b[0], AF_INET6);
        assert_eq!(b[2], IFA_F_NODAD as u8);
        let flags = Attrs::new(&b[8..]).get(IFA_FLAGS).unwrap().u32();
        assert_eq!(flags, Some(IFA_F_NODAD | IFA_F_NOPREFIXROUTE));
        let parsed = parse_addr(b).unwrap();
        assert_eq!(parsed.net.to_string(), "fd00::2/64");
        assert_eq!(parsed.flags, IFA_F_NODAD | IFA_F_NOPREFIXROUTE);
    }
}
