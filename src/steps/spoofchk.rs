//! MAC spoof check for the bridge plugin (Go's `pkg/link/spoofcheck.go`),
//! over nf_tables netlink, with the reference's names so either side cleans
//! up the other's rules:
//!
//! ```text
//! table bridge nat {
//!   chain PREROUTING { type filter hook prerouting priority dstnat(-300); policy accept;
//!     iifname "<hostveth>" jump cni-br-iface-<cid>-<ifname> comment "macspoofchk-<cid>-<ifname>"
//!   }
//!   chain cni-br-iface-<cid>-<ifname> {
//!     jump cni-br-iface-<cid>-<ifname>-mac comment "macspoofchk-<cid>-<ifname>"
//!   }
//!   chain cni-br-iface-<cid>-<ifname>-mac {
//!     ether saddr <container mac> return comment "macspoofchk-<cid>-<ifname>"
//!     drop comment "macspoofchk-<cid>-<ifname>"
//!   }
//! }
//! ```
//!
//! Differences from Go, all toward fewer leaks and races: setup is one
//! transaction (Go: two) and replaces an earlier jump rule of the same
//! attachment (Go appends a duplicate on a repeated ADD); the table and base
//! chain are only created when missing (Go's `add chain` would reset a
//! PREROUTING policy someone else set); teardown is one transaction and
//! also removes jump rules to our chain that lost their comment.
//!
//! Runs in the calling thread's network namespace (the host netns).

use crate::cni::types::Attachment;
use crate::cni::CniError;
use crate::netlink::link::parse_mac;
use crate::netlink::nftables::consts::*;
use crate::netlink::nftables::expr::{ether_saddr_eq, iifname_eq};
use crate::netlink::nftables::{self as nf, Batch, Chain, CmpOp, Expr, Hook, Rule, Table, Verdict};
use crate::netlink::Netlink;
use crate::steps::nft_retry::retry;

pub const TABLE: &str = "nat";
pub const BASE_CHAIN: &str = "PREROUTING";
const PRIORITY: i32 = -300;

/// `<cid>-<ifname>` (Go's `uniqueID`).
fn ref_id(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

const IFACE_CHAIN_PREFIX: &str = "cni-br-iface-";
const COMMENT_PREFIX: &str = "macspoofchk-";

/// `cni-br-iface-<cid>-<ifname>`.
pub fn iface_chain(container_id: &str, ifname: &str) -> String {
    iface_chain_of(&ref_id(container_id, ifname))
}

/// `cni-br-iface-<cid>-<ifname>-mac`.
pub fn mac_chain(container_id: &str, ifname: &str) -> String {
    mac_chain_of(&iface_chain(container_id, ifname))
}

/// nf_tables names are at most 255 bytes (NFT_NAME_MAXLEN - 1).
const NFT_NAME_MAX: usize = 255;

/// Would the kernel accept the chain names of attachment (`container_id`,
/// `ifname`)? The longest is [`mac_chain`]'s.
pub fn check_names(container_id: &str, ifname: &str) -> Result<(), CniError> {
    if mac_chain(container_id, ifname).len() <= NFT_NAME_MAX {
        return Ok(());
    }
    Err(CniError::env(format!(
        "CNI_CONTAINERID: a container ID of {} bytes is too long for macspoofchk's nftables chain names (at most {} bytes with CNI_IFNAME)",
        container_id.len(),
        NFT_NAME_MAX - mac_chain("", ifname).len()
    )))
}

/// `macspoofchk-<cid>-<ifname>`.
pub fn comment(container_id: &str, ifname: &str) -> String {
    comment_of(&ref_id(container_id, ifname))
}

fn iface_chain_of(ref_id: &str) -> String {
    format!("{IFACE_CHAIN_PREFIX}{ref_id}")
}

fn mac_chain_of(iface_chain: &str) -> String {
    format!("{iface_chain}-mac")
}

fn comment_of(ref_id: &str) -> String {
    format!("{COMMENT_PREFIX}{ref_id}")
}

fn fail(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::internal(format!("macspoofchk: {what}: {e}"))
}

fn base_chain() -> Chain {
    Chain {
        hook: Some(Hook {
            kind: "filter".into(),
            hooknum: NF_INET_PRE_ROUTING,
            priority: PRIORITY,
            policy: Some(NF_ACCEPT),
        }),
        ..Chain::regular(NFPROTO_BRIDGE, TABLE, BASE_CHAIN)
    }
}

/// The 4 rules of an attachment, in order: the PREROUTING jump, the jump to
/// the mac chain, the allowed source MAC, the drop.
pub fn rules(host_ifname: &str, mac: [u8; 6], container_id: &str, ifname: &str) -> Vec<Rule> {
    let iface = iface_chain(container_id, ifname);
    let macc = mac_chain(container_id, ifname);
    let c = comment(container_id, ifname);
    vec![
        Rule::new(
            NFPROTO_BRIDGE,
            TABLE,
            BASE_CHAIN,
            [
                iifname_eq(host_ifname),
                vec![Expr::Verdict(Verdict::Jump(iface.clone()))],
            ]
            .concat(),
        ),
        Rule::new(
            NFPROTO_BRIDGE,
            TABLE,
            &iface,
            vec![Expr::Verdict(Verdict::Jump(macc.clone()))],
        ),
        Rule::new(
            NFPROTO_BRIDGE,
            TABLE,
            &macc,
            [ether_saddr_eq(mac), vec![Expr::Verdict(Verdict::Return)]].concat(),
        ),
        Rule::new(
            NFPROTO_BRIDGE,
            TABLE,
            &macc,
            vec![Expr::Verdict(Verdict::Drop)],
        ),
    ]
    .into_iter()
    .map(|r| r.with_comment(c.clone()))
    .collect()
}

fn open() -> Result<Netlink, CniError> {
    Netlink::netfilter().map_err(|e| fail("open netfilter socket", e))
}

/// [`open`], or `None` when the kernel has no nf_tables (nothing to remove).
fn open_if_supported() -> Result<Option<Netlink>, CniError> {
    Netlink::netfilter_if_supported().map_err(|e| fail("open netfilter socket", e))
}

/// Does this PREROUTING rule belong to the attachment (its comment, or a
/// jump to its chain)?
fn is_ours(r: &Rule, comment: &[u8], iface: &str) -> bool {
    r.comment.as_deref() == Some(comment)
        || r.exprs
            .iter()
            .any(|e| matches!(e, Expr::Verdict(Verdict::Jump(c) | Verdict::Goto(c)) if c == iface))
}

/// Allow only `container_mac` as source MAC of frames entering the bridge
/// from `host_ifname`. One transaction; a repeated setup replaces the
/// attachment's rules.
pub fn setup(
    host_ifname: &str,
    container_mac: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), CniError> {
    let mac = parse_mac(container_mac).ok_or_else(|| {
        fail(
            "container MAC",
            format!("{container_mac:?} is not a MAC address"),
        )
    })?;
    let nl = open()?;
    setup_with(&nl, host_ifname, mac, container_id, ifname)
}

pub fn setup_with(
    nl: &Netlink,
    host_ifname: &str,
    mac: [u8; 6],
    container_id: &str,
    ifname: &str,
) -> Result<(), CniError> {
    let iface = iface_chain(container_id, ifname);
    let macc = mac_chain(container_id, ifname);
    let c = comment(container_id, ifname);
    retry(
        |e| fail("setup", e),
        || {
            let chains = nf::list_chains(nl, NFPROTO_BRIDGE, TABLE)?;
            let has = |n: &str| chains.iter().any(|ch| ch.name == n);
            let mut b = Batch::new(None);
            if !has(BASE_CHAIN) {
                b.add_table(&Table {
                    family: NFPROTO_BRIDGE,
                    name: TABLE.into(),
                    comment: None,
                    handle: None,
                });
                b.add_chain(&base_chain());
            } else {
                let old = nf::list_rules(nl, NFPROTO_BRIDGE, TABLE, Some(BASE_CHAIN))?;
                b.del_rules(old.iter().filter(|r| is_ours(r, c.as_bytes(), &iface)));
            }
            for name in [&iface, &macc] {
                if has(name) {
                    b.flush_chain(NFPROTO_BRIDGE, TABLE, name);
                } else {
                    b.add_chain(&Chain::regular(NFPROTO_BRIDGE, TABLE, name));
                }
            }
            for r in rules(host_ifname, mac, container_id, ifname) {
                b.add_rule(&r);
            }
            // A rule or chain we saw may vanish meanwhile (a concurrent
            // teardown): retry reads again.
            Ok(b.commit(nl, "macspoofchk setup")?)
        },
    )
}

/// Remove the attachment's PREROUTING rule and both its chains, in one
/// transaction. Needs neither the interfaces nor the MAC.
pub fn teardown(container_id: &str, ifname: &str) -> Result<(), CniError> {
    match open_if_supported()? {
        Some(nl) => teardown_with(&nl, container_id, ifname),
        None => Ok(()),
    }
}

pub fn teardown_with(nl: &Netlink, container_id: &str, ifname: &str) -> Result<(), CniError> {
    let ref_id = ref_id(container_id, ifname);
    retry_delete(nl, "teardown", |chains, base_rules, b| {
        queue_removal(b, chains, base_rules, &ref_id);
        Ok(())
    })
}

/// Queue the removal of attachment `ref_id`: its PREROUTING rules, then its
/// iface chain (whose rule jumps to the mac chain), then the mac chain.
fn queue_removal(b: &mut Batch, chains: &[Chain], base_rules: &[Rule], ref_id: &str) {
    let iface = iface_chain_of(ref_id);
    let comment = comment_of(ref_id);
    b.del_rules(
        base_rules
            .iter()
            .filter(|r| is_ours(r, comment.as_bytes(), &iface)),
    );
    let macc = mac_chain_of(&iface);
    for name in [iface.as_str(), macc.as_str()] {
        if chains.iter().any(|ch| ch.name == name) {
            b.del_chain(NFPROTO_BRIDGE, TABLE, name);
        }
    }
}

/// Read the table, let `plan` queue deletions, commit; start over when
/// something we saw vanished meanwhile.
fn retry_delete(
    nl: &Netlink,
    what: &str,
    plan: impl Fn(&[Chain], &[Rule], &mut Batch) -> Result<(), CniError>,
) -> Result<(), CniError> {
    retry(
        |e| fail(what, e),
        || {
            let chains = match nf::list_chains(nl, NFPROTO_BRIDGE, TABLE) {
                Ok(c) => c,
                Err(e) if e.is_unsupported() => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            if chains.is_empty() {
                return Ok(());
            }
            let base_rules = nf::list_rules(nl, NFPROTO_BRIDGE, TABLE, Some(BASE_CHAIN))?;
            let mut b = Batch::new(None);
            plan(&chains, &base_rules, &mut b)?;
            Ok(b.commit(nl, what)?)
        },
    )
}

/// One attachment as its PREROUTING rule shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `<cid>-<ifname>`.
    pub ref_id: String,
    /// The host veth the rule matches on.
    pub host_ifname: String,
}

/// Parse an attachment's PREROUTING jump rule: `iifname == X jump
/// cni-br-iface-<ref>` with comment `macspoofchk-<ref>`.
pub fn parse_jump(r: &Rule) -> Option<Found> {
    let comment = std::str::from_utf8(r.comment.as_deref()?).ok()?;
    let ref_id = comment.strip_prefix(COMMENT_PREFIX)?;
    let [Expr::Meta { key, .. }, Expr::Cmp {
        op: CmpOp::Eq,
        data,
        ..
    }, Expr::Verdict(Verdict::Jump(to))] = r.exprs.as_slice()
    else {
        return None;
    };
    if *key != NFT_META_IIFNAME || to.strip_prefix(IFACE_CHAIN_PREFIX) != Some(ref_id) {
        return None;
    }
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    Some(Found {
        ref_id: ref_id.to_string(),
        host_ifname: String::from_utf8_lossy(&data[..end]).into_owned(),
    })
}

/// Remove spoof-check state that is provably stale, for bridge
/// `bridge_name` with valid attachments `valid`. The names carry no network,
/// so an attachment is removed only when its host veth no longer exists, or
/// when the veth is a port of THIS bridge and the attachment is not in
/// `valid`. Attachments on other bridges, and chains no PREROUTING rule
/// jumps to (possibly a Go ADD between its two transactions), are left.
pub fn gc(bridge_name: &str, valid: &[Attachment]) -> Result<(), CniError> {
    let Some(nl) = open_if_supported()? else {
        return Ok(());
    };
    let rt = Netlink::route().map_err(|e| fail("open rtnetlink socket", e))?;
    gc_with(&nl, &rt, bridge_name, valid)
}

pub fn gc_with(
    nl: &Netlink,
    rt: &Netlink,
    bridge_name: &str,
    valid: &[Attachment],
) -> Result<(), CniError> {
    let valid_refs: Vec<String> = valid
        .iter()
        .map(|a| ref_id(&a.container_id, &a.ifname))
        .collect();
    retry_delete(nl, "gc", |chains, base_rules, b| {
        // Links are read after the rules: a veth created after that read
        // belongs to a rule we did not see.
        let links = rt.links().map_err(|e| fail("gc: list links", e))?;
        let bridge = links
            .iter()
            .find(|l| l.name == bridge_name)
            .map(|l| l.index);
        let mut done: Vec<String> = Vec::new();
        for found in base_rules.iter().filter_map(parse_jump) {
            if done.contains(&found.ref_id) {
                continue;
            }
            let link = links.iter().find(|l| l.name == found.host_ifname);
            let stale = match link {
                None => true,
                Some(l) => {
                    bridge.is_some_and(|br| l.master == br) && !valid_refs.contains(&found.ref_id)
                }
            };
            if stale {
                queue_removal(b, chains, base_rules, &found.ref_id);
                done.push(found.ref_id);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests;
