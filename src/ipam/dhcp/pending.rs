//! Releases recorded by a DEL while no daemon answered (beyond the
//! reference): one file per lease under `<leasedir>/pending/`, named by the
//! SHA-256 of the client id and holding the client id. The daemon sends
//! them when it starts and removes the files.

use super::config::{client_id, IpamConf};
use super::wire::CmdArgs;
use crate::steps::statefile;
use sha2::{Digest, Sha256};
use std::io;

pub fn dir(lease_dir: &str) -> String {
    format!("{lease_dir}/pending")
}

pub fn file_name(client_id: &str) -> String {
    Sha256::digest(client_id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Record that the lease of `args` must be released.
pub fn record(lease_dir: &str, args: &CmdArgs) -> io::Result<()> {
    let net = IpamConf::from_bytes(&args.stdin)
        .map(|c| c.name)
        .unwrap_or_default();
    let id = client_id(&args.container_id, &net, &args.ifname);
    let d = dir(lease_dir);
    std::fs::create_dir_all(&d)?;
    // Written whole, then renamed: a crash never leaves an empty record
    // (a release lost).
    let path = format!("{d}/{}", file_name(&id));
    let tmp = format!("{path}.tmp");
    statefile::write(&tmp, id.as_bytes())?;
    std::fs::rename(&tmp, &path)
}

/// The client ids waiting for a release, and their files.
pub fn list(lease_dir: &str) -> Vec<(String, String)> {
    let d = dir(lease_dir);
    let Ok(rd) = std::fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let path = e.path().to_string_lossy().into_owned();
        if path.ends_with(".tmp") {
            continue;
        }
        if let Ok(Some(b)) = statefile::read(&path) {
            out.push((String::from_utf8_lossy(&b).into_owned(), path));
        }
    }
    out
}
