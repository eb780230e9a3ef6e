//! Policy routing rules (RTM_*RULE) and the table ids routes use.
//!
//! Only what source-based routing needs: `from <ip>/<len> lookup <table>`
//! rules (add, delete, dump) and the set of table ids any route of any type
//! lives in.

use super::attr::{ip_bytes, ip_from_bytes, Attrs, Msg};
use super::consts::{AF_UNSPEC, NLM_F_CREATE, NLM_F_EXCL, RTM_GETROUTE};
use super::socket::{Netlink, NlError};
use ipnet::IpNet;
use std::collections::BTreeSet;

// linux/rtnetlink.h, linux/fib_rules.h
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;
pub const RTM_GETRULE: u16 = 34;
pub const FRA_SRC: u16 = 2;
pub const FRA_PRIORITY: u16 = 6;
pub const FRA_TABLE: u16 = 15;
pub const FR_ACT_TO_TBL: u8 = 1;
const RTA_TABLE: u16 = 15;

/// A rule as we add it or read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub family: u8,
    /// `from` selector (None: all).
    pub src: Option<IpNet>,
    pub table: u32,
    /// None when adding: the kernel picks one below the last.
    pub priority: Option<u32>,
    pub action: u8,
}

impl Rule {
    /// `from <src> lookup <table>`.
    pub fn from_src(src: IpNet, table: u32) -> Rule {
        Rule {
            family: super::addr::family_of(&src.addr()),
            src: Some(src),
            table,
            priority: None,
            action: FR_ACT_TO_TBL,
        }
    }
}

/// The 12-byte `struct fib_rule_hdr`.
fn fib_rule_hdr(family: u8, src_len: u8, table: u8, action: u8) -> [u8; 12] {
    [family, 0, src_len, 0, table, 0, 0, action, 0, 0, 0, 0]
}

/// RTM_NEWRULE / RTM_DELRULE body.
pub fn rule_request(r: &Rule) -> Msg {
    let src_len = r.src.map(|s| s.prefix_len()).unwrap_or(0);
    let table_u8 = if r.table < 256 { r.table as u8 } else { 0 };
    let mut m = Msg::with_header(&fib_rule_hdr(r.family, src_len, table_u8, r.action));
    if let Some(src) = r.src {
        m.put(FRA_SRC, &ip_bytes(&src.addr()));
    }
    if let Some(p) = r.priority {
        m.put_u32(FRA_PRIORITY, p);
    }
    m.put_u32(FRA_TABLE, r.table);
    m
}

pub fn parse_rule(payload: &[u8]) -> Option<Rule> {
    let family = *payload.first()?;
    let src_len = *payload.get(2)?;
    let mut table = *payload.get(4)? as u32;
    let action = *payload.get(7)?;
    let mut rule = Rule {
        family,
        src: None,
        table: 0,
        priority: None,
        action,
    };
    for a in Attrs::new(payload.get(12..)?) {
        match a.ty {
            FRA_SRC => rule.src = IpNet::new(ip_from_bytes(a.payload)?, src_len).ok(),
            FRA_PRIORITY => rule.priority = a.u32(),
            FRA_TABLE => table = a.u32().unwrap_or(table),
            _ => {}
        }
    }
    rule.table = table;
    Some(rule)
}

impl Netlink {
    /// Rules of one family, or all (AF_UNSPEC).
    pub fn rules(&self, family: u8) -> Result<Vec<Rule>, NlError> {
        let m = Msg::with_header(&fib_rule_hdr(family, 0, 0, 0));
        Ok(self
            .dump("dump rules", RTM_GETRULE, m.as_bytes())?
            .iter()
            .filter_map(|r| parse_rule(&r.payload))
            .collect())
    }

    pub fn rule_add(&self, r: &Rule) -> Result<(), NlError> {
        let what = match r.src {
            Some(s) => format!("add rule from {s} lookup {}", r.table),
            None => format!("add rule lookup {}", r.table),
        };
        self.request(
            &what,
            RTM_NEWRULE,
            NLM_F_CREATE | NLM_F_EXCL,
            rule_request(r).as_bytes(),
        )
    }

    /// Delete a rule (one already gone is success).
    pub fn rule_del(&self, r: &Rule) -> Result<(), NlError> {
        let what = format!("delete rule lookup {}", r.table);
        self.request_delete(&what, RTM_DELRULE, rule_request(r).as_bytes())
    }

    /// Every table id any route (of any type, any family) lives in.
    pub fn route_tables(&self) -> Result<BTreeSet<u32>, NlError> {
        let m = Msg::with_header(&[AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = BTreeSet::new();
        for r in self.dump("dump routes", RTM_GETROUTE, m.as_bytes())? {
            let Some(&t) = r.payload.get(4) else { continue };
            let t = Attrs::new(r.payload.get(12..).unwrap_or_default())
                .get(RTA_TABLE)
                .and_then(|a| a.u32())
                .unwrap_or(t as u32);
            out.insert(t);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_from_src_golden_bytes() {
        let r = Rule::from_src("10.99.12.2/32".parse().unwrap(), 100);
        #[rustfmt::skip]
        let want = [
            2u8, 0, 32, 0, 100, 0, 0, 1, 0, 0, 0, 0, // fib_rule_hdr: inet, src /32, table 100, to_tbl
            8, 0, 2, 0, 10, 99, 12, 2,               // FRA_SRC
            8, 0, 15, 0, 100, 0, 0, 0,               // FRA_TABLE
        ];
        assert_eq!(rule_request(&r).as_bytes(), &want[..]);
        let back = parse_rule(&want).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn big_tables_and_priorities_round_trip() {
        let mut r = Rule::from_src("fd00::5/128".parse().unwrap(), 70000);
        r.priority = Some(32765);
        let m = rule_request(&r);
        let b = m.as_bytes();
        assert_eq!(&b[..8], &[10, 0, 128, 0, 0, 0, 0, 1]);
        assert_eq!(parse_rule(b).unwrap(), r);
    }
}
