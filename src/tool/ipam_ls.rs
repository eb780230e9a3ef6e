//! `cnibox ipam ls [network]`: host-local's reservations with their owners,
//! read straight from its on-disk store (`<dataDir>/<network>/<ip>` holding
//! `<containerID>\r\n<ifname>`, or just `<containerID>` from old versions),
//! so it works for reservations made by the Go plugin too.

use super::ls::table;
use crate::cni::json;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::Path;

const USAGE: &str = "\
usage: cnibox ipam ls [--json] [--data-dir DIR] [<network>]
       cnibox ipam ls [--json] --etcd URL[,URL...] [--prefix P]
                      [--ca-file F --cert-file F --key-file F] [<network>]

List host-local's IP reservations and who holds them (container ID and
interface), per network, from its store (default /var/lib/cni/networks).
Also shows the last reserved IP of each range set. --json for scripts.
With --etcd, the `etcd` IPAM's pools in that cluster (default prefix
/cni/ipam), with the node that reserved each address and since when.
";

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

#[derive(Serialize, Debug, PartialEq)]
struct Reservation {
    network: String,
    ip: String,
    #[serde(rename = "containerId")]
    container_id: String,
    #[serde(rename = "ifName")]
    if_name: String,
}

#[derive(Serialize, Debug, PartialEq)]
struct NetworkOut {
    network: String,
    reservations: Vec<Reservation>,
    /// `last_reserved_ip.<range set>` contents.
    #[serde(rename = "lastReserved")]
    last_reserved: BTreeMap<String, String>,
}

/// Read one network's directory.
fn read_network(dir: &Path, network: &str) -> Result<NetworkOut, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "no reservations for network {network:?}: host-local has no store at {} \
                 (if its config sets dataDir, pass it with --data-dir)",
                dir.display()
            )
        } else {
            super::io_error("reading", dir, &e)
        }
    })?;
    let mut res: Vec<(IpAddr, Reservation)> = Vec::new();
    let mut last = BTreeMap::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        if let Some(set) = name.strip_prefix("last_reserved_ip.") {
            if let Ok(s) = std::fs::read_to_string(entry.path()) {
                last.insert(set.to_string(), s.trim().to_string());
            }
            continue;
        }
        // Only files named after an IP are reservations (not `lock`, nor
        // anything else a newer host-local keeps there).
        let Ok(ip) = name.parse::<IpAddr>() else {
            continue;
        };
        let Ok(content) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let content = content.trim();
        let (id, ifname) = match content.split_once("\r\n") {
            Some((id, ifname)) => (id.trim(), ifname.trim()),
            None => (content, ""),
        };
        res.push((
            ip,
            Reservation {
                network: network.to_string(),
                ip: ip.to_string(),
                container_id: id.to_string(),
                if_name: ifname.to_string(),
            },
        ));
    }
    res.sort_by_key(|a| (a.0.is_ipv6(), a.0));
    Ok(NetworkOut {
        network: network.to_string(),
        reservations: res.into_iter().map(|(_, r)| r).collect(),
        last_reserved: last,
    })
}

fn list(data_dir: &Path, network: Option<&str>) -> Result<Vec<NetworkOut>, String> {
    if let Some(n) = network {
        if n.is_empty() || n.contains('/') || n == "." || n == ".." {
            return Err(format!("invalid network name {n:?}"));
        }
        return Ok(vec![read_network(&data_dir.join(n), n)?]);
    }
    let rd = match std::fs::read_dir(data_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(super::io_error("reading", data_dir, &e)),
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| read_network(&data_dir.join(n), n))
        .collect()
}

fn text(nets: &[NetworkOut], data_dir: &Path) -> String {
    if nets.is_empty() {
        return format!("no host-local networks in {}\n", data_dir.display());
    }
    let rows: Vec<Vec<String>> = nets
        .iter()
        .flat_map(|n| n.reservations.iter())
        .map(|r| {
            vec![
                r.network.clone(),
                r.ip.clone(),
                r.container_id.clone(),
                if r.if_name.is_empty() {
                    "-".into()
                } else {
                    r.if_name.clone()
                },
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        String::new()
    } else {
        table(&["NETWORK", "IP", "CONTAINER", "IFNAME"], &rows)
    };
    for n in nets {
        let last: Vec<String> = n
            .last_reserved
            .iter()
            .map(|(set, ip)| format!("{ip} (range set {set})"))
            .collect();
        out.push_str(&format!(
            "{}: {}{}\n",
            n.network,
            match n.reservations.len() {
                0 => "no reservations".to_string(),
                k => format!("{k} reserved"),
            },
            if last.is_empty() {
                String::new()
            } else {
                format!(", last reserved {}", last.join(", "))
            }
        ));
    }
    out
}

/// Entry point for `cnibox ipam`.
pub fn main(args: &[OsString]) -> i32 {
    let mut args: Vec<String> = match args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect()
    {
        Some(a) => a,
        None => {
            eprintln!("cnibox ipam: arguments must be UTF-8");
            return 2;
        }
    };
    if args.is_empty() {
        eprint!("cnibox ipam: which command?\n\n{USAGE}");
        return 2;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") || args == ["help"] {
        print!("{USAGE}");
        return 0;
    }
    if args[0] != "ls" {
        eprint!("cnibox ipam: unknown command {:?}\n\n{USAGE}", args[0]);
        return 2;
    }
    args.remove(0);
    let mut as_json = false;
    let mut data_dir = DEFAULT_DATA_DIR.to_string();
    let mut network = None;
    let mut etcd = super::ipam_ls_etcd::Opts::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| match it.next() {
            Some(v) => Ok(v),
            None => {
                eprint!("cnibox ipam: {flag} needs a value\n\n{USAGE}");
                Err(2)
            }
        };
        let path = |v: String| Some(std::path::PathBuf::from(v));
        match a.as_str() {
            "--json" => as_json = true,
            "--etcd" => match value("--etcd") {
                Ok(v) => etcd.endpoints = v.split(',').map(str::to_string).collect(),
                Err(c) => return c,
            },
            "--prefix" => match value("--prefix") {
                Ok(v) => etcd.prefix = v,
                Err(c) => return c,
            },
            "--ca-file" => match value("--ca-file") {
                Ok(v) => etcd.ca_file = path(v),
                Err(c) => return c,
            },
            "--cert-file" => match value("--cert-file") {
                Ok(v) => etcd.cert_file = path(v),
                Err(c) => return c,
            },
            "--key-file" => match value("--key-file") {
                Ok(v) => etcd.key_file = path(v),
                Err(c) => return c,
            },
            "--data-dir" => match it.next() {
                Some(d) => data_dir = d,
                None => {
                    eprint!("cnibox ipam: --data-dir needs a directory\n\n{USAGE}");
                    return 2;
                }
            },
            s if s.starts_with("--data-dir=") => data_dir = s["--data-dir=".len()..].to_string(),
            s if !s.starts_with('-') && network.is_none() => network = Some(a.clone()),
            _ => {
                eprint!("cnibox ipam: unexpected argument {a:?}\n\n{USAGE}");
                return 2;
            }
        }
    }
    if !etcd.endpoints.is_empty() {
        return super::ipam_ls_etcd::run(&etcd, network.as_deref(), as_json);
    }
    let dir = Path::new(&data_dir);
    match list(dir, network.as_deref()) {
        Ok(nets) if as_json => {
            println!("{}", json::to_go_pretty(&nets));
            0
        }
        Ok(nets) => {
            print!("{}", text(&nets, dir));
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
    fn reads_current_and_legacy_files_and_skips_the_rest() {
        let d = std::env::temp_dir().join(format!("cnibox-ipamls-{}", std::process::id()));
        let n = d.join("net1");
        std::fs::create_dir_all(&n).unwrap();
        std::fs::write(n.join("10.1.0.10"), "cid-b\r\neth0").unwrap();
        std::fs::write(n.join("10.1.0.9"), "cid-a\r\nnet1").unwrap();
        std::fs::write(n.join("2001:db8::2"), " legacy-id \n").unwrap();
        std::fs::write(n.join("lock"), "").unwrap();
        std::fs::write(n.join("last_reserved_ip.0"), "10.1.0.10").unwrap();
        std::fs::write(n.join("notes.txt"), "x").unwrap();
        let nets = list(&d, None).unwrap();
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(nets.len(), 1);
        let r = &nets[0].reservations;
        let got: Vec<(&str, &str, &str)> = r
            .iter()
            .map(|r| (r.ip.as_str(), r.container_id.as_str(), r.if_name.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("10.1.0.9", "cid-a", "net1"),
                ("10.1.0.10", "cid-b", "eth0"),
                ("2001:db8::2", "legacy-id", ""),
            ]
        );
        assert_eq!(nets[0].last_reserved["0"], "10.1.0.10");
    }
}
