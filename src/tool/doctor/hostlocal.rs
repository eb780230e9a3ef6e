//! host-local's reservations, in every network under the data dir: one
//! file per IP holding `<containerID>\r\n<ifname>` (or the ID alone, from
//! old versions). cnibox and the Go plugin share this store byte for byte.
//!
//! Removal is host-local's own DEL for (network, container ID, ifname),
//! run as the `host-local` applet of this executable: the same code, under
//! the same store lock, that a runtime's DEL runs.

use super::{judge, Finding, Fix, Kind, Scan};
use crate::tool::doctor::live::Live;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub fn scan(data_dir: &Path, live: &mut Live, min_age: Duration, out: &mut Scan) {
    let rd = match std::fs::read_dir(data_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            out.errors
                .push(format!("host-local: read {}: {e}", data_dir.display()));
            return;
        }
    };
    let mut nets: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    nets.sort();
    let now = SystemTime::now();
    for net in nets {
        let dir = data_dir.join(&net);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            out.errors
                .push(format!("host-local: cannot read {}", dir.display()));
            continue;
        };
        let mut found: Vec<(IpAddr, String, String, Option<Duration>)> = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Ok(ip) = name.to_string_lossy().parse::<IpAddr>() else {
                continue;
            };
            if !e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                continue;
            }
            let Ok(content) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let content = content.trim();
            let (id, ifname) = match content.split_once("\r\n") {
                Some((id, ifname)) => (id.trim().to_string(), ifname.trim().to_string()),
                None => (content.to_string(), String::new()),
            };
            let age = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok());
            found.push((ip, id, ifname, age));
        }
        found.sort_by_key(|f| (f.0.is_ipv6(), f.0));
        out.inspected(Kind::Reservation, found.len());
        // One judgment per owner: host-local's DEL releases all its
        // addresses at once, so one of them in use keeps them all.
        let mut owners: BTreeMap<(String, String), (Vec<IpAddr>, Option<Duration>)> =
            BTreeMap::new();
        for (ip, id, ifname, age) in found {
            if id.is_empty() {
                continue;
            }
            let e = owners.entry((id, ifname)).or_insert((Vec::new(), age));
            e.0.push(ip);
            // The youngest file decides.
            e.1 = match (e.1, age) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            };
        }
        for ((id, ifname), (ips, age)) in owners {
            live.known.insert((net.clone(), id.clone()));
            let Some((mut verdict, mut why)) = judge(live, Some(&id), &ips) else {
                continue;
            };
            if age.is_none_or(|a| a < min_age) && verdict.is_leaked() {
                verdict = super::Verdict::Unknown;
                why = format!(
                    "reserved {}s ago: an ADD may still be in progress (--min-age)",
                    age.map(|a| a.as_secs()).unwrap_or(0)
                );
            }
            if verdict.is_leaked() {
                live.mark_dead(&net, &id);
            }
            let owner = if ifname.is_empty() {
                id.clone()
            } else {
                format!("{id}/{ifname}")
            };
            let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
            out.push(Finding {
                kind: Kind::Reservation,
                what: format!("{} held by {owner}", list.join(",")),
                place: dir.display().to_string(),
                by: "cnibox or Go",
                verdict,
                why,
                owner: Some(id.clone()),
                ips,
                fix: Fix::HostLocal {
                    data_dir: data_dir.to_path_buf(),
                    network: net.clone(),
                    container_id: id,
                    ifname,
                },
            });
        }
    }
}

/// host-local's DEL for the owner, run as this executable's `host-local`
/// applet (a subprocess: the doctor is not a plugin runner).
pub fn release(data_dir: &Path, network: &str, id: &str, ifname: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": network,
        "type": "doctor",
        "ipam": {"type": "host-local", "dataDir": data_dir.display().to_string()},
    })
    .to_string();
    // /proc/self/exe, not the path it links to: the binary may have been
    // replaced since we started.
    let mut child = Command::new("/proc/self/exe")
        .arg0("host-local")
        .env_clear()
        .env("CNI_COMMAND", "DEL")
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "")
        // Required by the skeleton; host-local delegates to nothing.
        .env("CNI_PATH", "/")
        // Legacy files name no interface; host-local's DEL then releases
        // by container ID alone, whatever the interface.
        .env(
            "CNI_IFNAME",
            if ifname.is_empty() { "eth0" } else { ifname },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run host-local: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(conf.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("run host-local: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "host-local DEL: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}
