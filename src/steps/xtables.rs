//! The firewall plugin's iptables rules, written over netlink into
//! iptables-nft's `filter` tables (`ip filter`, `ip6 filter`) with the
//! expressions iptables-nft itself emits, so that `iptables -S`, `-C` and
//! `-D` see exactly the rules the Go plugin makes, and so that we find the
//! rules the Go plugin (through `iptables`) made. No iptables binary.
//!
//! Rule shapes (iptables-nft 1.8.9, fixture goref-head-firewall.nlrules.txt):
//! `-s/-d ip` = payload + cmp (no bitwise for a host prefix); `-i/-o` =
//! meta iifname/oifname + cmp over name+NUL; then the xt matches in command
//! line order; then `counter`; then the immediate verdict.

use crate::cni::CniError;
use crate::netlink::nftables::consts::*;
use crate::netlink::nftables::xt::{
    comment_match, conntrack_state_match, ifname_match, list_xt_rules, XtExpr, XtRule,
    CTSTATE_RELATED_ESTABLISHED,
};
use crate::netlink::nftables::{self as nf, Batch, Chain, CmpOp, Expr, Hook, Table, Verdict};
use crate::netlink::{Netlink, NlError};
use crate::steps::nft_retry::{retry, Stop};
use std::collections::HashMap;
use std::net::IpAddr;

pub const TABLE: &str = "filter";
pub const FORWARD: &str = "FORWARD";
pub const PRIV_CHAIN: &str = "CNI-FORWARD";
pub const DEFAULT_ADMIN_CHAIN: &str = "CNI-ADMIN";
pub const STAGE1: &str = "CNI-ISOLATION-STAGE-1";
pub const STAGE2: &str = "CNI-ISOLATION-STAGE-2";
const NF_INET_FORWARD: u32 = 2;

const FILTER_COMMENT: &str = "CNI firewall plugin rules";
const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";

/// `ingressPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Open,
    SameBridge,
    Isolated,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "" | "open" => Some(Policy::Open),
            "same-bridge" => Some(Policy::SameBridge),
            "isolated" => Some(Policy::Isolated),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::Open => "open",
            Policy::SameBridge => "same-bridge",
            Policy::Isolated => "isolated",
        }
    }
}

/// The nf_tables family holding `ip`'s iptables rules.
pub fn family_of(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        NFPROTO_IPV4
    } else {
        NFPROTO_IPV6
    }
}

/// One step of an ADD, in the Go plugin's order.
#[derive(Debug, Clone)]
pub enum Want {
    /// `iptables -N` unless it exists.
    Chain(String),
    /// `-C` then `-I 1` (`prepend`) or `-A` when absent.
    Rule { rule: XtRule, prepend: bool },
}

fn rule(family: u8, chain: &str, exprs: Vec<XtExpr>) -> XtRule {
    XtRule::new(family, TABLE, chain, exprs)
}

fn verdict(v: Verdict) -> XtExpr {
    XtExpr::Native(Expr::Verdict(v))
}

fn tail(comment: Option<&str>, v: Verdict) -> Vec<XtExpr> {
    let mut e: Vec<XtExpr> = comment.map(comment_match).into_iter().collect();
    e.push(XtExpr::Counter);
    e.push(verdict(v));
    e
}

/// `-s ip/32` (`src`) or `-d ip/32`.
fn host_match(src: bool, ip: &IpAddr) -> Vec<XtExpr> {
    let (offset, len, data) = match ip {
        IpAddr::V4(a) => (if src { 12 } else { 16 }, 4, a.octets().to_vec()),
        IpAddr::V6(a) => (if src { 8 } else { 24 }, 16, a.octets().to_vec()),
    };
    vec![
        XtExpr::Native(Expr::Payload {
            base: nf::expr::Base::Network,
            offset,
            len,
            dreg: NFT_REG_1,
        }),
        XtExpr::Native(Expr::Cmp {
            sreg: NFT_REG_1,
            op: CmpOp::Eq,
            data,
        }),
    ]
}

/// `-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD`.
pub fn forward_jump(family: u8) -> XtRule {
    let v = Verdict::Jump(PRIV_CHAIN.into());
    rule(family, FORWARD, tail(Some(FILTER_COMMENT), v))
}

/// `-A CNI-FORWARD -m comment --comment "... admin overrides" -j <admin>`.
pub fn admin_jump(family: u8, admin: &str) -> XtRule {
    let v = Verdict::Jump(admin.into());
    rule(family, PRIV_CHAIN, tail(Some(ADMIN_COMMENT), v))
}

/// The two per-IP rules of `CNI-FORWARD`:
/// `-d ip -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`, `-s ip -j ACCEPT`.
pub fn ip_rules(ip: &IpAddr) -> [XtRule; 2] {
    let f = family_of(ip);
    let mut d = host_match(false, ip);
    d.push(conntrack_state_match(CTSTATE_RELATED_ESTABLISHED));
    d.extend(tail(None, Verdict::Accept));
    let mut s = host_match(true, ip);
    s.extend(tail(None, Verdict::Accept));
    [rule(f, PRIV_CHAIN, d), rule(f, PRIV_CHAIN, s)]
}

/// ADD for one family: chains, jumps, then the per-IP rules (Go's
/// `setupChains` + `AppendUnique`).
pub fn add_plan(family: u8, admin: &str, ips: &[IpAddr]) -> Vec<Want> {
    let mut w = vec![
        Want::Chain(PRIV_CHAIN.into()),
        Want::Chain(admin.into()),
        Want::Rule {
            rule: forward_jump(family),
            prepend: true,
        },
        Want::Rule {
            rule: admin_jump(family, admin),
            prepend: true,
        },
    ];
    for ip in ips {
        for r in ip_rules(ip) {
            w.push(Want::Rule {
                rule: r,
                prepend: false,
            });
        }
    }
    w
}

/// The isolation chains for `bridge` (Go's `setupIsolationChains`); never
/// torn down, since other containers share the bridge.
pub fn isolation_plan(family: u8, bridge: &str, policy: Policy) -> Vec<Want> {
    let own = format!(
        "CNI firewall plugin rules (ingressPolicy: {})",
        policy.name()
    );
    let r = |chain: &str, mut m: Vec<XtExpr>, c: &str, v: Verdict, prepend| {
        m.extend(tail(Some(c), v));
        Want::Rule {
            rule: rule(family, chain, m),
            prepend,
        }
    };
    let io = |neg_out: bool| {
        [
            ifname_match(false, bridge, false),
            ifname_match(true, bridge, neg_out),
        ]
        .concat()
    };
    let mut w = vec![
        Want::Chain(STAGE1.into()),
        Want::Chain(STAGE2.into()),
        r(
            FORWARD,
            vec![],
            ISOLATION_COMMENT,
            Verdict::Jump(STAGE1.into()),
            true,
        ),
        r(STAGE1, io(true), &own, Verdict::Jump(STAGE2.into()), true),
    ];
    if policy == Policy::Isolated {
        w.push(r(STAGE1, io(false), &own, Verdict::Drop, true));
    }
    w.push(r(STAGE1, vec![], ISOLATION_COMMENT, Verdict::Return, false));
    let out = ifname_match(true, bridge, false);
    w.push(r(STAGE2, out, ISOLATION_COMMENT, Verdict::Drop, true));
    w.push(r(STAGE2, vec![], ISOLATION_COMMENT, Verdict::Return, false));
    w
}

fn fail(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::internal(format!("firewall (iptables-nft): {what}: {e}"))
}

pub fn open() -> Result<Netlink, CniError> {
    Netlink::netfilter().map_err(|e| fail("open netfilter socket", e))
}

/// For DEL and GC: `None` when the kernel has no nf_tables (then there is
/// no iptables-nft rule to remove either).
pub fn open_if_supported() -> Result<Option<Netlink>, CniError> {
    Netlink::netfilter_if_supported().map_err(|e| fail("open netfilter socket", e))
}

fn family_name(family: u8) -> &'static str {
    if family == NFPROTO_IPV4 {
        "ip"
    } else {
        "ip6"
    }
}

/// Whether the kernel lists an x_tables (iptables-legacy) `filter` table
/// of `family` in our netns (/proc/net/ip{,6}_tables_names).
pub fn legacy_filter_listed(family: u8) -> bool {
    let names = if family == NFPROTO_IPV4 {
        "/proc/net/ip_tables_names"
    } else {
        "/proc/net/ip6_tables_names"
    };
    std::fs::read_to_string(names)
        .map(|s| s.lines().any(|l| l.trim() == TABLE))
        .unwrap_or(false)
}

/// Whether this node keeps `family`'s iptables in x_tables (iptables-legacy):
/// a legacy `filter` table is listed while nf_tables has no `filter` table
/// of that family.
pub fn legacy_in_use(nl: &Netlink, family: u8) -> Result<bool, CniError> {
    if !legacy_filter_listed(family) {
        return Ok(false);
    }
    let chains = nf::list_chains(nl, family, TABLE).map_err(|e| fail("list chains", e))?;
    Ok(chains.is_empty())
}

/// Carry out `wants` in `family`'s filter table in one transaction pinned
/// to the generation it was planned from (retried when the ruleset moves):
/// the table and the FORWARD base chain are created when absent, as
/// iptables-nft creates them (policy left at accept); an existing FORWARD
/// (e.g. with policy drop) is not touched.
pub fn apply(nl: &Netlink, family: u8, wants: &[Want]) -> Result<(), CniError> {
    retry(
        |e| fail("add rules", e),
        || {
            let genid = nf::genid(nl)?;
            let chains = nf::list_chains(nl, family, TABLE)?;
            let mut have: Vec<String> = chains.iter().map(|c| c.name.clone()).collect();
            let mut b = Batch::new(Some(genid));
            let mut dirty = false;
            if chains.is_empty() {
                b.add_table(&Table {
                    family,
                    name: TABLE.into(),
                    comment: None,
                    handle: None,
                });
            }
            if !have.iter().any(|c| c == FORWARD) {
                b.add_chain(&Chain {
                    hook: Some(Hook {
                        kind: "filter".into(),
                        hooknum: NF_INET_FORWARD,
                        priority: 0,
                        policy: None,
                    }),
                    ..Chain::regular(family, TABLE, FORWARD)
                });
                have.push(FORWARD.into());
                dirty = true;
            }
            let mut rules: HashMap<String, Vec<XtRule>> = HashMap::new();
            for w in wants {
                match w {
                    Want::Chain(c) if !have.contains(c) => {
                        b.add_chain(&Chain::regular(family, TABLE, c));
                        have.push(c.clone());
                        rules.insert(c.clone(), Vec::new());
                        dirty = true;
                    }
                    Want::Chain(_) => {}
                    Want::Rule { rule, prepend } => {
                        if !rules.contains_key(&rule.chain) {
                            let got = list_xt_rules(nl, family, TABLE, &rule.chain)?;
                            rules.insert(rule.chain.clone(), got);
                        }
                        let list = rules.get_mut(&rule.chain).expect("inserted above");
                        if list.iter().any(|r| r.same_as(rule)) {
                            continue;
                        }
                        b.add_xt_rule(rule, *prepend);
                        if *prepend {
                            list.insert(0, rule.clone());
                        } else {
                            list.push(rule.clone());
                        }
                        dirty = true;
                    }
                }
            }
            if dirty {
                b.commit(nl, "firewall: add rules")?;
            }
            Ok(())
        },
    )
}

/// Delete every rule of `CNI-FORWARD` equal to one of `unwanted` (Go's and
/// ours alike). Missing table or chain: nothing to do.
pub fn delete(nl: &Netlink, family: u8, unwanted: &[XtRule]) -> Result<(), CniError> {
    if unwanted.is_empty() {
        return Ok(());
    }
    retry(
        |e| fail("delete rules", e),
        || {
            let got = list_xt_rules(nl, family, TABLE, PRIV_CHAIN)?;
            let mut b = Batch::new(None);
            let mut n = 0;
            for r in got.iter().filter(|r| unwanted.iter().any(|u| u.same_as(r))) {
                if let Some(h) = r.handle {
                    b.del_rule(family, TABLE, PRIV_CHAIN, h);
                    n += 1;
                }
            }
            if n > 0 {
                b.commit(nl, "firewall: delete rules")?;
            }
            Ok::<_, Stop>(())
        },
    )
}

/// CHECK: the chains, both jumps and every rule of `wanted` are there.
pub fn check(nl: &Netlink, family: u8, admin: &str, wanted: &[XtRule]) -> Result<(), CniError> {
    let f = family_name(family);
    let chains = nf::list_chains(nl, family, TABLE).map_err(|e| fail("list chains", e))?;
    for c in [PRIV_CHAIN, admin] {
        if !chains.iter().any(|x| x.name == c) {
            return Err(CniError::internal(format!(
                "firewall: chain {c} not found in table {f} filter"
            )));
        }
    }
    let need = [forward_jump(family), admin_jump(family, admin)];
    for r in need.iter().chain(wanted) {
        let got: Result<Vec<XtRule>, NlError> = list_xt_rules(nl, family, TABLE, &r.chain);
        let got = got.map_err(|e| fail("list rules", e))?;
        if !got.iter().any(|g| g.same_as(r)) {
            return Err(CniError::internal(format!(
                "firewall: expected rule not found in {f} filter {}: {:?}",
                r.chain, r.exprs
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolated_adds_a_same_bridge_drop_and_open_needs_no_plan() {
        let sb = isolation_plan(NFPROTO_IPV4, "br0", Policy::SameBridge);
        let iso = isolation_plan(NFPROTO_IPV4, "br0", Policy::Isolated);
        assert_eq!(sb.len() + 1, iso.len());
        assert_eq!(Policy::parse(""), Some(Policy::Open));
        assert_eq!(Policy::parse("same-network"), None);
    }

    #[test]
    fn per_ip_rules_follow_the_fixture_shape() {
        let [d, s] = ip_rules(&"10.99.3.2".parse().unwrap());
        assert_eq!(d.exprs.len(), 5);
        assert_eq!(s.exprs.len(), 4);
        assert!(matches!(
            &d.exprs[0],
            XtExpr::Native(Expr::Payload {
                offset: 16,
                len: 4,
                ..
            })
        ));
        assert!(
            matches!(&s.exprs[1], XtExpr::Native(Expr::Cmp { data, .. }) if data == &[10, 99, 3, 2])
        );
        let [d6, _] = ip_rules(&"fd99:3::2".parse().unwrap());
        assert_eq!(d6.family, NFPROTO_IPV6);
        assert!(matches!(
            &d6.exprs[0],
            XtExpr::Native(Expr::Payload {
                offset: 24,
                len: 16,
                ..
            })
        ));
    }
}
