//! host-local's configuration: the shared ranges ([`crate::steps::ipranges`])
//! plus where the store is (`dataDir` and the network name).

use crate::cni::json::GoValue;
use crate::cni::{CniError, Request};
use crate::steps::ipranges::{self, Ranges};
use serde::Deserialize;
use std::path::PathBuf;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// The longest file name (NAME_MAX): the network's directory in the store.
const MAX_NAME: usize = 255;

/// A validated host-local configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The network name: the store's subdirectory.
    pub name: String,
    pub data_dir: PathBuf,
    /// Ranges, routes, resolvConf and requested IPs.
    pub ranges: Ranges,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HlFile {
    ipam: Option<HlIpam>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HlIpam {
    #[serde(rename = "dataDir")]
    data_dir: String,
}

/// Load and validate the whole configuration (ADD, CHECK, STATUS, and DEL
/// when the configuration is still valid).
pub fn load(req: &Request) -> Result<Config, CniError> {
    let ranges = ipranges::load(req)?;
    // A name the store cannot be made with fails here, not after changes.
    let name = req.name();
    if name.len() > MAX_NAME {
        return Err(CniError::config(format!(
            "name: the network name is longer than {MAX_NAME} bytes, too long for the store's directory name"
        )));
    }
    let file: HlFile = req.decode()?;
    let data_dir = data_dir(&file.ipam.unwrap_or_default().data_dir);
    Ok(Config {
        name: name.to_string(),
        data_dir,
        ranges,
    })
}

fn data_dir(configured: &str) -> PathBuf {
    if configured.is_empty() {
        PathBuf::from(DEFAULT_DATA_DIR)
    } else {
        PathBuf::from(configured)
    }
}

/// The data dir for DEL and GC, which must not fail because the config
/// stopped validating after ADD: found from `ipam.dataDir` alone when it can
/// be ([`load`] would give the same path), else [`load`]'s error.
pub fn store_dir(req: &Request) -> Result<PathBuf, CniError> {
    match locate_store(req) {
        Some(dir) => Ok(dir),
        None => load(req).map(|c| c.data_dir),
    }
}

/// Where the store is, read as leniently as possible: the network name
/// (checked by the skel) and `ipam.dataDir` if it is a string. `None` when
/// even that cannot be found.
fn locate_store(req: &Request) -> Option<PathBuf> {
    let ipam = req.config.get("ipam")?;
    if !matches!(ipam, GoValue::Object(_)) {
        return None;
    }
    match ipam.get("dataDir") {
        None | Some(GoValue::Null) => Some(data_dir("")),
        Some(GoValue::String(s)) => Some(data_dir(s)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_req<T>(conf: &str, args: &str, f: impl FnOnce(&Request) -> T) -> T {
        crate::cni::skel::with_test_request(conf, args, f)
    }

    #[test]
    fn data_dir_and_name() {
        let c = with_req(
            r#"{"name":"mynet","ipam":{"subnet":"10.1.2.0/24"}}"#,
            "",
            load,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.name, "mynet");
        let c = with_req(
            r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24","dataDir":"/x"}}"#,
            "",
            load,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/x"));
    }

    #[test]
    fn locate_store_is_lenient() {
        let p = |c: &str| with_req(c, "", locate_store);
        assert_eq!(
            p(r#"{"name":"n","ipam":{"dataDir":"/x","ranges":"junk"}}"#),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            p(r#"{"name":"n","ipam":{"subnet":"bad"}}"#),
            Some(PathBuf::from(DEFAULT_DATA_DIR))
        );
        assert_eq!(p(r#"{"name":"n","ipam":{"dataDir":5}}"#), None);
        assert_eq!(p(r#"{"name":"n"}"#), None);
    }
}
