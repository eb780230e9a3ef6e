//! The `ipam` object of a dhcp network config (Go's `IPAMConfig`), read by
//! the plugin (socket path) and by the daemon (options, priority) from the
//! same config bytes.

use crate::cni::json::{self, GoValue};
use crate::cni::CniError;
use serde::Deserialize;

pub const DEFAULT_SOCKET: &str = "/run/cni/dhcp.sock";
pub const DEFAULT_LEASE_DIR: &str = "/var/lib/cni/dhcp";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProvideOption {
    pub option: String,
    pub value: String,
    #[serde(rename = "fromArg")]
    pub from_arg: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RequestOption {
    #[serde(rename = "skipDefault")]
    pub skip_default: bool,
    pub option: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct IpamFile {
    #[serde(rename = "daemonSocketPath")]
    daemon_socket_path: String,
    /// Beyond the reference: where a DEL with no daemon records the release
    /// (the daemon's `-leasedir`).
    #[serde(rename = "leaseDir")]
    lease_dir: String,
    provide: Vec<ProvideOption>,
    request: Vec<RequestOption>,
    priority: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct NetFile {
    name: String,
    ipam: Option<IpamFile>,
}

/// What the dhcp plugin and daemon read from a network config.
#[derive(Debug, Clone, Default)]
pub struct IpamConf {
    pub name: String,
    pub daemon_socket_path: String,
    pub lease_dir: String,
    pub provide: Vec<ProvideOption>,
    pub request: Vec<RequestOption>,
    pub priority: i64,
}

impl IpamConf {
    pub fn from_value(v: GoValue) -> Result<IpamConf, CniError> {
        let f: NetFile = json::from_value(v)
            .map_err(|e| CniError::config(format!("error parsing netconf: {e}")))?;
        let ipam = f
            .ipam
            .ok_or_else(|| CniError::config("error parsing netconf: missing \"ipam\""))?;
        let or = |s: String, d: &str| if s.is_empty() { d.to_string() } else { s };
        Ok(IpamConf {
            name: f.name,
            daemon_socket_path: or(ipam.daemon_socket_path, DEFAULT_SOCKET),
            lease_dir: or(ipam.lease_dir, DEFAULT_LEASE_DIR),
            provide: ipam.provide,
            request: ipam.request,
            priority: ipam.priority,
        })
    }

    pub fn from_bytes(b: &[u8]) -> Result<IpamConf, CniError> {
        let v =
            json::parse(b).map_err(|e| CniError::config(format!("error parsing netconf: {e}")))?;
        Self::from_value(v)
    }

    pub fn from_request(req: &crate::cni::Request) -> Result<IpamConf, CniError> {
        Self::from_value(req.config.clone())
    }
}

/// The lease's client id: `<containerID>/<netName>/<ifName>`, at most 254
/// bytes (it goes in option 61 after a type byte).
pub fn client_id(container_id: &str, net: &str, ifname: &str) -> String {
    let mut id = format!("{container_id}/{net}/{ifname}");
    if id.len() > 254 {
        let mut cut = 254;
        while !id.is_char_boundary(cut) {
            cut -= 1;
        }
        id.truncate(cut);
    }
    id
}
