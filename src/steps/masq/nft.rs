//! The nf_tables masquerade backend, over netlink, compatible with the Go
//! reference's nftables backend (`pkg/ip/ipmasq_nftables_linux.go`):
//!
//! ```text
//! table inet cni_plugins_masquerade {            comment "Masquerading for plugins from ..."
//!   chain masq_checks {                          comment "Masquerade traffic from certain IPs ..."
//!     ip saddr <ip> ip daddr != <subnet> masquerade comment "<h16(net)>-<h16(if:cid)>, net: .., if: .., id: .."
//!   }
//!   chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//!     ip daddr 224.0.0.0/4 return
//!     ip6 daddr ff00::/8 return
//!     goto masq_checks
//!   }
//! }
//! ```
//!
//! Unlike Go, ADD does not re-add the table and chains and flush
//! `postrouting` on every call. It reads the state first: when the table,
//! both chains and the 3 base rules are there (the usual case), the
//! transaction only deletes the attachment's stale rules and appends its new
//! ones. Otherwise the missing pieces are created in the same transaction as
//! the rule, pinned to the generation that was read (the kernel refuses it
//! with ERESTART if anything changed meanwhile, and we start over), so two
//! first ADDs never both add the base rules.

use super::sha512_hex;
use crate::cni::types::Attachment;
use crate::cni::CniError;
use crate::netlink::nftables::consts::*;
use crate::netlink::nftables::expr::{addr_match, nfproto, nfproto_of};
use crate::netlink::nftables::{
    self as nf, AddrField, Batch, Chain, CmpOp, Expr, Hook, Rule, Table, Verdict,
};
use crate::netlink::{Netlink, NlError};
use crate::steps::nft_retry::{is_race, retry, Stop};
use ipnet::IpNet;

pub const TABLE: &str = "cni_plugins_masquerade";
pub const MASQ_CHAIN: &str = "masq_checks";
pub const POSTROUTING: &str = "postrouting";
pub const TABLE_COMMENT: &str =
    "Masquerading for plugins from github.com/containernetworking/plugins";
pub const CHAIN_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// knftables.CommentLengthMax.
pub const COMMENT_MAX: usize = 128;
/// NF_IP_PRI_NAT_SRC ("srcnat").
const SRCNAT: i32 = 100;

/// hash16(network).
pub fn network_hash(network: &str) -> String {
    sha512_hex(network, 16)
}

/// The instance hash every rule comment of the attachment starts with.
pub fn instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        network_hash(network),
        sha512_hex(&format!("{ifname}:{container_id}"), 16)
    )
}

/// The rule comment, exactly as Go writes it: quotes removed from the
/// names, cut to 128 bytes (bytes, as Go slices the string).
pub fn comment(network: &str, ifname: &str, container_id: &str) -> Vec<u8> {
    let hash = instance_hash(network, ifname, container_id);
    comment_with_hash(&hash, network, ifname, container_id)
}

/// [`comment`] for an instance hash the caller already has.
fn comment_with_hash(hash: &str, network: &str, ifname: &str, container_id: &str) -> Vec<u8> {
    let s = format!(
        "{hash}, net: {}, if: {}, id: {}",
        network.replace('"', ""),
        ifname.replace('"', ""),
        container_id.replace('"', "")
    );
    let mut b = s.into_bytes();
    b.truncate(COMMENT_MAX);
    b
}

fn table() -> Table {
    Table {
        family: NFPROTO_INET,
        name: TABLE.into(),
        comment: Some(TABLE_COMMENT.into()),
        handle: None,
    }
}

fn masq_chain() -> Chain {
    Chain {
        comment: Some(CHAIN_COMMENT.into()),
        ..Chain::regular(NFPROTO_INET, TABLE, MASQ_CHAIN)
    }
}

fn postrouting_hook() -> Hook {
    Hook {
        kind: "nat".into(),
        hooknum: NF_INET_POST_ROUTING,
        priority: SRCNAT,
        policy: Some(NF_ACCEPT),
    }
}

fn postrouting_chain() -> Chain {
    Chain {
        hook: Some(postrouting_hook()),
        ..Chain::regular(NFPROTO_INET, TABLE, POSTROUTING)
    }
}

/// The 3 rules of `postrouting`, in order.
pub fn base_rules() -> Vec<Rule> {
    let multicast = |net: &str| -> Vec<Expr> {
        let n: IpNet = net.parse().unwrap_or_default();
        [
            nfproto(nfproto_of(&n.addr())),
            addr_match(AddrField::Daddr, CmpOp::Eq, &n.addr(), n.prefix_len()),
            vec![Expr::Verdict(Verdict::Return)],
        ]
        .concat()
    };
    vec![
        Rule::new(NFPROTO_INET, TABLE, POSTROUTING, multicast("224.0.0.0/4")),
        Rule::new(NFPROTO_INET, TABLE, POSTROUTING, multicast("ff00::/8")),
        Rule::new(
            NFPROTO_INET,
            TABLE,
            POSTROUTING,
            vec![Expr::Verdict(Verdict::Goto(MASQ_CHAIN.into()))],
        ),
    ]
}

/// `ip saddr <ip> ip daddr != <subnet> masquerade comment "..."`.
pub fn masq_rule(ip: &IpNet, comment: &[u8]) -> Rule {
    let addr = ip.addr();
    Rule::new(
        NFPROTO_INET,
        TABLE,
        MASQ_CHAIN,
        [
            nfproto(nfproto_of(&addr)),
            addr_match(
                AddrField::Saddr,
                CmpOp::Eq,
                &addr,
                if addr.is_ipv4() { 32 } else { 128 },
            ),
            addr_match(AddrField::Daddr, CmpOp::Neq, &addr, ip.prefix_len()),
            vec![Expr::Masq],
        ]
        .concat(),
    )
    .with_comment(comment.to_vec())
}

/// What exists of our table.
struct State {
    genid: u32,
    chains: Vec<Chain>,
    rules: Vec<Rule>,
}

impl State {
    fn read(nl: &Netlink) -> Result<State, NlError> {
        // The generation first: anything that changes after it makes a batch
        // pinned to it fail.
        let genid = nf::genid(nl)?;
        let chains = nf::list_chains(nl, NFPROTO_INET, TABLE)?;
        let rules = if chains.is_empty() {
            Vec::new()
        } else {
            nf::list_rules(nl, NFPROTO_INET, TABLE, None)?
        };
        Ok(State {
            genid,
            chains,
            rules,
        })
    }

    fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// Are `postrouting`'s rules (among `rules`) exactly the 3 base rules?
fn postrouting_ok(rules: &[Rule]) -> bool {
    let got: Vec<&Rule> = rules.iter().filter(|r| r.chain == POSTROUTING).collect();
    let want = base_rules();
    got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g.same_as(w))
}

/// The `masq_checks` rules (among `rules`) whose comment starts with
/// `prefix`.
fn with_prefix<'a>(rules: &'a [Rule], prefix: &'a [u8]) -> impl Iterator<Item = &'a Rule> {
    rules.iter().filter(move |r| {
        r.chain == MASQ_CHAIN && r.comment.as_deref().is_some_and(|c| c.starts_with(prefix))
    })
}

fn fail(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::internal(format!("ipMasq (nftables): {what}: {e}"))
}

fn open() -> Result<Netlink, CniError> {
    Netlink::netfilter().map_err(|e| fail("open netfilter socket", e))
}

/// See [`super::setup`].
pub fn setup(
    ips: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    let nl = open()?;
    setup_with(&nl, ips, network, ifname, container_id)
}

/// [`setup`] on a given socket (tests drive many in one namespace).
pub fn setup_with(
    nl: &Netlink,
    ips: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    let hash = instance_hash(network, ifname, container_id);
    let comment = comment_with_hash(&hash, network, ifname, container_id);
    let prefix = hash.into_bytes();
    let wanted: Vec<Rule> = ips.iter().map(|ip| masq_rule(ip, &comment)).collect();

    // The usual case, in two round trips: one dump of the table's rules
    // shows postrouting's three rules in place (so the table and both
    // chains exist: the goto pins masq_checks), then one unpinned
    // transaction replaces any rule an earlier ADD of this attachment left
    // and appends ours. The full path below also checks the chains and
    // pins the generation while it creates what is missing.
    if let Ok(rules) = nf::list_rules(nl, NFPROTO_INET, TABLE, None) {
        if postrouting_ok(&rules) {
            let mut b = Batch::new(None);
            b.del_rules(with_prefix(&rules, &prefix));
            for r in &wanted {
                b.add_rule(r);
            }
            match b.commit(nl, "ipMasq (nftables) setup") {
                Ok(()) => return Ok(()),
                // Something changed meanwhile: the full path sorts it out.
                Err(e) if is_race(&e) => {}
                Err(e) => return Err(fail("setup", e)),
            }
        }
    }

    retry(
        |e| fail("setup", e),
        || {
            let st = State::read(nl)?;
            let post_ok = postrouting_ok(&st.rules);
            let post_chain = st.chain(POSTROUTING);
            let base_ok = st.chain(MASQ_CHAIN).is_some_and(|c| c.hook.is_none())
                && post_chain.is_some_and(|c| c.hook == Some(postrouting_hook()))
                && post_ok;

            let mut batch = if base_ok {
                // Everything shared is in place: only our rules change. No
                // generation pin, so concurrent ADDs do not invalidate each other.
                Batch::new(None)
            } else {
                let mut b = Batch::new(Some(st.genid));
                if st.chains.is_empty() {
                    b.add_table(&table());
                }
                if st.chain(MASQ_CHAIN).is_none() {
                    b.add_chain(&masq_chain());
                }
                let add_base_rules = match post_chain {
                    None => {
                        b.add_chain(&postrouting_chain());
                        true
                    }
                    Some(c) if c.hook != Some(postrouting_hook()) => {
                        return Err(Stop::Fail(fail(
                            "table inet cni_plugins_masquerade",
                            "chain postrouting exists with another type, hook or priority",
                        )));
                    }
                    Some(_) if !post_ok => {
                        b.flush_chain(NFPROTO_INET, TABLE, POSTROUTING);
                        true
                    }
                    Some(_) => false,
                };
                if add_base_rules {
                    for r in base_rules() {
                        b.add_rule(&r);
                    }
                }
                b
            };
            batch.del_rules(with_prefix(&st.rules, &prefix));
            for r in &wanted {
                batch.add_rule(r);
            }
            Ok(batch.commit(nl, "ipMasq (nftables) setup")?)
        },
    )
}

/// Delete, in one transaction, the `masq_checks` rules `select` picks.
/// Retried when a rule vanished meanwhile (a concurrent DEL or GC).
fn delete_where(nl: &Netlink, what: &str, select: impl Fn(&Rule) -> bool) -> Result<(), CniError> {
    retry(
        |e| fail(what, e),
        || {
            let rules = match nf::list_rules(nl, NFPROTO_INET, TABLE, Some(MASQ_CHAIN)) {
                Ok(r) => r,
                // nf_tables missing from the kernel: nothing of ours can exist.
                Err(e) if e.is_unsupported() => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let mut b = Batch::new(None);
            b.del_rules(rules.iter().filter(|r| select(r)));
            Ok(b.commit(nl, what)?)
        },
    )
}

/// Remove the attachment's rules (comment starts with its instance hash);
/// the table and both chains stay.
pub fn teardown_with(
    nl: &Netlink,
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    let prefix = instance_hash(network, ifname, container_id).into_bytes();
    delete_where(nl, "teardown", |r| {
        r.comment.as_deref().is_some_and(|c| c.starts_with(&prefix))
    })
}

/// Remove the network's rules (comment starts with its hash) whose comment
/// is not the one a valid attachment would have.
pub fn gc(network: &str, valid: &[Attachment]) -> Result<(), CniError> {
    match super::netfilter_socket()? {
        Some(nl) => gc_with(&nl, network, valid),
        None => Ok(()),
    }
}

pub fn gc_with(nl: &Netlink, network: &str, valid: &[Attachment]) -> Result<(), CniError> {
    let prefix = network_hash(network).into_bytes();
    let keep: Vec<Vec<u8>> = valid
        .iter()
        .map(|a| comment(network, &a.ifname, &a.container_id))
        .collect();
    delete_where(nl, "gc", |r| match r.comment.as_deref() {
        Some(c) => c.starts_with(&prefix) && !keep.iter().any(|k| k == c),
        None => false,
    })
}

#[cfg(test)]
mod tests;
