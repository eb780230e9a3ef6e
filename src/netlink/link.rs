//! Links (RTM_*LINK): look up, dump, create veth and bridge, change flags,
//! MTU, MAC, master and namespace, delete.

use super::attr::{ne_u32, Attrs, Msg};
use super::consts::*;
use super::socket::{Netlink, NlError, Req};
use std::os::fd::RawFd;

/// What we read back about a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub flags: u32,
    pub mtu: u32,
    pub mac: Vec<u8>,
    /// `IFLA_INFO_KIND`: "veth", "bridge", ... (empty for plain devices)
    pub kind: String,
    /// The bridge (or other master) index, 0 if none.
    pub master: u32,
    /// `IFLA_LINK`: for a veth, the peer's index (in the peer's netns).
    pub link: u32,
    pub link_netnsid: Option<i32>,
    pub oper_state: u8,
    pub promiscuity: u32,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    pub fn is_promisc(&self) -> bool {
        self.flags & IFF_PROMISC != 0
    }

    /// The MAC as Go prints it (lower-case, colon separated).
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

/// `aa:bb:cc:dd:ee:ff`, lower case (Go's `net.HardwareAddr.String`).
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A 48-bit MAC written `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, any
/// case (the EUI-48 forms Go's `net.ParseMAC` takes).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, p) in mac.iter_mut().zip(&parts) {
        // from_str_radix alone would take "+f".
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// The 16-byte `struct ifinfomsg`.
pub fn ifinfomsg(family: u8, index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = family;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// Parse an RTM_NEWLINK payload.
pub fn parse_link(payload: &[u8]) -> Option<Link> {
    let mut link = Link {
        index: ne_u32(payload, 4)?,
        flags: ne_u32(payload, 8)?,
        ..Default::default()
    };
    for a in Attrs::new(payload.get(16..)?) {
        match a.ty {
            IFLA_IFNAME => link.name = a.str().unwrap_or_default().to_string(),
            IFLA_MTU => link.mtu = a.u32().unwrap_or(0),
            IFLA_ADDRESS => link.mac = a.payload.to_vec(),
            IFLA_MASTER => link.master = a.u32().unwrap_or(0),
            IFLA_LINK => link.link = a.u32().unwrap_or(0),
            IFLA_LINK_NETNSID => link.link_netnsid = a.u32().map(|v| v as i32),
            IFLA_OPERSTATE => link.oper_state = a.u8().unwrap_or(0),
            IFLA_PROMISCUITY => link.promiscuity = a.u32().unwrap_or(0),
            IFLA_LINKINFO => {
                if let Some(kind) = a.nested().get(IFLA_INFO_KIND) {
                    link.kind = kind.str().unwrap_or_default().to_string();
                }
            }
            _ => {}
        }
    }
    Some(link)
}

/// Options for the container end of a new veth pair.
#[derive(Debug, Clone, Default)]
pub struct VethSpec<'a> {
    /// Name of the end that stays in the socket's namespace.
    pub host_name: &'a str,
    /// Name of the peer, created directly in the namespace `peer_netns_fd`.
    pub peer_name: &'a str,
    pub peer_netns_fd: RawFd,
    pub mtu: u32,
    pub peer_mac: Option<[u8; 6]>,
    /// Bring the host end up in the same request.
    pub host_up: bool,
    /// `IFLA_TXQLEN` for both ends (the Go plugins create veths with 0).
    pub txqlen: Option<u32>,
}

/// RTM_NEWLINK for a veth pair whose peer is created straight in another
/// namespace (no temporary name, no move, no rename).
pub fn veth_request(spec: &VethSpec) -> Msg {
    let up = if spec.host_up { IFF_UP } else { 0 };
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, up, up));
    m.put_str(IFLA_IFNAME, spec.host_name);
    if spec.mtu > 0 {
        m.put_u32(IFLA_MTU, spec.mtu);
    }
    if let Some(q) = spec.txqlen {
        m.put_u32(IFLA_TXQLEN, q);
    }
    m.nest(IFLA_LINKINFO, |m| {
        m.put_str(IFLA_INFO_KIND, "veth");
        m.nest(IFLA_INFO_DATA, |m| {
            m.nest_with_header(VETH_INFO_PEER, &ifinfomsg(AF_UNSPEC, 0, 0, 0), |m| {
                m.put_str(IFLA_IFNAME, spec.peer_name);
                m.put_u32(IFLA_NET_NS_FD, spec.peer_netns_fd as u32);
                if spec.mtu > 0 {
                    m.put_u32(IFLA_MTU, spec.mtu);
                }
                if let Some(q) = spec.txqlen {
                    m.put_u32(IFLA_TXQLEN, q);
                }
                if let Some(mac) = spec.peer_mac {
                    m.put(IFLA_ADDRESS, &mac);
                }
            });
        });
    });
    m
}

/// RTM_NEWLINK for a bridge.
pub fn bridge_request(name: &str, mtu: u32, vlan_filtering: bool) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
    m.put_str(IFLA_IFNAME, name);
    if mtu > 0 {
        m.put_u32(IFLA_MTU, mtu);
    }
    m.nest(IFLA_LINKINFO, |m| {
        m.put_str(IFLA_INFO_KIND, "bridge");
        if vlan_filtering {
            m.nest(IFLA_INFO_DATA, |m| {
                m.put_u8(IFLA_BR_VLAN_FILTERING, 1);
            });
        }
    });
    m
}

impl Req {
    /// Set or clear IFF_UP.
    pub fn link_set_up(index: u32, up: bool) -> Req {
        let flags = if up { IFF_UP } else { 0 };
        Req::new(
            format!("set link #{index} {}", if up { "up" } else { "down" }),
            RTM_SETLINK,
            0,
            Msg::with_header(&ifinfomsg(AF_UNSPEC, index, flags, IFF_UP)),
        )
    }

    /// Enslave to a master (0 releases).
    pub fn link_set_master(index: u32, master: u32) -> Req {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        m.put_u32(IFLA_MASTER, master);
        Req::new(
            format!("set link #{index} master #{master}"),
            RTM_SETLINK,
            0,
            m,
        )
    }
}

impl Netlink {
    /// Look a link up by name; `Ok(None)` if there is none.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>, NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        m.put_str(IFLA_IFNAME, name);
        self.link_get(&format!("get link {name}"), m)
    }

    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>, NlError> {
        let m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        self.link_get(&format!("get link #{index}"), m)
    }

    fn link_get(&self, what: &str, m: Msg) -> Result<Option<Link>, NlError> {
        match self.get(what, RTM_GETLINK, m.as_bytes()) {
            Ok(reply) => Ok(parse_link(&reply.payload)),
            Err(e) if e.is_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&self) -> Result<Vec<Link>, NlError> {
        let m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        Ok(self
            .dump("dump links", RTM_GETLINK, m.as_bytes())?
            .iter()
            .filter_map(|r| parse_link(&r.payload))
            .collect())
    }

    /// Create a veth pair (see [`VethSpec`]).
    pub fn veth_add(&self, spec: &VethSpec) -> Result<(), NlError> {
        let what = format!("create veth {} <-> {}", spec.host_name, spec.peer_name);
        self.request(
            &what,
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            veth_request(spec).as_bytes(),
        )
    }

    pub fn bridge_add(&self, name: &str, mtu: u32, vlan_filtering: bool) -> Result<(), NlError> {
        let what = format!("create bridge {name}");
        self.request(
            &what,
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            bridge_request(name, mtu, vlan_filtering).as_bytes(),
        )
    }

    /// Set or clear IFF_UP.
    pub fn link_set_up(&self, index: u32, up: bool) -> Result<(), NlError> {
        self.run(&Req::link_set_up(index, up))
    }

    pub fn link_set_promisc(&self, index: u32, on: bool) -> Result<(), NlError> {
        let m = set_flag_request(index, IFF_PROMISC, on);
        self.request(
            &format!("set link #{index} promisc"),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }

    pub fn link_set_mtu(&self, index: u32, mtu: u32) -> Result<(), NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        m.put_u32(IFLA_MTU, mtu);
        self.request(
            &format!("set link #{index} mtu {mtu}"),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }

    pub fn link_set_mac(&self, index: u32, mac: &[u8]) -> Result<(), NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        m.put(IFLA_ADDRESS, mac);
        self.request(
            &format!("set link #{index} address {}", format_mac(mac)),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }

    /// Move a link to the namespace of `netns_fd`.
    pub fn link_set_netns(&self, index: u32, netns_fd: RawFd) -> Result<(), NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        m.put_u32(IFLA_NET_NS_FD, netns_fd as u32);
        self.request(
            &format!("move link #{index} to netns"),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }

    /// Delete a link by index. A link that is already gone is success.
    pub fn link_del(&self, index: u32) -> Result<(), NlError> {
        let m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        self.request_delete(&format!("delete link #{index}"), RTM_DELLINK, m.as_bytes())
    }

    /// Delete a link by name. A link that is already gone is success.
    pub fn link_del_by_name(&self, name: &str) -> Result<(), NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        m.put_str(IFLA_IFNAME, name);
        self.request_delete(&format!("delete link {name}"), RTM_DELLINK, m.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_request_golden_bytes() {
        let m = veth_request(&VethSpec {
            host_name: "veth0",
            peer_name: "eth0",
            peer_netns_fd: 5,
            mtu: 0,
            peer_mac: None,
            host_up: true,
            txqlen: None,
        });
        #[rustfmt::skip]
        let want: Vec<u8> = [
            // ifinfomsg: AF_UNSPEC, index 0, flags IFF_UP, change IFF_UP
            &[0u8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0][..],
            &[10, 0, 3, 0], b"veth0\0", &[0, 0],           // IFLA_IFNAME
            &[60, 0, 18, 0x80],                            // IFLA_LINKINFO (nested)
            &[9, 0, 1, 0], b"veth\0", &[0, 0, 0],          //   IFLA_INFO_KIND
            &[44, 0, 2, 0x80],                             //   IFLA_INFO_DATA (nested)
            &[40, 0, 1, 0x80],                             //     VETH_INFO_PEER (nested)
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // ifinfomsg
            &[9, 0, 3, 0], b"eth0\0", &[0, 0, 0],          //       IFLA_IFNAME
            &[8, 0, 28, 0, 5, 0, 0, 0],                    //       IFLA_NET_NS_FD
        ].concat();
        assert_eq!(m.as_bytes(), &want[..]);
    }

    #[test]
    fn parse_link_reads_the_fields_we_use() {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 7, IFF_UP, 0));
        m.put_str(IFLA_IFNAME, "eth0")
            .put_u32(IFLA_MTU, 1400)
            .put(IFLA_ADDRESS, &[0xaa, 0xbb, 0xcc, 0, 1, 2])
            .put_u32(IFLA_MASTER, 3)
            .put_u8(IFLA_OPERSTATE, IF_OPER_UP)
            .nest(IFLA_LINKINFO, |m| {
                m.put_str(IFLA_INFO_KIND, "veth");
            });
        let l = parse_link(m.as_bytes()).unwrap();
        assert_eq!(l.index, 7);
        assert!(l.is_up());
        assert_eq!(l.name, "eth0");
        assert_eq!(l.mtu, 1400);
        assert_eq!(l.mac_string(), "aa:bb:cc:00:01:02");
        assert_eq!(l.master, 3);
        assert_eq!(l.kind, "veth");
        assert_eq!(l.oper_state, IF_OPER_UP);
    }
}

// ---- tuning: txqueuelen and all-multicast (kept together at the end) -------

/// `IFF_ALLMULTI` (linux/if.h).
pub const IFF_ALLMULTI: u32 = 0x200;

/// `IFLA_TXQLEN` of an RTM_NEWLINK payload (0 when absent).
pub fn parse_txqlen(payload: &[u8]) -> u32 {
    Attrs::new(payload.get(16..).unwrap_or_default())
        .find(|a| a.ty == IFLA_TXQLEN)
        .and_then(|a| a.u32())
        .unwrap_or(0)
}

/// RTM_SETLINK setting or clearing `flag` (IFF_PROMISC, IFF_ALLMULTI, ...).
pub fn set_flag_request(index: u32, flag: u32, on: bool) -> Msg {
    let flags = if on { flag } else { 0 };
    Msg::with_header(&ifinfomsg(AF_UNSPEC, index, flags, flag))
}

/// RTM_SETLINK with `IFLA_TXQLEN`.
pub fn set_txqlen_request(index: u32, qlen: u32) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
    m.put_u32(IFLA_TXQLEN, qlen);
    m
}

impl Netlink {
    /// [`link_by_name`](Self::link_by_name) with the link's txqueuelen.
    pub fn link_and_txqlen_by_name(&self, name: &str) -> Result<Option<(Link, u32)>, NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        m.put_str(IFLA_IFNAME, name);
        match self.get(&format!("get link {name}"), RTM_GETLINK, m.as_bytes()) {
            Ok(reply) => Ok(parse_link(&reply.payload).map(|l| (l, parse_txqlen(&reply.payload)))),
            Err(e) if e.is_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn link_set_allmulti(&self, index: u32, on: bool) -> Result<(), NlError> {
        let m = set_flag_request(index, IFF_ALLMULTI, on);
        self.request(
            &format!("set link #{index} allmulticast"),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }

    pub fn link_set_txqlen(&self, index: u32, qlen: u32) -> Result<(), NlError> {
        let m = set_txqlen_request(index, qlen);
        self.request(
            &format!("set link #{index} txqueuelen {qlen}"),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }
}

#[cfg(test)]
mod tuning_tests {
    use super::*;

    #[test]
    fn allmulti_and_txqlen_golden_bytes() {
        #[rustfmt::skip]
        let want: &[u8] = &[0, 0, 0, 0, 7, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0];
        assert_eq!(set_flag_request(7, IFF_ALLMULTI, true).as_bytes(), want);
        #[rustfmt::skip]
        let want: &[u8] = &[0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0];
        assert_eq!(set_flag_request(7, IFF_ALLMULTI, false).as_bytes(), want);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[0u8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[8, 0, 13, 0], &500u32.to_ne_bytes(),          // IFLA_TXQLEN
        ].concat();
        assert_eq!(set_txqlen_request(7, 500).as_bytes(), &want[..]);
        assert_eq!(parse_txqlen(&want), 500);
        assert_eq!(parse_txqlen(&want[..16]), 0);
    }
}
