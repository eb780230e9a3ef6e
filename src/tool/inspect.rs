//! `cnibox inspect <netns>`: links, addresses, routes and neighbours inside
//! a network namespace, read over netlink (no `ip` binary needed), as text
//! or `--json`.

use super::ls::table;
use crate::cni::json;
use crate::netlink::consts::{AF_INET, AF_INET6, AF_UNSPEC, RT_TABLE_MAIN};
use crate::netlink::link::{format_mac, Link};
use crate::netlink::Netlink;
use crate::steps::netns::{NetNs, NsError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

const USAGE: &str = "\
usage: cnibox inspect [--json] <netns>

Show the links, addresses, routes and neighbours inside a network
namespace. <netns> is a path (/run/netns/NAME, /proc/PID/ns/net), a name
under /run/netns, or a process ID. --json prints one JSON object.
";

const LINK_FLAGS: &[(u32, &str)] = &[
    (0x2, "BROADCAST"),
    (0x10, "POINTOPOINT"),
    (0x8, "LOOPBACK"),
    (0x1000, "MULTICAST"),
    (0x80, "NOARP"),
    (0x100, "PROMISC"),
    (0x1, "UP"),
    (0x10000, "LOWER_UP"),
];

const ADDR_FLAGS: &[(u32, &str)] = &[
    (0x01, "secondary"),
    (0x02, "nodad"),
    (0x08, "dadfailed"),
    (0x20, "deprecated"),
    (0x40, "tentative"),
    (0x80, "permanent"),
    (0x200, "noprefixroute"),
];

const NEIGH_STATES: &[(u16, &str)] = &[
    (0x01, "INCOMPLETE"),
    (0x02, "REACHABLE"),
    (0x04, "STALE"),
    (0x08, "DELAY"),
    (0x10, "PROBE"),
    (0x20, "FAILED"),
    (0x40, "NOARP"),
    (0x80, "PERMANENT"),
];

fn flag_names<T: Copy + std::ops::BitAnd<Output = T> + PartialEq + Default>(
    v: T,
    table: &[(T, &str)],
) -> Vec<String> {
    table
        .iter()
        .filter(|(bit, _)| v & *bit != T::default())
        .map(|(_, n)| n.to_string())
        .collect()
}

fn oper_state(s: u8) -> &'static str {
    match s {
        1 => "notpresent",
        2 => "down",
        3 => "lowerlayerdown",
        4 => "testing",
        5 => "dormant",
        6 => "up",
        _ => "unknown",
    }
}

fn scope_name(s: u8) -> String {
    match s {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        n => n.to_string(),
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "redirect".into(),
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        9 => "ra".into(),
        16 => "dhcp".into(),
        n => n.to_string(),
    }
}

#[derive(Serialize)]
struct LinkOut {
    index: u32,
    name: String,
    kind: String,
    flags: Vec<String>,
    mtu: u32,
    mac: String,
    state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    master: String,
    /// For a veth: the peer's index (in the peer's namespace).
    #[serde(rename = "peerIndex", skip_serializing_if = "Option::is_none")]
    peer_index: Option<u32>,
}

#[derive(Serialize)]
struct AddrOut {
    dev: String,
    address: String,
    scope: String,
    flags: Vec<String>,
}

#[derive(Serialize)]
struct RouteOut {
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<String>,
    dev: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    scope: String,
    protocol: String,
    table: u32,
    #[serde(skip_serializing_if = "is_zero")]
    metric: u32,
    #[serde(skip_serializing_if = "is_zero")]
    mtu: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct NeighOut {
    ip: String,
    dev: String,
    mac: String,
    state: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    netns: String,
    links: Vec<LinkOut>,
    addresses: Vec<AddrOut>,
    routes: Vec<RouteOut>,
    neighbours: Vec<NeighOut>,
}

/// Turn what the user typed into a namespace path.
fn ns_path(arg: &str) -> String {
    if arg.contains('/') {
        arg.to_string()
    } else if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        format!("/proc/{arg}/ns/net")
    } else {
        format!("/run/netns/{arg}")
    }
}

fn collect(nl: &Netlink, path: &str) -> Result<Report, String> {
    let reading = |what: &str, e: &dyn std::fmt::Display| format!("reading {what} in {path}: {e}");
    let mut links: Vec<Link> = nl.links().map_err(|e| reading("links", &e))?;
    links.sort_by_key(|l| l.index);
    let names: BTreeMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    let dev = |i: u32| names.get(&i).cloned().unwrap_or_else(|| format!("if{i}"));
    let links_out = links
        .iter()
        .map(|l| LinkOut {
            index: l.index,
            name: l.name.clone(),
            kind: l.kind.clone(),
            flags: flag_names(l.flags, LINK_FLAGS),
            mtu: l.mtu,
            mac: format_mac(&l.mac),
            state: oper_state(l.oper_state),
            master: if l.master == 0 {
                String::new()
            } else {
                dev(l.master)
            },
            peer_index: (l.link != 0 && l.link != l.index).then_some(l.link),
        })
        .collect();
    let mut addrs = nl
        .addrs(0, AF_UNSPEC)
        .map_err(|e| reading("addresses", &e))?;
    addrs.sort_by_key(|a| (a.index, a.net.addr().is_ipv6()));
    let addrs_out = addrs
        .iter()
        .map(|a| AddrOut {
            dev: dev(a.index),
            address: a.net.to_string(),
            scope: scope_name(a.scope),
            flags: flag_names(a.flags, ADDR_FLAGS),
        })
        .collect();
    let mut routes = Vec::new();
    for fam in [AF_INET, AF_INET6] {
        routes.extend(nl.routes(fam).map_err(|e| reading("routes", &e))?);
    }
    // The local table (255) is the kernel's bookkeeping; `ip route` hides it.
    let routes_out = routes
        .iter()
        .filter(|r| r.table != 255)
        .map(|r| RouteOut {
            dst: if r.is_default() {
                "default".into()
            } else {
                r.dst.to_string()
            },
            gw: r.gw.map(|g| g.to_string()),
            dev: dev(r.oif),
            src: r.src.map(|s| s.to_string()),
            scope: scope_name(r.scope),
            protocol: proto_name(r.protocol),
            table: r.table_or_main(),
            metric: r.priority,
            mtu: r.mtu,
        })
        .collect();
    let neighs = nl
        .neighs(AF_UNSPEC)
        .map_err(|e| reading("neighbours", &e))?;
    // As `ip neigh`: NOARP and NONE entries are not shown.
    let neighs_out = neighs
        .iter()
        .filter(|n| n.state & !0x40 != 0)
        .map(|n| NeighOut {
            ip: n.ip.to_string(),
            dev: dev(n.index),
            mac: format_mac(&n.mac),
            state: flag_names(n.state, NEIGH_STATES),
        })
        .collect();
    Ok(Report {
        netns: path.to_string(),
        links: links_out,
        addresses: addrs_out,
        routes: routes_out,
        neighbours: neighs_out,
    })
}

fn text(r: &Report) -> String {
    let mut out = format!("netns {}\n\nlinks:\n", r.netns);
    let rows: Vec<Vec<String>> = r
        .links
        .iter()
        .map(|l| {
            let mut extra = Vec::new();
            if !l.kind.is_empty() {
                extra.push(l.kind.clone());
            }
            if !l.master.is_empty() {
                extra.push(format!("master {}", l.master));
            }
            if let Some(p) = l.peer_index {
                extra.push(format!("peer if{p}"));
            }
            vec![
                l.index.to_string(),
                l.name.clone(),
                format!("<{}>", l.flags.join(",")),
                l.mtu.to_string(),
                l.state.to_string(),
                if l.mac.is_empty() {
                    "-".into()
                } else {
                    l.mac.clone()
                },
                extra.join(" "),
            ]
        })
        .collect();
    out.push_str(&indent(&table(
        &["#", "NAME", "FLAGS", "MTU", "STATE", "MAC", "INFO"],
        &rows,
    )));
    out.push_str("\naddresses:\n");
    let rows: Vec<Vec<String>> = r
        .addresses
        .iter()
        .map(|a| {
            vec![
                a.dev.clone(),
                a.address.clone(),
                a.scope.clone(),
                a.flags.join(" "),
            ]
        })
        .collect();
    out.push_str(&indent(&table(
        &["DEV", "ADDRESS", "SCOPE", "FLAGS"],
        &rows,
    )));
    out.push_str("\nroutes:\n");
    for rt in &r.routes {
        let mut s = format!("  {}", rt.dst);
        if let Some(gw) = &rt.gw {
            s.push_str(&format!(" via {gw}"));
        }
        s.push_str(&format!(" dev {}", rt.dev));
        if rt.protocol != "boot" {
            s.push_str(&format!(" proto {}", rt.protocol));
        }
        if rt.scope != "global" {
            s.push_str(&format!(" scope {}", rt.scope));
        }
        if let Some(src) = &rt.src {
            s.push_str(&format!(" src {src}"));
        }
        if rt.metric != 0 {
            s.push_str(&format!(" metric {}", rt.metric));
        }
        if rt.mtu != 0 {
            s.push_str(&format!(" mtu {}", rt.mtu));
        }
        if rt.table != u32::from(RT_TABLE_MAIN) {
            s.push_str(&format!(" table {}", rt.table));
        }
        out.push_str(&s);
        out.push('\n');
    }
    if r.routes.is_empty() {
        out.push_str("  (none)\n");
    }
    out.push_str("\nneighbours:\n");
    for n in &r.neighbours {
        out.push_str(&format!(
            "  {} dev {} lladdr {} {}\n",
            n.ip,
            n.dev,
            if n.mac.is_empty() { "-" } else { &n.mac },
            n.state.join(",")
        ));
    }
    if r.neighbours.is_empty() {
        out.push_str("  (none)\n");
    }
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// Open the namespace and a netlink socket in it; errors say what was
/// being done, the path and the reason.
fn open(path: &str) -> Result<Netlink, String> {
    let doing = "opening network namespace";
    if let Err(e) = std::fs::metadata(path) {
        return Err(super::io_error(doing, Path::new(path), &e));
    }
    let ns = NetNs::open(path).map_err(|e| match e {
        NsError::NotNs(_) => format!("{doing} {path}: not a network namespace"),
        NsError::NotExist(_) | NsError::Other(_) => format!("{doing} {path}: {e}"),
    })?;
    ns.netlink()
        .map_err(|e| format!("talking netlink in network namespace {path}: {e}"))
}

/// Entry point for `cnibox inspect`.
pub fn main(args: &[OsString]) -> i32 {
    let mut as_json = false;
    let mut target = None;
    for a in args {
        match a.to_str() {
            Some("-h") | Some("--help") => {
                print!("{USAGE}");
                return 0;
            }
            Some("--json") => as_json = true,
            Some(s) if !s.starts_with('-') && target.is_none() => target = Some(s.to_string()),
            _ => {
                eprint!("cnibox inspect: unexpected argument {a:?}\n\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(target) = target else {
        eprint!("cnibox inspect: which namespace?\n\n{USAGE}");
        return 2;
    };
    let path = ns_path(&target);
    let report = open(&path).and_then(|nl| collect(&nl, &path));
    match report {
        Ok(r) if as_json => {
            println!("{}", json::to_go_pretty(&r));
            0
        }
        Ok(r) => {
            print!("{}", text(&r));
            0
        }
        Err(e) => {
            eprintln!("cnibox inspect: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_arguments() {
        assert_eq!(ns_path("blue"), "/run/netns/blue");
        assert_eq!(ns_path("1234"), "/proc/1234/ns/net");
        assert_eq!(ns_path("/var/run/netns/x"), "/var/run/netns/x");
    }

    #[test]
    fn flags_are_named() {
        assert_eq!(
            flag_names(0x10049u32, LINK_FLAGS),
            vec!["LOOPBACK", "UP", "LOWER_UP"]
        );
        assert_eq!(
            flag_names(0x82u16, NEIGH_STATES),
            vec!["REACHABLE", "PERMANENT"]
        );
    }
}
