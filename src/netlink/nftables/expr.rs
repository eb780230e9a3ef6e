//! The few nf_tables expressions cnibox needs, encoded the way nft 1.0.6
//! (libnftnl) encodes them, so that `nft list` prints our rules exactly as it
//! prints rules made by `nft` (and by the Go plugins, which run `nft`), and
//! parsed back from dumps well enough to compare rules.

use super::consts::*;
use crate::netlink::attr::{ip_bytes, Attrs, Msg};
use std::net::IpAddr;

/// A rule's final verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

/// `cmp` operators (enum nft_cmp_ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

impl CmpOp {
    fn code(self) -> u32 {
        match self {
            CmpOp::Eq => NFT_CMP_EQ,
            CmpOp::Neq => NFT_CMP_NEQ,
        }
    }
}

/// Which header a payload load reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Link,
    Network,
    Transport,
}

impl Base {
    fn code(self) -> u32 {
        match self {
            Base::Link => NFT_PAYLOAD_LL_HEADER,
            Base::Network => NFT_PAYLOAD_NETWORK_HEADER,
            Base::Transport => NFT_PAYLOAD_TRANSPORT_HEADER,
        }
    }

    fn from_code(c: u32) -> Option<Self> {
        match c {
            NFT_PAYLOAD_LL_HEADER => Some(Base::Link),
            NFT_PAYLOAD_NETWORK_HEADER => Some(Base::Network),
            NFT_PAYLOAD_TRANSPORT_HEADER => Some(Base::Transport),
            _ => None,
        }
    }
}

/// One expression. Registers are the legacy 16-byte ones (NFT_REG_1 = 1),
/// as nft uses them; the verdict register is 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load <key> => reg`
    Meta { key: u32, dreg: u32 },
    /// `payload load <len>b @ <base> + <offset> => reg`
    Payload {
        base: Base,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `cmp <op> reg <data>`
    Cmp { sreg: u32, op: CmpOp, data: Vec<u8> },
    /// `bitwise reg = (reg & mask) ^ xor`
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// `immediate reg 0 <verdict>`
    Verdict(Verdict),
    /// `masq` (no flags, no port range)
    Masq,
    /// `counter` (the values are ignored when comparing)
    Counter,
    /// `immediate reg <data>` (a value, not a verdict)
    Immediate { dreg: u32, data: Vec<u8> },
    /// `nat snat|dnat <family> addr_min reg addr_max reg [proto_min reg
    /// proto_max reg] flags <flags>`: min and max from the same register.
    Nat {
        kind: u32,
        family: u8,
        addr_reg: u32,
        proto_reg: Option<u32>,
        flags: u32,
    },
    /// `fib <flags> <result> => reg`
    Fib { flags: u32, result: u32, dreg: u32 },
    /// Anything else found in a dump, by name; never encoded.
    Other(String),
}

/// Source or destination address field of the network header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrField {
    Saddr,
    Daddr,
}

/// `meta nfproto == <proto>`: the family check nft puts before an `ip` or
/// `ip6` match in an inet table.
pub fn nfproto(proto: u8) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CmpOp::Eq,
            data: vec![proto],
        },
    ]
}

/// The nf protocol (NFPROTO_IPV4/IPV6) of an address.
pub fn nfproto_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => NFPROTO_IPV4,
        IpAddr::V6(_) => NFPROTO_IPV6,
    }
}

fn field_offset(field: AddrField, v6: bool) -> u32 {
    match (field, v6) {
        (AddrField::Saddr, false) => 12,
        (AddrField::Daddr, false) => 16,
        (AddrField::Saddr, true) => 8,
        (AddrField::Daddr, true) => 24,
    }
}

/// `ip|ip6 <field> <op> <addr>/<prefix>` without the family check, as nft
/// 1.0.6 encodes it: a byte-aligned prefix loads only the prefix bytes and
/// compares them; any other prefix (including /0) loads the whole address,
/// masks it with `bitwise` and compares. The address's host bits are cleared.
pub fn addr_match(field: AddrField, op: CmpOp, addr: &IpAddr, prefix: u8) -> Vec<Expr> {
    let v6 = addr.is_ipv6();
    let full = ip_bytes(addr);
    let bits = (prefix as usize).min(full.len() * 8);
    let offset = field_offset(field, v6);
    let mask: Vec<u8> = (0..full.len())
        .map(|i| {
            let from = i * 8;
            if bits >= from + 8 {
                0xff
            } else if bits <= from {
                0
            } else {
                0xffu8 << (8 - (bits - from))
            }
        })
        .collect();
    let net: Vec<u8> = full.iter().zip(&mask).map(|(a, m)| a & m).collect();
    if bits.is_multiple_of(8) && bits > 0 {
        let n = bits / 8;
        vec![
            Expr::Payload {
                base: Base::Network,
                offset,
                len: n as u32,
                dreg: NFT_REG_1,
            },
            Expr::Cmp {
                sreg: NFT_REG_1,
                op,
                data: net[..n].to_vec(),
            },
        ]
    } else {
        vec![
            Expr::Payload {
                base: Base::Network,
                offset,
                len: full.len() as u32,
                dreg: NFT_REG_1,
            },
            Expr::Bitwise {
                sreg: NFT_REG_1,
                dreg: NFT_REG_1,
                mask,
                xor: vec![0; full.len()],
            },
            Expr::Cmp {
                sreg: NFT_REG_1,
                op,
                data: net,
            },
        ]
    }
}

/// `iifname == "<name>"` (exact match: the name NUL-padded to IFNAMSIZ).
pub fn iifname_eq(name: &str) -> Vec<Expr> {
    let mut data = name.as_bytes().to_vec();
    data.truncate(IFNAMSIZ - 1);
    data.resize(IFNAMSIZ, 0);
    vec![
        Expr::Meta {
            key: NFT_META_IIFNAME,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CmpOp::Eq,
            data,
        },
    ]
}

/// `ether saddr == <mac>` in a bridge-family table.
pub fn ether_saddr_eq(mac: [u8; 6]) -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: Base::Link,
            offset: 6,
            len: 6,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CmpOp::Eq,
            data: mac.to_vec(),
        },
    ]
}

fn put_data_value(m: &mut Msg, ty: u16, data: &[u8]) {
    m.nest(ty, |m| {
        m.put(NFTA_DATA_VALUE, data);
    });
}

fn verdict_code(v: &Verdict) -> (u32, Option<&str>) {
    match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Return => (NFT_RETURN as u32, None),
        Verdict::Jump(c) => (NFT_JUMP as u32, Some(c.as_str())),
        Verdict::Goto(c) => (NFT_GOTO as u32, Some(c.as_str())),
    }
}

impl Expr {
    fn name(&self) -> &str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Verdict(_) => "immediate",
            Expr::Masq => "masq",
            Expr::Counter => "counter",
            Expr::Immediate { .. } => "immediate",
            Expr::Nat { .. } => "nat",
            Expr::Fib { .. } => "fib",
            Expr::Other(n) => n,
        }
    }

    /// Append this expression as one NFTA_LIST_ELEM.
    pub fn encode(&self, m: &mut Msg) {
        m.nest(NFTA_LIST_ELEM, |m| {
            m.put_str(NFTA_EXPR_NAME, self.name());
            m.nest(NFTA_EXPR_DATA, |m| match self {
                Expr::Meta { key, dreg } => {
                    m.put_be32(NFTA_META_KEY, *key)
                        .put_be32(NFTA_META_DREG, *dreg);
                }
                Expr::Payload {
                    base,
                    offset,
                    len,
                    dreg,
                } => {
                    m.put_be32(NFTA_PAYLOAD_DREG, *dreg)
                        .put_be32(NFTA_PAYLOAD_BASE, base.code())
                        .put_be32(NFTA_PAYLOAD_OFFSET, *offset)
                        .put_be32(NFTA_PAYLOAD_LEN, *len);
                }
                Expr::Cmp { sreg, op, data } => {
                    m.put_be32(NFTA_CMP_SREG, *sreg)
                        .put_be32(NFTA_CMP_OP, op.code());
                    put_data_value(m, NFTA_CMP_DATA, data);
                }
                Expr::Bitwise {
                    sreg,
                    dreg,
                    mask,
                    xor,
                } => {
                    m.put_be32(NFTA_BITWISE_SREG, *sreg)
                        .put_be32(NFTA_BITWISE_DREG, *dreg)
                        .put_be32(NFTA_BITWISE_LEN, mask.len() as u32);
                    put_data_value(m, NFTA_BITWISE_MASK, mask);
                    put_data_value(m, NFTA_BITWISE_XOR, xor);
                }
                Expr::Verdict(v) => {
                    m.put_be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                    let (code, chain) = verdict_code(v);
                    m.nest(NFTA_IMMEDIATE_DATA, |m| {
                        m.nest(NFTA_DATA_VERDICT, |m| {
                            m.put_be32(NFTA_VERDICT_CODE, code);
                            if let Some(c) = chain {
                                m.put_str(NFTA_VERDICT_CHAIN, c);
                            }
                        });
                    });
                }
                Expr::Immediate { dreg, data } => {
                    m.put_be32(NFTA_IMMEDIATE_DREG, *dreg);
                    put_data_value(m, NFTA_IMMEDIATE_DATA, data);
                }
                Expr::Nat {
                    kind,
                    family,
                    addr_reg,
                    proto_reg,
                    flags,
                } => {
                    // As nft sends it: no max registers (the kernel makes
                    // them equal to the min ones), and MAP_IPS left for the
                    // kernel to add.
                    m.put_be32(NFTA_NAT_TYPE, *kind)
                        .put_be32(NFTA_NAT_FAMILY, *family as u32)
                        .put_be32(NFTA_NAT_REG_ADDR_MIN, *addr_reg);
                    if let Some(p) = proto_reg {
                        m.put_be32(NFTA_NAT_REG_PROTO_MIN, *p);
                    }
                    m.put_be32(NFTA_NAT_FLAGS, *flags);
                }
                Expr::Fib {
                    flags,
                    result,
                    dreg,
                } => {
                    m.put_be32(NFTA_FIB_FLAGS, *flags)
                        .put_be32(NFTA_FIB_RESULT, *result)
                        .put_be32(NFTA_FIB_DREG, *dreg);
                }
                Expr::Masq | Expr::Counter | Expr::Other(_) => {}
            });
        });
    }

    /// Decode one NFTA_LIST_ELEM payload. Unknown expressions, or known ones
    /// with attributes we do not model, come back as `Other`.
    pub fn decode(payload: &[u8]) -> Expr {
        let attrs = Attrs::new(payload);
        let name = attrs
            .get(NFTA_EXPR_NAME)
            .and_then(|a| a.str())
            .unwrap_or("")
            .to_string();
        let data = attrs
            .get(NFTA_EXPR_DATA)
            .map(|a| a.nested())
            .unwrap_or_else(|| Attrs::new(&[]));
        let be = |ty: u16| data.get(ty).and_then(|a| a.be32());
        let value = |ty: u16| -> Option<Vec<u8>> {
            let nest = data.get(ty)?;
            Some(nest.nested().get(NFTA_DATA_VALUE)?.payload.to_vec())
        };
        let parsed = match name.as_str() {
            "meta" => match (be(NFTA_META_KEY), be(NFTA_META_DREG)) {
                (Some(key), Some(dreg)) => Some(Expr::Meta { key, dreg }),
                _ => None,
            },
            "payload" => match (
                be(NFTA_PAYLOAD_DREG),
                be(NFTA_PAYLOAD_BASE).and_then(Base::from_code),
                be(NFTA_PAYLOAD_OFFSET),
                be(NFTA_PAYLOAD_LEN),
            ) {
                (Some(dreg), Some(base), Some(offset), Some(len)) => Some(Expr::Payload {
                    base,
                    offset,
                    len,
                    dreg,
                }),
                _ => None,
            },
            "cmp" => {
                let op = match be(NFTA_CMP_OP) {
                    Some(NFT_CMP_EQ) => Some(CmpOp::Eq),
                    Some(NFT_CMP_NEQ) => Some(CmpOp::Neq),
                    _ => None,
                };
                match (be(NFTA_CMP_SREG), op, value(NFTA_CMP_DATA)) {
                    (Some(sreg), Some(op), Some(data)) => Some(Expr::Cmp { sreg, op, data }),
                    _ => None,
                }
            }
            "bitwise" => {
                // Only the boolean form (NFT_BITWISE_BOOL, the default).
                let op_ok = be(NFTA_BITWISE_OP).unwrap_or(0) == 0;
                match (
                    op_ok,
                    be(NFTA_BITWISE_SREG),
                    be(NFTA_BITWISE_DREG),
                    value(NFTA_BITWISE_MASK),
                    value(NFTA_BITWISE_XOR),
                ) {
                    (true, Some(sreg), Some(dreg), Some(mask), Some(xor)) => Some(Expr::Bitwise {
                        sreg,
                        dreg,
                        mask,
                        xor,
                    }),
                    _ => None,
                }
            }
            "immediate" if be(NFTA_IMMEDIATE_DREG) == Some(NFT_REG_VERDICT) => data
                .get(NFTA_IMMEDIATE_DATA)
                .and_then(|d| d.nested().get(NFTA_DATA_VERDICT))
                .and_then(|v| {
                    let v = v.nested();
                    let code = v.get(NFTA_VERDICT_CODE)?.be32()? as i32;
                    let chain = v
                        .get(NFTA_VERDICT_CHAIN)
                        .and_then(|c| c.str())
                        .map(str::to_string);
                    match (code, chain) {
                        (c, None) if c == NF_ACCEPT as i32 => Some(Verdict::Accept),
                        (c, None) if c == NF_DROP as i32 => Some(Verdict::Drop),
                        (NFT_RETURN, None) => Some(Verdict::Return),
                        (NFT_JUMP, Some(c)) => Some(Verdict::Jump(c)),
                        (NFT_GOTO, Some(c)) => Some(Verdict::Goto(c)),
                        _ => None,
                    }
                })
                .map(Expr::Verdict),
            "immediate" => match (be(NFTA_IMMEDIATE_DREG), value(NFTA_IMMEDIATE_DATA)) {
                (Some(dreg), Some(data)) => Some(Expr::Immediate { dreg, data }),
                _ => None,
            },
            "nat" => decode_nat(&be),
            "fib" => match (be(NFTA_FIB_FLAGS), be(NFTA_FIB_RESULT), be(NFTA_FIB_DREG)) {
                (Some(flags), Some(result), Some(dreg)) => Some(Expr::Fib {
                    flags,
                    result,
                    dreg,
                }),
                _ => None,
            },
            // A masquerade with flags or a port range is not ours.
            "masq" if data.clone().next().is_none() => Some(Expr::Masq),
            "counter" => Some(Expr::Counter),
            _ => None,
        };
        parsed.unwrap_or(Expr::Other(name))
    }
}

/// A `nat` expression whose max registers, if dumped, equal the min ones
/// (the only shape we write), read back as we encode it: the MAP_IPS flag
/// the kernel adds for an address register is dropped. Anything else is
/// left as `Other`.
fn decode_nat(be: &dyn Fn(u16) -> Option<u32>) -> Option<Expr> {
    let addr_reg = be(NFTA_NAT_REG_ADDR_MIN)?;
    if be(NFTA_NAT_REG_ADDR_MAX).is_some_and(|r| r != addr_reg) {
        return None;
    }
    let proto_reg = be(NFTA_NAT_REG_PROTO_MIN);
    if be(NFTA_NAT_REG_PROTO_MAX).is_some_and(|r| Some(r) != proto_reg) {
        return None;
    }
    Some(Expr::Nat {
        kind: be(NFTA_NAT_TYPE)?,
        family: u8::try_from(be(NFTA_NAT_FAMILY)?).ok()?,
        addr_reg,
        proto_reg,
        flags: be(NFTA_NAT_FLAGS).unwrap_or(0) & !NF_NAT_RANGE_MAP_IPS,
    })
}

/// `meta l4proto <proto>` (what nft puts before a `tcp|udp|sctp dport` in
/// an ip or ip6 table).
pub fn l4proto_eq(proto: u8) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CmpOp::Eq,
            data: vec![proto],
        },
    ]
}

/// `tcp|udp|sctp dport <port>`: the l4proto check, then the 2 bytes at
/// transport header + 2 (the destination port in all three).
pub fn dport_eq(proto: u8, port: u16) -> Vec<Expr> {
    let mut v = l4proto_eq(proto);
    v.push(Expr::Payload {
        base: Base::Transport,
        offset: 2,
        len: 2,
        dreg: NFT_REG_1,
    });
    v.push(Expr::Cmp {
        sreg: NFT_REG_1,
        op: CmpOp::Eq,
        data: port.to_be_bytes().to_vec(),
    });
    v
}

/// `dnat to <addr>:<port>` (v6 `[addr]:port`), as nft 1.0.6 encodes it:
/// address in reg 1, port in reg 2, flags PROTO_SPECIFIED (the kernel adds
/// MAP_IPS; `nft --debug=netlink` shows 0x3).
pub fn dnat_to(addr: &IpAddr, port: u16) -> Vec<Expr> {
    vec![
        Expr::Immediate {
            dreg: NFT_REG_1,
            data: ip_bytes(addr),
        },
        Expr::Immediate {
            dreg: NFT_REG_2,
            data: port.to_be_bytes().to_vec(),
        },
        Expr::Nat {
            kind: NFT_NAT_DNAT,
            family: nfproto_of(addr),
            addr_reg: NFT_REG_1,
            proto_reg: Some(NFT_REG_2),
            flags: NF_NAT_RANGE_PROTO_SPECIFIED,
        },
    ]
}

/// `fib daddr type local`.
pub fn fib_daddr_local() -> Vec<Expr> {
    vec![
        Expr::Fib {
            flags: NFTA_FIB_F_DADDR,
            result: NFT_FIB_RESULT_ADDRTYPE,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CmpOp::Eq,
            data: RTN_LOCAL.to_ne_bytes().to_vec(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_follow_nft() {
        let a: IpAddr = "10.99.0.2".parse().unwrap();
        // byte-aligned: 3-byte load, no bitwise, host bits cleared
        assert_eq!(
            addr_match(AddrField::Daddr, CmpOp::Neq, &a, 24),
            vec![
                Expr::Payload {
                    base: Base::Network,
                    offset: 16,
                    len: 3,
                    dreg: 1
                },
                Expr::Cmp {
                    sreg: 1,
                    op: CmpOp::Neq,
                    data: vec![10, 99, 0]
                },
            ]
        );
        // not byte-aligned: full load + mask
        let m = addr_match(
            AddrField::Daddr,
            CmpOp::Eq,
            &"224.0.0.0".parse().unwrap(),
            4,
        );
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[1],
            Expr::Bitwise {
                sreg: 1,
                dreg: 1,
                mask: vec![0xf0, 0, 0, 0],
                xor: vec![0; 4]
            }
        );
        let m = addr_match(
            AddrField::Daddr,
            CmpOp::Neq,
            &"10.1.2.3".parse().unwrap(),
            20,
        );
        assert_eq!(
            m[2],
            Expr::Cmp {
                sreg: 1,
                op: CmpOp::Neq,
                data: vec![10, 1, 0, 0]
            }
        );
        // /0 and v6
        let m = addr_match(AddrField::Daddr, CmpOp::Neq, &"1.2.3.4".parse().unwrap(), 0);
        assert!(matches!(&m[1], Expr::Bitwise { mask, .. } if mask == &vec![0; 4]));
        let m = addr_match(
            AddrField::Saddr,
            CmpOp::Eq,
            &"fd00::2".parse().unwrap(),
            128,
        );
        assert!(matches!(
            &m[0],
            Expr::Payload {
                offset: 8,
                len: 16,
                ..
            }
        ));
        let m = addr_match(
            AddrField::Daddr,
            CmpOp::Neq,
            &"fd00::2".parse().unwrap(),
            60,
        );
        assert!(matches!(
            &m[0],
            Expr::Payload {
                offset: 24,
                len: 16,
                ..
            }
        ));
    }

    #[test]
    fn expressions_round_trip() {
        let all = [
            nfproto(NFPROTO_IPV4),
            addr_match(
                AddrField::Daddr,
                CmpOp::Eq,
                &"224.0.0.0".parse().unwrap(),
                4,
            ),
            iifname_eq("veth1"),
            ether_saddr_eq([2, 0, 0, 0, 0, 1]),
            vec![
                Expr::Masq,
                Expr::Counter,
                Expr::Verdict(Verdict::Accept),
                Expr::Verdict(Verdict::Drop),
                Expr::Verdict(Verdict::Return),
                Expr::Verdict(Verdict::Jump("a".into())),
                Expr::Verdict(Verdict::Goto("b".into())),
            ],
        ]
        .concat();
        let mut m = Msg::default();
        for e in &all {
            e.encode(&mut m);
        }
        let back: Vec<Expr> = Attrs::new(m.as_bytes())
            .map(|a| Expr::decode(a.payload))
            .collect();
        assert_eq!(back, all);
    }

    #[test]
    fn junk_decodes_to_other_without_panic() {
        assert_eq!(Expr::decode(&[]), Expr::Other(String::new()));
        assert_eq!(Expr::decode(&[1, 2, 3]), Expr::Other(String::new()));
        let mut m = Msg::default();
        m.put_str(NFTA_EXPR_NAME, "cmp");
        assert_eq!(Expr::decode(m.as_bytes()), Expr::Other("cmp".into()));
    }

    #[test]
    fn portmap_expressions_round_trip() {
        let v4: IpAddr = "10.99.1.2".parse().unwrap();
        let v6: IpAddr = "fd99:1::2".parse().unwrap();
        let all = [
            dport_eq(IPPROTO_SCTP, 8080),
            dnat_to(&v4, 80),
            dnat_to(&v6, 53),
            fib_daddr_local(),
        ]
        .concat();
        let mut m = Msg::default();
        for e in &all {
            e.encode(&mut m);
        }
        let back: Vec<Expr> = Attrs::new(m.as_bytes())
            .map(|a| Expr::decode(a.payload))
            .collect();
        assert_eq!(back, all);
        // the port goes as 2 bytes, big-endian; fib compares RTN_LOCAL
        assert_eq!(
            all[5],
            Expr::Immediate {
                dreg: NFT_REG_2,
                data: vec![0, 80]
            }
        );
        assert_eq!(all[all.len() - 1], fib_daddr_local()[1]);
    }

    #[test]
    fn a_dumped_nat_reads_back_as_encoded() {
        // The kernel dumps both registers and adds MAP_IPS (0x3 in nft --debug).
        let mut m = Msg::default();
        m.put_str(NFTA_EXPR_NAME, "nat");
        m.nest(NFTA_EXPR_DATA, |m| {
            m.put_be32(NFTA_NAT_TYPE, NFT_NAT_DNAT)
                .put_be32(NFTA_NAT_FAMILY, NFPROTO_IPV4 as u32)
                .put_be32(NFTA_NAT_REG_ADDR_MIN, 1)
                .put_be32(NFTA_NAT_REG_ADDR_MAX, 1)
                .put_be32(NFTA_NAT_REG_PROTO_MIN, 2)
                .put_be32(NFTA_NAT_REG_PROTO_MAX, 2)
                .put_be32(NFTA_NAT_FLAGS, 3);
        });
        let v4: IpAddr = "10.99.1.2".parse().unwrap();
        assert_eq!(Expr::decode(m.as_bytes()), dnat_to(&v4, 80)[2]);
    }
}
