//! State named by a hash of (network, container ID), so found by computing
//! the names of every attachment the node knows of: Go's iptables chains
//! for masquerade (`CNI-<24 hex>`) and portmap (`CNI-DN-`/`CNI-SN-<21
//! hex>`, on iptables-nft nodes, read over netlink), and bandwidth's ifb
//! devices (`bwp<12 hex>`). A name matching no known attachment is of
//! unknown owner, never removed.

use super::{Finding, Fix, Kind, Scan, Verdict};
use crate::netlink::nftables::consts::{NFPROTO_IPV4, NFPROTO_IPV6};
use crate::netlink::nftables::{self as nf};
use crate::netlink::Netlink;
use crate::steps::hostport::iptables as hp_ipt;
use crate::steps::masq::{iptables as mq_ipt, sha512_hex};
use crate::tool::doctor::live::Live;
use std::collections::{BTreeSet, HashMap};

/// Whose names could these be? Every (network, ID) met, plus each ID met
/// without its network (portmap's comments) paired with every network.
fn candidates(live: &Live) -> BTreeSet<(String, String)> {
    let nets: BTreeSet<&String> = live
        .known
        .iter()
        .chain(&live.dead)
        .map(|(n, _)| n)
        .filter(|n| !n.is_empty())
        .collect();
    let mut out: BTreeSet<(String, String)> = BTreeSet::new();
    for (n, id) in live.known.iter().chain(&live.dead) {
        if n.is_empty() {
            for net in &nets {
                out.insert(((*net).clone(), id.clone()));
            }
        } else {
            out.insert((n.clone(), id.clone()));
        }
    }
    out
}

/// Judge a name that belongs to (network, ID) `owner`, if any is known.
fn verdict(live: &Live, owner: Option<&(String, String)>) -> Option<(Verdict, String)> {
    match owner {
        None => Some((
            Verdict::Unknown,
            "its name matches no attachment known on this node".into(),
        )),
        Some((_, id)) if live.is_alive_id(id) => None,
        Some((net, id)) if live.is_dead_id(id) => Some((
            Verdict::Leaked,
            format!("belongs to {id} on {net}, whose other state is leaked or netns gone"),
        )),
        Some((net, id)) => Some((
            Verdict::Unknown,
            format!("belongs to {id} on {net}, not known to be dead"),
        )),
    }
}

pub fn scan_chains(nl: &Netlink, live: &mut Live, out: &mut Scan) {
    let mut names: BTreeSet<(u8, String)> = BTreeSet::new();
    for family in [NFPROTO_IPV4, NFPROTO_IPV6] {
        match nf::list_chains(nl, family, "nat") {
            Ok(chains) => names.extend(
                chains
                    .into_iter()
                    .filter(|c| c.name.starts_with("CNI-") && !c.name.starts_with("CNI-HOSTPORT-"))
                    .map(|c| (family, c.name)),
            ),
            Err(e) if e.is_unsupported() => return,
            Err(e) => out.errors.push(format!("iptables-nft nat chains: {e}")),
        }
    }
    out.inspected(Kind::GoChain, names.len());
    if names.is_empty() {
        return;
    }
    // Name -> (what, owner).
    let mut index: HashMap<String, (&str, (String, String))> = HashMap::new();
    for (net, id) in candidates(live) {
        let pair = (net.clone(), id.clone());
        index.insert(mq_ipt::chain_name(&net, &id), ("masquerade", pair.clone()));
        index.insert(
            hp_ipt::chain_name("DN-", &net, &id),
            ("portmap DNAT", pair.clone()),
        );
        index.insert(hp_ipt::chain_name("SN-", &net, &id), ("portmap SNAT", pair));
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    for (family, name) in names {
        let found = index.get(&name);
        let Some((v, why)) = verdict(live, found.map(|f| &f.1)) else {
            continue;
        };
        let fam = if family == NFPROTO_IPV4 { "ip" } else { "ip6" };
        let fix = match found {
            // One teardown covers both families and the jumps to the chain.
            Some((what, (net, id))) if done.insert(format!("{what}{net}{id}")) => {
                if *what == "masquerade" {
                    Fix::GoMasqChain {
                        network: net.clone(),
                        container_id: id.clone(),
                    }
                } else {
                    Fix::GoPortmapChain {
                        network: net.clone(),
                        container_id: id.clone(),
                    }
                }
            }
            _ => Fix::None,
        };
        out.push(Finding {
            kind: Kind::GoChain,
            what: match found {
                Some((what, (_, id))) => format!("{name} ({what} of {id})"),
                None => name.clone(),
            },
            place: format!("{fam} nat"),
            by: "Go (iptables)",
            verdict: v,
            why,
            fix,
            owner: found.map(|f| f.1 .1.clone()),
            ips: Vec::new(),
        });
    }
}

pub fn scan_ifbs(rt: &Netlink, live: &mut Live, out: &mut Scan) {
    let links = match rt.links() {
        Ok(l) => l,
        Err(e) => {
            out.errors.push(format!("links: {e}"));
            return;
        }
    };
    // Host veth ends whose peer is in no namespace we can see: the peer's
    // namespace is held by something invisible from here (a veth pair
    // dies with either end, so "peer gone" means exactly that). Never
    // removed: the container may be running.
    let veths: Vec<&crate::netlink::link::Link> = links
        .iter()
        .filter(|l| l.kind == "veth" && l.link_netnsid.is_some())
        .collect();
    out.inspected(Kind::Veth, veths.len());
    for v in veths {
        if v.link_netnsid.is_some_and(|id| live.nsids.contains(&id)) {
            continue;
        }
        out.push(Finding {
            kind: Kind::Veth,
            what: v.name.clone(),
            place: "host".into(),
            by: "?",
            verdict: Verdict::Unknown,
            why: format!(
                "its peer is in netns id {} here, neither bound under the netns dirs nor held by a process",
                v.link_netnsid.unwrap_or(-1)
            ),
            fix: Fix::None,
            owner: None,
            ips: Vec::new(),
        });
    }
    let ifbs: Vec<String> = links
        .into_iter()
        .filter(|l| l.kind == "ifb" && l.name.starts_with("bwp"))
        .map(|l| l.name)
        .collect();
    out.inspected(Kind::Ifb, ifbs.len());
    if ifbs.is_empty() {
        return;
    }
    let index: HashMap<String, (String, String)> = candidates(live)
        .into_iter()
        .map(|(n, id)| {
            (
                format!("bwp{}", sha512_hex(&format!("{n}{id}"), 12)),
                (n, id),
            )
        })
        .collect();
    for name in ifbs {
        let owner = index.get(&name);
        let Some((v, why)) = verdict(live, owner) else {
            continue;
        };
        out.push(Finding {
            kind: Kind::Ifb,
            what: match owner {
                Some((_, id)) => format!("{name} (of {id})"),
                None => name.clone(),
            },
            place: "host".into(),
            by: "cnibox or Go",
            verdict: v,
            why,
            fix: Fix::Link { name },
            owner: owner.map(|o| o.1.clone()),
            ips: Vec::new(),
        });
    }
}
