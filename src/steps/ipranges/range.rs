//! Ranges and range sets: their canonical form and validation, membership,
//! overlap, and the reference's round-robin iteration order.
//!
//! IPs are handled as integers of their family (v4 in the low 32 bits), so
//! arithmetic never mixes families.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP as an integer, for ordering and stepping within one family.
pub fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_int(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// The next IP of the same family, or `None` past the family's last one.
pub fn next_ip(ip: IpAddr) -> Option<IpAddr> {
    let max = if ip.is_ipv4() {
        u32::MAX as u128
    } else {
        u128::MAX
    };
    let n = to_int(ip);
    (n < max).then(|| from_int(ip.is_ipv4(), n + 1))
}

/// Compare two IPs of the same family; `None` across families (Go's
/// `ip.Cmp` returns -2 there, which no check treats as out of range).
fn cmp(a: IpAddr, b: IpAddr) -> Option<std::cmp::Ordering> {
    (a.is_ipv4() == b.is_ipv4()).then(|| to_int(a).cmp(&to_int(b)))
}

/// Which field of a range a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Subnet,
    RangeStart,
    RangeEnd,
    Gateway,
}

impl Field {
    pub fn json_name(self) -> &'static str {
        match self {
            Field::Subnet => "subnet",
            Field::RangeStart => "rangeStart",
            Field::RangeEnd => "rangeEnd",
            Field::Gateway => "gateway",
        }
    }
}

/// A range as written in the config (already parsed as IPs, not checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRange {
    /// The subnet as written, host bits included.
    pub subnet: Option<IpNet>,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

/// A canonical range: `subnet` is a network address, `start..=end` lies in
/// it, and `gateway` is set (it may lie anywhere, as in the reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

/// Is `addr` in `subnet` and, where given, within `start..=end`? The bounds
/// are compared only when they are of the same family (as Go's `Contains`
/// does while a range is still being canonicalized).
fn within(subnet: &IpNet, start: Option<IpAddr>, end: Option<IpAddr>, addr: IpAddr) -> bool {
    if addr.is_ipv4() != subnet.addr().is_ipv4() || !subnet.contains(&addr) {
        return false;
    }
    if let Some(s) = start {
        if cmp(addr, s) == Some(std::cmp::Ordering::Less) {
            return false;
        }
    }
    if let Some(e) = end {
        if cmp(addr, e) == Some(std::cmp::Ordering::Greater) {
            return false;
        }
    }
    true
}

/// The last usable IP of a subnet: broadcast - 1 for v4, all-ones for v6.
fn last_ip(subnet: &IpNet) -> IpAddr {
    match subnet {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.broadcast()).wrapping_sub(1))),
        IpNet::V6(n) => IpAddr::V6(n.broadcast()),
    }
}

impl RawRange {
    /// The reference's `Range.Canonicalize`, with its messages: the field
    /// an error is about is returned with it.
    pub fn canonicalize(&self) -> Result<Range, (Field, String)> {
        let Some(written) = self.subnet else {
            return Err((Field::Subnet, "IP <nil> not v4 nor v6".into()));
        };
        let (bits, prefix) = match written {
            IpNet::V4(n) => (32u8, n.prefix_len()),
            IpNet::V6(n) => (128u8, n.prefix_len()),
        };
        if prefix > bits - 2 {
            return Err((
                Field::Subnet,
                format!("Network {written} too small to allocate from"),
            ));
        }
        // An IPv4-mapped IPv6 subnet is v4 to Go, with a v6 mask.
        if let IpNet::V6(n) = written {
            if n.addr().to_ipv4_mapped().is_some() {
                return Err((
                    Field::Subnet,
                    "IPNet IP and Mask version mismatch".to_string(),
                ));
            }
        }
        let subnet = written.trunc();
        if subnet.addr() != written.addr() {
            return Err((
                Field::Subnet,
                format!(
                    "Network has host bits set. For a subnet mask of length {prefix} the network address is {}",
                    subnet.addr()
                ),
            ));
        }
        let first = next_ip(subnet.addr()).unwrap_or(subnet.addr());
        // Deliberate difference: the reference takes a gateway of the other
        // family and the main plugin fails later, after changes.
        if let Some(g) = self
            .gateway
            .filter(|g| g.is_ipv4() != subnet.addr().is_ipv4())
        {
            return Err((
                Field::Gateway,
                format!("gateway {g} is not of the family of network {subnet}"),
            ));
        }
        let gateway = self.gateway.unwrap_or(first);
        let start = match self.range_start {
            Some(s) => {
                if !within(&subnet, None, self.range_end, s) {
                    return Err((
                        Field::RangeStart,
                        format!("RangeStart {s} not in network {subnet}"),
                    ));
                }
                s
            }
            None => first,
        };
        let end = match self.range_end {
            Some(e) => {
                if !within(&subnet, Some(start), None, e) {
                    return Err((
                        Field::RangeEnd,
                        format!("RangeEnd {e} not in network {subnet}"),
                    ));
                }
                e
            }
            None => last_ip(&subnet),
        };
        // Deliberate difference: the reference accepts a v4 rangeStart equal
        // to the broadcast address with no rangeEnd (end = broadcast - 1),
        // then hands out the broadcast address and walks past the subnet.
        if cmp(start, end) == Some(std::cmp::Ordering::Greater) {
            return Err((
                Field::RangeStart,
                format!("RangeStart {start} is after RangeEnd {end}"),
            ));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }
}

impl Range {
    /// An allocatable address of this range (in the subnet, within
    /// start..=end; the gateway counts as contained).
    pub fn contains(&self, addr: IpAddr) -> bool {
        within(&self.subnet, Some(self.start), Some(self.end), addr)
    }

    /// Go's `Range.Overlaps`: either range contains an end of the other.
    pub fn overlaps(&self, other: &Range) -> bool {
        if self.start.is_ipv4() != other.start.is_ipv4() {
            return false;
        }
        self.contains(other.start)
            || self.contains(other.end)
            || other.contains(self.start)
            || other.contains(self.end)
    }

    /// How many addresses the iterator can hand out (the gateway skipped).
    pub fn capacity(&self) -> u128 {
        let size = to_int(self.end)
            .saturating_sub(to_int(self.start))
            .saturating_add(1);
        if self.contains(self.gateway) {
            size - 1
        } else {
            size
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The ranges one address is allocated from: one family, no overlaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

/// Why a range set is invalid: a range's field, or the set as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    Range(usize, Field, String),
    Set(String),
}

impl RangeSet {
    /// Go's `RangeSet.Canonicalize`.
    pub fn canonicalize(raw: &[RawRange]) -> Result<RangeSet, SetError> {
        if raw.is_empty() {
            return Err(SetError::Set("empty range set".into()));
        }
        let mut out: Vec<Range> = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let r = r
                .canonicalize()
                .map_err(|(f, m)| SetError::Range(i, f, m))?;
            if let Some(first) = out.first() {
                if first.start.is_ipv4() != r.start.is_ipv4() {
                    return Err(SetError::Set("mixed address families".into()));
                }
            }
            out.push(r);
        }
        for (i, a) in out.iter().enumerate() {
            for b in &out[i + 1..] {
                if a.overlaps(b) {
                    return Err(SetError::Set(format!("subnets {a} and {b} overlap")));
                }
            }
        }
        Ok(RangeSet(out))
    }

    pub fn is_v4(&self) -> bool {
        self.0.first().is_some_and(|r| r.start.is_ipv4())
    }

    /// The range holding `addr`, if any.
    pub fn range_for(&self, addr: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(addr))
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.range_for(addr).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// Addresses the set can hand out in total (saturating).
    pub fn capacity(&self) -> u128 {
        self.0
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.capacity()))
    }

    /// Is `addr` one the iterator could hand out (in a range, and not that
    /// range's gateway)?
    pub fn allocatable(&self, addr: IpAddr) -> bool {
        self.range_for(addr).is_some_and(|r| r.gateway != addr)
    }

    /// The reference's iteration order: from the address after
    /// `last_reserved` when the set contains it, else from the first range's
    /// start; through the ranges in order, wrapping around, skipping each
    /// range's gateway, ending after one full cycle.
    pub fn iter_from(&self, last_reserved: Option<IpAddr>) -> RangeIter<'_> {
        let mut it = RangeIter {
            set: self,
            idx: 0,
            cur: None,
            start: None,
            budget: self.capacity().saturating_add(self.0.len() as u128 + 1),
        };
        if let Some(last) = last_reserved {
            if let Some(i) = self.0.iter().position(|r| r.contains(last)) {
                it.idx = i;
                it.cur = Some(last);
            }
        }
        it
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The candidates of one allocation, in the reference's order.
pub struct RangeIter<'a> {
    set: &'a RangeSet,
    idx: usize,
    cur: Option<IpAddr>,
    start: Option<IpAddr>,
    /// A bound on steps, so no configuration can make the walk endless.
    budget: u128,
}

impl<'a> Iterator for RangeIter<'a> {
    /// A candidate address and the range it belongs to.
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.budget == 0 || self.set.0.is_empty() {
                return None;
            }
            self.budget -= 1;
            let mut r = &self.set.0[self.idx];
            match self.cur {
                None => {
                    // First call without a last reservation: rangeStart,
                    // inclusive.
                    self.cur = Some(r.start);
                    self.start = Some(r.start);
                    if r.start == r.gateway {
                        continue;
                    }
                    return Some((r.start, r));
                }
                Some(cur) => {
                    let next = if cur == r.end {
                        self.idx = (self.idx + 1) % self.set.0.len();
                        r = &self.set.0[self.idx];
                        r.start
                    } else {
                        next_ip(cur)?
                    };
                    self.cur = Some(next);
                    match self.start {
                        None => self.start = Some(next),
                        Some(s) if s == next => return None,
                        Some(_) => {}
                    }
                    if next == r.gateway {
                        continue;
                    }
                    return Some((next, r));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn raw(subnet: &str) -> RawRange {
        RawRange {
            subnet: Some(crate::cni::types::parse_cidr(subnet).unwrap()),
            ..Default::default()
        }
    }

    fn set(subnets: &[&str]) -> RangeSet {
        let raws: Vec<RawRange> = subnets.iter().map(|s| raw(s)).collect();
        RangeSet::canonicalize(&raws).unwrap()
    }

    fn walk(s: &RangeSet, last: Option<&str>) -> Vec<String> {
        s.iter_from(last.map(ip))
            .map(|(a, _)| a.to_string())
            .collect()
    }

    #[test]
    fn defaults_skip_network_and_v4_broadcast_but_not_v6_all_ones() {
        let r = raw("192.168.1.0/29").canonicalize().unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("192.168.1.1"), ip("192.168.1.6"), ip("192.168.1.1"))
        );
        let r = raw("2001:db8:1::/64").canonicalize().unwrap();
        assert_eq!(r.start, ip("2001:db8:1::1"));
        assert_eq!(r.end, ip("2001:db8:1::ffff:ffff:ffff:ffff"));
    }

    #[test]
    fn validation_messages_match_the_reference() {
        let e = |s: &str| raw(s).canonicalize().unwrap_err();
        assert_eq!(
            e("10.9.0.1/29"),
            (
                Field::Subnet,
                "Network has host bits set. For a subnet mask of length 29 the network address is 10.9.0.0".into()
            )
        );
        assert_eq!(
            e("10.9.0.0/31").1,
            "Network 10.9.0.0/31 too small to allocate from"
        );
        assert_eq!(
            e("2001:db8::/127").1,
            "Network 2001:db8::/127 too small to allocate from"
        );
        assert!(raw("10.9.0.0/30").canonicalize().is_ok());
        assert!(raw("2001:db8::/126").canonicalize().is_ok());
        let mut r = raw("10.9.0.0/24");
        r.range_start = Some(ip("10.9.1.1"));
        assert_eq!(
            r.canonicalize().unwrap_err(),
            (
                Field::RangeStart,
                "RangeStart 10.9.1.1 not in network 10.9.0.0/24".into()
            )
        );
        let mut r = raw("10.9.0.0/24");
        r.range_start = Some(ip("10.9.0.20"));
        r.range_end = Some(ip("10.9.0.10"));
        assert_eq!(
            r.canonicalize().unwrap_err().1,
            "RangeStart 10.9.0.20 not in network 10.9.0.0/24",
            "the start is checked against the written end, as Go does"
        );
        let mut r = raw("10.9.0.0/24");
        r.range_end = Some(ip("fd00::1"));
        assert_eq!(
            r.canonicalize().unwrap_err(),
            (
                Field::RangeEnd,
                "RangeEnd fd00::1 not in network 10.9.0.0/24".into()
            )
        );
        assert_eq!(
            RawRange::default().canonicalize().unwrap_err().1,
            "IP <nil> not v4 nor v6"
        );
    }

    #[test]
    fn broadcast_start_is_refused_instead_of_walking_off_the_subnet() {
        let mut r = raw("10.9.0.0/24");
        r.range_start = Some(ip("10.9.0.255"));
        assert_eq!(
            r.canonicalize().unwrap_err(),
            (
                Field::RangeStart,
                "RangeStart 10.9.0.255 is after RangeEnd 10.9.0.254".into()
            )
        );
    }

    #[test]
    fn set_validation() {
        assert_eq!(
            RangeSet::canonicalize(&[]).unwrap_err(),
            SetError::Set("empty range set".into())
        );
        assert_eq!(
            RangeSet::canonicalize(&[raw("10.9.0.0/24"), raw("fd00::/64")]).unwrap_err(),
            SetError::Set("mixed address families".into())
        );
        assert_eq!(
            RangeSet::canonicalize(&[raw("10.9.0.0/24"), raw("10.9.0.0/25")]).unwrap_err(),
            SetError::Set("subnets 10.9.0.1-10.9.0.254 and 10.9.0.1-10.9.0.126 overlap".into())
        );
        assert!(matches!(
            RangeSet::canonicalize(&[raw("10.9.0.0/24"), raw("10.9.1.1/24")]).unwrap_err(),
            SetError::Range(1, Field::Subnet, _)
        ));
        // Same subnet, disjoint start..end: allowed.
        let mut a = raw("10.9.0.0/24");
        a.range_end = Some(ip("10.9.0.100"));
        let mut b = raw("10.9.0.0/24");
        b.range_start = Some(ip("10.9.0.101"));
        assert!(RangeSet::canonicalize(&[a, b]).is_ok());
    }

    // The reference's RangeIter cases.
    #[test]
    fn iterates_from_the_beginning_skipping_the_gateway() {
        let s = set(&["192.168.1.0/29"]);
        assert_eq!(
            walk(&s, None),
            [
                "192.168.1.2",
                "192.168.1.3",
                "192.168.1.4",
                "192.168.1.5",
                "192.168.1.6"
            ]
        );
    }

    #[test]
    fn iterates_from_the_end_and_from_the_middle() {
        let s = set(&["192.168.1.0/29"]);
        assert_eq!(
            walk(&s, Some("192.168.1.6")),
            [
                "192.168.1.2",
                "192.168.1.3",
                "192.168.1.4",
                "192.168.1.5",
                "192.168.1.6"
            ]
        );
        assert_eq!(
            walk(&s, Some("192.168.1.3")),
            [
                "192.168.1.4",
                "192.168.1.5",
                "192.168.1.6",
                "192.168.1.2",
                "192.168.1.3"
            ]
        );
    }

    #[test]
    fn last_reserved_outside_the_set_starts_from_the_beginning() {
        let s = set(&["10.0.0.0/29"]);
        assert_eq!(walk(&s, Some("10.0.0.128"))[0], "10.0.0.2");
        assert_eq!(walk(&s, Some("fd00::1"))[0], "10.0.0.2");
    }

    #[test]
    fn round_robin_across_ranges_and_back() {
        let s = set(&["10.0.0.0/30", "10.0.1.0/30"]);
        assert_eq!(walk(&s, None), ["10.0.0.2", "10.0.1.2"]);
        assert_eq!(walk(&s, Some("10.0.0.2")), ["10.0.1.2", "10.0.0.2"]);
        let s = set(&["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"]);
        assert_eq!(walk(&s, Some("10.0.2.2"))[0], "10.0.0.2");
    }

    #[test]
    fn ranges_starting_at_the_network_address() {
        // The reference's multi-range case: rangeStart may be the network
        // address itself; after the last IP of the first range comes the
        // first of the next.
        let mk = |net: &str, s: &str, e: &str| RawRange {
            subnet: Some(crate::cni::types::parse_cidr(net).unwrap()),
            range_start: Some(ip(s)),
            range_end: Some(ip(e)),
            gateway: None,
        };
        let s = RangeSet::canonicalize(&[
            mk("192.168.1.0/30", "192.168.1.0", "192.168.1.3"),
            mk("192.168.2.0/30", "192.168.2.0", "192.168.2.3"),
        ])
        .unwrap();
        assert_eq!(walk(&s, Some("192.168.1.3"))[0], "192.168.2.0");
        assert_eq!(walk(&s, None)[0], "192.168.1.0");
        assert_eq!(walk(&s, None).len(), 6, "two gateways skipped");
    }

    #[test]
    fn v6_includes_all_ones_and_wraps() {
        let s = set(&["2001:db8::/126"]);
        assert_eq!(walk(&s, None), ["2001:db8::2", "2001:db8::3"]);
        assert_eq!(
            walk(&s, Some("2001:db8::3")),
            ["2001:db8::2", "2001:db8::3"]
        );
    }

    #[test]
    fn a_set_of_only_gateways_yields_nothing_and_ends() {
        let r = RawRange {
            subnet: Some(crate::cni::types::parse_cidr("10.0.0.0/24").unwrap()),
            range_start: Some(ip("10.0.0.1")),
            range_end: Some(ip("10.0.0.1")),
            gateway: None,
        };
        let s = RangeSet::canonicalize(&[r]).unwrap();
        assert!(walk(&s, None).is_empty());
        assert!(walk(&s, Some("10.0.0.1")).is_empty());
        assert_eq!(s.capacity(), 0);
    }

    #[test]
    fn capacity_counts_what_the_iterator_yields() {
        for subnets in [
            &["10.0.0.0/29"][..],
            &["10.0.0.0/30", "10.0.1.0/28"],
            &["2001:db8::/120"],
        ] {
            let s = set(subnets);
            assert_eq!(s.capacity(), walk(&s, None).len() as u128, "{subnets:?}");
        }
    }

    #[test]
    fn display_like_go() {
        let s = set(&["10.0.0.0/30", "10.0.1.0/30"]);
        assert_eq!(s.to_string(), "10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2");
    }
}
