//! The `etcd` IPAM configuration: how to reach the cluster (read leniently,
//! so DEL and GC work when the ranges no longer validate) and the ranges,
//! shared with host-local ([`crate::steps::ipranges`]).

use crate::cni::{CniError, Request};
use crate::etcd;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_PREFIX: &str = "/cni/ipam";
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

/// Where the pool lives and who we are.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: etcd::Config,
    /// `<prefix>/<network>/`: every key of the pool starts with it.
    pub base: String,
    /// `<prefix>/_hints/<network>/<node>/`: where this node keeps where it
    /// reserved last.
    pub hints: String,
    /// This node's name (GC only ever removes its own keys).
    pub node: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct File {
    ipam: Option<IpamFile>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamFile {
    endpoints: Vec<String>,
    prefix: String,
    #[serde(rename = "certFile")]
    cert_file: String,
    #[serde(rename = "keyFile")]
    key_file: String,
    #[serde(rename = "caFile")]
    ca_file: String,
    username: String,
    password: String,
    node: String,
    /// Seconds, for one whole operation against the cluster.
    timeout: Option<f64>,
}

fn bad(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::config(format!("{field}: {msg}"))
}

/// This host's name, as the kernel has it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn path(s: String) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// The connection part of the config.
pub fn conn(req: &Request) -> Result<Conn, CniError> {
    let file: File = req.decode()?;
    let ipam = file
        .ipam
        .ok_or_else(|| CniError::config("IPAM config missing 'ipam' key"))?;
    if ipam.endpoints.is_empty() {
        return Err(bad("ipam.endpoints", "at least one etcd URL is required"));
    }
    let timeout = ipam.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(timeout > 0.0 && timeout <= 3600.0) {
        return Err(bad(
            "ipam.timeout",
            format!("{timeout} is not a number of seconds in (0, 3600]"),
        ));
    }
    let prefix = if ipam.prefix.is_empty() {
        DEFAULT_PREFIX.to_string()
    } else {
        ipam.prefix.trim_end_matches('/').to_string()
    };
    if !prefix.starts_with('/') {
        return Err(bad(
            "ipam.prefix",
            format!("{prefix:?} must start with '/'"),
        ));
    }
    let name = req.name();
    if name.contains('/') {
        return Err(bad(
            "name",
            "a network name with '/' cannot be an etcd key part",
        ));
    }
    let auth = match (ipam.username.is_empty(), ipam.password.is_empty()) {
        (true, true) => None,
        (false, _) => Some((ipam.username, ipam.password)),
        (true, false) => return Err(bad("ipam.username", "required with password")),
    };
    let node = if ipam.node.is_empty() {
        hostname()
    } else {
        ipam.node
    };
    Ok(Conn {
        client: etcd::Config {
            endpoints: ipam.endpoints,
            ca_file: path(ipam.ca_file),
            cert_file: path(ipam.cert_file),
            key_file: path(ipam.key_file),
            auth,
            timeout: Duration::from_secs_f64(timeout),
        },
        base: format!("{prefix}/{name}/"),
        hints: format!("{prefix}/_hints/{name}/{node}/"),
        node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_of(c: &str) -> Result<Conn, CniError> {
        crate::cni::skel::with_test_request(c, "", conn)
    }

    #[test]
    fn defaults_and_fields() {
        let c = conn_of(
            r#"{"name":"flat","ipam":{"type":"etcd","endpoints":["http://127.0.0.1:2379"],"node":"n1"}}"#,
        )
        .unwrap();
        assert_eq!(c.base, "/cni/ipam/flat/");
        assert_eq!(c.node, "n1");
        assert_eq!(c.client.timeout, Duration::from_secs(10));
        assert!(c.client.auth.is_none() && c.client.ca_file.is_none());
        let c = conn_of(
            r#"{"name":"flat","ipam":{"endpoints":["https://e:1"],"prefix":"/x/","timeout":1.5,
            "caFile":"/ca","certFile":"/c","keyFile":"/k","username":"u","password":"p"}}"#,
        )
        .unwrap();
        assert_eq!(c.base, "/x/flat/");
        assert_eq!(c.client.timeout, Duration::from_millis(1500));
        assert_eq!(c.client.auth, Some(("u".into(), "p".into())));
        assert_eq!(c.client.key_file, Some(PathBuf::from("/k")));
        assert!(!c.node.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let msg = |c: &str| conn_of(c).unwrap_err().msg;
        assert!(msg(r#"{"name":"n","ipam":{}}"#).starts_with("ipam.endpoints: "));
        assert!(
            msg(r#"{"name":"n","ipam":{"endpoints":["http://a:1"],"timeout":0}}"#)
                .starts_with("ipam.timeout: ")
        );
        assert!(
            msg(r#"{"name":"n","ipam":{"endpoints":["http://a:1"],"prefix":"x"}}"#)
                .starts_with("ipam.prefix: ")
        );
        assert!(
            msg(r#"{"name":"n","ipam":{"endpoints":["http://a:1"],"password":"p"}}"#)
                .starts_with("ipam.username: ")
        );
    }
}
