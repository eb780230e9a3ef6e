//! Network configuration as libcni loads it (`libcni/conf.go` at HEAD):
//! finding a network by name in a directory, parsing a conflist, the
//! `<dir>/<name>/*.conf` plugin fragments, the deprecated single-plugin
//! `.conf`/`.json` files, and `InjectConf`. Messages are libcni's.

use super::gojson::{self, type_name};
use crate::cni::json::{self, GoValue};
use crate::cni::types::Attachment;
use crate::cni::version;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One plugin of a list: its config bytes (compact, keys sorted, as libcni
/// re-marshals them) and the fields libcni reads from them.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    pub bytes: Vec<u8>,
    pub plugin_type: String,
    /// The plugin object's own `name` (only used in messages, as libcni).
    pub name: String,
    pub cni_version: String,
    pub capabilities: BTreeMap<String, bool>,
}

impl PluginConf {
    /// libcni's `pluginDescription`: `type="bridge"` plus ` name="x"`.
    pub fn description(&self) -> String {
        let mut s = format!("type={:?}", self.plugin_type);
        if !self.name.is_empty() {
            s.push_str(&format!(" name={:?}", self.name));
        }
        s
    }
}

/// A network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub load_only_inlined_plugins: bool,
    pub plugins: Vec<PluginConf>,
    /// What goes (base64) into the cache's `config`: the file's bytes.
    pub bytes: Vec<u8>,
}

/// The fields of `types.PluginConf`, decoded with Go's struct rules so that
/// a field of the wrong type is an error, as in libcni. Only some are read.
#[derive(Deserialize, Default)]
#[serde(default)]
#[allow(dead_code)]
struct PluginWire {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    name: String,
    #[serde(rename = "type")]
    plugin_type: String,
    capabilities: BTreeMap<String, bool>,
    ipam: IpamWire,
    dns: DnsWire,
    #[serde(rename = "prevResult")]
    prev_result: Option<BTreeMap<String, GoValue>>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Vec<Attachment>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[allow(dead_code)]
struct IpamWire {
    #[serde(rename = "type")]
    ipam_type: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[allow(dead_code)]
struct DnsWire {
    nameservers: Vec<String>,
    domain: String,
    search: Vec<String>,
    options: Vec<String>,
}

/// `NetworkPluginConfFromBytes`.
pub fn plugin_conf_from_bytes(bytes: Vec<u8>) -> Result<PluginConf, String> {
    let wire: PluginWire =
        json::from_slice(&bytes).map_err(|e| format!("error parsing configuration: {e}"))?;
    if wire.plugin_type.is_empty() {
        return Err("error parsing configuration: missing 'type'".into());
    }
    Ok(PluginConf {
        bytes,
        plugin_type: wire.plugin_type,
        name: wire.name,
        cni_version: wire.cni_version,
        capabilities: wire.capabilities,
    })
}

/// Parse JSON text into a Go `map[string]interface{}` (`null` is an empty
/// map, anything but an object is an error).
fn parse_map(bytes: &[u8]) -> Result<GoValue, String> {
    let v = json::parse(bytes).map_err(|e| e.to_string())?;
    match &v {
        GoValue::Object(_) => Ok(v),
        GoValue::Null => Ok(GoValue::Object(Vec::new())),
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match other {
                GoValue::Array(_) => "array",
                GoValue::String(_) => "string",
                GoValue::Number(_) => "number",
                _ => "bool",
            }
        )),
    }
}

/// [`parse_map`] as a serde map (sorted keys, as Go's map marshals).
fn parse_json_map(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match parse_map(bytes)?.to_json() {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

/// `NetworkConfFromBytes` (= `ConfListFromBytes`).
pub fn conf_list_from_bytes(bytes: &[u8]) -> Result<ConfList, String> {
    const PFX: &str = "error parsing configuration list";
    let raw = parse_map(bytes).map_err(|e| format!("{PFX}: {e}"))?;
    let name = match raw.get_exact("name") {
        None => return Err(format!("{PFX}: no name")),
        Some(GoValue::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "{PFX}: invalid name type {}",
                type_name(Some(other))
            ))
        }
    };
    let mut cni_version = match raw.get_exact("cniVersion") {
        None => String::new(),
        Some(GoValue::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "{PFX}: invalid cniVersion type {}",
                type_name(Some(other))
            ))
        }
    };
    if let Some(rvs) = raw.get_exact("cniVersions") {
        let GoValue::Array(rvs) = rvs else {
            // libcni prints the type of its (nil) target slice here.
            return Err(format!(
                "{PFX}: invalid type for cniVersions: []interface {{}}"
            ));
        };
        let mut vs: Vec<String> = Vec::new();
        for (i, rv) in rvs.iter().enumerate() {
            let GoValue::String(v) = rv else {
                return Err(format!(
                    "{PFX}: invalid type for cniVersions index {i}: {}",
                    type_name(Some(rv))
                ));
            };
            let gt = greater_than(v, version::CURRENT)
                .map_err(|e| format!("{PFX}: invalid cniVersions entry {v} at index {i}: {e}"))?;
            if !gt {
                vs.push(v.clone());
            }
        }
        if !cni_version.is_empty() {
            let gt = greater_than(&cni_version, version::CURRENT)
                .map_err(|e| format!("{PFX}: invalid cniVersion {cni_version}: {e}"))?;
            if !gt {
                vs.push(cni_version.clone());
            }
        }
        // The highest; every entry parsed above, so comparisons succeed.
        if let Some(best) = vs.iter().max_by(|a, b| {
            let pa = version::parse(a).unwrap_or_default();
            let pb = version::parse(b).unwrap_or_default();
            pa.cmp(&pb)
        }) {
            cni_version = best.clone();
        }
    }
    let read_bool = |key: &str| -> Result<bool, String> {
        match raw.get_exact(key) {
            None => Ok(false),
            Some(GoValue::Bool(b)) => Ok(*b),
            Some(GoValue::String(s)) => match s.to_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(format!("{PFX}: invalid value {other:?} for {key}")),
            },
            Some(other) => Err(format!(
                "{PFX}: invalid type {} for {key}",
                type_name(Some(other))
            )),
        }
    };
    let disable_check = read_bool("disableCheck")?;
    let disable_gc = read_bool("disableGC")?;
    let load_only_inlined_plugins = read_bool("loadOnlyInlinedPlugins")?;
    let mut list = ConfList {
        name,
        cni_version,
        disable_check,
        disable_gc,
        load_only_inlined_plugins,
        plugins: Vec::new(),
        bytes: bytes.to_vec(),
    };
    let plugins = match raw.get_exact("plugins") {
        None if load_only_inlined_plugins => {
            return Err(format!(
                "{PFX}: `loadOnlyInlinedPlugins` is true, and no 'plugins' key"
            ))
        }
        None => return Ok(list),
        Some(GoValue::Array(p)) => p,
        Some(other) => {
            return Err(format!(
                "{PFX}: invalid 'plugins' type {}",
                type_name(Some(other))
            ))
        }
    };
    if plugins.is_empty() {
        return Err(format!("{PFX}: no plugins in list"));
    }
    for (i, p) in plugins.iter().enumerate() {
        let bytes = gojson::marshal(&p.to_json()).into_bytes();
        let conf = plugin_conf_from_bytes(bytes)
            .map_err(|e| format!("failed to parse plugin config {i}: {e}"))?;
        list.plugins.push(conf);
    }
    Ok(list)
}

/// Go's `version.GreaterThan`.
fn greater_than(a: &str, b: &str) -> Result<bool, String> {
    Ok(version::parse(a)? > version::parse(b)?)
}

/// An I/O error worded like Go's `*PathError` (`open /x: permission denied`).
pub fn go_io_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(errno) => {
            let d = nix::errno::Errno::from_raw(errno).desc();
            let mut c = d.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => String::new(),
            }
        }
        None => e.to_string(),
    };
    format!("{op} {}: {text}", path.display())
}

/// `ConfFiles`: the files in `dir` with one of `exts` (not directories),
/// sorted; a missing directory is no files.
pub fn conf_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, String> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(go_io_error("open", dir, &e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| go_io_error("readdirent", dir, &e))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // filepath.Ext: from the last dot of the name.
        let ext = name.rfind('.').map(|i| &name[i..]).unwrap_or("");
        if exts.contains(&ext) {
            out.push(dir.join(&*name));
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "error reading {}: {}",
            path.display(),
            go_io_error("open", path, &e)
        )
    })
}

/// `NetworkPluginConfsFromFiles`: `<dir>/<name>/*.conf`.
fn plugin_fragments(dir: &Path, name: &str) -> Result<Vec<PluginConf>, String> {
    let pdir = dir.join(name);
    let files = conf_files(&pdir, &[".conf"]).map_err(|e| {
        format!(
            "failed to read plugin config files in {}: {e}",
            pdir.display()
        )
    })?;
    files
        .iter()
        .map(|f| plugin_conf_from_bytes(read(f)?))
        .collect()
}

/// `NetworkConfFromFile`.
pub fn conf_list_from_file(path: &Path) -> Result<ConfList, String> {
    let bytes = read(path)?;
    let mut list = conf_list_from_bytes(&bytes)?;
    if !list.load_only_inlined_plugins {
        let dir = path.parent().unwrap_or(Path::new("."));
        list.plugins.extend(plugin_fragments(dir, &list.name)?);
    }
    if list.plugins.is_empty() {
        return Err("no plugin configs found".into());
    }
    Ok(list)
}

/// Why a network was not found (`NotFoundError` / `NoConfigsFoundError`).
fn not_found(dir: &Path, name: &str) -> String {
    format!(
        "no net configuration with name {:?} in {}",
        name,
        dir.display()
    )
}

/// `LoadConf`: the deprecated single-plugin files.
fn load_single(dir: &Path, name: &str) -> Result<Option<PluginConf>, String> {
    let files = conf_files(dir, &[".conf", ".json"])?;
    if files.is_empty() {
        return Ok(None);
    }
    for f in files {
        let conf = plugin_conf_from_bytes(read(&f)?)?;
        if conf.name == name {
            return Ok(Some(conf));
        }
    }
    Err(not_found(dir, name))
}

/// `ConfListFromConf`: wrap one plugin as a list. The list's bytes (and so
/// the cache's `config`) are the marshalled wrapper, not the file.
fn conf_list_from_conf(conf: &PluginConf) -> Result<ConfList, String> {
    let raw = parse_json_map(&conf.bytes)?;
    let mut top = Map::new();
    top.insert("cniVersion".into(), conf.cni_version.clone().into());
    top.insert("name".into(), conf.name.clone().into());
    top.insert("plugins".into(), Value::Array(vec![Value::Object(raw)]));
    conf_list_from_bytes(gojson::marshal(&Value::Object(top)).as_bytes())
}

/// `LoadNetworkConf(dir, name)`: the first sorted `*.conflist` whose name
/// matches (any unparsable one before it is an error), else the `.conf` /
/// `.json` fallback.
pub fn load_network_conf(dir: &Path, name: &str) -> Result<ConfList, String> {
    let files = conf_files(dir, &[".conflist"])?;
    for f in &files {
        let list = conf_list_from_file(f)?;
        if list.name == name {
            return Ok(list);
        }
    }
    match load_single(dir, name)? {
        Some(conf) => conf_list_from_conf(&conf),
        None if !files.is_empty() => Err(not_found(dir, name)),
        None => Err(format!("no net configurations found in {}", dir.display())),
    }
}

/// `InjectConf`: set top-level keys of a plugin config to already-marshalled
/// JSON values and re-marshal it with sorted keys.
pub fn inject(conf: &PluginConf, values: &[(&str, &str)]) -> Result<PluginConf, String> {
    let raw = parse_json_map(&conf.bytes)
        .map_err(|e| format!("unmarshal existing network bytes: {e}"))?;
    let bytes = gojson::marshal_map_with(&raw, values).into_bytes();
    plugin_conf_from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Result<ConfList, String> {
        conf_list_from_bytes(text.as_bytes())
    }

    #[test]
    fn top_level_keys_are_exact_map_keys() {
        assert_eq!(
            list(r#"{"Name":"x","plugins":[{"type":"a"}]}"#).unwrap_err(),
            "error parsing configuration list: no name"
        );
        assert_eq!(
            list(r#"{"name":1}"#).unwrap_err(),
            "error parsing configuration list: invalid name type float64"
        );
        let l = list(
            r#"{"name":"a","name":"b","cniVersion":"1.0.0","plugins":[{"TYPE":"x","Name":"p"}]}"#,
        )
        .unwrap();
        assert_eq!(l.name, "b");
        assert_eq!(
            l.plugins[0].plugin_type, "x",
            "plugin fields are struct fields"
        );
        assert_eq!(l.plugins[0].description(), r#"type="x" name="p""#);
        assert_eq!(
            String::from_utf8(l.plugins[0].bytes.clone()).unwrap(),
            r#"{"Name":"p","TYPE":"x"}"#
        );
    }

    #[test]
    fn cni_versions_picks_the_highest_supported() {
        let l = list(r#"{"name":"n","cniVersion":"0.4.0","cniVersions":["1.0.0","9.9.9","0.3.1"],"plugins":[{"type":"a"}]}"#).unwrap();
        assert_eq!(l.cni_version, "1.0.0");
        let l = list(
            r#"{"name":"n","cniVersion":"1.1.0","cniVersions":["1.0.0"],"plugins":[{"type":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, "1.1.0");
        let l =
            list(r#"{"name":"n","cniVersion":"2.0.0","cniVersions":[],"plugins":[{"type":"a"}]}"#)
                .unwrap();
        assert_eq!(
            l.cni_version, "2.0.0",
            "nothing usable leaves cniVersion alone"
        );
        assert!(list(r#"{"name":"n","cniVersions":"1.0.0"}"#)
            .unwrap_err()
            .ends_with("invalid type for cniVersions: []interface {}"));
        assert!(list(r#"{"name":"n","cniVersions":[1]}"#)
            .unwrap_err()
            .ends_with("invalid type for cniVersions index 0: float64"));
        assert!(list(r#"{"name":"n","cniVersions":["x.0"]}"#)
            .unwrap_err()
            .contains("invalid cniVersions entry x.0 at index 0"));
    }

    #[test]
    fn booleans_accept_strings_like_libcni() {
        let l =
            list(r#"{"name":"n","disableCheck":"TRUE","disableGC":true,"plugins":[{"type":"a"}]}"#)
                .unwrap();
        assert!(l.disable_check && l.disable_gc);
        assert_eq!(
            list(r#"{"name":"n","disableCheck":"yes"}"#).unwrap_err(),
            r#"error parsing configuration list: invalid value "yes" for disableCheck"#
        );
        assert_eq!(
            list(r#"{"name":"n","disableGC":null}"#).unwrap_err(),
            "error parsing configuration list: invalid type <nil> for disableGC"
        );
    }

    #[test]
    fn plugins_are_checked() {
        assert_eq!(
            list(r#"{"name":"n","plugins":[]}"#).unwrap_err(),
            "error parsing configuration list: no plugins in list"
        );
        assert_eq!(
            list(r#"{"name":"n","plugins":{}}"#).unwrap_err(),
            "error parsing configuration list: invalid 'plugins' type map[string]interface {}"
        );
        assert_eq!(
            list(r#"{"name":"n","plugins":[{"type":"a"},{"x":1}]}"#).unwrap_err(),
            "failed to parse plugin config 1: error parsing configuration: missing 'type'"
        );
        assert!(
            list(r#"{"name":"n","plugins":[{"type":"a","capabilities":{"x":"yes"}}]}"#)
                .unwrap_err()
                .starts_with(
                    "failed to parse plugin config 0: error parsing configuration: capabilities.x"
                )
        );
        assert_eq!(
            list(r#"{"name":"n","loadOnlyInlinedPlugins":true}"#).unwrap_err(),
            "error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key"
        );
        assert!(list(r#"{"name":"n"}"#).unwrap().plugins.is_empty());
        assert!(list("[1]").unwrap_err().contains("cannot unmarshal array"));
        assert!(list("{")
            .unwrap_err()
            .starts_with("error parsing configuration list: "));
    }

    #[test]
    fn inject_replaces_and_sorts() {
        let l = list(r#"{"name":"n","plugins":[{"type":"a","name":"old","z":{"b":1,"a":2}}]}"#)
            .unwrap();
        let p = inject(
            &l.plugins[0],
            &[("name", "\"n\""), ("cniVersion", "\"1.0.0\"")],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(p.bytes).unwrap(),
            r#"{"cniVersion":"1.0.0","name":"n","type":"a","z":{"a":2,"b":1}}"#
        );
    }
}
