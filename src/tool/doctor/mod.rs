//! `cnibox doctor`: find the CNI state on a node that nothing alive refers
//! to (leaked by cnibox or by the Go reference plugins), and with `--fix`
//! remove it through the plugins' own DEL steps.
//!
//! One read-only pass: [`live`] gathers what is alive (namespaces, their
//! addresses, the libcni cache); each kind of state is then judged against
//! it ([`hostlocal`], [`nft`], [`hashed`], [`files`]). Anything uncertain is
//! "unknown owner" and never removed.

mod files;
mod hashed;
mod hostlocal;
mod live;
mod nft;
mod output;

use crate::cni::json;
use crate::netlink::Netlink;
use crate::steps::{hostport, masq, spoofchk};
use live::Live;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cnibox doctor [--json] [--fix] [--cache-dir DIR] [--data-dir DIR]
                     [--netns-dir DIR]... [--tuning-dir DIR] [--min-age SECONDS]

Look over this node (this network namespace) for CNI state that nothing
alive refers to, left by cnibox or by the Go reference plugins:
host-local reservations, libcni cache entries, masquerade / portmap /
spoof-check nf_tables rules, Go's iptables-nft chains (CNI-*, CNI-DN-*),
bandwidth ifb devices and tuning backup files.

Alive: network namespaces bound under the netns directories or held by a
process (/proc/*/ns/net), the addresses configured in them, and libcni
cache entries whose netns exists. An object is leaked only when nothing
alive refers to it; anything uncertain is listed as \"unknown owner\" and
never removed.

options:
  --fix              remove the leaked objects, each through the step the
                     plugin's DEL runs (host-local's DEL, under its lock)
  --json             machine-readable output
  --cache-dir DIR    libcni cache (default /var/lib/cni)
  --data-dir DIR     host-local store (default /var/lib/cni/networks)
  --netns-dir DIR    where named namespaces are bound (repeatable; default
                     /run/netns and /var/run/netns)
  --tuning-dir DIR   tuning's backups (default /run/cni/tuning)
  --min-age SECONDS  a reservation younger than this may belong to an ADD
                     in progress: unknown owner (default 30)

exit status: 0 nothing leaked (or --fix removed it all), 1 leaks found
(or some could not be removed), 2 none found but some of the node could not
be inspected (the warnings say what), or it could not be inspected at all.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Reservation,
    Masquerade,
    Portmap,
    SpoofCheck,
    GoChain,
    Veth,
    Ifb,
    Tuning,
    Cache,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Reservation => "host-local reservations",
            Kind::Masquerade => "masquerade rules (nf_tables)",
            Kind::Portmap => "portmap rules (nf_tables)",
            Kind::SpoofCheck => "spoof-check rules (nf_tables)",
            Kind::GoChain => "Go iptables chains",
            Kind::Veth => "host veth ends",
            Kind::Ifb => "bandwidth ifb devices",
            Kind::Tuning => "tuning backup files",
            Kind::Cache => "libcni cache entries",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Leaked,
    Unknown,
}

impl Verdict {
    fn is_leaked(self) -> bool {
        self == Verdict::Leaked
    }
}

/// How a leaked object is removed.
#[derive(Debug, Clone)]
pub enum Fix {
    None,
    HostLocal {
        data_dir: PathBuf,
        network: String,
        container_id: String,
        ifname: String,
    },
    Masq {
        network: String,
        ifname: String,
        container_id: String,
    },
    Portmap {
        container_id: String,
    },
    SpoofCheck {
        container_id: String,
        ifname: String,
    },
    GoMasqChain {
        network: String,
        container_id: String,
    },
    GoPortmapChain {
        network: String,
        container_id: String,
    },
    Link {
        name: String,
    },
    File {
        path: PathBuf,
    },
    CacheFile {
        file: PathBuf,
        netns: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub what: String,
    #[serde(rename = "where")]
    pub place: String,
    #[serde(rename = "madeBy")]
    pub by: &'static str,
    pub verdict: Verdict,
    pub why: String,
    #[serde(skip)]
    pub fix: Fix,
    /// The evidence it was judged on, to judge it again (see [`inspect`]).
    #[serde(skip)]
    pub owner: Option<String>,
    #[serde(skip)]
    pub ips: Vec<IpAddr>,
}

#[derive(Default)]
pub struct Scan {
    pub findings: Vec<Finding>,
    pub inspected: BTreeMap<Kind, usize>,
    pub errors: Vec<String>,
}

impl Scan {
    fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }
    fn inspected(&mut self, k: Kind, n: usize) {
        *self.inspected.entry(k).or_default() += n;
    }
}

/// Is an object owned by container `id` with addresses `ips` alive
/// (`None`), leaked or of unknown owner?
pub fn judge(live: &Live, id: Option<&str>, ips: &[IpAddr]) -> Option<(Verdict, String)> {
    if id.is_some_and(|i| live.is_alive_id(i)) {
        return None;
    }
    if let Some(ip) = ips.iter().find(|ip| live.ips.contains(ip)) {
        let _ = ip;
        return None;
    }
    if let Some(ns) = id.and_then(|i| live.gone_ns.get(i)) {
        return Some((Verdict::Leaked, format!("netns {ns} is gone")));
    }
    if !ips.is_empty() && live.ips_complete {
        let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        return Some((
            Verdict::Leaked,
            format!("no live attachment, {} in no live netns", list.join(",")),
        ));
    }
    if id.is_some_and(|i| live.is_dead_id(i)) {
        return Some((Verdict::Leaked, "its container's netns is gone".into()));
    }
    Some((
        Verdict::Unknown,
        "no live attachment, but no proof it is dead".into(),
    ))
}

struct Opts {
    json: bool,
    fix: bool,
    cache_dir: PathBuf,
    data_dir: PathBuf,
    netns_dirs: Vec<PathBuf>,
    tuning_dir: PathBuf,
    min_age: Duration,
}

fn parse(args: &[OsString]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        json: false,
        fix: false,
        cache_dir: PathBuf::from(crate::tool::cache::DEFAULT_DIR),
        data_dir: PathBuf::from(crate::tool::ipam_ls::DEFAULT_DATA_DIR),
        netns_dirs: Vec::new(),
        tuning_dir: PathBuf::from("/run/cni/tuning"),
        min_age: Duration::from_secs(30),
    };
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" | "help" => return Ok(None),
            "--json" => o.json = true,
            "--fix" => o.fix = true,
            "--cache-dir" => o.cache_dir = value("--cache-dir")?.into(),
            "--data-dir" => o.data_dir = value("--data-dir")?.into(),
            "--netns-dir" => o.netns_dirs.push(value("--netns-dir")?.into()),
            "--tuning-dir" => o.tuning_dir = value("--tuning-dir")?.into(),
            "--min-age" => {
                let v = value("--min-age")?;
                let s: u64 = v
                    .parse()
                    .map_err(|_| format!("--min-age: {v:?} is not a number of seconds"))?;
                o.min_age = Duration::from_secs(s);
            }
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    if o.netns_dirs.is_empty() {
        o.netns_dirs = vec!["/run/netns".into(), "/var/run/netns".into()];
    }
    Ok(Some(o))
}

/// One full read-only pass.
fn inspect(o: &Opts) -> Result<Scan, String> {
    let mut live = live::gather(&o.cache_dir, &o.netns_dirs);
    let mut scan = Scan {
        errors: std::mem::take(&mut live.errors),
        ..Default::default()
    };
    // Every kind is in the totals, also when none of it exists.
    for k in [
        Kind::Reservation,
        Kind::Masquerade,
        Kind::Portmap,
        Kind::SpoofCheck,
        Kind::GoChain,
        Kind::Veth,
        Kind::Ifb,
        Kind::Tuning,
        Kind::Cache,
    ] {
        scan.inspected(k, 0);
    }
    let rt = Netlink::route().map_err(|e| format!("rtnetlink: {e}"))?;
    let nl = masq::netfilter_socket().map_err(|e| e.msg)?;
    // Evidence by address first: what these find dead makes the objects
    // named after (network, ID) dead too.
    hostlocal::scan(&o.data_dir, &mut live, o.min_age, &mut scan);
    if let Some(nl) = &nl {
        nft::scan_masq(nl, &mut live, &mut scan);
        nft::scan_portmap(nl, &mut live, &mut scan);
        nft::scan_spoofchk(nl, &rt, &mut live, &mut scan);
        hashed::scan_chains(nl, &mut live, &mut scan);
    }
    hashed::scan_ifbs(&rt, &mut live, &mut scan);
    files::scan_tuning(&o.tuning_dir, &live, &mut scan);
    files::scan_cache(&live, &mut scan);
    // Look at what is alive once more, now that the state was read: a
    // container whose ADD was under way during the first look has its
    // addresses configured (before any rule names them) and may have its
    // cache entry written now.
    let again = live::gather(&o.cache_dir, &o.netns_dirs);
    for f in scan.findings.iter_mut().filter(|f| f.verdict.is_leaked()) {
        let id_alive = f.owner.as_deref().is_some_and(|i| again.is_alive_id(i));
        let ip_alive = f.ips.iter().any(|ip| again.ips.contains(ip));
        let cache_alive = match &f.fix {
            Fix::CacheFile { netns, .. } => Path::new(netns).exists(),
            _ => false,
        };
        if id_alive || ip_alive || cache_alive {
            f.verdict = Verdict::Unknown;
            f.why = "came alive while the node was inspected".into();
        }
    }
    Ok(scan)
}

/// Remove one leaked object.
fn apply(fix: &Fix, nl: Option<&Netlink>, rt: &Netlink, o: &Opts) -> Result<(), String> {
    let e = |e: crate::cni::CniError| e.msg;
    match fix {
        Fix::None => Err("no way to remove it".into()),
        Fix::HostLocal {
            data_dir,
            network,
            container_id,
            ifname,
        } => hostlocal::release(data_dir, network, container_id, ifname),
        Fix::Masq {
            network,
            ifname,
            container_id,
        } => masq::teardown_on(nl, network, ifname, container_id).map_err(e),
        Fix::Portmap { container_id } => match nl {
            Some(nl) => hostport::nft::teardown(nl, container_id).map_err(e),
            None => Ok(()),
        },
        Fix::SpoofCheck {
            container_id,
            ifname,
        } => match nl {
            Some(nl) => spoofchk::teardown_with(nl, container_id, ifname).map_err(e),
            None => Ok(()),
        },
        Fix::GoMasqChain {
            network,
            container_id,
        } => masq::iptables::teardown(nl, network, container_id).map_err(e),
        Fix::GoPortmapChain {
            network,
            container_id,
        } => hostport::iptables::teardown(nl, network, container_id).map_err(e),
        Fix::Link { name } => match rt.link_del_by_name(name) {
            Ok(()) => Ok(()),
            Err(err) if err.is_gone() => Ok(()),
            Err(err) => Err(err.to_string()),
        },
        Fix::File { path } => remove_file(path),
        Fix::CacheFile { file, netns } => {
            // Still gone? (A runtime could have re-added it meanwhile.)
            if Path::new(netns).exists() {
                return Err(format!("netns {netns} exists again"));
            }
            let _ = o;
            remove_file(file)
        }
    }
}

fn remove_file(p: &Path) -> Result<(), String> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", p.display())),
    }
}

pub fn main(args: &[OsString]) -> i32 {
    let o = match parse(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprint!("cnibox doctor: {e}\n\n{USAGE}");
            return 2;
        }
    };
    let start = Instant::now();
    let scan = match inspect(&o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cnibox doctor: cannot inspect this node: {e}");
            return 2;
        }
    };
    let ms = start.elapsed().as_millis();
    let leaked: Vec<&Finding> = scan
        .findings
        .iter()
        .filter(|f| f.verdict.is_leaked())
        .collect();
    let mut fixed: Vec<&Finding> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    if o.fix && !leaked.is_empty() {
        let nl = masq::netfilter_socket().ok().flatten();
        let rt = match Netlink::route() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cnibox doctor: rtnetlink: {e}");
                return 2;
            }
        };
        // The cache entries last: they are the evidence that the others
        // are dead, so an interrupted --fix can be run again.
        let mut order = leaked.clone();
        order.sort_by_key(|f| f.kind == Kind::Cache);
        for f in order {
            match apply(&f.fix, nl.as_ref(), &rt, &o) {
                Ok(()) => fixed.push(f),
                Err(e) => failed.push(format!("{} {}: {e}", f.kind.label(), f.what)),
            }
        }
    }
    // Leaks (left) first; else a part that could not be looked at.
    let status = if (o.fix && !failed.is_empty()) || (!o.fix && !leaked.is_empty()) {
        1
    } else if !scan.errors.is_empty() {
        2
    } else {
        0
    };
    if o.json {
        let r = output::Report {
            leaked: leaked.clone(),
            unknown: scan
                .findings
                .iter()
                .filter(|f| !f.verdict.is_leaked())
                .collect(),
            inspected: scan.inspected.clone(),
            removed: o.fix.then(|| fixed.clone()),
            not_removed: failed.clone(),
            errors: &scan.errors,
            elapsed_ms: ms,
        };
        println!("{}", json::to_go_pretty(&r));
    } else {
        print!(
            "{}",
            output::text(&scan, o.fix.then_some(&fixed[..]), &failed, ms)
        );
    }
    status
}

#[cfg(test)]
mod tests;
