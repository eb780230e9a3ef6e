//! nf_tables over NETLINK_NETFILTER: tables, chains and rules, batched
//! transactions, and dumps parsed back far enough to find and compare our
//! rules. No `nft` binary involved.
//!
//! Layer 4: imports only `netlink::{attr, socket, consts}`. Messages are laid
//! out attribute for attribute as nft 1.0.6 (libnftnl) lays them out, so the
//! golden tests can compare against bytes captured from `nft`.

pub mod consts;
pub mod expr;
pub mod xt;

use self::consts::*;
pub use self::expr::{AddrField, CmpOp, Expr, Verdict};
use super::attr::{Attrs, Msg};
use super::consts::{NLM_F_APPEND, NLM_F_CREATE};
use super::socket::{Frames, Netlink, NlError, Reply};
use nix::errno::Errno;

/// The message type of an nf_tables message.
pub const fn msg_type(m: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | m
}

/// The 4-byte nfgenmsg header: family, version, res_id (big-endian).
pub fn nfgenmsg(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, NFNETLINK_V0, r[0], r[1]]
}

/// A libnftnl udata TLV list holding one comment (type 0, length, string
/// plus NUL). The kernel caps userdata at 256 bytes and the TLV length is
/// one byte, so the comment is cut to 254 bytes here; callers apply their
/// own, smaller, limits first.
pub fn comment_udata(comment: &[u8]) -> Vec<u8> {
    let c = &comment[..comment.len().min(254)];
    let mut v = Vec::with_capacity(c.len() + 3);
    v.push(NFTNL_UDATA_COMMENT);
    v.push((c.len() + 1) as u8);
    v.extend_from_slice(c);
    v.push(0);
    v
}

/// The comment in a udata TLV list, without its NUL; `None` if absent or
/// malformed.
pub fn parse_comment_udata(mut b: &[u8]) -> Option<Vec<u8>> {
    while b.len() >= 2 {
        let (ty, len) = (b[0], b[1] as usize);
        let val = b.get(2..2 + len)?;
        if ty == NFTNL_UDATA_COMMENT {
            let end = val.iter().position(|&c| c == 0).unwrap_or(val.len());
            return Some(val[..end].to_vec());
        }
        b = &b[2 + len..];
    }
    None
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: u8,
    pub name: String,
    pub comment: Option<Vec<u8>>,
    pub handle: Option<u64>,
}

/// The hook of a base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// "filter", "nat" or "route".
    pub kind: String,
    pub hooknum: u32,
    pub priority: i32,
    /// NF_ACCEPT or NF_DROP; `None` leaves the kernel default (accept).
    pub policy: Option<u32>,
}

/// A chain; a base chain when `hook` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub family: u8,
    pub table: String,
    pub name: String,
    pub hook: Option<Hook>,
    pub comment: Option<Vec<u8>>,
    pub handle: Option<u64>,
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub exprs: Vec<Expr>,
    pub comment: Option<Vec<u8>>,
    pub handle: Option<u64>,
}

impl Table {
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Msg::with_header(&nfgenmsg(self.family, 0));
        m.put_str(NFTA_TABLE_NAME, &self.name)
            .put_be32(NFTA_TABLE_FLAGS, 0);
        if let Some(c) = &self.comment {
            m.put(NFTA_TABLE_USERDATA, &comment_udata(c));
        }
        m.into_bytes()
    }

    #[cfg(any(test, fuzzing))]
    fn decode(family: u8, a: Attrs<'_>) -> Option<Table> {
        Some(Table {
            family,
            name: a.get(NFTA_TABLE_NAME)?.str()?.to_string(),
            comment: a
                .get(NFTA_TABLE_USERDATA)
                .and_then(|u| parse_comment_udata(u.payload)),
            handle: a.get(NFTA_TABLE_HANDLE).and_then(|h| h.be64()),
        })
    }
}

impl Chain {
    /// A regular chain.
    pub fn regular(family: u8, table: &str, name: &str) -> Chain {
        Chain {
            family,
            table: table.into(),
            name: name.into(),
            hook: None,
            comment: None,
            handle: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut m = Msg::with_header(&nfgenmsg(self.family, 0));
        m.put_str(NFTA_CHAIN_TABLE, &self.table)
            .put_str(NFTA_CHAIN_NAME, &self.name);
        if let Some(h) = &self.hook {
            m.put_str(NFTA_CHAIN_TYPE, &h.kind);
            if let Some(p) = h.policy {
                m.put_be32(NFTA_CHAIN_POLICY, p);
            }
            m.nest(NFTA_CHAIN_HOOK, |m| {
                m.put_be32(NFTA_HOOK_HOOKNUM, h.hooknum)
                    .put_be32(NFTA_HOOK_PRIORITY, h.priority as u32);
            });
        }
        if let Some(c) = &self.comment {
            m.put(NFTA_CHAIN_USERDATA, &comment_udata(c));
        }
        m.into_bytes()
    }

    fn decode(family: u8, a: Attrs<'_>) -> Option<Chain> {
        let hook = a.get(NFTA_CHAIN_HOOK).and_then(|h| {
            let h = h.nested();
            Some(Hook {
                kind: a.get(NFTA_CHAIN_TYPE)?.str()?.to_string(),
                hooknum: h.get(NFTA_HOOK_HOOKNUM)?.be32()?,
                priority: h.get(NFTA_HOOK_PRIORITY)?.be32()? as i32,
                policy: a.get(NFTA_CHAIN_POLICY).and_then(|p| p.be32()),
            })
        });
        Some(Chain {
            family,
            table: a.get(NFTA_CHAIN_TABLE)?.str()?.to_string(),
            name: a.get(NFTA_CHAIN_NAME)?.str()?.to_string(),
            hook,
            comment: a
                .get(NFTA_CHAIN_USERDATA)
                .and_then(|u| parse_comment_udata(u.payload)),
            handle: a.get(NFTA_CHAIN_HANDLE).and_then(|h| h.be64()),
        })
    }
}

impl Rule {
    pub fn new(family: u8, table: &str, chain: &str, exprs: Vec<Expr>) -> Rule {
        Rule {
            family,
            table: table.into(),
            chain: chain.into(),
            exprs,
            comment: None,
            handle: None,
        }
    }

    pub fn with_comment(mut self, comment: impl Into<Vec<u8>>) -> Rule {
        self.comment = Some(comment.into());
        self
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
        if let Some(c) = &self.comment {
            m.put(NFTA_RULE_USERDATA, &comment_udata(c));
        }
        m.into_bytes()
    }

    fn decode(family: u8, a: Attrs<'_>) -> Option<Rule> {
        Some(Rule {
            family,
            table: a.get(NFTA_RULE_TABLE)?.str()?.to_string(),
            chain: a.get(NFTA_RULE_CHAIN)?.str()?.to_string(),
            exprs: rule_exprs(&a, Expr::decode),
            comment: a
                .get(NFTA_RULE_USERDATA)
                .and_then(|u| parse_comment_udata(u.payload)),
            handle: a.get(NFTA_RULE_HANDLE).and_then(|h| h.be64()),
        })
    }

    /// Same chain, same expressions, same comment (handles ignored).
    pub fn same_as(&self, other: &Rule) -> bool {
        self.family == other.family
            && self.table == other.table
            && self.chain == other.chain
            && self.exprs == other.exprs
            && self.comment == other.comment
    }
}

/// The body of a message naming one object: (family, table, chain-or-none)
/// plus a handle, for DELRULE and for flushing a chain.
fn rule_ref(family: u8, table: &str, chain: &str, handle: Option<u64>) -> Vec<u8> {
    let mut m = Msg::with_header(&nfgenmsg(family, 0));
    m.put_str(NFTA_RULE_TABLE, table)
        .put_str(NFTA_RULE_CHAIN, chain);
    if let Some(h) = handle {
        m.put_be64(NFTA_RULE_HANDLE, h);
    }
    m.into_bytes()
}

/// One nf_tables transaction: BATCH_BEGIN, the operations, BATCH_END, sent
/// in one datagram. Only the last operation carries NLM_F_ACK: the kernel
/// reports every failed operation anyway, all answers come in message order
/// after the commit or abort, so that ACK closes the transaction; a
/// transaction-level failure (e.g. a stale generation: ERESTART) comes back
/// on the BEGIN message. One answer per batch also keeps a GC deleting
/// hundreds of rules from overflowing the socket's receive buffer.
#[derive(Debug, Clone)]
pub struct Batch {
    genid: Option<u32>,
    /// (message, flags, body) of each operation, in order.
    ops: Vec<(u16, u16, Vec<u8>)>,
}

/// The most operation bytes one transaction carries. A datagram larger
/// than the socket's send buffer (212992 bytes by default) is refused, and a
/// GC of thousands of stale rules must still go through: bigger batches are
/// committed as several transactions, in order.
const MAX_BATCH_BYTES: usize = 96 * 1024;

impl Batch {
    /// Start a batch on `nl`'s sequence numbers. With `genid`, the kernel
    /// refuses the whole batch with ERESTART if the ruleset changed since
    /// that generation was read (optimistic concurrency).
    pub fn new(genid: Option<u32>) -> Batch {
        Batch {
            genid,
            ops: Vec::new(),
        }
    }

    /// BATCH_BEGIN, `ops`, BATCH_END laid out in `frames`.
    fn build(ops: &[(u16, u16, Vec<u8>)], genid: Option<u32>, mut frames: Frames) -> Frames {
        let mut m = Msg::with_header(&nfgenmsg(NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES));
        if let Some(g) = genid {
            m.put_be32(NFNL_BATCH_GENID, g);
        }
        frames.batch_seq = frames.push(NFNL_MSG_BATCH_BEGIN, 0, m.as_bytes(), false);
        for (i, (ty, flags, body)) in ops.iter().enumerate() {
            frames.push(msg_type(*ty), *flags, body, i + 1 == ops.len());
        }
        let end = nfgenmsg(NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES);
        frames.push(NFNL_MSG_BATCH_END, 0, &end, false);
        frames
    }

    fn op(&mut self, m: u16, flags: u16, body: Vec<u8>) -> &mut Self {
        self.ops.push((m, flags, body));
        self
    }

    /// `add table` (no EXCL: an existing table is kept as it is).
    pub fn add_table(&mut self, t: &Table) -> &mut Self {
        self.op(NFT_MSG_NEWTABLE, 0, t.encode())
    }

    /// `add chain` (no EXCL: an existing chain with the same hook is kept).
    pub fn add_chain(&mut self, c: &Chain) -> &mut Self {
        self.op(NFT_MSG_NEWCHAIN, NLM_F_CREATE, c.encode())
    }

    /// `add rule`: append at the end of its chain.
    pub fn add_rule(&mut self, r: &Rule) -> &mut Self {
        self.op(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, r.encode())
    }

    /// `flush chain`: delete every rule of the chain.
    pub fn flush_chain(&mut self, family: u8, table: &str, chain: &str) -> &mut Self {
        self.op(NFT_MSG_DELRULE, 0, rule_ref(family, table, chain, None))
    }

    /// `delete rule ... handle N`.
    pub fn del_rule(&mut self, family: u8, table: &str, chain: &str, handle: u64) -> &mut Self {
        self.op(
            NFT_MSG_DELRULE,
            0,
            rule_ref(family, table, chain, Some(handle)),
        )
    }

    /// `delete rule` for each of `rules` that has a handle (a rule as listed
    /// names its own family, table and chain).
    pub fn del_rules<'r>(&mut self, rules: impl IntoIterator<Item = &'r Rule>) -> &mut Self {
        for r in rules {
            if let Some(h) = r.handle {
                self.del_rule(r.family, &r.table, &r.chain, h);
            }
        }
        self
    }

    /// `delete chain` (with its rules; fails with EBUSY while jumped to).
    pub fn del_chain(&mut self, family: u8, table: &str, chain: &str) -> &mut Self {
        let mut m = Msg::with_header(&nfgenmsg(family, 0));
        m.put_str(NFTA_CHAIN_TABLE, table)
            .put_str(NFTA_CHAIN_NAME, chain);
        self.op(NFT_MSG_DELCHAIN, 0, m.into_bytes())
    }

    /// How many operations the batch holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The datagram with sequence numbers from `seq`: the operations closed
    /// by BATCH_END (one transaction, however large: for golden tests).
    #[cfg(test)]
    pub fn finish(self, seq: u32) -> Frames {
        Self::build(&self.ops, self.genid, Frames::starting_at(seq))
    }

    /// Send the transaction and wait for the kernel's verdict on every
    /// operation. An empty batch is not sent. One too large for a datagram
    /// goes as several transactions in order (only the first is pinned to
    /// the generation; pinned batches, which create what is missing, are
    /// small).
    pub fn commit(self, nl: &Netlink, what: &str) -> Result<(), NlError> {
        let mut start = 0;
        let mut first = true;
        while start < self.ops.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < self.ops.len()
                && (end == start || bytes + self.ops[end].2.len() <= MAX_BATCH_BYTES)
            {
                bytes += self.ops[end].2.len();
                end += 1;
            }
            let genid = if first { self.genid } else { None };
            nl.send_batch(
                what,
                &Self::build(&self.ops[start..end], genid, nl.frames()),
            )?;
            first = false;
            start = end;
        }
        Ok(())
    }
}

/// The ruleset generation (NFT_MSG_GETGEN), for [`Batch::new`].
pub fn genid(nl: &Netlink) -> Result<u32, NlError> {
    let r = nl.get(
        "nftables: get generation",
        msg_type(NFT_MSG_GETGEN),
        &nfgenmsg(NFPROTO_UNSPEC, 0),
    )?;
    Attrs::new(r.payload.get(4..).unwrap_or(&[]))
        .get(NFTA_GEN_ID)
        .and_then(|a| a.be32())
        .ok_or_else(|| NlError::new("nftables: get generation", Errno::EBADMSG))
}

fn body_of(r: &Reply) -> Option<(u8, Attrs<'_>)> {
    Some((*r.payload.first()?, Attrs::new(r.payload.get(4..)?)))
}

/// The table `family name`, or `None` if it does not exist.
#[cfg(test)]
pub fn get_table(nl: &Netlink, family: u8, name: &str) -> Result<Option<Table>, NlError> {
    let mut m = Msg::with_header(&nfgenmsg(family, 0));
    m.put_str(NFTA_TABLE_NAME, name);
    match nl.get(
        "nftables: get table",
        msg_type(NFT_MSG_GETTABLE),
        m.as_bytes(),
    ) {
        Ok(r) => Ok(body_of(&r).and_then(|(f, a)| Table::decode(f, a))),
        Err(e) if e.errno == Errno::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every chain of table `family table` (empty if the table does not exist).
pub fn list_chains(nl: &Netlink, family: u8, table: &str) -> Result<Vec<Chain>, NlError> {
    let mut m = Msg::with_header(&nfgenmsg(family, 0));
    m.put_str(NFTA_CHAIN_TABLE, table);
    let replies = nl.dump(
        "nftables: list chains",
        msg_type(NFT_MSG_GETCHAIN),
        m.as_bytes(),
    )?;
    Ok(replies
        .iter()
        .filter_map(body_of)
        .filter_map(|(f, a)| Chain::decode(f, a))
        .filter(|c| c.family == family && c.table == table)
        .collect())
}

/// The rules of table `family table`, of one chain or of all, in chain
/// order. A missing table or chain gives an empty list.
pub fn list_rules(
    nl: &Netlink,
    family: u8,
    table: &str,
    chain: Option<&str>,
) -> Result<Vec<Rule>, NlError> {
    dump_rules(nl, family, table, chain, Rule::decode)
}

/// The rule dump behind [`list_rules`] and `xt::list_xt_rules`: each rule
/// of `family table` (of `chain`, or all) decoded by `decode`, in chain
/// order; a missing table or chain gives an empty list.
fn dump_rules<T>(
    nl: &Netlink,
    family: u8,
    table: &str,
    chain: Option<&str>,
    decode: impl Fn(u8, Attrs<'_>) -> Option<T>,
) -> Result<Vec<T>, NlError> {
    let mut m = Msg::with_header(&nfgenmsg(family, 0));
    m.put_str(NFTA_RULE_TABLE, table);
    if let Some(c) = chain {
        m.put_str(NFTA_RULE_CHAIN, c);
    }
    let replies = match nl.dump(
        "nftables: list rules",
        msg_type(NFT_MSG_GETRULE),
        m.as_bytes(),
    ) {
        Ok(r) => r,
        Err(e) if e.errno == Errno::ENOENT => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let named = |a: &Attrs<'_>, ty: u16, want: &str| {
        a.get(ty).and_then(|x| x.str()).is_some_and(|n| n == want)
    };
    Ok(replies
        .iter()
        .filter_map(body_of)
        .filter(|(f, a)| {
            *f == family
                && named(a, NFTA_RULE_TABLE, table)
                && chain.is_none_or(|c| named(a, NFTA_RULE_CHAIN, c))
        })
        .filter_map(|(f, a)| decode(f, a))
        .collect())
}

/// A rule's expressions (`NFTA_RULE_EXPRESSIONS`), each decoded by
/// `decode`; none when the attribute is absent.
fn rule_exprs<T>(a: &Attrs<'_>, decode: impl Fn(&[u8]) -> T) -> Vec<T> {
    a.get(NFTA_RULE_EXPRESSIONS)
        .map(|l| {
            l.nested()
                .filter(|e| e.ty == NFTA_LIST_ELEM)
                .map(|e| decode(e.payload))
                .collect()
        })
        .unwrap_or_default()
}

/// Fuzzing only: decode a reply body as a table, a chain and a rule.
#[cfg(fuzzing)]
pub fn fuzz_decode(payload: &[u8]) -> Option<Rule> {
    let (f, a) = (*payload.first()?, Attrs::new(payload.get(4..)?));
    let _ = Table::decode(f, a.clone());
    let _ = Chain::decode(f, a.clone());
    Rule::decode(f, a)
}

#[cfg(test)]
mod tests;
