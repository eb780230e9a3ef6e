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
use crate::netlink::link::{parse_mac, IFF_ALLMULTI};
use crate::netlink::Netlink;
use crate::steps::goregexp::Regex;
use crate::steps::netns::NetNs;
use crate::steps::undo::Undo;
use crate::steps::{check, fault, sysctl};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

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
    /// The MAC and the text it was given as (which goes into the result).
    mac: Option<([u8; 6], String)>,
    promisc: bool,
    mtu: Option<u32>,
    allmulti: Option<bool>,
    txqlen: Option<u32>,
}

impl Settings {
    fn touches_link(&self) -> bool {
        self.mac.is_some()
            || self.promisc
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.txqlen.is_some()
    }
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
        allmulti,
        mtu: (mtu != 0).then(|| to_u32("mtu", mtu)).transpose()?,
        txqlen: txqlen.map(|q| to_u32("txQLen", q)).transpose()?,
        ..Default::default()
    };
    if !mac.0.is_empty() {
        let bytes = parse_mac(&mac.0).ok_or_else(|| {
            CniError::config(format!("{}: invalid MAC address {:?}", mac.1, mac.0))
        })?;
        out.mac = Some((bytes, mac.0));
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

/// When the allow-list file exists, every sysctl key must match one of its
/// lines (Go regexps, unanchored, against the key as written).
fn check_allowlist(sysctls: &[Sysctl]) -> Result<(), CniError> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let path = allowlist_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CniError::io(format!("failed to read {path}: {e}"))),
    };
    let lines: Vec<&str> = text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut patterns = Vec::new();
    for l in &lines {
        patterns.push(
            Regex::new(l).map_err(|e| CniError::config(format!("{path}: pattern {l:?}: {e}")))?,
        );
    }
    for s in sysctls {
        if !patterns.iter().any(|p| p.is_match(&s.key)) {
            return Err(CniError::config(format!(
                "sysctl: Sysctl {} is not allowed. Only the following sysctls are allowed: [{}]",
                s.key,
                lines.join(" ")
            )));
        }
    }
    Ok(())
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
}

fn backup_path(data_dir: &str, container_id: &str, ifname: &str) -> String {
    format!(
        "{}/{container_id}_{ifname}.json",
        data_dir.trim_end_matches('/')
    )
}

/// Read a file without following a symlink; `Ok(None)` if absent.
fn read_nofollow(path: &str) -> std::io::Result<Option<Vec<u8>>> {
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    Read::by_ref(&mut f).take(1 << 20).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Write `bytes` 0600, never through a symlink.
fn write_nofollow(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?
        .write_all(bytes)
}

// ---- commands --------------------------------------------------------------

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = req.net_conf()?;
    let s = settings(req)?;
    check_allowlist(&s.sysctls)?;
    let mut result = check::prev_result(req, &conf, "tuning")?;
    let ns = NetNs::open(&req.netns)?;
    let (id, ifname) = (req.container_id.as_str(), req.ifname.as_str());
    ns.run(|| apply(id, ifname, &s))??;
    if let Some((_, given)) = &s.mac {
        for i in result
            .interfaces
            .iter_mut()
            .filter(|i| i.name == req.ifname)
        {
            i.mac = given.clone();
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
    let link = match s.touches_link() {
        false => None,
        true => Some(nl.link_and_txqlen_by_name(ifname)?.ok_or_else(|| {
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

    let backup = Backup {
        mac: s
            .mac
            .as_ref()
            .map(|_| link.mac_string())
            .unwrap_or_default(),
        promisc: s.promisc.then(|| link.is_promisc()),
        mtu: s.mtu.map(|_| link.mtu as i64).unwrap_or(0),
        allmulti: s.allmulti.map(|_| link.flags & IFF_ALLMULTI != 0),
        tx_qlen: s.txqlen.map(|_| txqlen as i64),
    };
    let path = backup_path(&s.data_dir, id, ifname);
    let previous = read_nofollow(&path).ok().flatten();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&s.data_dir)
        .map_err(|e| CniError::io(format!("failed to create backup directory: {e}")))?;
    write_nofollow(&path, backup.to_go_json().as_bytes())
        .map_err(|e| CniError::io(format!("failed to save {path}: {e}")))?;
    let saved = path.clone();
    undo.push(move || {
        let _ = match previous {
            Some(bytes) => write_nofollow(&saved, &bytes),
            None => std::fs::remove_file(&saved),
        };
    });
    fault::point("tuning:after-backup")?;

    let (nl, idx) = (&nl, link.index);
    if let Some((mac, _)) = &s.mac {
        nl.link_set_mac(idx, mac)?;
        let old = link.mac.clone();
        undo.push(move || {
            let _ = nl.link_set_mac(idx, &old);
        });
    }
    if s.promisc {
        nl.link_set_promisc(idx, true)?;
        let was = link.is_promisc();
        undo.push(move || {
            let _ = nl.link_set_promisc(idx, was);
        });
    }
    if let Some(mtu) = s.mtu {
        nl.link_set_mtu(idx, mtu)?;
        let was = link.mtu;
        undo.push(move || {
            let _ = nl.link_set_mtu(idx, was);
        });
    }
    if let Some(on) = s.allmulti {
        nl.link_set_allmulti(idx, on)?;
        let was = link.flags & IFF_ALLMULTI != 0;
        undo.push(move || {
            let _ = nl.link_set_allmulti(idx, was);
        });
    }
    if let Some(q) = s.txqlen {
        nl.link_set_txqlen(idx, q)?;
        undo.push(move || {
            let _ = nl.link_set_txqlen(idx, txqlen);
        });
    }
    fault::point("tuning:after-link")?;
    undo.commit();
    Ok(())
}

/// DEL never fails once the config is valid. The backup is removed when its
/// values are back, and also when the namespace or the link is gone (they
/// can never be restored then) or the file is not a backup at all. It stays
/// only when the namespace cannot be entered (a later DEL or GC may).
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
    let Ok(Some(bytes)) = read_nofollow(&path) else {
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

/// Put the backed-up values back (MTU, MAC, promisc, allmulti, txqueuelen,
/// the reference's order), going on after a failure.
fn restore(ifname: &str, b: &Backup) {
    let Ok(nl) = Netlink::route() else { return };
    let Ok(Some((link, _))) = nl.link_and_txqlen_by_name(ifname) else {
        return;
    };
    let idx = link.index;
    if let Ok(mtu) = u32::try_from(b.mtu) {
        if mtu != 0 {
            let _ = nl.link_set_mtu(idx, mtu);
        }
    }
    if let Some(mac) = parse_mac(&b.mac) {
        let _ = nl.link_set_mac(idx, &mac);
    }
    if let Some(p) = b.promisc {
        let _ = nl.link_set_promisc(idx, p);
    }
    if let Some(a) = b.allmulti {
        let _ = nl.link_set_allmulti(idx, a);
    }
    if let Some(q) = b.tx_qlen.and_then(|q| u32::try_from(q).ok()) {
        let _ = nl.link_set_txqlen(idx, q);
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
    if let Some((mac, given)) = &s.mac {
        if link.mac != mac {
            return fail(format!(
                "Error: Tuning configured Ethernet of {ifname} is {given}, current value is {}",
                link.mac_string()
            ));
        }
    }
    if s.promisc != link.is_promisc() {
        return fail(format!(
            "Error: Tuning link {ifname} configured promisc is {}, current value is {}",
            s.promisc,
            link.is_promisc()
        ));
    }
    if let Some(mtu) = s.mtu.filter(|m| *m != link.mtu) {
        return fail(format!(
            "Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}",
            link.mtu
        ));
    }
    let allmulti = link.flags & IFF_ALLMULTI != 0;
    if let Some(want) = s.allmulti.filter(|a| *a != allmulti) {
        return fail(format!(
            "Error: Tuning configured all-multicast mode of {ifname} is {want}, current value is {allmulti}"
        ));
    }
    if let Some(want) = s.txqlen.filter(|q| *q != txqlen) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::skel::with_test_request;

    #[test]
    fn backup_bytes_are_go_marshal_indent() {
        let b = Backup {
            mac: "2e:cb:00:11:22:33".into(),
            promisc: Some(false),
            mtu: 1500,
            allmulti: Some(false),
            tx_qlen: Some(1000),
        };
        assert_eq!(
            b.to_go_json(),
            "{\n \"mac\": \"2e:cb:00:11:22:33\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"allmulti\": false,\n \"txQLen\": 1000\n}"
        );
        assert_eq!(Backup::default().to_go_json(), "{}");
        let back: Backup = json::from_slice(b.to_go_json().as_bytes()).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn mac_precedence_ends_with_args_cni() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"tuning","mac":"02:00:00:00:00:01",
            "runtimeConfig":{"mac":"02:00:00:00:00:03"},
            "args":{"cni":{"mac":"02:00:00:00:00:04","sysctl":{"net.core.somaxconn":"500"}}}}"#;
        let s = with_test_request(conf, "MAC=02:00:00:00:00:02", settings).unwrap();
        assert_eq!(s.mac.unwrap().1, "02:00:00:00:00:04");
        assert_eq!(s.sysctls[0].path, "/proc/sys/net/core/somaxconn");
        let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"tuning","mac":"02:00:00:00:00:01"}"#;
        let s = with_test_request(conf, "MAC=02:00:00:00:00:02", settings).unwrap();
        assert_eq!(s.mac.unwrap().1, "02:00:00:00:00:02");
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        for (conf, field) in [
            (
                r#"{"sysctl":{"kernel.hostname":"x"}}"#,
                "invalid net sysctl key: \"kernel/hostname\"",
            ),
            (
                r#"{"sysctl":{"net.a":"1","net.a":"2"}}"#,
                "duplicated sysctl keys",
            ),
            (r#"{"mac":"zz"}"#, "mac: invalid MAC"),
            (
                r#"{"args":{"cni":{"mac":"1:2"}}}"#,
                "args.cni.mac: invalid MAC",
            ),
            (r#"{"mtu":-1}"#, "mtu: invalid value -1"),
            (r#"{"txQLen":4294967296}"#, "txQLen: invalid value"),
        ] {
            let e = with_test_request(conf, "", settings).unwrap_err();
            assert_eq!(e.code, 7, "{conf}: {e:?}");
            assert!(e.msg.contains(field), "{conf}: {}", e.msg);
        }
    }
}
