//! Links made on a parent device: macvlan, ipvlan, 802.1q vlan (and the
//! parentless dummy), created straight in a target namespace with
//! `IFLA_NET_NS_FD`; renaming a link; and reading back each kind's mode or
//! VLAN id from `IFLA_INFO_DATA`.

use super::attr::{Attrs, Msg};
use super::consts::*;
use super::link::{ifinfomsg, parse_link, Link};
use super::socket::{Netlink, NlError};
use std::os::fd::RawFd;

// linux/if_link.h: IFLA_MACVLAN_*, IFLA_IPVLAN_*, IFLA_VLAN_*
const IFLA_MACVLAN_MODE: u16 = 1;
const IFLA_MACVLAN_BC_QUEUE_LEN: u16 = 7;
const IFLA_IPVLAN_MODE: u16 = 1;
const IFLA_IPVLAN_FLAGS: u16 = 2;
const IFLA_VLAN_ID: u16 = 1;

// enum macvlan_mode
pub const MACVLAN_MODE_PRIVATE: u32 = 1;
pub const MACVLAN_MODE_VEPA: u32 = 2;
pub const MACVLAN_MODE_BRIDGE: u32 = 4;
pub const MACVLAN_MODE_PASSTHRU: u32 = 8;

// enum ipvlan_mode (flags 0 = bridge)
pub const IPVLAN_MODE_L2: u16 = 0;
pub const IPVLAN_MODE_L3: u16 = 1;
pub const IPVLAN_MODE_L3S: u16 = 2;

/// The kind of link and what goes in its `IFLA_INFO_DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubKind {
    /// `IFLA_MACVLAN_MODE` always; `IFLA_MACVLAN_BC_QUEUE_LEN` when > 0.
    Macvlan { mode: u32, bcqueuelen: u32 },
    /// `IFLA_IPVLAN_MODE` and `IFLA_IPVLAN_FLAGS` 0 (bridge).
    Ipvlan { mode: u16 },
    /// `IFLA_VLAN_ID` (the protocol stays the kernel's 802.1Q).
    Vlan { id: u16 },
    /// No data, no parent.
    Dummy,
}

impl SubKind {
    /// `IFLA_INFO_KIND`.
    pub fn name(&self) -> &'static str {
        match self {
            SubKind::Macvlan { .. } => "macvlan",
            SubKind::Ipvlan { .. } => "ipvlan",
            SubKind::Vlan { .. } => "vlan",
            SubKind::Dummy => "dummy",
        }
    }
}

/// A link to create.
#[derive(Debug, Clone)]
pub struct SubLinkSpec<'a> {
    pub name: &'a str,
    pub kind: SubKind,
    /// `IFLA_LINK`: the parent's index in the socket's namespace (0: none).
    pub parent: u32,
    /// `IFLA_NET_NS_FD`: the namespace the link is born in.
    pub netns_fd: Option<RawFd>,
    /// 0: not sent (the kernel takes the parent's).
    pub mtu: u32,
    pub txqlen: Option<u32>,
    pub mac: Option<[u8; 6]>,
}

/// RTM_NEWLINK for a [`SubLinkSpec`].
pub fn sublink_request(spec: &SubLinkSpec) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
    m.put_str(IFLA_IFNAME, spec.name);
    if spec.parent != 0 {
        m.put_u32(IFLA_LINK, spec.parent);
    }
    if let Some(fd) = spec.netns_fd {
        m.put_u32(IFLA_NET_NS_FD, fd as u32);
    }
    if spec.mtu > 0 {
        m.put_u32(IFLA_MTU, spec.mtu);
    }
    if let Some(q) = spec.txqlen {
        m.put_u32(IFLA_TXQLEN, q);
    }
    if let Some(mac) = spec.mac {
        m.put(IFLA_ADDRESS, &mac);
    }
    m.nest(IFLA_LINKINFO, |m| {
        m.put_str(IFLA_INFO_KIND, spec.kind.name());
        match spec.kind {
            SubKind::Macvlan { mode, bcqueuelen } => {
                m.nest(IFLA_INFO_DATA, |m| {
                    m.put_u32(IFLA_MACVLAN_MODE, mode);
                    if bcqueuelen > 0 {
                        m.put_u32(IFLA_MACVLAN_BC_QUEUE_LEN, bcqueuelen);
                    }
                });
            }
            SubKind::Ipvlan { mode } => {
                m.nest(IFLA_INFO_DATA, |m| {
                    m.put_u16(IFLA_IPVLAN_MODE, mode);
                    m.put_u16(IFLA_IPVLAN_FLAGS, 0);
                });
            }
            SubKind::Vlan { id } => {
                m.nest(IFLA_INFO_DATA, |m| {
                    m.put_u16(IFLA_VLAN_ID, id);
                });
            }
            SubKind::Dummy => {}
        }
    });
    m
}

/// RTM_SETLINK renaming link `index` (it must be down).
pub fn rename_request(index: u32, name: &str) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
    m.put_str(IFLA_IFNAME, name);
    m
}

/// What a link's `IFLA_INFO_DATA` says about its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindData {
    pub macvlan_mode: Option<u32>,
    pub ipvlan_mode: Option<u16>,
    pub vlan_id: Option<u16>,
}

fn u16_of(payload: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(payload.get(..2)?.try_into().ok()?))
}

/// The kind data of an RTM_NEWLINK payload.
pub fn parse_kind_data(payload: &[u8]) -> KindData {
    let mut d = KindData::default();
    let Some(info) = payload
        .get(16..)
        .and_then(|a| Attrs::new(a).get(IFLA_LINKINFO))
    else {
        return d;
    };
    let info = info.nested();
    let kind = info.get(IFLA_INFO_KIND).and_then(|k| k.str());
    let Some(data) = info.get(IFLA_INFO_DATA) else {
        return d;
    };
    let data = data.nested();
    match kind {
        Some("macvlan") => d.macvlan_mode = data.get(IFLA_MACVLAN_MODE).and_then(|a| a.u32()),
        Some("ipvlan") => {
            d.ipvlan_mode = data.get(IFLA_IPVLAN_MODE).and_then(|a| u16_of(a.payload))
        }
        Some("vlan") => d.vlan_id = data.get(IFLA_VLAN_ID).and_then(|a| u16_of(a.payload)),
        _ => {}
    }
    d
}

impl Netlink {
    /// Create a link (see [`SubLinkSpec`]).
    pub fn sublink_add(&self, spec: &SubLinkSpec) -> Result<(), NlError> {
        let what = format!("create {} {}", spec.kind.name(), spec.name);
        self.request(
            &what,
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            sublink_request(spec).as_bytes(),
        )
    }

    /// Rename link `index` to `name`.
    pub fn link_rename(&self, index: u32, name: &str) -> Result<(), NlError> {
        self.request(
            &format!("rename link #{index} to {name}"),
            RTM_SETLINK,
            0,
            rename_request(index, name).as_bytes(),
        )
    }

    /// A link and its kind data by name; `Ok(None)` if there is none.
    pub fn link_with_kind_data(&self, name: &str) -> Result<Option<(Link, KindData)>, NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        m.put_str(IFLA_IFNAME, name);
        match self.get(&format!("get link {name}"), RTM_GETLINK, m.as_bytes()) {
            Ok(reply) => {
                Ok(parse_link(&reply.payload).map(|l| (l, parse_kind_data(&reply.payload))))
            }
            Err(e) if e.is_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SubKind) -> SubLinkSpec<'static> {
        SubLinkSpec {
            name: "veth0a0b0c0d",
            kind,
            parent: 3,
            netns_fd: Some(5),
            mtu: 0,
            txqlen: None,
            mac: None,
        }
    }

    #[rustfmt::skip]
    fn head() -> Vec<u8> {
        [
            &[0u8; 16][..],                                   // ifinfomsg: all zero
            &[17, 0, 3, 0], b"veth0a0b0c0d\0", &[0, 0, 0],    // IFLA_IFNAME
            &[8, 0, 5, 0, 3, 0, 0, 0],                        // IFLA_LINK 3
            &[8, 0, 28, 0, 5, 0, 0, 0],                       // IFLA_NET_NS_FD 5
        ].concat()
    }

    #[test]
    fn macvlan_request_golden_bytes() {
        let mut s = spec(SubKind::Macvlan {
            mode: MACVLAN_MODE_BRIDGE,
            bcqueuelen: 0,
        });
        s.mtu = 1400;
        s.mac = Some([0x0a, 0x58, 1, 2, 3, 4]);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &head()[..],
            &[8, 0, 4, 0, 0x78, 0x05, 0, 0],                  // IFLA_MTU 1400
            &[10, 0, 1, 0, 0x0a, 0x58, 1, 2, 3, 4, 0, 0],    // IFLA_ADDRESS
            &[28, 0, 18, 0x80],                               // IFLA_LINKINFO
            &[12, 0, 1, 0], b"macvlan\0",                     //   IFLA_INFO_KIND
            &[12, 0, 2, 0x80],                                //   IFLA_INFO_DATA
            &[8, 0, 1, 0, 4, 0, 0, 0],                        //     IFLA_MACVLAN_MODE bridge
        ].concat();
        assert_eq!(sublink_request(&s).as_bytes(), &want[..]);
    }

    #[test]
    fn macvlan_bcqueuelen_golden_bytes() {
        let s = spec(SubKind::Macvlan {
            mode: MACVLAN_MODE_PASSTHRU,
            bcqueuelen: 100,
        });
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &head()[..],
            &[36, 0, 18, 0x80],                               // IFLA_LINKINFO
            &[12, 0, 1, 0], b"macvlan\0",                     //   IFLA_INFO_KIND
            &[20, 0, 2, 0x80],                                //   IFLA_INFO_DATA
            &[8, 0, 1, 0, 8, 0, 0, 0],                        //     mode passthru
            &[8, 0, 7, 0, 100, 0, 0, 0],                      //     IFLA_MACVLAN_BC_QUEUE_LEN
        ].concat();
        assert_eq!(sublink_request(&s).as_bytes(), &want[..]);
    }

    #[test]
    fn ipvlan_request_golden_bytes() {
        let mut s = spec(SubKind::Ipvlan {
            mode: IPVLAN_MODE_L3S,
        });
        s.txqlen = Some(0);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &head()[..],
            &[8, 0, 13, 0, 0, 0, 0, 0],                       // IFLA_TXQLEN 0
            &[36, 0, 18, 0x80],                               // IFLA_LINKINFO
            &[11, 0, 1, 0], b"ipvlan\0", &[0],                //   IFLA_INFO_KIND
            &[20, 0, 2, 0x80],                                //   IFLA_INFO_DATA
            &[6, 0, 1, 0, 2, 0, 0, 0],                        //     IFLA_IPVLAN_MODE l3s
            &[6, 0, 2, 0, 0, 0, 0, 0],                        //     IFLA_IPVLAN_FLAGS bridge
        ].concat();
        assert_eq!(sublink_request(&s).as_bytes(), &want[..]);
    }

    #[test]
    fn vlan_request_golden_bytes() {
        let mut s = spec(SubKind::Vlan { id: 100 });
        s.txqlen = Some(0);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &head()[..],
            &[8, 0, 13, 0, 0, 0, 0, 0],                       // IFLA_TXQLEN 0
            &[28, 0, 18, 0x80],                               // IFLA_LINKINFO
            &[9, 0, 1, 0], b"vlan\0", &[0, 0, 0],             //   IFLA_INFO_KIND
            &[12, 0, 2, 0x80],                                //   IFLA_INFO_DATA
            &[6, 0, 1, 0, 100, 0, 0, 0],                      //     IFLA_VLAN_ID 100
        ].concat();
        assert_eq!(sublink_request(&s).as_bytes(), &want[..]);
    }

    #[test]
    fn dummy_request_golden_bytes() {
        let s = SubLinkSpec {
            name: "eth0",
            kind: SubKind::Dummy,
            parent: 0,
            netns_fd: Some(7),
            mtu: 0,
            txqlen: Some(0),
            mac: None,
        };
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[0u8; 16][..],
            &[9, 0, 3, 0], b"eth0\0", &[0, 0, 0],             // IFLA_IFNAME (no IFLA_LINK)
            &[8, 0, 28, 0, 7, 0, 0, 0],                       // IFLA_NET_NS_FD 7
            &[8, 0, 13, 0, 0, 0, 0, 0],                       // IFLA_TXQLEN 0
            &[16, 0, 18, 0x80],                               // IFLA_LINKINFO, no data
            &[10, 0, 1, 0], b"dummy\0", &[0, 0],              //   IFLA_INFO_KIND
        ].concat();
        assert_eq!(sublink_request(&s).as_bytes(), &want[..]);
    }

    #[test]
    fn rename_request_golden_bytes() {
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[0u8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], // index 9
            &[9, 0, 3, 0], b"eth0\0", &[0, 0, 0],
        ].concat();
        assert_eq!(rename_request(9, "eth0").as_bytes(), &want[..]);
    }

    #[test]
    fn kind_data_reads_back_what_we_send() {
        for (kind, want) in [
            (
                SubKind::Macvlan {
                    mode: MACVLAN_MODE_VEPA,
                    bcqueuelen: 5,
                },
                KindData {
                    macvlan_mode: Some(MACVLAN_MODE_VEPA),
                    ..Default::default()
                },
            ),
            (
                SubKind::Ipvlan {
                    mode: IPVLAN_MODE_L3,
                },
                KindData {
                    ipvlan_mode: Some(IPVLAN_MODE_L3),
                    ..Default::default()
                },
            ),
            (
                SubKind::Vlan { id: 4094 },
                KindData {
                    vlan_id: Some(4094),
                    ..Default::default()
                },
            ),
            (SubKind::Dummy, KindData::default()),
        ] {
            let m = sublink_request(&spec(kind));
            assert_eq!(parse_kind_data(m.as_bytes()), want, "{kind:?}");
            assert_eq!(parse_link(m.as_bytes()).unwrap().kind, kind.name());
        }
        assert_eq!(parse_kind_data(&[1, 2, 3]), KindData::default());
    }
}
