//! Rules the way iptables-nft (1.8.x) stores them: native `payload`/`meta`
//! and `cmp` for addresses and interface names, xtables compat `match`
//! expressions (NFT_COMPAT) for the rest, a `counter` with its two values,
//! and an `immediate` verdict. `iptables -S`, `-C` and `-D` parse such rules
//! back into iptables rules; so do we, to find rules iptables made.
//!
//! Kept apart from [`super::expr`] (the nft-native subset) so that the two
//! evolve without touching each other.

use super::consts::*;
use super::expr::{CmpOp, Expr};
use super::{dump_rules, nfgenmsg, rule_exprs, Batch};
use crate::netlink::attr::{Attrs, Msg};
use crate::netlink::consts::{NLM_F_APPEND, NLM_F_CREATE};
use crate::netlink::socket::{Netlink, NlError};

// linux/netfilter/nf_tables.h: NFTA_MATCH_*, NFTA_COUNTER_*
const NFTA_MATCH_NAME: u16 = 1;
const NFTA_MATCH_REV: u16 = 2;
const NFTA_MATCH_INFO: u16 = 3;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
/// NFT_META_OIFNAME (NFT_META_IIFNAME is 6).
pub const NFT_META_OIFNAME: u32 = 7;

/// `XT_ALIGN`: xtables payloads are padded to 8 bytes.
const fn xt_align(n: usize) -> usize {
    (n + 7) & !7
}

/// One expression of an iptables-nft rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XtExpr {
    /// A native expression (payload, meta, cmp, immediate, ...).
    Native(Expr),
    /// `counter`: its values are not part of the rule's identity.
    Counter,
    /// An xtables match run through NFT_COMPAT; `info` as the kernel keeps
    /// it (XT_ALIGN-padded).
    Match {
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
}

/// `-m comment --comment TEXT` (rev 0: `struct xt_comment_info`, a 256-byte
/// NUL-padded string; iptables cuts longer comments at 255 bytes).
pub fn comment_match(text: &str) -> XtExpr {
    let mut info = text.as_bytes().to_vec();
    info.truncate(255);
    info.resize(256, 0);
    XtExpr::Match {
        name: "comment".into(),
        rev: 0,
        info,
    }
}

/// `-m conntrack --ctstate STATES` (rev 3: `struct xt_conntrack_mtinfo3`,
/// 162 bytes padded to 168, host byte order): match_flags =
/// XT_CONNTRACK_STATE, state_mask = the XT_CONNTRACK_STATE_BIT()s.
pub fn conntrack_state_match(state_mask: u16) -> XtExpr {
    const MATCH_FLAGS: usize = 146; // after 8 addrs/masks, expires, l4proto, 4 ports
    const STATE_MASK: usize = 150;
    let mut info = vec![0u8; xt_align(162)];
    info[MATCH_FLAGS..MATCH_FLAGS + 2].copy_from_slice(&1u16.to_ne_bytes());
    info[STATE_MASK..STATE_MASK + 2].copy_from_slice(&state_mask.to_ne_bytes());
    XtExpr::Match {
        name: "conntrack".into(),
        rev: 3,
        info,
    }
}

/// XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED) | ...(IP_CT_RELATED).
pub const CTSTATE_RELATED_ESTABLISHED: u16 = (1 << 1) | (1 << 2);

/// `-i NAME` / `-o NAME` (`negate`: `! -i`): iptables-nft compares the name
/// with its NUL, so that `eth0` does not match `eth01`.
pub fn ifname_match(out: bool, name: &str, negate: bool) -> Vec<XtExpr> {
    let mut data = name.as_bytes().to_vec();
    data.truncate(IFNAMSIZ - 1);
    data.push(0);
    vec![
        XtExpr::Native(Expr::Meta {
            key: if out {
                NFT_META_OIFNAME
            } else {
                NFT_META_IIFNAME
            },
            dreg: NFT_REG_1,
        }),
        XtExpr::Native(Expr::Cmp {
            sreg: NFT_REG_1,
            op: if negate { CmpOp::Neq } else { CmpOp::Eq },
            data,
        }),
    ]
}

impl XtExpr {
    fn encode(&self, m: &mut Msg) {
        match self {
            XtExpr::Native(e) => e.encode(m),
            XtExpr::Counter => {
                m.nest(NFTA_LIST_ELEM, |m| {
                    m.put_str(NFTA_EXPR_NAME, "counter");
                    m.nest(NFTA_EXPR_DATA, |m| {
                        m.put_be64(NFTA_COUNTER_BYTES, 0)
                            .put_be64(NFTA_COUNTER_PACKETS, 0);
                    });
                });
            }
            XtExpr::Match { name, rev, info } => {
                m.nest(NFTA_LIST_ELEM, |m| {
                    m.put_str(NFTA_EXPR_NAME, "match");
                    m.nest(NFTA_EXPR_DATA, |m| {
                        m.put_str(NFTA_MATCH_NAME, name)
                            .put_be32(NFTA_MATCH_REV, *rev)
                            .put(NFTA_MATCH_INFO, info);
                    });
                });
            }
        }
    }

    /// Decode one NFTA_LIST_ELEM payload.
    pub fn decode(payload: &[u8]) -> XtExpr {
        let attrs = Attrs::new(payload);
        let name = attrs.get(NFTA_EXPR_NAME).and_then(|a| a.str());
        match name {
            Some("counter") => XtExpr::Counter,
            Some("match") => {
                let data = attrs
                    .get(NFTA_EXPR_DATA)
                    .map(|a| a.nested())
                    .unwrap_or_else(|| Attrs::new(&[]));
                let name = data.get(NFTA_MATCH_NAME).and_then(|a| a.str());
                let rev = data.get(NFTA_MATCH_REV).and_then(|a| a.be32());
                let info = data.get(NFTA_MATCH_INFO).map(|a| a.payload.to_vec());
                match (name, rev, info) {
                    (Some(n), Some(rev), Some(info)) => XtExpr::Match {
                        name: n.to_string(),
                        rev,
                        info,
                    },
                    _ => XtExpr::Native(Expr::Other("match".into())),
                }
            }
            _ => XtExpr::Native(Expr::decode(payload)),
        }
    }
}

/// A rule of an iptables-nft table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XtRule {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub exprs: Vec<XtExpr>,
    pub handle: Option<u64>,
}

impl XtRule {
    pub fn new(family: u8, table: &str, chain: &str, exprs: Vec<XtExpr>) -> XtRule {
        XtRule {
            family,
            table: table.into(),
            chain: chain.into(),
            exprs,
            handle: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut m = Msg::with_header(&nfgenmsg(self.family, 0));
        m.put_str(NFTA_RULE_TABLE, &self.table)
            .put_str(NFTA_RULE_CHAIN, &self.chain);
        m.nest(NFTA_RULE_EXPRESSIONS, |m| {
            for e in &self.exprs {
                e.encode(m);
            }
        });
        m.into_bytes()
    }

    fn decode(family: u8, a: Attrs<'_>) -> Option<XtRule> {
        Some(XtRule {
            family,
            table: a.get(NFTA_RULE_TABLE)?.str()?.to_string(),
            chain: a.get(NFTA_RULE_CHAIN)?.str()?.to_string(),
            exprs: rule_exprs(&a, XtExpr::decode),
            handle: a.get(NFTA_RULE_HANDLE).and_then(|h| h.be64()),
        })
    }

    /// The same rule as iptables sees it: same chain and expressions
    /// (counter values and handles ignored). A rule with a comment in
    /// udata is not ours.
    pub fn same_as(&self, other: &XtRule) -> bool {
        self.family == other.family
            && self.table == other.table
            && self.chain == other.chain
            && self.exprs == other.exprs
    }
}

impl Batch {
    /// `iptables -I CHAIN 1` (`prepend`) or `iptables -A CHAIN`.
    pub fn add_xt_rule(&mut self, r: &XtRule, prepend: bool) -> &mut Self {
        let flags = if prepend {
            NLM_F_CREATE
        } else {
            NLM_F_CREATE | NLM_F_APPEND
        };
        self.op(NFT_MSG_NEWRULE, flags, r.encode())
    }
}

/// The rules of one chain (empty if the table or chain does not exist), in
/// chain order.
pub fn list_xt_rules(
    nl: &Netlink,
    family: u8,
    table: &str,
    chain: &str,
) -> Result<Vec<XtRule>, NlError> {
    dump_rules(nl, family, table, Some(chain), XtRule::decode)
}

#[cfg(test)]
mod tests {
    use super::super::expr::Verdict;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The attributes inside NFTA_EXPR_DATA of our encoding of `e`, as
    /// (type, payload) pairs.
    fn data_attrs(e: &XtExpr) -> Vec<(u16, Vec<u8>)> {
        let mut m = Msg::default();
        e.encode(&mut m);
        let elem = Attrs::new(m.as_bytes()).next().unwrap();
        let data = Attrs::new(elem.payload).get(NFTA_EXPR_DATA).unwrap();
        data.nested().map(|a| (a.ty, a.payload.to_vec())).collect()
    }

    // Payloads copied from fixtures/goref-head-firewall.nlrules.txt (what
    // iptables-nft 1.8.9 stored for the Go plugin's rules).
    #[test]
    fn comment_match_is_byte_identical_to_iptables_nft() {
        let mut want_info = b"CNI firewall plugin rules".to_vec();
        want_info.resize(256, 0);
        assert_eq!(
            data_attrs(&comment_match("CNI firewall plugin rules")),
            vec![
                (NFTA_MATCH_NAME, hex("636f6d6d656e7400")),
                (NFTA_MATCH_REV, hex("00000000")),
                (NFTA_MATCH_INFO, want_info),
            ]
        );
    }

    #[test]
    fn conntrack_match_is_byte_identical_to_iptables_nft() {
        let info = hex(concat!(
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000100000006000000000000000000",
            "0000000000000000",
        ));
        assert_eq!(info.len(), 168);
        assert_eq!(
            data_attrs(&conntrack_state_match(CTSTATE_RELATED_ESTABLISHED)),
            vec![
                (NFTA_MATCH_NAME, hex("636f6e6e747261636b00")),
                (NFTA_MATCH_REV, hex("00000003")),
                (NFTA_MATCH_INFO, info),
            ]
        );
    }

    #[test]
    fn ifname_and_verdict_payloads_match_the_fixture() {
        let e = ifname_match(false, "cnifw0", false);
        assert_eq!(
            data_attrs(&e[1]),
            vec![
                (NFTA_CMP_SREG, hex("00000001")),
                (NFTA_CMP_OP, hex("00000000")),
                (NFTA_CMP_DATA, hex("0b000100636e696677300000")),
            ]
        );
        let o = ifname_match(true, "cnifw0", true);
        assert_eq!(
            data_attrs(&o[0]),
            vec![
                (NFTA_META_KEY, hex("00000007")),
                (NFTA_META_DREG, hex("00000001"))
            ]
        );
        assert_eq!(data_attrs(&o[1])[1], (NFTA_CMP_OP, hex("00000001")));
        // The kernel's dump leaves NLA_F_NESTED off the verdict nest; we
        // always set it (both are accepted).
        let j = XtExpr::Native(Expr::Verdict(Verdict::Jump("CNI-FORWARD".into())));
        let mut jd = data_attrs(&j);
        jd[1].1[3] &= 0x7f;
        assert_eq!(
            jd,
            vec![
                (NFTA_IMMEDIATE_DREG, hex("00000000")),
                (
                    NFTA_IMMEDIATE_DATA,
                    hex("1c00020008000100fffffffd10000200434e492d464f525741524400")
                ),
            ]
        );
        assert_eq!(
            data_attrs(&XtExpr::Counter),
            vec![
                (NFTA_COUNTER_BYTES, hex("0000000000000000")),
                (NFTA_COUNTER_PACKETS, hex("0000000000000000")),
            ]
        );
    }

    #[test]
    fn rules_round_trip_and_junk_matches_do_not_panic() {
        let r = XtRule::new(
            NFPROTO_IPV4,
            "filter",
            "CNI-FORWARD",
            [
                ifname_match(true, "br0", false),
                vec![
                    conntrack_state_match(CTSTATE_RELATED_ESTABLISHED),
                    comment_match("x"),
                    XtExpr::Counter,
                    XtExpr::Native(Expr::Verdict(Verdict::Accept)),
                ],
            ]
            .concat(),
        );
        let body = r.encode();
        let back = XtRule::decode(NFPROTO_IPV4, Attrs::new(&body[4..])).unwrap();
        assert!(back.same_as(&r));
        let mut m = Msg::default();
        m.put_str(NFTA_EXPR_NAME, "match");
        assert_eq!(
            XtExpr::decode(m.as_bytes()),
            XtExpr::Native(Expr::Other("match".into()))
        );
    }
}
