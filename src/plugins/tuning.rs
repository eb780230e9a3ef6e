//! tuning: a chained plugin that sets network sysctls and link attributes
//! (MAC, promiscuous and all-multicast mode, MTU, txqueuelen) of the
//! interface an earlier plugin made (reference: plugins/meta/tuning). The
//! old link attributes go to a backup file Go's tuning reads too, and DEL
//! puts them back. Sysctls are not restored (nor by the reference).
//!
//! Differences from the reference, each on purpose: every input is checked
//! before anything changes and a failed ADD rolls back what it did; DEL
//! removes the backup when the namespace or the link is gone (Go leaves it
//! forever); `args.cni.sysctl` without a top-level `sysctl` works (Go
//! panics). GC removes nothing: the backup files carry no network name and
//! the data dir is shared by every network, so a per-network GC cannot tell
//! a stale file from another network's live one.

use crate::cni::args::CniArgs;
use crate::cni::json::{self, fold_eq, GoValue};
use crate::cni::result::CniResult;
use crate::cni::types::valid_attachments;
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::link::{format_mac, parse_mac, IFF_ALLMULTI};
use crate::netlink::Netlink;
use crate::steps::linkattrs::LinkAttrs;
use crate::steps::netns::NetNs;
use crate::steps::undo::Undo;
use crate::steps::{check, fault, statefile, sysctl};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;

pub const PLUGIN: Plugin = Plugin {
    name: "tuning",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// Where Go's tuning keeps its backups (a Go DEL must find ours).
const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";
const ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TuningConf {
    #[serde(rename = "dataDir")]
    data_dir: String,
    sysctl: Option<BTreeMap<String, String>>,
    mac: String,
    promisc: bool,
    mtu: i64,
    #[serde(rename = "txQLen")]
    tx_qlen: Option<i64>,
    allmulti: Option<bool>,
    #[serde(rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
    args: Option<ArgsSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    mac: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArgsSection {
    cni: Option<ArgsCni>,
}

/// `args.cni`: overrides of the config's own keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArgsCni {
    sysctl: Option<BTreeMap<String, String>>,
    mac: Option<String>,
    promisc: Option<bool>,
    mtu: Option<i64>,
    allmulti: Option<bool>,
    #[serde(rename = "txQLen")]
    tx_qlen: Option<i64>,
}

/// A sysctl to set: the key as written, its file, the value.
#[derive(Debug)]
struct Sysctl {
    key: String,
    path: String,
    value: String,
}

/// What to do, after every override, checked.
#[derive(Debug, Default)]
struct Settings {
    data_dir: String,
    sysctls: Vec<Sysctl>,
    /// The MAC as given (it goes into the result as is).
    mac_text: String,
    /// `promisc: false` means "leave alone" on ADD, "must be off" on CHECK.
    promisc: bool,
    link: LinkAttrs,
}

/// Go refuses a key repeated inside `sysctl` (the decoded map would keep
/// only one of them silently).
fn refuse_duplicate_sysctls(config: &GoValue) -> Result<(), CniError> {
    let GoValue::Object(entries) = config else {
        return Ok(());
    };
    let mut seen = BTreeSet::new();
    for (k, v) in entries.iter().filter(|(k, _)| fold_eq(k, "sysctl")) {
        if let GoValue::Object(kv) = v {
            for (key, _) in kv {
                if !seen.insert(key.as_str()) {
                    return Err(CniError::config(format!(
                        "{k}: duplicated sysctl keys are not allowed: {key:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A count the kernel takes as a u32; 0 means "leave alone" for `mtu`.
fn to_u32(field: &str, v: i64) -> Result<u32, CniError> {
    u32::try_from(v).map_err(|_| CniError::config(format!("{field}: invalid value {v}")))
}

/// The config with CNI_ARGS, runtimeConfig and `args.cni` applied (MAC:
/// config < CNI_ARGS `MAC` < runtimeConfig `mac` < `args.cni.mac`), and
/// every value checked.
fn settings(req: &Request) -> Result<Settings, CniError> {
    refuse_duplicate_sysctls(&req.config)?;
    let conf: TuningConf = req.decode()?;
    let mut mac = (conf.mac, "mac");
    let env_mac = CniArgs::parse(&req.args, &["MAC"])?
        .get("MAC")
        .unwrap_or_default()
        .to_string();
    if !env_mac.is_empty() {
        mac = (env_mac, "CNI_ARGS MAC");
    }
    if !conf.runtime_config.mac.is_empty() {
        mac = (conf.runtime_config.mac, "runtimeConfig.mac");
    }
    let mut sysctls = conf.sysctl.unwrap_or_default();
    let (mut promisc, mut mtu, mut allmulti, mut txqlen) =
        (conf.promisc, conf.mtu, conf.allmulti, conf.tx_qlen);
    if let Some(a) = conf.args.and_then(|a| a.cni) {
        sysctls.extend(a.sysctl.unwrap_or_default());
        if let Some(m) = a.mac {
            mac = (m, "args.cni.mac");
        }
        promisc = a.promisc.unwrap_or(promisc);
        mtu = a.mtu.unwrap_or(mtu);
        allmulti = a.allmulti.or(allmulti);
        txqlen = a.tx_qlen.or(txqlen);
    }
    let mut out = Settings {
        data_dir: match conf.data_dir.as_str() {
            "" => DEFAULT_DATA_DIR.to_string(),
            d => d.to_string(),
        },
        promisc,
        link: LinkAttrs {
            promisc: promisc.then_some(true),
            allmulti,
            mtu: (mtu != 0).then(|| to_u32("mtu", mtu)).transpose()?,
            txqlen: txqlen.map(|q| to_u32("txQLen", q)).transpose()?,
            mac: None,
        },
        ..Default::default()
    };
    if !mac.0.is_empty() {
        let bytes = parse_mac(&mac.0).ok_or_else(|| {
            CniError::config(format!("{}: invalid MAC address {:?}", mac.1, mac.0))
        })?;
        out.link.mac = Some(bytes.to_vec());
        out.mac_text = mac.0;
    }
    for (key, value) in sysctls {
        let path = sysctl::net_key_path(&key, &req.ifname).map_err(|mapped| {
            CniError::config(format!("sysctl: invalid net sysctl key: {mapped:?}"))
        })?;
        out.sysctls.push(Sysctl { key, path, value });
    }
    Ok(out)
}

fn allowlist_path() -> String {
    // Tests point this elsewhere rather than write to the node's /etc.
    #[cfg(debug_assertions)]
    if let Ok(p) = std::env::var("CNIBOX_TUNING_ALLOWLIST") {
        return p;
    }
    ALLOWLIST.to_string()
}

// ---- the backup file -------------------------------------------------------

/// The old values of what ADD changed (Go's `configToRestore`).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
struct Backup {
    mac: String,
    promisc: Option<bool>,
    mtu: i64,
    allmulti: Option<bool>,
    #[serde(rename = "txQLen")]
    tx_qlen: Option<i64>,
}

impl Backup {
    /// The bytes of Go's `json.MarshalIndent(v, "", " ")` (omitempty).
    fn to_go_json(&self) -> String {
        let mut fields = Vec::new();
        if !self.mac.is_empty() {
            fields.push(format!("\"mac\": {}", json::to_go_compact(&self.mac)));
        }
        if let Some(p) = self.promisc {
            fields.push(format!("\"promisc\": {p}"));
        }
        if self.mtu != 0 {
            fields.push(format!("\"mtu\": {}", self.mtu));
        }
        if let Some(a) = self.allmulti {
            fields.push(format!("\"allmulti\": {a}"));
        }
        if let Some(q) = self.tx_qlen {
            fields.push(format!("\"txQLen\": {q}"));
        }
        match fields.is_empty() {
            true => "{}".to_string(),
            false => format!("{{\n {}\n}}", fields.join(",\n ")),
        }
    }

    fn of(old: &LinkAttrs) -> Backup {
        Backup {
            mac: old.mac.as_deref().map(format_mac).unwrap_or_default(),
            promisc: old.promisc,
            mtu: old.mtu.map(i64::from).unwrap_or(0),
            allmulti: old.allmulti,
            tx_qlen: old.txqlen.map(i64::from),
        }
    }

    /// What to restore (values the kernel cannot take are left out).
    fn attrs(&self) -> LinkAttrs {
        LinkAttrs {
            mac: parse_mac(&self.mac).map(|m| m.to_vec()),
            promisc: self.promisc,
            mtu: u32::try_from(self.mtu).ok().filter(|m| *m != 0),
            allmulti: self.allmulti,
            txqlen: self.tx_qlen.and_then(|q| u32::try_from(q).ok()),
        }
    }
}

fn backup_path(data_dir: &str, container_id: &str, ifname: &str) -> String {
    format!(
        "{}/{container_id}_{ifname}.json",
        data_dir.trim_end_matches('/')
    )
}

// ---- commands --------------------------------------------------------------

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = req.net_conf()?;
    let s = settings(req)?;
    sysctl::check_allowlist(&allowlist_path(), s.sysctls.iter().map(|c| c.key.as_str()))?;
    let mut result = check::prev_result(req, &conf, "tuning")?;
    let ns = NetNs::open(&req.netns)?;
    let (id, ifname) = (req.container_id.as_str(), req.ifname.as_str());
    ns.run(|| apply(id, ifname, &s))??;
    // Every interface of that name gets the MAC, sandbox or not (as Go).
    if s.link.mac.is_some() {
        for i in result.interfaces.iter_mut() {
            if i.name == req.ifname {
                i.mac = s.mac_text.clone();
            }
        }
    }
    result.cni_version = req.version.clone();
    Ok(result)
}

/// ADD inside the container's namespace: sysctls, the backup, then MAC,
/// promisc, MTU, allmulti, txqueuelen (the reference's order). Any failure
/// undoes everything before it.
fn apply(id: &str, ifname: &str, s: &Settings) -> Result<(), CniError> {
    let nl = Netlink::route().map_err(|e| CniError::internal(format!("netlink: {e}")))?;
    let link = match s.link.is_empty() {
        true => None,
        false => Some(nl.link_and_txqlen_by_name(ifname)?.ok_or_else(|| {
            CniError::internal(format!("failed to get {ifname:?}: link not found"))
        })?),
    };
    // The old values, read first: a sysctl that does not exist fails here,
    // before anything changed. (Write-only ones cannot be read back.)
    let mut old = Vec::new();
    for sc in &s.sysctls {
        match std::fs::read_to_string(&sc.path) {
            Ok(v) => old.push(Some(v.trim_end_matches('\n').to_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(CniError::config(format!(
                    "sysctl: {}: {} does not exist in the container's namespace",
                    sc.key, sc.path
                )))
            }
            Err(_) => old.push(None),
        }
    }
    let mut undo = Undo::new();
    for (sc, old) in s.sysctls.iter().zip(old) {
        sysctl::write(&sc.path, &sc.value)
            .map_err(|e| CniError::internal(format!("sysctl {}: {e}", sc.key)))?;
        if let Some(old) = old {
            undo.push(move || {
                let _ = sysctl::write(&sc.path, &old);
            });
        }
    }
    fault::point("tuning:after-sysctl")?;
    let Some((link, txqlen)) = link else {
        undo.commit();
        return Ok(());
    };

    let old = s.link.current(&link, txqlen);
    let path = backup_path(&s.data_dir, id, ifname);
    let previous = statefile::read(&path).ok().flatten();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&s.data_dir)
        .map_err(|e| CniError::io(format!("failed to create backup directory: {e}")))?;
    statefile::write(&path, Backup::of(&old).to_go_json().as_bytes())
        .map_err(|e| CniError::io(format!("failed to save {path}: {e}")))?;
    undo.push(move || {
        let _ = match previous {
            Some(bytes) => statefile::write(&path, &bytes),
            None => std::fs::remove_file(&path),
        };
    });
    fault::point("tuning:after-backup")?;

    let (nl, index) = (&nl, link.index);
    undo.push(move || {
        old.restore(nl, index);
    });
    s.link.apply(nl, index)?;
    fault::point("tuning:after-link")?;
    undo.commit();
    Ok(())
}

/// DEL never fails once the config is valid. The backup is removed when its
/// values are back, and also when the namespace or the link is gone (they
/// can never be restored then) or the file is not a backup at all. It stays
/// only when the namespace cannot be entered (a later DEL may).
fn del(req: &Request) -> Result<(), CniError> {
    #[derive(Default, Deserialize)]
    #[serde(default)]
    struct DelConf {
        #[serde(rename = "dataDir")]
        data_dir: String,
    }
    let conf: DelConf = req.decode()?;
    let dir = match conf.data_dir.as_str() {
        "" => DEFAULT_DATA_DIR,
        d => d,
    };
    let path = backup_path(dir, &req.container_id, &req.ifname);
    let Ok(Some(bytes)) = statefile::read(&path) else {
        return Ok(());
    };
    let remove = || {
        let _ = std::fs::remove_file(&path);
    };
    let Ok(backup) = json::from_slice::<Backup>(&bytes) else {
        remove();
        return Ok(());
    };
    let ns = match NetNs::open_for_del(&req.netns) {
        Ok(Some(ns)) => ns,
        Ok(None) => {
            remove();
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    let ifname = req.ifname.as_str();
    if ns.run(|| restore(ifname, &backup)).is_ok() {
        remove();
    }
    Ok(())
}

/// Put the backed-up values back, best effort (a failure cannot be fixed
/// by keeping the file: the runtime does not retry a DEL that succeeded).
fn restore(ifname: &str, b: &Backup) {
    if let Ok(nl) = Netlink::route() {
        if let Ok(Some((link, _))) = nl.link_and_txqlen_by_name(ifname) {
            b.attrs().restore(&nl, link.index);
        }
    }
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = req.net_conf()?;
    let s = settings(req)?;
    check::prev_result(req, &conf, "tuning")?;
    let ns = NetNs::open(&req.netns)?;
    let ifname = req.ifname.as_str();
    ns.run(|| verify(ifname, &s))?
}

/// CHECK inside the namespace: every sysctl holds its value, the link has
/// the configured MAC, MTU, allmulti and txqueuelen, and is promiscuous
/// exactly when `promisc` is true.
fn verify(ifname: &str, s: &Settings) -> Result<(), CniError> {
    let fail = |m: String| Err(CniError::internal(m));
    for sc in &s.sysctls {
        let have = sysctl::read_untrimmed(&sc.path)
            .map_err(|e| CniError::internal(format!("sysctl {}: {}: {e}", sc.key, sc.path)))?;
        if have != sc.value {
            return fail(format!(
                "Error: Tuning configured value of {} is {}, current value is {have}",
                sc.path, sc.value
            ));
        }
    }
    let nl = Netlink::route().map_err(|e| CniError::internal(format!("netlink: {e}")))?;
    let Some((link, txqlen)) = nl.link_and_txqlen_by_name(ifname)? else {
        return fail(format!("Cannot find container link {ifname}"));
    };
    if s.link.mac.as_ref().is_some_and(|m| *m != link.mac) {
        return fail(format!(
            "Error: Tuning configured Ethernet of {ifname} is {}, current value is {}",
            s.mac_text,
            link.mac_string()
        ));
    }
    if s.promisc != link.is_promisc() {
        return fail(format!(
            "Error: Tuning link {ifname} configured promisc is {}, current value is {}",
            s.promisc,
            link.is_promisc()
        ));
    }
    if let Some(mtu) = s.link.mtu.filter(|m| *m != link.mtu) {
        return fail(format!(
            "Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}",
            link.mtu
        ));
    }
    let allmulti = link.flags & IFF_ALLMULTI != 0;
    if let Some(want) = s.link.allmulti.filter(|a| *a != allmulti) {
        return fail(format!(
            "Error: Tuning configured all-multicast mode of {ifname} is {want}, current value is {allmulti}"
        ));
    }
    if let Some(want) = s.link.txqlen.filter(|q| *q != txqlen) {
        return fail(format!(
            "Error: Tuning configured TX queue length of {ifname} is {want}, current value is {txqlen}"
        ));
    }
    Ok(())
}

/// Nothing to ask: tuning has no daemon and no IPAM.
fn status(_req: &Request) -> Result<(), CniError> {
    Ok(())
}

/// Validates the request and removes nothing (see the module comment).
fn gc(req: &Request) -> Result<(), CniError> {
    valid_attachments(&req.config)?;
    req.decode::<TuningConf>()?;
    Ok(())
}

/// Fuzzing only (`cargo fuzz`): every config check ADD makes before it
/// changes anything.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = settings(req);
}
