//! Bridge ports (RTM_SETLINK / RTM_GETLINK with family AF_BRIDGE): hairpin
//! and isolation flags in IFLA_PROTINFO, VLANs in IFLA_AF_SPEC.
//!
//! IFLA_PROTINFO must carry NLA_F_NESTED, or the kernel reads it as the
//! legacy one-byte STP state and answers EINVAL; [`Msg::nest`] always sets it.

use super::attr::{ne_u32, Attrs, Msg};
use super::consts::*;
use super::link::ifinfomsg;
use super::socket::{Netlink, NlError, Req};

/// One VLAN on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// RTM_SETLINK body setting hairpin (and isolation when given) on a port.
pub fn port_flags_request(index: u32, hairpin: bool, isolated: Option<bool>) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_BRIDGE, index, 0, 0));
    m.nest(IFLA_PROTINFO, |m| {
        m.put_u8(IFLA_BRPORT_MODE, hairpin as u8);
        if let Some(iso) = isolated {
            m.put_u8(IFLA_BRPORT_ISOLATED, iso as u8);
        }
    });
    m
}

/// RTM_SETLINK/RTM_DELLINK body adding/removing one VLAN on a port
/// (`bridge vlan add dev PORT vid V [pvid] [untagged] master`).
pub fn vlan_request(index: u32, vlan: PortVlan) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_BRIDGE, index, 0, 0));
    let mut flags = 0u16;
    if vlan.pvid {
        flags |= BRIDGE_VLAN_INFO_PVID;
    }
    if vlan.untagged {
        flags |= BRIDGE_VLAN_INFO_UNTAGGED;
    }
    m.nest(IFLA_AF_SPEC, |m| {
        m.put_u16(IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_MASTER);
        let mut info = [0u8; 4];
        info[..2].copy_from_slice(&flags.to_ne_bytes());
        info[2..].copy_from_slice(&vlan.vid.to_ne_bytes());
        m.put(IFLA_BRIDGE_VLAN_INFO, &info);
    });
    m
}

impl Req {
    /// Hairpin (and isolation when given) on a bridge port.
    pub fn port_flags(index: u32, hairpin: bool, isolated: Option<bool>) -> Req {
        Req::new(
            format!("set bridge port #{index} flags"),
            RTM_SETLINK,
            0,
            port_flags_request(index, hairpin, isolated),
        )
    }
}

impl Netlink {
    pub fn vlan_add(&self, index: u32, vlan: PortVlan) -> Result<(), NlError> {
        let m = vlan_request(index, vlan);
        self.request(
            &format!("add vlan {} to port #{index}", vlan.vid),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }

    pub fn vlan_del(&self, index: u32, vid: u16) -> Result<(), NlError> {
        let m = vlan_request(
            index,
            PortVlan {
                vid,
                pvid: false,
                untagged: false,
            },
        );
        self.request(
            &format!("delete vlan {vid} from port #{index}"),
            RTM_DELLINK,
            0,
            m.as_bytes(),
        )
    }

    /// The VLANs of a port.
    pub fn vlans(&self, index: u32) -> Result<Vec<PortVlan>, NlError> {
        let mut m = Msg::with_header(&ifinfomsg(AF_BRIDGE, 0, 0, 0));
        m.put_u32(IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN);
        let mut out = Vec::new();
        for r in self.dump("dump bridge vlans", RTM_GETLINK, m.as_bytes())? {
            if ne_u32(&r.payload, 4) != Some(index) {
                continue;
            }
            if let Some(spec) = Attrs::new(r.payload.get(16..).unwrap_or(&[])).get(IFLA_AF_SPEC) {
                for a in spec.nested().filter(|a| a.ty == IFLA_BRIDGE_VLAN_INFO) {
                    if a.payload.len() >= 4 {
                        let flags = u16::from_ne_bytes([a.payload[0], a.payload[1]]);
                        let vid = u16::from_ne_bytes([a.payload[2], a.payload[3]]);
                        out.push(PortVlan {
                            vid,
                            pvid: flags & BRIDGE_VLAN_INFO_PVID != 0,
                            untagged: flags & BRIDGE_VLAN_INFO_UNTAGGED != 0,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protinfo_is_nested_golden_bytes() {
        let m = port_flags_request(9, true, Some(false));
        #[rustfmt::skip]
        let want = [
            7u8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg AF_BRIDGE #9
            20, 0, 12, 0x80,                                  // IFLA_PROTINFO | NLA_F_NESTED
            5, 0, 4, 0, 1, 0, 0, 0,                           //   IFLA_BRPORT_MODE = 1
            5, 0, 33, 0, 0, 0, 0, 0,                          //   IFLA_BRPORT_ISOLATED = 0
        ];
        assert_eq!(m.as_bytes(), &want[..]);
    }

    #[test]
    fn vlan_golden_bytes_access_port() {
        let m = vlan_request(
            4,
            PortVlan {
                vid: 100,
                pvid: true,
                untagged: true,
            },
        );
        #[rustfmt::skip]
        let want = [
            7u8, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg AF_BRIDGE #4
            20, 0, 26, 0x80,                                  // IFLA_AF_SPEC | NLA_F_NESTED
            6, 0, 0, 0, 1, 0, 0, 0,                           //   IFLA_BRIDGE_FLAGS = MASTER
            8, 0, 2, 0, 6, 0, 100, 0,                         //   VLAN_INFO flags PVID|UNTAGGED vid 100
        ];
        assert_eq!(m.as_bytes(), &want[..]);
    }
}
