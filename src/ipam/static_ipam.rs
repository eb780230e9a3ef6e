//! static IPAM (reference: plugins/ipam/static): the addresses, routes and
//! DNS written in the config, returned as they are. Nothing is stored, so
//! DEL, STATUS and GC have nothing to do.
//!
//! Where the addresses come from, in the reference's order:
//! 1. `ipam.addresses[]` (`address` in CIDR form, optional `gateway`);
//! 2. CNI_ARGS `IP` (comma list, CIDR form) is *appended*, and each CNI_ARGS
//!    `GATEWAY` (comma list) becomes the gateway of the CNI_ARGS addresses
//!    whose subnet contains it (never of the configured ones);
//! 3. a non-empty `args.cni.ips[]` *replaces* all of them;
//! 4. a non-empty `runtimeConfig.ips[]` replaces all of them again.
//!
//! Replacements have no gateway. Below 0.3.0, at most one address per
//! family.

use crate::cni::args::CniArgs;
use crate::cni::json::GoValue;
use crate::cni::result::{CniResult, IpConfig, Route};
use crate::cni::types::{parse_cidr, parse_ip, Dns};
use crate::cni::{version, CniError, Plugin, Request};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

pub const PLUGIN: Plugin = Plugin {
    name: "static",
    versions: version::ALL,
    add,
    del: |_| Ok(()),
    check,
    status: |_| Ok(()),
    gc: |_| Ok(()),
};

#[derive(Deserialize, Default)]
#[serde(default)]
struct NetFile {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    ipam: Option<IpamFile>,
    #[serde(rename = "runtimeConfig")]
    runtime_config: IpsFile,
    args: Option<ArgsFile>,
    #[serde(rename = "prevResult")]
    prev_result: Option<GoValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ArgsFile {
    cni: Option<IpsFile>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpsFile {
    ips: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamFile {
    routes: Vec<Route>,
    addresses: Vec<AddressFile>,
    dns: Dns,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AddressFile {
    address: String,
    gateway: Option<String>,
}

/// One configured address: the IP with its prefix (host bits kept).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    net: IpNet,
    gateway: Option<IpAddr>,
}

struct Config {
    addresses: Vec<Address>,
    routes: Vec<Route>,
    dns: Dns,
}

/// An IPv4-mapped address is IPv4 to Go.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) => match n.addr().to_ipv4_mapped() {
            Some(v4) if n.prefix_len() >= 96 => {
                IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).unwrap_or(net)
            }
            _ => net,
        },
        v4 => v4,
    }
}

fn replacement(path: &str, list: &[String]) -> Result<Vec<Address>, CniError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            parse_cidr(s)
                .map(|net| Address {
                    net: canonical(net),
                    gateway: None,
                })
                .ok_or_else(|| {
                    CniError::config(format!(
                        "{path}[{i}]: an entry in the 'ips' field is NOT in CIDR notation, got: '{s}'"
                    ))
                })
        })
        .collect()
}

fn load(req: &Request) -> Result<(Config, NetFile), CniError> {
    let mut file: NetFile = req.decode()?;
    let ipam = file
        .ipam
        .take()
        .ok_or_else(|| CniError::config("IPAM config missing 'ipam' key"))?;

    // Configured addresses are parsed last (as in the reference), after
    // CNI_ARGS, whose GATEWAY therefore never applies to them.
    let mut configured: Vec<(usize, Option<IpAddr>)> = Vec::new();
    for (i, a) in ipam.addresses.iter().enumerate() {
        let gw = match a.gateway.as_deref() {
            None | Some("") => None,
            Some(s) => Some(parse_ip(s).ok_or_else(|| {
                CniError::config(format!(
                    "ipam.addresses[{i}].gateway: invalid IP address: {s}"
                ))
            })?),
        };
        configured.push((i, gw));
    }
    let mut from_args: Vec<Address> = Vec::new();
    if !req.args.is_empty() {
        let args = CniArgs::parse(&req.args, &["IP", "GATEWAY"])?;
        if let Some(ips) = args.get("IP").filter(|v| !v.is_empty()) {
            for item in ips.split(',') {
                let s = item.trim();
                let net = parse_cidr(s).ok_or_else(|| {
                    CniError::env(format!(
                        "CNI_ARGS: the 'ip' field is expected to be in CIDR notation, got: '{s}'"
                    ))
                })?;
                from_args.push(Address {
                    net: canonical(net),
                    gateway: None,
                });
            }
        }
        if let Some(gws) = args.get("GATEWAY").filter(|v| !v.is_empty()) {
            for item in gws.split(',') {
                let gw = parse_ip(item.trim()).ok_or_else(|| {
                    CniError::env(format!("CNI_ARGS: invalid gateway address: {item}"))
                })?;
                for a in from_args.iter_mut().filter(|a| a.net.contains(&gw)) {
                    a.gateway = Some(gw);
                }
            }
        }
    }

    let cni_ips = file
        .args
        .as_ref()
        .and_then(|a| a.cni.as_ref())
        .map(|c| c.ips.as_slice())
        .unwrap_or_default();
    let addresses = if !file.runtime_config.ips.is_empty() {
        // args.cni.ips is still checked, as the reference parses it first.
        replacement("args.cni.ips", cni_ips)?;
        replacement("runtimeConfig.ips", &file.runtime_config.ips)?
    } else if !cni_ips.is_empty() {
        replacement("args.cni.ips", cni_ips)?
    } else {
        let mut out = Vec::new();
        for (i, gw) in configured {
            let s = &ipam.addresses[i].address;
            let net = parse_cidr(s).ok_or_else(|| {
                CniError::config(format!(
                    "ipam.addresses[{i}].address: the 'address' field is expected to be in CIDR notation, got: '{s}'"
                ))
            })?;
            // Deliberate difference: the reference passes a gateway of the
            // other family on, and the main plugin fails after changes.
            if let Some(g) = gw.filter(|g| g.is_ipv4() != net.addr().to_canonical().is_ipv4()) {
                return Err(CniError::config(format!(
                    "ipam.addresses[{i}].gateway: {g} is not of the family of address {s}"
                )));
            }
            out.push(Address {
                net: canonical(net),
                gateway: gw,
            });
        }
        out.extend(from_args);
        out
    };

    let v4 = addresses.iter().filter(|a| a.net.addr().is_ipv4()).count();
    let v6 = addresses.len() - v4;
    if (v4 > 1 || v6 > 1) && !version::ge(&file.cni_version, "0.3.0").unwrap_or(false) {
        return Err(CniError::config(format!(
            "CNI version {} does not support more than 1 address per family",
            file.cni_version
        )));
    }
    for (i, r) in ipam.routes.iter().enumerate() {
        r.validate(&format!("ipam.routes[{i}]"))?;
    }
    Ok((
        Config {
            addresses,
            routes: ipam.routes,
            dns: ipam.dns,
        },
        file,
    ))
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let (conf, _) = load(req)?;
    Ok(CniResult {
        cni_version: req.version.clone(),
        ips: conf
            .addresses
            .into_iter()
            .map(|a| IpConfig {
                interface: None,
                address: a.net,
                gateway: a.gateway,
            })
            .collect(),
        routes: conf.routes,
        dns: conf.dns,
        ..Default::default()
    })
}

/// CHECK, as the reference: a configured address found in prevResult with a
/// different gateway is an error; a missing one is not.
fn check(req: &Request) -> Result<(), CniError> {
    let (conf, file) = load(req)?;
    let prev = match &file.prev_result {
        None | Some(GoValue::Null) => return Err(CniError::config("Required prevResult missing")),
        Some(v) => CniResult::parse_as(v, &req.version)
            .map_err(|e| e.context("failed to parse prevResult"))?,
    };
    for a in &conf.addresses {
        if let Some(got) = prev
            .ips
            .iter()
            .find(|ip| ip.address.addr().to_canonical() == a.net.addr())
        {
            if a.gateway.is_some() && a.gateway != got.gateway {
                return Err(CniError::internal(format!(
                    "static: Failed to match addr {} on interface {}",
                    got.address.addr(),
                    req.ifname
                )));
            }
        }
    }
    Ok(())
}

/// Fuzzing only (`cargo fuzz`): config, CNI_ARGS and runtimeConfig parsing.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = load(req);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(
        conf: &str,
        args: &str,
        f: fn(&Request) -> Result<T, CniError>,
    ) -> Result<T, CniError> {
        crate::cni::skel::with_test_request(conf, args, f)
    }

    fn ips(r: &CniResult) -> Vec<String> {
        r.ips
            .iter()
            .map(|i| match i.gateway {
                Some(g) => format!("{} gw {g}", i.address),
                None => i.address.to_string(),
            })
            .collect()
    }

    const BASE: &str = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"static",
        "addresses":[{"address":"10.0.0.5/24","gateway":"10.0.0.1"}]}}"#;

    #[test]
    fn cni_args_append_and_their_gateways_apply_only_to_them() {
        let r = run(
            BASE,
            "IP=10.1.0.5/24, 10.2.0.5/16;GATEWAY=10.1.0.254,10.0.0.9",
            add,
        )
        .unwrap();
        assert_eq!(
            ips(&r),
            [
                "10.0.0.5/24 gw 10.0.0.1",
                "10.1.0.5/24 gw 10.1.0.254",
                "10.2.0.5/16"
            ]
        );
    }

    #[test]
    fn args_then_runtime_config_replace_everything() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"addresses":[{"address":"10.0.0.5/24"}]},
            "args":{"cni":{"ips":["10.3.0.3/24"]}}}"#;
        assert_eq!(
            ips(&run(conf, "IP=10.1.0.5/24", add).unwrap()),
            ["10.3.0.3/24"]
        );
        let conf = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"addresses":[{"address":"10.0.0.5/24"}]},
            "args":{"cni":{"ips":["10.3.0.3/24"]}},"RuntimeConfig":{"ips":["10.4.0.4/24","fd00::4/64"]}}"#;
        assert_eq!(
            ips(&run(conf, "IP=10.1.0.5/24", add).unwrap()),
            ["10.4.0.4/24", "fd00::4/64"]
        );
    }

    #[test]
    fn errors_carry_the_reference_text() {
        let e = run(BASE, "IP=10.1.0.5", add).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                4,
                "CNI_ARGS: the 'ip' field is expected to be in CIDR notation, got: '10.1.0.5'"
            )
        );
        let e = run(BASE, "GATEWAY=x", add).unwrap_err();
        assert_eq!(e.msg, "CNI_ARGS: invalid gateway address: x");
        let e = run(
            r#"{"name":"n","ipam":{"addresses":[{"address":"10.0.0.5"}]}}"#,
            "",
            add,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (7, "ipam.addresses[0].address: the 'address' field is expected to be in CIDR notation, got: '10.0.0.5'")
        );
        let e = run(
            r#"{"name":"n","ipam":{},"runtimeConfig":{"ips":["10.0.0.5"]}}"#,
            "",
            add,
        )
        .unwrap_err();
        assert_eq!(
            e.msg,
            "runtimeConfig.ips[0]: an entry in the 'ips' field is NOT in CIDR notation, got: '10.0.0.5'"
        );
        let e = run(r#"{"name":"n"}"#, "", add).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (7, "IPAM config missing 'ipam' key")
        );
        let e = run(
            r#"{"cniVersion":"0.2.0","name":"n","ipam":{"addresses":[{"address":"10.0.0.5/24"},{"address":"10.0.1.5/24"}]}}"#,
            "",
            add,
        )
        .unwrap_err();
        assert_eq!(
            e.msg,
            "CNI version 0.2.0 does not support more than 1 address per family"
        );
    }

    #[test]
    fn check_compares_gateways_of_present_addresses() {
        let with_prev = |prev: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","ipam":{{"addresses":[{{"address":"10.0.0.5/24","gateway":"10.0.0.1"}}]}},"prevResult":{prev}}}"#
            )
        };
        assert!(run(
            &with_prev(
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24","gateway":"10.0.0.1"}]}"#
            ),
            "",
            check
        )
        .is_ok());
        assert!(run(&with_prev(r#"{"cniVersion":"1.0.0","ips":[]}"#), "", check).is_ok());
        assert_eq!(
            run(
                &with_prev(r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24","gateway":"10.0.0.2"}]}"#),
                "",
                check
            )
            .unwrap_err()
            .msg,
            "static: Failed to match addr 10.0.0.5 on interface eth0"
        );
        assert_eq!(
            run(BASE, "", check).unwrap_err().msg,
            "Required prevResult missing"
        );
    }
}
