//! nf_tables state of masquerade (`inet cni_plugins_masquerade`), portmap
//! (`ip|ip6 cni_hostport`) and the bridge's MAC spoof check (`bridge
//! nat`), which cnibox and the Go reference write with the same names and
//! comments. Removal is the plugins' own teardown step for the attachment.

use super::{judge, Finding, Fix, Kind, Scan, Verdict};
use crate::netlink::nftables::consts::*;
use crate::netlink::nftables::{self as nf, Expr, Rule};
use crate::netlink::Netlink;
use crate::steps::hostport::nft as hp;
use crate::steps::masq::nft as mq;
use crate::steps::spoofchk;
use crate::tool::doctor::live::Live;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// An address held in a 4- or 16-byte value.
fn ip_of(data: &[u8]) -> Option<IpAddr> {
    match data.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(data).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(data).ok()?)),
        _ => None,
    }
}

/// The source address of a `masq_checks` rule (its first address match).
fn saddr(r: &Rule) -> Option<IpAddr> {
    r.exprs.iter().find_map(|e| match e {
        Expr::Cmp { data, .. } => ip_of(data),
        _ => None,
    })
}

/// `<hash>, net: N, if: I, id: C` (cut at 128 bytes).
fn parse_masq_comment(c: &str) -> Option<(&str, &str, &str, &str)> {
    let (hash, rest) = c.split_once(", net: ")?;
    let (net, rest) = rest.split_once(", if: ")?;
    let (ifname, id) = rest.split_once(", id: ")?;
    Some((hash, net, ifname, id))
}

pub fn scan_masq(nl: &Netlink, live: &mut Live, out: &mut Scan) {
    let rules = match nf::list_rules(nl, NFPROTO_INET, mq::TABLE, Some(mq::MASQ_CHAIN)) {
        Ok(r) => r,
        Err(e) if e.is_unsupported() => return,
        Err(e) => {
            out.errors.push(format!("masquerade rules: {e}"));
            return;
        }
    };
    out.inspected(Kind::Masquerade, rules.len());
    // One finding per attachment (a dual-stack one has two rules), judged
    // on all its addresses.
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut net_hashes: std::collections::HashMap<String, String> = Default::default();
    let mut addrs: std::collections::HashMap<&[u8], Vec<IpAddr>> = Default::default();
    for r in &rules {
        let (Some(c), Some(ip)) = (r.comment.as_deref(), saddr(r)) else {
            continue;
        };
        addrs.entry(c.get(..33).unwrap_or(c)).or_default().push(ip);
    }
    for r in &rules {
        let Some(raw) = r.comment.as_deref() else {
            continue;
        };
        let comment = String::from_utf8_lossy(raw).into_owned();
        let ips: Vec<IpAddr> = addrs
            .get(raw.get(..33).unwrap_or(raw))
            .cloned()
            .unwrap_or_default();
        let Some((hash, net, ifname, id)) = parse_masq_comment(&comment) else {
            out.push(Finding {
                kind: Kind::Masquerade,
                what: format!("rule {comment:?}"),
                place: format!("inet {} {}", mq::TABLE, mq::MASQ_CHAIN),
                by: "?",
                verdict: Verdict::Unknown,
                why: "comment not in the plugins' format".into(),
                fix: Fix::None,
                owner: None,
                ips,
            });
            continue;
        };
        if seen.insert(hash.to_string(), ()).is_some() {
            continue;
        }
        // The network's half of the hash is the same for all its rules.
        let net_hash = net_hashes
            .entry(net.to_string())
            .or_insert_with(|| mq::network_hash(net));
        let complete = hash.split_once('-').is_some_and(|(n, a)| {
            n == net_hash.as_str()
                && a == crate::steps::masq::sha512_hex(&format!("{ifname}:{id}"), 16)
        });
        let alive = live.is_alive_id(id) || (!complete && live.alive_id_prefix(id));
        let Some((mut verdict, mut why)) = (if alive {
            None
        } else {
            judge(live, Some(id), &ips)
        }) else {
            continue;
        };
        if !complete && verdict.is_leaked() {
            verdict = Verdict::Unknown;
            why = "container ID cut short in the comment: cannot tear down by name".into();
        }
        if verdict.is_leaked() {
            live.mark_dead(net, id);
        }
        live.known.insert((net.to_string(), id.to_string()));
        out.push(Finding {
            kind: Kind::Masquerade,
            what: format!(
                "{} from {}/{}",
                ips.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                id,
                ifname
            ),
            place: format!("inet {} (network {net})", mq::TABLE),
            by: "cnibox or Go",
            verdict,
            why,
            fix: Fix::Masq {
                network: net.into(),
                ifname: ifname.into(),
                container_id: id.into(),
            },
            owner: Some(id.to_string()),
            ips,
        });
    }
}

/// The container address a portmap rule forwards to or masquerades.
fn portmap_ip(r: &Rule) -> Option<IpAddr> {
    if r.chain == hp::MASQUERADING {
        // `ip saddr X ip daddr <cip> masquerade`: the last address.
        return r.exprs.iter().rev().find_map(|e| match e {
            Expr::Cmp { data, .. } => ip_of(data),
            _ => None,
        });
    }
    r.exprs.iter().find_map(|e| match e {
        Expr::Immediate { data, .. } => ip_of(data),
        _ => None,
    })
}

pub fn scan_portmap(nl: &Netlink, live: &mut Live, out: &mut Scan) {
    // Container ID -> (addresses, families, rule count).
    let mut by_id: BTreeMap<String, (Vec<IpAddr>, usize)> = BTreeMap::new();
    for family in [NFPROTO_IPV4, NFPROTO_IPV6] {
        let rules = match nf::list_rules(nl, family, hp::TABLE, None) {
            Ok(r) => r,
            Err(e) if e.is_unsupported() => return,
            Err(e) => {
                out.errors.push(format!("portmap rules: {e}"));
                return;
            }
        };
        for r in rules
            .iter()
            .filter(|r| hp::CONTAINER_CHAINS.contains(&r.chain.as_str()))
        {
            out.inspected(Kind::Portmap, 1);
            let Some(c) = r.comment.as_deref() else {
                continue;
            };
            let e = by_id
                .entry(String::from_utf8_lossy(c).into_owned())
                .or_default();
            e.1 += 1;
            if let Some(ip) = portmap_ip(r) {
                if !ip.is_loopback() && !ip.is_unspecified() && !e.0.contains(&ip) {
                    e.0.push(ip);
                }
            }
        }
    }
    for (id, (ips, n)) in by_id {
        let Some((verdict, why)) = judge(live, Some(&id), &ips) else {
            continue;
        };
        if verdict.is_leaked() {
            live.mark_dead("", &id);
        }
        let to: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        out.push(Finding {
            kind: Kind::Portmap,
            what: format!("{n} rule(s) of {id} to {}", to.join(",")),
            place: format!("ip/ip6 {}", hp::TABLE),
            by: "cnibox or Go",
            verdict,
            why,
            owner: Some(id.clone()),
            ips,
            fix: Fix::Portmap { container_id: id },
        });
    }
}

pub fn scan_spoofchk(nl: &Netlink, rt: &Netlink, live: &mut Live, out: &mut Scan) {
    let rules = match nf::list_rules(
        nl,
        NFPROTO_BRIDGE,
        spoofchk::TABLE,
        Some(spoofchk::BASE_CHAIN),
    ) {
        Ok(r) => r,
        Err(e) if e.is_unsupported() => return,
        Err(e) => {
            out.errors.push(format!("spoof-check rules: {e}"));
            return;
        }
    };
    let found: Vec<spoofchk::Found> = rules.iter().filter_map(spoofchk::parse_jump).collect();
    out.inspected(Kind::SpoofCheck, found.len());
    if found.is_empty() {
        return;
    }
    let links = match rt.links() {
        Ok(l) => l,
        Err(e) => {
            out.errors.push(format!("links: {e}"));
            return;
        }
    };
    for f in found {
        // The rule matches the host veth, which dies with the container.
        if links.iter().any(|l| l.name == f.host_ifname) {
            continue;
        }
        let id = live
            .alive_ids
            .iter()
            .find(|a| f.ref_id.starts_with(&format!("{a}-")))
            .cloned();
        let (verdict, why) = if id.is_some() {
            (
                Verdict::Unknown,
                "its container is alive but its host veth is gone".to_string(),
            )
        } else {
            (
                Verdict::Leaked,
                format!("host veth {} is gone", f.host_ifname),
            )
        };
        // Teardown joins them again as `<cid>-<ifname>`: any split works.
        let (cid, ifname) = f.ref_id.rsplit_once('-').unwrap_or((&f.ref_id, ""));
        out.push(Finding {
            kind: Kind::SpoofCheck,
            what: format!("macspoofchk-{}", f.ref_id),
            place: format!("bridge {} {}", spoofchk::TABLE, spoofchk::BASE_CHAIN),
            by: "cnibox or Go",
            verdict,
            why,
            fix: Fix::SpoofCheck {
                container_id: cid.into(),
                ifname: ifname.into(),
            },
            owner: None,
            ips: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_comments_as_the_plugins_write_them() {
        let c = mq::comment("net1", "eth0", "abc");
        let c = String::from_utf8(c).unwrap();
        let (hash, net, ifname, id) = parse_masq_comment(&c).unwrap();
        assert_eq!((net, ifname, id), ("net1", "eth0", "abc"));
        assert_eq!(hash, mq::instance_hash("net1", "eth0", "abc"));
        assert!(parse_masq_comment("something else").is_none());
    }

    #[test]
    fn addresses_from_4_or_16_bytes_only() {
        assert_eq!(ip_of(&[10, 0, 0, 1]), Some("10.0.0.1".parse().unwrap()));
        assert!(ip_of(&[0; 16]).unwrap().is_ipv6());
        assert_eq!(ip_of(&[0, 80]), None);
    }
}
