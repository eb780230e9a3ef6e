//! sbr: source-based routing for a container interface (reference:
//! plugins/meta/sbr). Chained after a main plugin: every address of
//! `CNI_IFNAME` gets a rule `from <ip> lookup <table>`, and the link's routes
//! move from `main` to that table.
//!
//! Differences from the reference (tests named for them): the table chosen
//! skips ids used by routes in ANY table (the reference only looks at
//! `main`), DEL never creates a file at the netns path and succeeds when the
//! netns is gone or empty, and a failed ADD removes what it added.

use crate::cni::result::{CniResult, IpConfig};
use crate::cni::types::parse_ip;
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::consts::{AF_UNSPEC, RT_SCOPE_LINK, RT_TABLE_MAIN};
use crate::netlink::route::{Route, RouteMode};
use crate::netlink::rule::Rule;
use crate::netlink::socket::Req;
use crate::netlink::Netlink;
use crate::steps::netns::NetNs;
use crate::steps::undo::Undo;
use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fs::File;
use std::net::IpAddr;

pub const PLUGIN: Plugin = Plugin {
    name: "sbr",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// The first table id the plugin considers.
const FIRST_TABLE: u32 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SbrConf {
    table: Option<i64>,
    gateways: Option<Vec<String>>,
    #[serde(rename = "addSourceHints")]
    add_source_hints: bool,
}

/// The validated config.
#[derive(Debug, Default)]
struct Conf {
    table: Option<u32>,
    gw4: Option<IpAddr>,
    gw6: Option<IpAddr>,
    hints: bool,
}

fn load(req: &Request) -> Result<Conf, CniError> {
    let raw: SbrConf = req.decode()?;
    let table = match raw.table {
        None => None,
        Some(t) if (1..=u32::MAX as i64).contains(&t) => Some(t as u32),
        Some(t) => {
            return Err(CniError::config(format!(
                "table: {t} is not a routing table id (1 to 4294967295)"
            )))
        }
    };
    let mut conf = Conf {
        table,
        hints: raw.add_source_hints,
        ..Default::default()
    };
    let gws = raw.gateways.unwrap_or_default();
    if gws.len() > 2 {
        return Err(CniError::config(
            "gateways: list cannot contain more than 2 entries (one IPv4, one IPv6)",
        ));
    }
    for g in &gws {
        let ip = parse_ip(g).ok_or_else(|| {
            CniError::config(format!(
                "gateways: invalid static gateway IP address: {g:?}"
            ))
        })?;
        let (slot, fam) = match ip {
            IpAddr::V4(_) => (&mut conf.gw4, "IPv4"),
            IpAddr::V6(_) => (&mut conf.gw6, "IPv6"),
        };
        if let Some(prev) = slot {
            return Err(CniError::config(format!(
                "gateways: list contains multiple {fam} addresses: {prev} and {ip}"
            )));
        }
        *slot = Some(ip);
    }
    Ok(conf)
}

/// The prevResult (required) and the addresses of `CNI_IFNAME` in it: those
/// without an interface, with an index out of range, or naming `ifname`.
fn prev_ips(req: &Request) -> Result<(CniResult, Vec<IpConfig>), CniError> {
    let conf = req.net_conf()?;
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::config("prevResult: missing; sbr must be called as a chained plugin")
    })?;
    let prev = CniResult::parse_as(prev, &req.version)
        .map_err(|e| e.context("failed to parse prevResult"))?;
    if prev.ips.is_empty() {
        return Err(CniError::config(format!(
            "prevResult: No IP addresses supplied on interface: {}",
            req.ifname
        )));
    }
    let ips = prev
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            Some(i) if i >= 0 && (i as usize) < prev.interfaces.len() => {
                prev.interfaces[i as usize].name == req.ifname
            }
            _ => true,
        })
        .cloned()
        .collect();
    Ok((prev, ips))
}

/// Serialise with other sbr calls on the same namespace: flock on the netns
/// file itself, as the reference does (so both lock the same inode), but
/// opened without O_CREAT: a path that is not there stays not there.
fn lock(path: &str) -> Result<Flock<File>, CniError> {
    let f = File::open(path).map_err(|e| CniError::io(format!("lock {path:?}: {e}")))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| CniError::io(format!("lock {path:?}: {}", e.desc())))
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = load(req)?;
    let (mut prev, ips) = prev_ips(req)?;
    let ns = NetNs::open(&req.netns)?;
    let _lock = lock(&req.netns)?;
    let nl = ns.netlink()?;
    let link = nl.link_by_name(&req.ifname)?.ok_or_else(|| {
        CniError::internal(format!("Cannot find network interface {}", req.ifname))
    })?;

    let mut undo = Undo::new();
    if let Some(table) = conf.table {
        // A given table: rules only, the routes stay where they are.
        for ip in &ips {
            add_rule(&nl, &mut undo, host_net(ip.address.addr()), table)?;
        }
    } else {
        move_routes(&nl, &mut undo, &conf, &ips, link.index)?;
    }
    undo.commit();
    prev.cni_version = req.version.clone();
    Ok(prev)
}

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Add a rule and register its removal.
fn add_rule<'a>(
    nl: &'a Netlink,
    undo: &mut Undo<'a>,
    src: IpNet,
    table: u32,
) -> Result<(), CniError> {
    nl.rule_add(&Rule::from_src(src, table))?;
    // Read back with the priority the kernel gave it, to delete exactly it.
    let added = nl
        .rules(AF_UNSPEC)?
        .into_iter()
        .find(|r| r.src == Some(src) && r.table == table);
    if let Some(r) = added {
        undo.push(move || {
            let _ = nl.rule_del(&r);
        });
    }
    Ok(())
}

/// The table ids taken: by a rule, or by a route of any table.
fn used_tables(nl: &Netlink) -> Result<BTreeSet<u32>, CniError> {
    let mut used = nl.route_tables()?;
    used.extend(nl.rules(AF_UNSPEC)?.into_iter().map(|r| r.table));
    Ok(used)
}

fn next_free(used: &BTreeSet<u32>, from: u32) -> u32 {
    (from..).find(|t| !used.contains(t)).unwrap_or(from)
}

/// Per address: a rule to a fresh table, a default route via its gateway
/// there, and a copy of the link's `main` routes that belong to it; then the
/// link's routes leave `main` (or, with addSourceHints, get `src` hints).
fn move_routes<'a>(
    nl: &'a Netlink,
    undo: &mut Undo<'a>,
    conf: &Conf,
    ips: &[IpConfig],
    index: u32,
) -> Result<(), CniError> {
    let mut used = used_tables(nl)?;
    let link_routes: Vec<Route> = nl
        .routes(AF_UNSPEC)?
        .into_iter()
        .filter(|r| r.oif == index && r.table == RT_TABLE_MAIN as u32)
        .collect();
    let mut table = next_free(&used, FIRST_TABLE);
    for ip in ips {
        let addr = ip.address.addr();
        add_rule(nl, undo, host_net(addr), table)?;
        used.insert(table);
        let mut added: Vec<Route> = Vec::new();
        let configured = if addr.is_ipv4() { conf.gw4 } else { conf.gw6 };
        let gw = configured.or(ip.gateway);
        if let Some(gw) = gw {
            let zero = IpNet::new(
                if addr.is_ipv4() {
                    [0u8; 4].into()
                } else {
                    [0u8; 16].into()
                },
                0,
            )
            .expect("a /0");
            let mut r = Route::new(zero, index).via(gw);
            r.table = table;
            nl.run(&Req::route_add(&r, RouteMode::Add)).map_err(|e| {
                CniError::from(e).context(format!("Failed to add default route to {gw}"))
            })?;
            added.push(r);
        }
        for r in &link_routes {
            let mine = |x: Option<IpAddr>| x.is_some_and(|x| ip.address.contains(&x));
            // A configured gateway wins over main's default route.
            if configured.is_some() && r.is_default() {
                continue;
            }
            if mine(r.src) || mine(r.gw) || (r.src.is_none() && r.gw.is_none()) {
                let mut copy = r.clone();
                copy.table = table;
                nl.run(&Req::route_add(&copy, RouteMode::Replace))?;
                added.push(copy);
            }
        }
        undo.push(move || {
            for r in added.iter().rev() {
                let _ = nl.run(&Req::route_del(r));
            }
        });
        table = next_free(&used, table + 1);
    }

    if conf.hints {
        for ip in ips {
            let mut r = Route::new(ip.address.trunc(), index)
                .scope(RT_SCOPE_LINK)
                .src(ip.address.addr());
            r.table = 0;
            if let Err(e) = nl.run(&Req::route_add(&r, RouteMode::Replace)) {
                eprintln!("sbr: add source hint route {}: {e}", r.dst);
            }
        }
        for r in link_routes.iter().filter(|r| r.scope != RT_SCOPE_LINK) {
            if let Err(e) = nl.run(&Req::route_del(r)) {
                eprintln!("sbr: delete route {}: {e}", r.dst);
            }
        }
        return Ok(());
    }
    // Deleted last (several addresses may share a subnet); on failure the
    // ones already gone come back.
    for (i, r) in link_routes.iter().enumerate() {
        if let Err(e) = nl.run(&Req::route_del(r)) {
            for back in &link_routes[..i] {
                let _ = nl.run(&Req::route_add(back, RouteMode::Replace));
            }
            return Err(CniError::from(e).context("Failed to delete route"));
        }
    }
    Ok(())
}

fn del(req: &Request) -> Result<(), CniError> {
    let conf = load(req)?;
    // A namespace that is gone (or never given) took the link, its routes
    // and rules with it. Nothing is created at the path (the reference
    // creates an empty file there).
    let Some(ns) = NetNs::open_for_del(&req.netns)? else {
        return Ok(());
    };
    let _lock = match lock(&req.netns) {
        Ok(l) => l,
        Err(_) if NetNs::open_for_del(&req.netns)?.is_none() => return Ok(()),
        Err(e) => return Err(e),
    };
    let nl = ns.netlink()?;
    let Some(link) = nl.link_by_name(&req.ifname)? else {
        return Ok(());
    };
    let addrs: Vec<IpAddr> = nl
        .addrs(link.index, AF_UNSPEC)?
        .into_iter()
        .map(|a| a.net.addr())
        .collect();
    let mut errors = Vec::new();
    for rule in nl.rules(AF_UNSPEC)? {
        if conf.table.is_some_and(|t| t != rule.table) {
            continue;
        }
        if rule.src.is_some_and(|s| addrs.contains(&s.addr())) {
            if let Err(e) = nl.rule_del(&rule) {
                errors.push(CniError::from(e));
            }
        }
    }
    CniError::combine(errors)
}

/// As the reference: nothing to verify beyond a valid config.
fn check(req: &Request) -> Result<(), CniError> {
    load(req).map(|_| ())
}

fn status(req: &Request) -> Result<(), CniError> {
    load(req).map(|_| ())
}

/// No state outside the container's namespace: nothing to collect.
fn gc(req: &Request) -> Result<(), CniError> {
    load(req).map(|_| ())
}

/// Fuzzing only (`cargo fuzz`): every config check ADD makes before it
/// changes anything.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = load(req);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::skel::with_test_request;

    fn conf_of(extra: &str) -> Result<Conf, CniError> {
        let c = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"sbr"{extra}}}"#);
        with_test_request(&c, "", load)
    }

    #[test]
    fn gateways_one_per_family_at_most_two() {
        let c = conf_of(r#","gateways":["10.0.0.1","fd00::1"],"table":7"#).unwrap();
        assert_eq!(c.gw4, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.gw6, Some("fd00::1".parse().unwrap()));
        assert_eq!(c.table, Some(7));
        for (bad, words) in [
            (
                r#","gateways":["10.0.0.1","fd00::1","10.0.0.2"]"#,
                "more than 2",
            ),
            (r#","gateways":["10.0.0.1","10.0.0.2"]"#, "multiple IPv4"),
            (r#","gateways":["fd00::1","fd00::2"]"#, "multiple IPv6"),
            (r#","gateways":["nope"]"#, "invalid static gateway"),
            (r#","table":-1"#, "table"),
            (r#","table":0"#, "table"),
            (r#","table":4294967296"#, "table"),
        ] {
            let e = conf_of(bad).unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.contains(words), "{bad}: {}", e.msg);
        }
    }

    #[test]
    fn next_free_skips_used_ids() {
        let used: BTreeSet<u32> = [100, 101, 103, 254].into_iter().collect();
        assert_eq!(next_free(&used, 100), 102);
        assert_eq!(next_free(&used, 103), 104);
    }
}
