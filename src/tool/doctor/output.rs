//! What doctor prints: a table per kind of state and the totals, or one
//! JSON object for tools.

use super::{Finding, Kind, Scan, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct Report<'a> {
    pub leaked: Vec<&'a Finding>,
    #[serde(rename = "unknownOwner")]
    pub unknown: Vec<&'a Finding>,
    pub inspected: BTreeMap<Kind, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<&'a Finding>>,
    #[serde(rename = "notRemoved", skip_serializing_if = "Vec::is_empty")]
    pub not_removed: Vec<String>,
    pub errors: &'a [String],
    #[serde(rename = "elapsedMs")]
    pub elapsed_ms: u128,
}

pub fn text(scan: &Scan, fixed: Option<&[&Finding]>, failed: &[String], ms: u128) -> String {
    let mut out = String::new();
    let removed: std::collections::HashSet<*const Finding> = fixed
        .unwrap_or_default()
        .iter()
        .map(|r| *r as *const Finding)
        .collect();
    let was_removed = |f: &Finding| removed.contains(&(f as *const Finding));
    let mut kinds: Vec<Kind> = scan.findings.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        let rows: Vec<Vec<String>> = scan
            .findings
            .iter()
            .filter(|f| f.kind == k)
            .map(|f| {
                vec![
                    match f.verdict {
                        Verdict::Leaked if was_removed(f) => "REMOVED".into(),
                        Verdict::Leaked => "LEAKED".into(),
                        Verdict::Unknown => "unknown owner".into(),
                    },
                    f.what.clone(),
                    f.place.clone(),
                    f.by.to_string(),
                    f.why.clone(),
                ]
            })
            .collect();
        out.push_str(&format!("== {} ({})\n", k.label(), rows.len()));
        out.push_str(&crate::tool::ls::table(
            &["STATE", "WHAT", "WHERE", "MADE BY", "WHY"],
            &rows,
        ));
        out.push('\n');
    }
    let leaked = scan
        .findings
        .iter()
        .filter(|f| f.verdict.is_leaked())
        .count();
    let unknown = scan.findings.len() - leaked;
    let inspected: usize = scan.inspected.values().sum();
    out.push_str(&format!(
        "{leaked} leaked, {unknown} unknown owner, {inspected} objects inspected in {ms} ms\n"
    ));
    if let Some(fixed) = fixed {
        out.push_str(&format!("removed {} leaked object(s)\n", fixed.len()));
        for f in failed {
            out.push_str(&format!("not removed: {f}\n"));
        }
    }
    for e in &scan.errors {
        out.push_str(&format!("warning: {e}\n"));
    }
    out
}
