//! libcni's result cache: `<cacheDir>/results/<net>-<cid>-<ifname>`, a
//! compact JSON `cachedInfo` (kind `cniCacheV1`) or, from old runtimes, just
//! the result. Written byte-for-byte as libcni HEAD writes it, but
//! atomically (temp file + rename), so a crash never leaves the zero-byte
//! file libcni's `os.WriteFile` can.

use super::conf::go_io_error;
use super::gojson::{self, Part};
use crate::cni::json::{self, GoValue};
use crate::cni::result::CniResult;
use crate::cni::version;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const KIND: &str = "cniCacheV1";

/// The default cache directory (libcni's `CacheDir`).
pub const DEFAULT_DIR: &str = "/var/lib/cni";

/// What identifies one attachment (libcni's `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: Vec<(String, String)>,
    pub capability_args: Option<Map<String, Value>>,
}

/// A decoded `cachedInfo`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedInfo {
    pub kind: String,
    pub container_id: String,
    pub config: Vec<u8>,
    pub if_name: String,
    pub network_name: String,
    pub netns: String,
    pub cni_args: Option<Vec<(String, String)>>,
    pub capability_args: Option<Map<String, Value>>,
    pub result: Option<Map<String, Value>>,
}

/// The file name of an attachment's cache (libcni's `getCacheFilePath`).
pub fn path(cache_dir: &Path, net: &str, rt: &RuntimeConf) -> Result<PathBuf, String> {
    if net.is_empty() || rt.container_id.is_empty() || rt.ifname.is_empty() {
        return Err(format!(
            "cache file path requires network name ({net:?}), container ID ({:?}), and interface name ({:?})",
            rt.container_id, rt.ifname
        ));
    }
    Ok(cache_dir
        .join("results")
        .join(format!("{net}-{}-{}", rt.container_id, rt.ifname)))
}

/// The cache file's bytes, exactly as libcni HEAD marshals `cachedInfo`.
pub fn encode(
    config: &[u8],
    net: &str,
    rt: &RuntimeConf,
    result: &CniResult,
) -> Result<String, String> {
    // libcni marshals the result in its own version, then re-reads it into
    // a map: keys end up sorted at every level.
    let result_map = result
        .to_version_value(&result.cni_version)
        .map_err(|e| e.to_string())?;
    let strs = [
        gojson::string(KIND),
        gojson::string(&rt.container_id),
        gojson::string(&gojson::base64_encode(config)),
        gojson::string(&rt.ifname),
        gojson::string(net),
        gojson::string(&rt.netns),
    ];
    let mut members: Vec<(&str, Part)> = vec![
        ("kind", Part::Raw(&strs[0])),
        ("containerId", Part::Raw(&strs[1])),
        ("config", Part::Raw(&strs[2])),
        ("ifName", Part::Raw(&strs[3])),
        ("networkName", Part::Raw(&strs[4])),
    ];
    if !rt.netns.is_empty() {
        members.push(("netns", Part::Raw(&strs[5])));
    }
    let args = Value::Array(
        rt.args
            .iter()
            .map(|(k, v)| Value::Array(vec![k.clone().into(), v.clone().into()]))
            .collect(),
    );
    if !rt.args.is_empty() {
        members.push(("cniArgs", Part::Value(&args)));
    }
    let caps = rt.capability_args.clone().map(Value::Object);
    if let Some(c) = caps
        .as_ref()
        .filter(|c| c.as_object().is_some_and(|m| !m.is_empty()))
    {
        members.push(("capabilityArgs", Part::Value(c)));
    }
    if result_map.as_object().is_some_and(|m| !m.is_empty()) {
        members.push(("result", Part::Value(&result_map)));
    }
    let mut out = String::new();
    gojson::write_object(&mut out, members.into_iter());
    Ok(out)
}

/// Write a file atomically: a temporary file (mode 0600, fsynced) in the
/// same directory, renamed over `path`. Directories are made 0700.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| go_io_error("mkdir", dir, &e))?;
    not_a_symlink(dir)?;
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(&base));
    // A leftover of a writer killed before its rename (one attachment has
    // one writer at a time: the spec forbids parallel operations on it).
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| go_io_error("open", &tmp, &e))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| go_io_error("chmod", &tmp, &e))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| go_io_error("write", &tmp, &e))?;
        crash_point();
        std::fs::rename(&tmp, path).map_err(|e| go_io_error("rename", &tmp, &e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    result
}

/// The results directory must be a real directory: a symlink planted there
/// would send the cache (and GC's listing) anywhere (libcni follows it).
fn not_a_symlink(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "refusing to use {}: it is a symlink",
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Read a cache file without following a symlink planted in its place.
fn read_nofollow(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(p)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// Debug builds only: die between writing the temporary file and renaming
/// it, as a `kill -9` at the worst moment would (tests prove the old cache
/// survives).
fn crash_point() {
    #[cfg(debug_assertions)]
    if std::env::var_os("CNIBOX_TEST_KILL_BEFORE_RENAME").is_some() {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Temporary files start with a dot, which no libcni cache name can (a
/// network name starts with a letter or digit); listings skip them. One
/// name per attachment, so a crash leftover is replaced by the next write
/// and removed by DEL and GC, never piling up.
fn temp_name(base: &str) -> String {
    format!(".{base}.tmp")
}

pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
}

/// Remove an attachment's cache file (a missing one is fine), and the
/// temporary a killed writer may have left.
pub fn remove(cache_dir: &Path, net: &str, rt: &RuntimeConf) {
    if let Ok(p) = path(cache_dir, net, rt) {
        let _ = std::fs::remove_file(&p);
        if let (Some(dir), Some(base)) = (p.parent(), p.file_name()) {
            let _ = std::fs::remove_file(dir.join(temp_name(&base.to_string_lossy())));
        }
    }
}

/// GC: remove the temporaries of network `net` that killed writers left
/// (an ADD killed before its rename has no cache entry for GC to find),
/// except those of `valid` attachments (`None`: keep none).
pub fn sweep_temps(cache_dir: &Path, net: &str, valid: Option<&[(String, String)]>) {
    let dir = cache_dir.join("results");
    if not_a_symlink(&dir).is_err() {
        return;
    }
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let keep: Vec<String> = valid
        .unwrap_or_default()
        .iter()
        .map(|(cid, ifname)| temp_name(&format!("{net}-{cid}-{ifname}")))
        .collect();
    let prefix = format!(".{net}-");
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".tmp") && !keep.contains(&name) {
            let _ = std::fs::remove_file(dir.join(&name));
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Wire {
    kind: String,
    #[serde(rename = "containerId")]
    container_id: String,
    config: Option<String>,
    #[serde(rename = "ifName")]
    if_name: String,
    #[serde(rename = "networkName")]
    network_name: String,
    netns: String,
    #[serde(rename = "cniArgs")]
    cni_args: Option<Vec<Vec<String>>>,
    #[serde(rename = "capabilityArgs")]
    capability_args: Option<BTreeMap<String, GoValue>>,
    result: Option<BTreeMap<String, GoValue>>,
}

fn to_map(m: BTreeMap<String, GoValue>) -> Map<String, Value> {
    m.into_iter().map(|(k, v)| (k, v.to_json())).collect()
}

/// Decode `cachedInfo` with Go's rules (keys match case-insensitively,
/// `config` must be valid base64, `result` an object).
pub fn decode(bytes: &[u8]) -> Result<CachedInfo, String> {
    let w: Wire = json::from_slice(bytes).map_err(|e| e.to_string())?;
    let config = match w.config {
        None => Vec::new(),
        Some(s) => gojson::base64_decode(&s).ok_or("config: illegal base64 data")?,
    };
    Ok(CachedInfo {
        kind: w.kind,
        container_id: w.container_id,
        config,
        if_name: w.if_name,
        network_name: w.network_name,
        netns: w.netns,
        // Go's [2]string takes the first two elements, zero-filled.
        cni_args: w.cni_args.map(|a| {
            a.into_iter()
                .map(|kv| {
                    let mut it = kv.into_iter();
                    (it.next().unwrap_or_default(), it.next().unwrap_or_default())
                })
                .collect()
        }),
        capability_args: w.capability_args.map(to_map),
        result: w.result.map(to_map),
    })
}

/// `create.CreateFromBytes`: a result in the version its own `cniVersion`
/// names (missing is 0.1.0).
fn create_from_bytes(bytes: &[u8]) -> Result<CniResult, String> {
    let v = json::parse(bytes).map_err(|e| format!("decoding version from network config: {e}"))?;
    let version = version::config_version(&v).map_err(|e| e.to_string())?;
    CniResult::parse_as(&v, &version).map_err(|e| e.to_string())
}

/// libcni's `getCachedResult`: `Ok(None)` when there is no readable file;
/// an error when the file is there but unusable (DEL then deletes it and
/// goes on without a prevResult). The result is converted to `version`.
pub fn cached_result(
    cache_dir: &Path,
    net: &str,
    version: &str,
    rt: &RuntimeConf,
) -> Result<Option<CniResult>, String> {
    let p = path(cache_dir, net, rt)?;
    let Ok(bytes) = read_nofollow(&p) else {
        return Ok(None);
    };
    let result = match decode(&bytes) {
        Ok(info) if info.kind == KIND => match info.result {
            Some(m) => result_from_map(m)?,
            None => create_from_bytes(b"null")?,
        },
        // Legacy format: the file is the result.
        _ => create_from_bytes(&bytes)?,
    };
    convert(result, version).map(Some)
}

/// `GetAsVersion`.
fn convert(mut r: CniResult, version: &str) -> Result<CniResult, String> {
    r.to_version_string(version).map_err(|e| {
        format!("failed to convert cached result to config version {version:?}: {e}")
    })?;
    r.cni_version = version.to_string();
    Ok(r)
}

/// One attachment found in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub file: PathBuf,
    pub info: CachedInfo,
}

/// What a cache listing found besides attachments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skipped {
    /// File names that are not `cniCacheV1` attachments (legacy, corrupt,
    /// unreadable), for `tool ls` to mention.
    pub names: Vec<String>,
}

/// libcni's `GetCachedAttachments("")`: sorted file names in `results/`,
/// keeping `cniCacheV1` entries with an interface and network name. A
/// missing directory is an empty list.
pub fn attachments(cache_dir: &Path) -> Result<(Vec<Attachment>, Skipped), String> {
    let dir = cache_dir.join("results");
    not_a_symlink(&dir)?;
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), Skipped::default()))
        }
        Err(e) => return Err(go_io_error("open", &dir, &e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !is_temp_name(n))
        .collect();
    names.sort();
    let mut out = Vec::new();
    let mut skipped = Skipped::default();
    for name in names {
        let file = dir.join(&name);
        let info = read_nofollow(&file).ok().and_then(|b| decode(&b).ok());
        match info {
            Some(info)
                if info.kind == KIND
                    && !info.if_name.is_empty()
                    && !info.network_name.is_empty() =>
            {
                out.push(Attachment { file, info })
            }
            _ => skipped.names.push(name),
        }
    }
    Ok((out, skipped))
}

/// The result stored in a cache entry, in its own version.
pub fn stored_result(info: &CachedInfo) -> Option<CniResult> {
    result_from_map(info.result.clone()?).ok()
}

/// The cache's `result` object as a result: re-marshalled and read as
/// libcni does (so numbers and versions take the same path).
fn result_from_map(m: Map<String, Value>) -> Result<CniResult, String> {
    create_from_bytes(gojson::marshal(&Value::Object(m)).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> RuntimeConf {
        RuntimeConf {
            container_id: "cid".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: vec![("A".into(), "<1>".into())],
            capability_args: None,
        }
    }

    #[test]
    fn encode_uses_libcni_key_order_and_omits_empty_fields() {
        let r = CniResult::parse_any(
            br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}"#,
            "0.4.0",
        )
        .unwrap();
        let s = encode(b"{}\n", "net", &rt(), &r).unwrap();
        assert_eq!(
            s,
            r#"{"kind":"cniCacheV1","containerId":"cid","config":"e30K","ifName":"eth0","networkName":"net","netns":"/run/netns/x","cniArgs":[["A","\u003c1\u003e"]],"result":{"cniVersion":"0.4.0","dns":{},"ips":[{"address":"10.0.0.2/24","version":"4"}]}}"#
        );
        let mut bare = rt();
        bare.netns.clear();
        bare.args.clear();
        bare.capability_args = Some(Map::new());
        let s = encode(b"", "net", &bare, &r).unwrap();
        assert!(s.starts_with(r#"{"kind":"cniCacheV1","containerId":"cid","config":"","ifName":"eth0","networkName":"net","result":"#), "{s}");
    }

    #[test]
    fn decode_round_trips_and_follows_go_rules() {
        let r = CniResult::parse_any(
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#,
            "1.0.0",
        )
        .unwrap();
        let s = encode(b"conf", "net", &rt(), &r).unwrap();
        let info = decode(s.as_bytes()).unwrap();
        assert_eq!(info.kind, KIND);
        assert_eq!(info.config, b"conf");
        assert_eq!(
            info.cni_args.as_deref(),
            Some(&[("A".to_string(), "<1>".to_string())][..])
        );
        assert_eq!(
            stored_result(&info).unwrap().ips[0].address.to_string(),
            "10.0.0.2/24"
        );
        let info = decode(br#"{"KIND":"cniCacheV1","cniargs":[["A"],["B","2","3"]]}"#).unwrap();
        assert_eq!(info.kind, KIND);
        assert_eq!(
            info.cni_args.unwrap(),
            vec![("A".into(), "".into()), ("B".into(), "2".into())]
        );
        assert!(decode(br#"{"config":"!!"}"#).is_err());
        assert!(decode(br#"{"result":"x"}"#).is_err());
        assert!(decode(b"").is_err());
    }

    #[test]
    fn path_needs_all_three_parts() {
        let mut r = rt();
        assert_eq!(
            path(Path::new("/c"), "n", &r).unwrap(),
            PathBuf::from("/c/results/n-cid-eth0")
        );
        r.ifname.clear();
        assert!(path(Path::new("/c"), "n", &r)
            .unwrap_err()
            .starts_with("cache file path requires"));
    }
}
