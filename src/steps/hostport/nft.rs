//! portmap's nf_tables backend over netlink, with the Go reference's names
//! and rule shapes (plugins/meta/portmap at HEAD, through `nft`), so a node
//! can switch between the two with live containers:
//!
//! ```text
//! table ip|ip6 cni_hostport {                     comment "CNI portmap plugin"
//!   chain hostports {                             one rule per mapping, comment = container ID
//!     [ip daddr <hostIP>] tcp dport 8080 dnat to 10.99.1.2:80
//!   }
//!   chain hostip_hostports { }                    always empty (older versions used it)
//!   chain hostports_all { jump hostip_hostports; jump hostports }
//!   chain prerouting { type nat hook prerouting priority dstnat; fib daddr type local jump hostports_all }
//!   chain output     { type nat hook output priority -100;       fib daddr type local jump hostports_all }
//!   chain masquerading { type nat hook postrouting priority srcnat;  (only with snat)
//!     ip saddr <cip>|0.0.0.0/0 ip daddr <cip> masquerade
//!     ip saddr 127.0.0.1 ip daddr <cip> masquerade   (v4, not masqAll)
//!   }
//! }
//! ```
//!
//! ADD is Go's transaction (create what is missing, flush and refill
//! `hostports_all`, `prerouting` and `output`), plus, unlike Go, the
//! deletion of the container's earlier rules, so a repeated ADD does not
//! duplicate them. DEL deletes by comment only: it needs neither the
//! mappings nor the container's netns.

use super::{Mapping, Options};
use crate::cni::CniError;
use crate::netlink::nftables::consts::*;
use crate::netlink::nftables::expr::{addr_match, dnat_to, dport_eq, fib_daddr_local};
use crate::netlink::nftables::{
    self as nf, AddrField, Batch, Chain, CmpOp, Expr, Hook, Rule, Table, Verdict,
};
use crate::netlink::{Netlink, NlError};
use crate::steps::nft_retry::retry;
use std::net::IpAddr;

pub const TABLE: &str = "cni_hostport";
pub const TABLE_COMMENT: &str = "CNI portmap plugin";
pub const HOSTPORTS: &str = "hostports";
pub const HOSTIP_HOSTPORTS: &str = "hostip_hostports";
pub const HOSTPORTS_ALL: &str = "hostports_all";
pub const PREROUTING: &str = "prerouting";
pub const OUTPUT: &str = "output";
pub const MASQUERADING: &str = "masquerading";
/// The chains holding per-container rules (comment = container ID).
pub const CONTAINER_CHAINS: [&str; 3] = [HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING];
/// The longest comment `nft` accepts (NFTNL_UDATA_COMMENT_MAXLEN, also
/// knftables.CommentLengthMax): a longer container ID could not be read
/// back by Go's `nft`, so it is refused before any change.
pub const COMMENT_MAX: usize = 128;
/// NF_IP_PRI_NAT_DST ("dstnat") and NF_IP_PRI_NAT_SRC ("srcnat").
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

fn family_of(v6: bool) -> u8 {
    if v6 {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    }
}

fn base_chain(family: u8, name: &str, hooknum: u32, priority: i32) -> Chain {
    Chain {
        hook: Some(Hook {
            kind: "nat".into(),
            hooknum,
            priority,
            policy: None,
        }),
        ..Chain::regular(family, TABLE, name)
    }
}

/// The rule of one mapping for container address `cip`.
pub fn mapping_rule(family: u8, m: &Mapping, cip: &IpAddr, id: &str) -> Rule {
    let mut exprs = Vec::new();
    if let Some(h) = m.host_ip.filter(|h| !h.is_unspecified()) {
        let bits = if h.is_ipv4() { 32 } else { 128 };
        exprs.extend(addr_match(AddrField::Daddr, CmpOp::Eq, &h, bits));
    }
    exprs.extend(dport_eq(m.protocol, m.host_port));
    exprs.extend(dnat_to(cip, m.container_port));
    Rule::new(family, TABLE, HOSTPORTS, exprs).with_comment(id)
}

/// The `masquerading` rules for container address `cip`.
pub fn masq_rules(family: u8, cip: &IpAddr, opts: &Options, id: &str) -> Vec<Rule> {
    let full = if cip.is_ipv4() { 32 } else { 128 };
    let masq = |src: &IpAddr, prefix: u8| {
        let exprs = [
            addr_match(AddrField::Saddr, CmpOp::Eq, src, prefix),
            addr_match(AddrField::Daddr, CmpOp::Eq, cip, full),
            vec![Expr::Masq],
        ]
        .concat();
        Rule::new(family, TABLE, MASQUERADING, exprs).with_comment(id)
    };
    if !opts.snat {
        return Vec::new();
    }
    if opts.masq_all {
        let any = if cip.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u8; 16])
        };
        return vec![masq(&any, 0)];
    }
    let mut v = vec![masq(cip, full)];
    if cip.is_ipv4() {
        v.push(masq(&IpAddr::from([127, 0, 0, 1]), 32));
    }
    v
}

/// The container's rules for address `cip`: mappings of its family (a
/// hostIP of the other family is skipped), then the masquerade rules.
pub fn container_rules(cip: &IpAddr, maps: &[Mapping], opts: &Options, id: &str) -> Vec<Rule> {
    let family = family_of(cip.is_ipv6());
    let mut rules: Vec<Rule> = maps
        .iter()
        .filter(|m| m.host_ip.is_none_or(|h| h.is_ipv6() == cip.is_ipv6()))
        .map(|m| mapping_rule(family, m, cip, id))
        .collect();
    rules.extend(masq_rules(family, cip, opts, id));
    rules
}

/// Go's ADD transaction for one family, deleting `stale` (the container's
/// rules already there) before the new ones go in.
pub fn add_batch(cip: &IpAddr, rules: &[Rule], opts: &Options, stale: &[Rule]) -> Batch {
    let family = family_of(cip.is_ipv6());
    let jump = |chain: &str, exprs: Vec<Expr>| {
        let e = [
            exprs,
            vec![Expr::Verdict(Verdict::Jump(HOSTPORTS_ALL.into()))],
        ]
        .concat();
        Rule::new(family, TABLE, chain, e)
    };
    let mut b = Batch::new(None);
    b.add_table(&Table {
        family,
        name: TABLE.into(),
        comment: Some(TABLE_COMMENT.into()),
        handle: None,
    });
    for c in [HOSTPORTS, HOSTIP_HOSTPORTS, HOSTPORTS_ALL] {
        b.add_chain(&Chain::regular(family, TABLE, c));
    }
    b.flush_chain(family, TABLE, HOSTPORTS_ALL);
    for target in [HOSTIP_HOSTPORTS, HOSTPORTS] {
        let e = vec![Expr::Verdict(Verdict::Jump(target.into()))];
        b.add_rule(&Rule::new(family, TABLE, HOSTPORTS_ALL, e));
    }
    for (name, hook) in [
        (PREROUTING, NF_INET_PRE_ROUTING),
        (OUTPUT, NF_INET_LOCAL_OUT),
    ] {
        b.add_chain(&base_chain(family, name, hook, DSTNAT));
        b.flush_chain(family, TABLE, name);
        b.add_rule(&jump(name, fib_daddr_local()));
    }
    if opts.snat {
        b.add_chain(&base_chain(
            family,
            MASQUERADING,
            NF_INET_POST_ROUTING,
            SRCNAT,
        ));
    }
    b.del_rules(stale);
    for r in rules {
        b.add_rule(r);
    }
    b
}

fn fail(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::internal(format!("portmap (nftables): {what}: {e}"))
}

/// The rules of table `family cni_hostport` in the per-container chains
/// whose comment `pick` selects. A missing table is an empty list.
fn container_rules_where(
    nl: &Netlink,
    family: u8,
    pick: impl Fn(&[u8]) -> bool,
) -> Result<Vec<Rule>, NlError> {
    let rules = match nf::list_rules(nl, family, TABLE, None) {
        Ok(r) => r,
        // nf_tables missing from the kernel: nothing of ours can exist.
        Err(e) if e.is_unsupported() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(rules
        .into_iter()
        .filter(|r| CONTAINER_CHAINS.contains(&r.chain.as_str()))
        .filter(|r| r.comment.as_deref().is_some_and(&pick))
        .collect())
}

/// Forward the mappings of `cip`'s family to `cip` (one transaction,
/// replacing the container's earlier rules of that family).
pub fn setup(
    nl: &Netlink,
    id: &str,
    cip: &IpAddr,
    maps: &[Mapping],
    opts: &Options,
) -> Result<(), CniError> {
    let family = family_of(cip.is_ipv6());
    let rules = container_rules(cip, maps, opts, id);
    retry(
        |e| fail("set up port mappings", e),
        || {
            let stale = container_rules_where(nl, family, |c| c == id.as_bytes())?;
            let b = add_batch(cip, &rules, opts, &stale);
            Ok(b.commit(nl, "portmap (nftables) setup")?)
        },
    )
}

/// Delete, in both families, the per-container rules `pick` selects by
/// comment. Tables and chains stay (other containers use them).
pub fn delete_where(
    nl: &Netlink,
    what: &str,
    pick: impl Fn(&[u8]) -> bool,
) -> Result<(), CniError> {
    for v6 in [false, true] {
        let family = family_of(v6);
        retry(
            |e| fail(what, e),
            || {
                let doomed = container_rules_where(nl, family, &pick)?;
                let mut b = Batch::new(None);
                b.del_rules(&doomed);
                Ok(b.commit(nl, what)?)
            },
        )?;
    }
    Ok(())
}

/// Remove the container's rules (comment equals its ID) in both families.
pub fn teardown(nl: &Netlink, id: &str) -> Result<(), CniError> {
    delete_where(nl, "tear down port mappings", |c| c == id.as_bytes())
}

/// Every rule ADD made for `cip` is in place (handles ignored), and the
/// chains that lead to them exist.
pub fn check(
    nl: &Netlink,
    id: &str,
    cip: &IpAddr,
    maps: &[Mapping],
    opts: &Options,
) -> Result<(), CniError> {
    let family = family_of(cip.is_ipv6());
    let have = nf::list_rules(nl, family, TABLE, None).map_err(|e| fail("check", e))?;
    for want in container_rules(cip, maps, opts, id) {
        if !have.iter().any(|h| h.same_as(&want)) {
            return Err(fail(
                "check",
                format!("missing hostport rule in {:?} chain for {cip}", want.chain),
            ));
        }
    }
    for chain in [PREROUTING, OUTPUT] {
        if !have.iter().any(|h| h.chain == chain) {
            return Err(fail("check", format!("chain {chain:?} has no rule")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
