//! Connection tracking over NETLINK_NETFILTER (ctnetlink): just enough to
//! delete UDP entries by original destination port, as portmap's ADD does
//! (Go: `utils.DeleteConntrackEntriesForDstPort`). No `conntrack` binary.
//!
//! Layer 4: imports only `netlink::{attr, socket, consts}`.

use super::attr::{Attrs, Msg};
use super::consts::NLA_F_NESTED;
use super::nftables::nfgenmsg;
use super::socket::{Netlink, NlError};

/// NFNL_SUBSYS_CTNETLINK.
const SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;

const IPPROTO_UDP: u8 = 17;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const fn msg_type(m: u16) -> u16 {
    (SUBSYS_CTNETLINK << 8) | m
}

/// The original-direction protocol and destination port of a conntrack
/// entry (the body of an IPCTNL_MSG_CT_NEW reply, nfgenmsg included).
pub fn orig_proto_dport(payload: &[u8]) -> Option<(u8, u16)> {
    let tuple = Attrs::new(payload.get(4..)?).get(CTA_TUPLE_ORIG)?;
    let proto = tuple.nested().get(CTA_TUPLE_PROTO)?.nested();
    let num = proto.get(CTA_PROTO_NUM)?.u8()?;
    let port = proto.get(CTA_PROTO_DST_PORT)?.payload.get(..2)?;
    Some((num, u16::from_be_bytes([port[0], port[1]])))
}

/// The IPCTNL_MSG_CT_DELETE body naming the entry of a dump reply: its
/// family, its original tuple and its zone, as received.
pub fn delete_body(payload: &[u8]) -> Option<Vec<u8>> {
    let family = *payload.first()?;
    let attrs = Attrs::new(payload.get(4..)?);
    let mut m = Msg::with_header(&nfgenmsg(family, 0));
    m.put(
        CTA_TUPLE_ORIG | NLA_F_NESTED,
        attrs.get(CTA_TUPLE_ORIG)?.payload,
    );
    if let Some(z) = attrs.get(CTA_ZONE) {
        m.put(CTA_ZONE, z.payload);
    }
    Some(m.into_bytes())
}

/// Delete every UDP conntrack entry, IPv4 and IPv6, whose original
/// destination port is in `ports`. Entries that vanish meanwhile are fine.
/// A kernel without conntrack has nothing to delete.
pub fn delete_udp_by_dport(ports: &[u16]) -> Result<(), NlError> {
    let nl = Netlink::netfilter()?;
    for family in [AF_INET, AF_INET6] {
        let replies = match nl.dump(
            "conntrack: list entries",
            msg_type(IPCTNL_MSG_CT_GET),
            &nfgenmsg(family, 0),
        ) {
            Ok(r) => r,
            Err(e) if e.is_unsupported() => return Ok(()),
            Err(e) => return Err(e),
        };
        for r in replies {
            let hit = matches!(orig_proto_dport(&r.payload),
                Some((IPPROTO_UDP, port)) if ports.contains(&port));
            if let (true, Some(body)) = (hit, delete_body(&r.payload)) {
                nl.request_delete(
                    "conntrack: delete entry",
                    msg_type(IPCTNL_MSG_CT_DELETE),
                    &body,
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply body as the kernel sends it for a UDP flow
    /// 10.0.0.1:40000 -> 10.0.0.2:5353 in zone 0.
    fn reply() -> Vec<u8> {
        let mut m = Msg::with_header(&nfgenmsg(AF_INET, 0));
        m.nest(CTA_TUPLE_ORIG | NLA_F_NESTED, |m| {
            m.nest(1 | NLA_F_NESTED, |m| {
                m.put(1, &[10, 0, 0, 1]).put(2, &[10, 0, 0, 2]);
            });
            m.nest(CTA_TUPLE_PROTO | NLA_F_NESTED, |m| {
                m.put_u8(CTA_PROTO_NUM, IPPROTO_UDP)
                    .put(2, &40000u16.to_be_bytes())
                    .put(CTA_PROTO_DST_PORT, &5353u16.to_be_bytes());
            });
        });
        m.put(CTA_ZONE, &0u16.to_be_bytes());
        m.put(3, &[0, 0, 0, 8]); // CTA_STATUS: not copied
        m.into_bytes()
    }

    #[test]
    fn finds_the_original_udp_destination_port() {
        assert_eq!(orig_proto_dport(&reply()), Some((IPPROTO_UDP, 5353)));
        assert_eq!(orig_proto_dport(&[]), None);
        assert_eq!(orig_proto_dport(&[2, 0, 0, 0, 9, 9]), None);
    }

    #[test]
    fn delete_names_the_tuple_and_zone_only() {
        let r = reply();
        let body = delete_body(&r).unwrap();
        let attrs: Vec<u16> = Attrs::new(&body[4..]).map(|a| a.ty).collect();
        assert_eq!(attrs, vec![CTA_TUPLE_ORIG, CTA_ZONE]);
        assert_eq!(&body[..4], &[AF_INET, 0, 0, 0]);
        assert_eq!(
            Attrs::new(&body[4..]).get(CTA_TUPLE_ORIG).unwrap().payload,
            Attrs::new(&r[4..]).get(CTA_TUPLE_ORIG).unwrap().payload
        );
    }
}
