//! `cnibox tool ls`: the cached attachments, as libcni's
//! `GetCachedAttachments` sees them.

use super::cache;
use crate::cni::json;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Row {
    network: String,
    #[serde(rename = "containerId")]
    container_id: String,
    #[serde(rename = "ifName")]
    if_name: String,
    netns: String,
    #[serde(rename = "cniVersion")]
    cni_version: String,
    ips: Vec<String>,
    file: String,
}

/// Print a table of rows, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                let w = width.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn run(cache_dir: &Path, network: Option<&str>, as_json: bool) -> i32 {
    let (found, skipped) = match cache::attachments(cache_dir) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("cnibox tool ls: {e}");
            return 1;
        }
    };
    let rows: Vec<Row> = found
        .into_iter()
        .filter(|a| network.is_none_or(|n| a.info.network_name == n))
        .map(|a| {
            let result = cache::stored_result(&a.info);
            Row {
                network: a.info.network_name.clone(),
                container_id: a.info.container_id.clone(),
                if_name: a.info.if_name.clone(),
                netns: a.info.netns.clone(),
                cni_version: result
                    .as_ref()
                    .map(|r| r.cni_version.clone())
                    .unwrap_or_default(),
                ips: result
                    .map(|r| r.ips.iter().map(|ip| ip.address.to_string()).collect())
                    .unwrap_or_default(),
                file: a.file.display().to_string(),
            }
        })
        .collect();
    if as_json {
        println!("{}", json::to_go_pretty(&rows));
        return 0;
    }
    if rows.is_empty() {
        println!(
            "no cached attachments{} in {}",
            network
                .map(|n| format!(" of network {n:?}"))
                .unwrap_or_default(),
            cache_dir.join("results").display()
        );
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.network.clone(),
                    r.container_id.clone(),
                    r.if_name.clone(),
                    if r.netns.is_empty() {
                        "-".into()
                    } else {
                        r.netns.clone()
                    },
                    if r.ips.is_empty() {
                        "-".into()
                    } else {
                        r.ips.join(",")
                    },
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["NETWORK", "CONTAINER", "IFNAME", "NETNS", "IPS"], &cells)
        );
    }
    if !skipped.names.is_empty() {
        eprintln!(
            "note: {} file(s) in {} are not cniCacheV1 attachments (legacy or unreadable): {}",
            skipped.names.len(),
            cache_dir.join("results").display(),
            skipped.names.join(", ")
        );
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_all_but_the_last_column() {
        let t = table(
            &["A", "BB", "C"],
            &[vec!["xxx".into(), "y".into(), "z z".into()]],
        );
        assert_eq!(t, "A    BB  C\nxxx  y   z z\n");
        // More cells than headers is not a panic.
        let t = table(&["A"], &[vec!["1".into(), "2".into(), "3".into()]]);
        assert_eq!(t, "A\n1  2  3\n");
    }
}
