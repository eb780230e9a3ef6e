//! `cnibox ipam ls --etcd URL[,URL...]`: the `etcd` IPAM's reservations,
//! read from the cluster (`<prefix>/<network>/<ip>` holding
//! `{containerID, ifname, node, since}`): who holds what, from which node.

use super::ls::table;
use crate::cni::json;
use crate::etcd;
use serde::Serialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the pools are.
#[derive(Default)]
pub struct Opts {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Serialize, Debug, PartialEq)]
struct Reservation {
    network: String,
    ip: String,
    #[serde(rename = "containerId")]
    container_id: String,
    #[serde(rename = "ifName")]
    if_name: String,
    node: String,
    since: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Value {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
    node: String,
    since: String,
}

/// `(network, ip)` of a key under `base` (`<prefix>/`), if it is one.
fn split_key(base: &str, key: &[u8]) -> Option<(String, IpAddr)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(base)?;
    let (net, ip) = rest.split_once('/')?;
    Some((net.to_string(), ip.parse().ok()?))
}

fn list(opts: &Opts, network: Option<&str>) -> Result<Vec<Reservation>, String> {
    let prefix = if opts.prefix.is_empty() {
        "/cni/ipam"
    } else {
        opts.prefix.trim_end_matches('/')
    };
    let base = format!("{prefix}/");
    let cfg = etcd::Config {
        endpoints: opts.endpoints.clone(),
        ca_file: opts.ca_file.clone(),
        cert_file: opts.cert_file.clone(),
        key_file: opts.key_file.clone(),
        auth: None,
        timeout: Duration::from_secs(10),
    };
    let mut client = etcd::Client::new(&cfg, 0).map_err(|e| e.to_string())?;
    let scan = match network {
        Some(n) => format!("{base}{n}/"),
        None => base.clone(),
    };
    let kvs = client
        .range_prefix(scan.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out: Vec<(String, IpAddr, Reservation)> = kvs
        .into_iter()
        .filter_map(|kv| {
            let (net, ip) = split_key(&base, &kv.key)?;
            let v: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            Some((
                net.clone(),
                ip,
                Reservation {
                    network: net,
                    ip: ip.to_string(),
                    container_id: v.container_id,
                    if_name: v.ifname,
                    node: v.node,
                    since: v.since,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| (&a.0, a.1.is_ipv6(), a.1).cmp(&(&b.0, b.1.is_ipv6(), b.1)));
    Ok(out.into_iter().map(|(_, _, r)| r).collect())
}

fn text(res: &[Reservation]) -> String {
    if res.is_empty() {
        return "no etcd reservations\n".to_string();
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let rows: Vec<Vec<String>> = res
        .iter()
        .map(|r| {
            vec![
                r.network.clone(),
                r.ip.clone(),
                dash(&r.container_id),
                dash(&r.if_name),
                dash(&r.node),
                dash(&r.since),
            ]
        })
        .collect();
    table(
        &["NETWORK", "IP", "CONTAINER", "IFNAME", "NODE", "SINCE"],
        &rows,
    )
}

pub fn run(opts: &Opts, network: Option<&str>, as_json: bool) -> i32 {
    match list(opts, network) {
        Ok(res) if as_json => {
            println!("{}", json::to_go_pretty(&res));
            0
        }
        Ok(res) => {
            print!("{}", text(&res));
            0
        }
        Err(e) => {
            eprintln!("cnibox ipam: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_network_and_ip() {
        assert_eq!(
            split_key("/cni/ipam/", b"/cni/ipam/flat/10.0.0.2"),
            Some(("flat".to_string(), "10.0.0.2".parse().unwrap()))
        );
        assert_eq!(split_key("/cni/ipam/", b"/cni/ipam/flat/x"), None);
        assert_eq!(split_key("/cni/ipam/", b"/other/flat/10.0.0.2"), None);
    }
}
