//! File state: libcni cache entries whose netns is gone, and tuning's
//! backup files (`<dataDir>/<cid>_<ifname>.json`) of dead containers.

use super::{Finding, Fix, Kind, Scan, Verdict};
use crate::tool::doctor::live::{Live, NsState};
use std::path::Path;

pub fn scan_cache(live: &Live, out: &mut Scan) {
    out.inspected(Kind::Cache, live.cache.len());
    for a in &live.cache {
        let (verdict, why) = match a.state {
            NsState::Alive => continue,
            // The same container alive elsewhere: leave it to its runtime.
            NsState::Gone if live.is_alive_id(&a.container_id) => continue,
            NsState::Gone => (Verdict::Leaked, format!("netns {} is gone", a.netns)),
            NsState::Unknown if a.netns.is_empty() => continue,
            NsState::Unknown => (
                Verdict::Unknown,
                format!("netns {} cannot be looked at", a.netns),
            ),
        };
        out.push(Finding {
            kind: Kind::Cache,
            what: format!("{}/{} on {}", a.container_id, a.ifname, a.network),
            place: a.file.display().to_string(),
            by: "libcni or cnibox tool",
            verdict,
            why,
            fix: Fix::CacheFile {
                file: a.file.clone(),
                netns: a.netns.clone(),
            },
            owner: Some(a.container_id.clone()),
            ips: Vec::new(),
        });
    }
}

pub fn scan_tuning(dir: &Path, live: &Live, out: &mut Scan) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    out.inspected(Kind::Tuning, names.len());
    for name in names {
        let stem = &name[..name.len() - ".json".len()];
        let Some((id, ifname)) = stem.rsplit_once('_') else {
            continue;
        };
        if live.is_alive_id(id) {
            continue;
        }
        let (verdict, why) = if live.is_dead_id(id) {
            (
                Verdict::Leaked,
                "its container's other state is leaked or netns gone".to_string(),
            )
        } else {
            (
                Verdict::Unknown,
                "container not known to the cache nor to any other state".to_string(),
            )
        };
        out.push(Finding {
            kind: Kind::Tuning,
            what: format!("backup of {id}/{ifname}"),
            place: dir.join(&name).display().to_string(),
            by: "cnibox or Go",
            verdict,
            why,
            fix: Fix::File {
                path: dir.join(&name),
            },
            owner: Some(id.to_string()),
            ips: Vec::new(),
        });
    }
}
