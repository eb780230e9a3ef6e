//! The range part of an IPAM configuration, shared by host-local and etcd:
//! `ranges` (and the legacy single range, and `runtimeConfig.ipRanges`),
//! `routes`, `resolvConf`, and the requested IPs, read and validated as the
//! reference's `LoadIPAMConfig` does, with its messages; errors are code 7
//! and name the field (`ipam.ranges[0][0].subnet: ...`) instead of Go's 999.

pub mod dns;
pub mod range;

use crate::cni::args::CniArgs;
use crate::cni::result::Route;
use crate::cni::types::{parse_cidr, parse_ip};
use crate::cni::{version, CniError, Request};
use range::{RangeSet, RawRange, SetError};
use serde::Deserialize;
use std::net::IpAddr;

/// The validated ranges, routes and requested IPs of an IPAM config.
#[derive(Debug, Clone)]
pub struct Ranges {
    pub resolv_conf: String,
    pub routes: Vec<Route>,
    /// runtimeConfig.ipRanges, then the legacy single range, then `ranges`.
    pub sets: Vec<RangeSet>,
    /// CNI_ARGS `IP`, then `args.cni.ips`, then `runtimeConfig.ips`, each
    /// address once.
    pub requested: Vec<IpAddr>,
}

impl Ranges {
    /// The requested IP each range set must hand out (the first requested
    /// IP it contains), and, if a set contains more than one, the error
    /// naming those left over (the reference's message), to report once
    /// every set is allocated.
    pub fn requested_by_set(&self) -> (Vec<Option<IpAddr>>, Option<CniError>) {
        let mut left = self.requested.clone();
        let per_set = self
            .sets
            .iter()
            .map(|set| {
                let p = left.iter().position(|ip| set.contains(*ip));
                p.map(|p| left.remove(p))
            })
            .collect();
        let err = (!left.is_empty()).then(|| {
            let left: Vec<String> = left.iter().map(|ip| ip.to_string()).collect();
            CniError::internal(format!(
                "failed to allocate all requested IPs: {}",
                left.join(" ")
            ))
        });
        (per_set, err)
    }
}

// ---- the document -----------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct NetFile {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    ipam: Option<IpamFile>,
    #[serde(rename = "runtimeConfig")]
    runtime_config: RuntimeFile,
    args: Option<ArgsFile>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RuntimeFile {
    #[serde(rename = "ipRanges")]
    ip_ranges: Vec<Vec<RangeFile>>,
    ips: Vec<Option<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ArgsFile {
    cni: Option<IpamArgsFile>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamArgsFile {
    ips: Vec<Option<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamFile {
    // The legacy single range, embedded in `ipam`.
    subnet: Option<String>,
    #[serde(rename = "rangeStart")]
    range_start: Option<String>,
    #[serde(rename = "rangeEnd")]
    range_end: Option<String>,
    gateway: Option<String>,
    routes: Vec<Route>,
    #[serde(rename = "resolvConf")]
    resolv_conf: String,
    ranges: Vec<Vec<RangeFile>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RangeFile {
    subnet: Option<String>,
    #[serde(rename = "rangeStart")]
    range_start: Option<String>,
    #[serde(rename = "rangeEnd")]
    range_end: Option<String>,
    gateway: Option<String>,
}

// ---- parsing helpers ----------------------------------------------------------

fn bad(path: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::config(format!("{path}: {msg}"))
}

/// A `types.IPNet` field: absent or null is none; anything else must parse.
fn cidr_field(path: &str, v: &Option<String>) -> Result<Option<ipnet::IpNet>, CniError> {
    match v {
        None => Ok(None),
        Some(s) => parse_cidr(s)
            .map(Some)
            .ok_or_else(|| bad(path, format!("invalid CIDR address: {s}"))),
    }
}

/// A `net.IP` field: absent, null and "" are none.
fn ip_field(path: &str, v: &Option<String>) -> Result<Option<IpAddr>, CniError> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => parse_ip(s)
            .map(Some)
            .ok_or_else(|| bad(path, format!("invalid IP address: {s}"))),
    }
}

/// A requested IP (the plugins' `ip.IP`): an address, or an address with a
/// prefix (dropped). `None` is what Go calls a nil IP.
fn requested_ip(s: &str) -> Result<Option<IpAddr>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let parsed = if s.contains('/') {
        parse_cidr(s).map(|n| n.addr().to_canonical())
    } else {
        parse_ip(s)
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("invalid IP address {s}"))
}

struct SourcedSet {
    /// Where the set came from, for messages (`ipam.ranges[1]`).
    label: String,
    /// The path prefix of each range's fields (`ipam.ranges[1][0]`, or
    /// `ipam` for the legacy fields).
    range_paths: Vec<String>,
    raw: Vec<RawRange>,
}

fn raw_range(path: &str, r: &RangeFile) -> Result<RawRange, CniError> {
    Ok(RawRange {
        subnet: cidr_field(&format!("{path}.subnet"), &r.subnet)?,
        range_start: ip_field(&format!("{path}.rangeStart"), &r.range_start)?,
        range_end: ip_field(&format!("{path}.rangeEnd"), &r.range_end)?,
        gateway: ip_field(&format!("{path}.gateway"), &r.gateway)?,
    })
}

fn raw_sets(label: &str, sets: &[Vec<RangeFile>]) -> Result<Vec<SourcedSet>, CniError> {
    sets.iter()
        .enumerate()
        .map(|(i, set)| {
            let label = format!("{label}[{i}]");
            let range_paths: Vec<String> =
                (0..set.len()).map(|j| format!("{label}[{j}]")).collect();
            let raw = set
                .iter()
                .zip(&range_paths)
                .map(|(r, p)| raw_range(p, r))
                .collect::<Result<_, _>>()?;
            Ok(SourcedSet {
                label,
                range_paths,
                raw,
            })
        })
        .collect()
}

fn decode(req: &Request) -> Result<(NetFile, IpamFile), CniError> {
    let mut file: NetFile = req.decode()?;
    let ipam = file
        .ipam
        .take()
        .ok_or_else(|| CniError::config("IPAM config missing 'ipam' key"))?;
    Ok((file, ipam))
}

/// The requested IPs in the reference's order, each once, with where each
/// came from (`CNI_ARGS` or the config path) for messages.
fn requested_ips(req: &Request, file: &NetFile) -> Result<Vec<(IpAddr, String)>, CniError> {
    let mut out: Vec<(IpAddr, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |ip: IpAddr, from: String| {
        if seen.insert(ip) {
            out.push((ip, from));
        }
    };
    if !req.args.is_empty() {
        let args = CniArgs::parse(&req.args, &["IP"])?;
        if let Some(v) = args.get("IP") {
            let ip = requested_ip(v).map_err(|e| {
                CniError::env(format!("ARGS: error parsing value of pair \"IP={v}\": {e}"))
            })?;
            if let Some(ip) = ip {
                push(ip, CNI_ARGS_IP.to_string());
            }
        }
    }
    let lists = [
        (
            "args.cni.ips",
            file.args
                .as_ref()
                .and_then(|a| a.cni.as_ref())
                .map(|c| c.ips.as_slice())
                .unwrap_or_default(),
        ),
        ("runtimeConfig.ips", file.runtime_config.ips.as_slice()),
    ];
    for (path, list) in lists {
        for (i, s) in list.iter().enumerate() {
            let path = format!("{path}[{i}]");
            match requested_ip(s.as_deref().unwrap_or_default()) {
                Ok(Some(ip)) => push(ip, path),
                Ok(None) => return Err(bad(&path, "cannot understand ip: IP <nil> not v4 nor v6")),
                Err(e) => return Err(bad(&path, e)),
            }
        }
    }
    Ok(out)
}

const CNI_ARGS_IP: &str = "CNI_ARGS IP";

/// Load and validate the ranges, routes and requested IPs.
pub fn load(req: &Request) -> Result<Ranges, CniError> {
    let (file, ipam) = decode(req)?;

    let mut sourced = raw_sets("runtimeConfig.ipRanges", &file.runtime_config.ip_ranges)?;
    let legacy = raw_range(
        "ipam",
        &RangeFile {
            subnet: ipam.subnet.clone(),
            range_start: ipam.range_start.clone(),
            range_end: ipam.range_end.clone(),
            gateway: ipam.gateway.clone(),
        },
    )?;
    if legacy.subnet.is_some() {
        sourced.push(SourcedSet {
            label: "ipam".into(),
            range_paths: vec!["ipam".into()],
            raw: vec![legacy],
        });
    }
    sourced.extend(raw_sets("ipam.ranges", &ipam.ranges)?);

    let requested = requested_ips(req, &file)?;
    for (i, r) in ipam.routes.iter().enumerate() {
        r.validate(&format!("ipam.routes[{i}]"))?;
    }
    if sourced.is_empty() {
        return Err(bad("ipam.ranges", "no IP ranges specified"));
    }

    let mut sets: Vec<RangeSet> = Vec::with_capacity(sourced.len());
    for (i, s) in sourced.iter().enumerate() {
        let set = RangeSet::canonicalize(&s.raw).map_err(|e| match e {
            SetError::Range(j, field, msg) => bad(
                &format!("{}.{}", s.range_paths[j], field.json_name()),
                format!("invalid range set {i}: {msg}"),
            ),
            SetError::Set(msg) => bad(&s.label, format!("invalid range set {i}: {msg}")),
        })?;
        sets.push(set);
    }

    let v4 = sets.iter().filter(|s| s.is_v4()).count();
    let v6 = sets.len() - v4;
    if (v4 > 1 || v6 > 1) && !version::ge(&file.cni_version, "0.3.0").unwrap_or(false) {
        return Err(bad(
            "ipam.ranges",
            format!(
                "CNI version {} does not support more than 1 address per family",
                file.cni_version
            ),
        ));
    }

    for i in 0..sets.len() {
        for j in i + 1..sets.len() {
            if sets[i].overlaps(&sets[j]) {
                return Err(bad(
                    &sourced[j].label,
                    format!("range set {i} overlaps with {j}"),
                ));
            }
        }
    }

    // A requested IP that no range set holds fails before the store is
    // touched (the reference fails after allocating the other sets; the
    // message is the same), with the code of where it came from.
    for (ip, from) in &requested {
        if !sets.iter().any(|s| s.contains(*ip)) {
            let msg = format!("failed to allocate all requested IPs: {ip} is in no range set");
            return Err(if from == CNI_ARGS_IP {
                CniError::env(format!("{from}: {msg}"))
            } else {
                bad(from, msg)
            });
        }
    }
    let requested = requested.into_iter().map(|(ip, _)| ip).collect();

    Ok(Ranges {
        resolv_conf: ipam.resolv_conf,
        routes: ipam.routes,
        sets,
        requested,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_req<T>(conf: &str, args: &str, f: impl FnOnce(&Request) -> T) -> T {
        crate::cni::skel::with_test_request(conf, args, f)
    }

    fn load_str(conf: &str, args: &str) -> Result<Ranges, CniError> {
        with_req(conf, args, load)
    }

    fn err(conf: &str) -> String {
        let e = load_str(conf, "").unwrap_err();
        assert_eq!(e.code, 7, "{e:?}");
        e.msg
    }

    #[test]
    fn old_style_new_style_and_runtime_ranges_in_order() {
        let c = load_str(
            r#"{"cniVersion":"0.3.1","name":"mynet","ipam":{"type":"host-local",
            "subnet":"10.1.2.0/24","rangeStart":"10.1.2.9","rangeEnd":"10.1.2.20","gateway":"10.1.2.30",
            "ranges":[[{"subnet":"11.1.2.0/24"}]]},
            "runtimeConfig":{"ipRanges":[[{"subnet":"12.1.2.0/24"}]]}}"#,
            "",
        )
        .unwrap();
        let firsts: Vec<String> = c.sets.iter().map(|s| s.0[0].subnet.to_string()).collect();
        assert_eq!(firsts, ["12.1.2.0/24", "10.1.2.0/24", "11.1.2.0/24"]);
        let legacy = &c.sets[1].0[0];
        assert_eq!(legacy.start.to_string(), "10.1.2.9");
        assert_eq!(legacy.end.to_string(), "10.1.2.20");
        assert_eq!(legacy.gateway.to_string(), "10.1.2.30");
    }

    #[test]
    fn legacy_fields_without_subnet_are_ignored() {
        let c = load_str(
            r#"{"name":"n","ipam":{"rangeStart":"10.1.2.9","ranges":[[{"subnet":"11.1.2.0/24"}]]}}"#,
            "",
        )
        .unwrap();
        assert_eq!(c.sets.len(), 1);
    }

    #[test]
    fn requested_ips_merge_cni_args_args_and_runtime_config() {
        let c = load_str(
            r#"{"cniVersion":"0.3.1","name":"mynet",
            "args":{"cni":{"ips":["10.1.2.11","10.1.2.13","2001:db8:1::11/64","10.1.2.10"]}},
            "runtimeConfig":{"ips":["10.1.2.12/24"]},
            "ipam":{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"2001:db8:1::/64"}]]}}"#,
            "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.2.10",
        )
        .unwrap();
        let got: Vec<String> = c.requested.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            got,
            [
                "10.1.2.10",
                "10.1.2.11",
                "10.1.2.13",
                "2001:db8:1::11",
                "10.1.2.12"
            ]
        );
    }

    #[test]
    fn a_requested_ip_in_no_range_fails_before_the_store_with_its_source() {
        let conf = r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24"}}"#;
        let e = load_str(conf, "IP=11.11.11.11").unwrap_err();
        assert_eq!(e.code, 4, "CNI_ARGS is the environment");
        assert!(
            e.msg
                .starts_with("CNI_ARGS IP: failed to allocate all requested IPs: 11.11.11.11"),
            "{}",
            e.msg
        );
        let e = load_str(
            r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24"},"runtimeConfig":{"ips":["10.1.2.5","fd00::5"]}}"#,
            "",
        )
        .unwrap_err();
        assert_eq!(e.code, 7);
        assert!(
            e.msg
                .starts_with("runtimeConfig.ips[1]: failed to allocate all requested IPs: fd00::5"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn requested_ips_by_set_and_the_left_over() {
        let c = load_str(
            r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"ips":["10.1.2.5","fd00::5","10.1.2.6"]},
            "ipam":{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"fd00::/64"}],[{"subnet":"10.9.0.0/24"}]]}}"#,
            "",
        )
        .unwrap();
        let (per_set, err) = c.requested_by_set();
        let per_set: Vec<String> = per_set.iter().map(|ip| format!("{ip:?}")).collect();
        assert_eq!(per_set, ["Some(10.1.2.5)", "Some(fd00::5)", "None"]);
        assert_eq!(
            err.unwrap().msg,
            "failed to allocate all requested IPs: 10.1.2.6"
        );
    }

    #[test]
    fn gateways_of_the_other_family_are_refused() {
        let e = err(
            r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24","routes":[{"dst":"0.0.0.0/0","gw":"fd00::1"}]}}"#,
        );
        assert!(
            e.starts_with("ipam.routes[0].gw: fd00::1 is not of the family"),
            "{e}"
        );
        let e = err(r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24","gateway":"fd00::1"}}"#);
        assert!(
            e.contains("gateway fd00::1 is not of the family of network 10.1.2.0/24"),
            "{e}"
        );
    }

    #[test]
    fn requested_ip_errors() {
        let conf = r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24"}}"#;
        let e = load_str(conf, "IP=bogus").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                4,
                r#"ARGS: error parsing value of pair "IP=bogus": invalid IP address bogus"#
            )
        );
        assert_eq!(load_str(conf, "FOO=1").unwrap_err().code, 4);
        assert!(load_str(conf, "IP=").unwrap().requested.is_empty());
        assert_eq!(
            err(r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24"},"args":{"cni":{"ips":[""]}}}"#),
            "args.cni.ips[0]: cannot understand ip: IP <nil> not v4 nor v6"
        );
        assert_eq!(
            err(
                r#"{"name":"n","ipam":{"subnet":"10.1.2.0/24"},"runtimeConfig":{"ips":["1.2.3.4","x"]}}"#
            ),
            "runtimeConfig.ips[1]: invalid IP address x"
        );
    }

    #[test]
    fn validation_errors_name_the_field_with_the_reference_text() {
        assert_eq!(err(r#"{"name":"n"}"#), "IPAM config missing 'ipam' key");
        assert_eq!(
            err(r#"{"name":"n","ipam":{}}"#),
            "ipam.ranges: no IP ranges specified"
        );
        assert_eq!(
            err(r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.9.0.1/29"}]]}}"#),
            "ipam.ranges[0][0].subnet: invalid range set 0: Network has host bits set. For a subnet mask of length 29 the network address is 10.9.0.0"
        );
        assert_eq!(
            err(r#"{"name":"n","ipam":{"subnet":"10.9.0.0/31"}}"#),
            "ipam.subnet: invalid range set 0: Network 10.9.0.0/31 too small to allocate from"
        );
        assert_eq!(
            err(r#"{"name":"n","ipam":{"subnet":"10.9.0.0/24","rangeEnd":"10.9.1.1"}}"#),
            "ipam.rangeEnd: invalid range set 0: RangeEnd 10.9.1.1 not in network 10.9.0.0/24"
        );
        assert_eq!(
            err(
                r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.8.0.0/24"},{"rangeStart":"10.8.0.5"}]]}}"#
            ),
            "ipam.ranges[1][1].subnet: invalid range set 1: IP <nil> not v4 nor v6"
        );
        assert_eq!(
            err(
                r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.9.0.0/24"},{"subnet":"fd00::/64"}]]}}"#
            ),
            "ipam.ranges[0]: invalid range set 0: mixed address families"
        );
        assert_eq!(
            err(r#"{"name":"n","ipam":{"ranges":[[]]}}"#),
            "ipam.ranges[0]: invalid range set 0: empty range set"
        );
        assert_eq!(
            err(
                r#"{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.9.0.0/25"}]]}}"#
            ),
            "ipam.ranges[1]: range set 0 overlaps with 1"
        );
        assert_eq!(
            err(
                r#"{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.9.0.0/24"},"runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/16"}]]}}"#
            ),
            "ipam: range set 0 overlaps with 1"
        );
        assert_eq!(
            err(r#"{"name":"n","ipam":{"ranges":[[{"subnet":"bogus"}]]}}"#),
            "ipam.ranges[0][0].subnet: invalid CIDR address: bogus"
        );
        assert_eq!(
            err(r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24","gateway":"x"}]]}}"#),
            "ipam.ranges[0][0].gateway: invalid IP address: x"
        );
        assert!(err(r#"{"name":"n","ipam":{"ranges":[[{"subnet":5}]]}}"#)
            .starts_with("invalid network config: ipam.ranges[0][0].subnet: "));
    }

    #[test]
    fn one_range_set_per_family_below_0_3_0() {
        let two_v4 = r#"{"cniVersion":"0.2.0","name":"n","ipam":{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"11.1.2.0/24"}]]}}"#;
        assert_eq!(
            err(two_v4),
            "ipam.ranges: CNI version 0.2.0 does not support more than 1 address per family"
        );
        let v4_v6 = r#"{"cniVersion":"0.2.0","name":"n","ipam":{"ranges":[[{"subnet":"10.1.2.0/24"}],[{"subnet":"2001:db8:1::/64"}]]}}"#;
        assert!(load_str(v4_v6, "").is_ok());
        assert!(load_str(&two_v4.replace("0.2.0", "0.3.0"), "").is_ok());
    }
}
