//! firewall (reference: plugins/meta/firewall): let a container's traffic
//! through the node's FORWARD path when the node's filter policy drops it.
//!
//! Backend `iptables` only (the Go default when firewalld is not on D-Bus):
//! the Go plugin's chains and rules (`FORWARD` -> `CNI-FORWARD` -> the admin
//! chain, two rules per container IP, the ingressPolicy isolation chains),
//! written over netlink into iptables-nft's `ip filter` / `ip6 filter`
//! tables with iptables-nft's own expressions (steps::xtables), so that
//! `iptables -S/-C/-D` and the Go plugin see the same rules. An accept in a
//! table of our own would not override a drop in `filter`: the rules must
//! live there.
//!
//! Deliberate differences from Go:
//! - an unknown `backend` is code 7 (Go silently falls back), `firewalld`
//!   is code 2 (no D-Bus client here);
//! - DEL without a prevResult still removes the container's rules: ADD
//!   remembers the IPs in `<dataDir>/<network>/<containerID>_<ifname>`
//!   (default dataDir /var/lib/cni/firewall). A prevResult alone is not
//!   enough (runtimes lose their cache), and the rules cannot be found
//!   without the IPs: they carry no per-container comment, and adding one
//!   would make them differ from Go's;
//! - GC removes the per-IP rules of attachments not in the valid list (the
//!   same state files say which IPs they held);
//! - a node whose iptables is legacy (x_tables: `filter` listed in
//!   /proc/net/ip{,6}_tables_names, no nf_tables `filter` table) gets the
//!   same rules through its `iptables-legacy` binary (steps::xtables_legacy;
//!   x_tables has no netlink interface), or a clear code 2 without one.

use crate::cni::result::CniResult;
use crate::cni::types::valid_attachments;
use crate::cni::{CniError, Plugin, Request};
use crate::netlink::nftables::consts::{NFPROTO_IPV4, NFPROTO_IPV6};
use crate::netlink::nftables::xt::XtRule;
use crate::netlink::Netlink;
use crate::steps::xtables::{self as xt, Policy, Want};
use crate::steps::xtables_legacy::Legacy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const PLUGIN: Plugin = Plugin {
    name: "firewall",
    // Go: version.VersionsStartingFrom("0.4.0").
    versions: &["0.4.0", "1.0.0", "1.1.0"],
    add,
    del,
    check,
    status: |req| conf(req).map(|_| ()),
    gc,
};

const DEFAULT_DATA_DIR: &str = "/var/lib/cni/firewall";
const FAMILIES: [u8; 2] = [NFPROTO_IPV4, NFPROTO_IPV6];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FirewallConf {
    backend: String,
    #[serde(rename = "iptablesAdminChainName")]
    admin_chain: String,
    #[serde(rename = "ingressPolicy")]
    ingress_policy: String,
    /// cnibox: where ADD remembers each attachment's IPs.
    #[serde(rename = "dataDir")]
    data_dir: String,
}

/// The validated config.
struct Conf {
    admin: String,
    policy: Policy,
    dir: PathBuf,
}

fn conf(req: &Request) -> Result<Conf, CniError> {
    let c: FirewallConf = req.decode()?;
    match c.backend.as_str() {
        "" | "iptables" => {}
        "firewalld" => {
            return Err(CniError::unsupported(
                "firewall: backend \"firewalld\" is not supported by cnibox (no D-Bus client); use \"iptables\"",
            ))
        }
        other => {
            return Err(CniError::config(format!(
                "firewall: invalid backend {other:?}: must be \"iptables\" or \"firewalld\""
            )))
        }
    }
    let policy = Policy::parse(&c.ingress_policy).ok_or_else(|| {
        CniError::config(format!(
            "firewall: invalid ingressPolicy {:?}: must be \"open\", \"same-bridge\" or \"isolated\"",
            c.ingress_policy
        ))
    })?;
    let admin = if c.admin_chain.is_empty() {
        xt::DEFAULT_ADMIN_CHAIN.to_string()
    } else {
        c.admin_chain
    };
    // iptables' limit (XT_EXTENSION_MAXNAMELEN - 1) and its syntax.
    let bad = admin.len() > 28
        || admin.starts_with(['-', '!'])
        || admin
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        || [xt::FORWARD, xt::PRIV_CHAIN, "INPUT", "OUTPUT"].contains(&admin.as_str());
    if bad {
        return Err(CniError::config(format!(
            "firewall: invalid iptablesAdminChainName {admin:?}: at most 28 characters, no blanks, not a built-in chain"
        )));
    }
    let dir = if c.data_dir.is_empty() {
        PathBuf::from(DEFAULT_DATA_DIR)
    } else {
        PathBuf::from(c.data_dir)
    };
    Ok(Conf { admin, policy, dir })
}

/// The prevResult, if any (`None` when absent).
fn prev(req: &Request) -> Result<Option<CniResult>, CniError> {
    match req.net_conf()?.prev_result {
        None => Ok(None),
        Some(v) => CniResult::parse_as(&v, &req.version)
            .map(Some)
            .map_err(|e| e.context("failed to parse prevResult")),
    }
}

fn need_prev(req: &Request) -> Result<CniResult, CniError> {
    prev(req)?.ok_or_else(|| CniError::config("firewall: missing prevResult from earlier plugin"))
}

/// The result's addresses, each once, in order (Go appends the rules in
/// this order).
fn ips_of(r: &CniResult) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = Vec::new();
    for ip in r.ips.iter().map(|c| c.address.addr()) {
        if !v.contains(&ip) {
            v.push(ip);
        }
    }
    v
}

fn of_family(ips: &[IpAddr], family: u8) -> Vec<IpAddr> {
    ips.iter()
        .filter(|ip| xt::family_of(ip) == family)
        .copied()
        .collect()
}

fn per_ip_rules(ips: &[IpAddr]) -> Vec<XtRule> {
    ips.iter().flat_map(xt::ip_rules).collect()
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let c = conf(req)?;
    let prev = need_prev(req)?;
    let ips = ips_of(&prev);
    let bridge = match c.policy {
        Policy::Open => None,
        _ => Some(
            prev.interfaces
                .first()
                .map(|i| i.name.clone())
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    CniError::config(format!(
                        "firewall: ingressPolicy {:?} needs the bridge as the prevResult's first interface: chain \"firewall\" after \"bridge\"",
                        c.policy.name()
                    ))
                })?,
        ),
    };
    // Every decision before any change: where each family's rules go.
    let nl = xt::open()?;
    let mut plans: Vec<(u8, Flavour, Vec<Want>)> = Vec::new();
    for f in FAMILIES {
        let fips = of_family(&ips, f);
        if fips.is_empty() {
            continue;
        }
        let mut wants = xt::add_plan(f, &c.admin, &fips);
        if let Some(br) = &bridge {
            wants.extend(xt::isolation_plan(f, br, c.policy));
        }
        plans.push((f, flavour(&nl, f)?, wants));
    }
    // Remembered first: a DEL or GC after a crash below still finds the IPs.
    let state = State {
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        ips: ips.clone(),
    };
    let path = state_path(&c.dir, req.name(), &req.container_id, &req.ifname);
    state.write(&path)?;
    let result = plans.iter().try_for_each(|(f, fl, wants)| match fl {
        Flavour::Nft => xt::apply(&nl, *f, wants),
        Flavour::Legacy(l) => l.apply(wants),
    });
    if let Err(e) = result {
        // Roll back the per-IP rules (chains and jumps are shared).
        let _ = remove_rules(Some(&nl), &ips);
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(prev)
}

fn del(req: &Request) -> Result<(), CniError> {
    let c = conf(req)?;
    let path = state_path(&c.dir, req.name(), &req.container_id, &req.ifname);
    let mut ips: Vec<IpAddr> = State::read(&path).map(|s| s.ips).unwrap_or_default();
    // A prevResult we cannot parse must not stop the cleanup.
    if let Ok(Some(p)) = prev(req) {
        ips.extend(ips_of(&p));
    }
    let ips: Vec<IpAddr> = ips
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !ips.is_empty() {
        remove_rules(xt::open_if_supported()?.as_ref(), &ips)?;
    }
    let _ = std::fs::remove_file(tmp_of(&path));
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CniError::io(format!(
            "firewall: remove {}: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Where one family's rules live on this node.
enum Flavour {
    Nft,
    Legacy(Legacy),
}

/// nf_tables, unless the node is iptables-legacy (see steps::xtables_legacy);
/// a legacy node without a legacy binary is code 2.
fn flavour(nl: &Netlink, f: u8) -> Result<Flavour, CniError> {
    if !xt::legacy_in_use(nl, f)? {
        return Ok(Flavour::Nft);
    }
    let v6 = f == NFPROTO_IPV6;
    Legacy::find(v6).map(Flavour::Legacy).ok_or_else(|| {
        let (tool, fam, names) = if v6 {
            ("ip6tables", "ip6", "ip6_tables_names")
        } else {
            ("iptables", "ip", "ip_tables_names")
        };
        CniError::unsupported(format!(
            "firewall: this node's {tool} is iptables-legacy (table filter in /proc/net/{names}, no nf_tables table {fam} filter) and no {tool}-legacy binary is in PATH"
        ))
    })
}

/// Remove the per-IP rules of `ips` wherever they are: nf_tables (Go's and
/// ours) and, on a legacy node, x_tables.
fn remove_rules(nl: Option<&Netlink>, ips: &[IpAddr]) -> Result<(), CniError> {
    for f in FAMILIES {
        let rules = per_ip_rules(&of_family(ips, f));
        if rules.is_empty() {
            continue;
        }
        if let Some(nl) = nl {
            xt::delete(nl, f, &rules)?;
        }
        if xt::legacy_filter_listed(f) {
            if let Some(l) = Legacy::find(f == NFPROTO_IPV6) {
                l.delete(&rules);
            }
        }
    }
    Ok(())
}

fn check(req: &Request) -> Result<(), CniError> {
    let c = conf(req)?;
    let prev = need_prev(req)?;
    let ips = ips_of(&prev);
    let nl = xt::open()?;
    for f in FAMILIES {
        let rules = per_ip_rules(&of_family(&ips, f));
        if rules.is_empty() {
            continue;
        }
        match flavour(&nl, f)? {
            Flavour::Nft => xt::check(&nl, f, &c.admin, &rules)?,
            Flavour::Legacy(l) => {
                let jumps = [xt::forward_jump(f), xt::admin_jump(f, &c.admin)];
                l.check(&[&jumps[..], &rules].concat())?
            }
        }
    }
    Ok(())
}

/// GC: the per-IP rules of every remembered attachment of this network that
/// is not in the valid list go, unless another live attachment (of any
/// network) holds the same IP.
fn gc(req: &Request) -> Result<(), CniError> {
    let c = conf(req)?;
    let Some(valid) = valid_attachments(&req.config)? else {
        return Ok(());
    };
    let net_dir = c.dir.join(req.name());
    // Writes a crash cut short, of attachments that are not valid.
    for a in std::fs::read_dir(&net_dir).into_iter().flatten().flatten() {
        let name = a.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".tmp") {
            if !valid
                .iter()
                .any(|v| base == format!("{}_{}", v.container_id, v.ifname))
            {
                let _ = std::fs::remove_file(a.path());
            }
        }
    }
    let mut stale: Vec<(PathBuf, State)> = Vec::new();
    let mut keep: BTreeSet<IpAddr> = BTreeSet::new();
    for (path, st) in all_states(&c.dir) {
        let live = path.parent() != Some(net_dir.as_path())
            || valid
                .iter()
                .any(|a| a.container_id == st.container_id && a.ifname == st.ifname);
        if live {
            keep.extend(st.ips.iter().copied());
        } else {
            stale.push((path, st));
        }
    }
    if stale.is_empty() {
        return Ok(());
    }
    let gone: Vec<IpAddr> = stale
        .iter()
        .flat_map(|(_, s)| s.ips.iter().copied())
        .filter(|ip| !keep.contains(ip))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !gone.is_empty() {
        remove_rules(xt::open_if_supported()?.as_ref(), &gone)?;
    }
    for (path, _) in stale {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// What ADD remembers about one attachment.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    #[serde(rename = "containerId")]
    container_id: String,
    ifname: String,
    ips: Vec<IpAddr>,
}

fn state_path(dir: &Path, network: &str, cid: &str, ifname: &str) -> PathBuf {
    dir.join(network).join(format!("{cid}_{ifname}"))
}

/// Where a state file is written before it is renamed into place; a crash
/// in between leaves it, and DEL or GC removes it.
fn tmp_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.tmp", path.display()))
}

impl State {
    fn read(path: &Path) -> Option<State> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Written to a temporary file and renamed, so a reader never sees half.
    fn write(&self, path: &Path) -> Result<(), CniError> {
        use std::os::unix::fs::DirBuilderExt;
        let io = |what: &str, p: &Path, e: std::io::Error| {
            CniError::io(format!("firewall: {what} {}: {e}", p.display()))
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("mkdir", dir, e))?;
        let tmp = tmp_of(path);
        let bytes = serde_json::to_vec(self).map_err(|e| CniError::internal(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("rename", &tmp, e))
    }
}

/// Every state file under `dir` (one level of network directories).
fn all_states(dir: &Path) -> Vec<(PathBuf, State)> {
    let mut out = Vec::new();
    let Ok(nets) = std::fs::read_dir(dir) else {
        return out;
    };
    for net in nets.flatten() {
        let Ok(files) = std::fs::read_dir(net.path()) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            if p.to_string_lossy().ends_with(".tmp") {
                continue;
            }
            if let Some(st) = State::read(&p) {
                out.push((p, st));
            }
        }
    }
    out
}

/// Fuzzing only (`cargo fuzz`): the config checks ADD makes first.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = conf(req);
    let _ = prev(req);
}
