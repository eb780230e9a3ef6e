//! portmap: forward host ports to a container (reference:
//! plugins/meta/portmap). A chained plugin: it reads the container's
//! addresses from prevResult and passes prevResult on unchanged.
//!
//! The backend is nf_tables spoken over netlink, with Go HEAD's tables,
//! chains and rule shapes (`ip|ip6 cni_hostport`, comment = container ID;
//! see steps::hostport::nft), so a node can switch between Go's nftables
//! backend and cnibox with live containers. Differences from the reference,
//! each tested: protocols are validated (any case) before any change;
//! a repeated ADD does not duplicate rules; DEL removes the container's
//! rules by comment even without `portMappings` and without the netns; GC
//! removes rules of this network's containers that are not valid
//! attachments (ADD records which network made a container's rules, since
//! the rules name only the container); container IDs too long for an nft
//! comment are refused before any change.

use crate::cni::result::CniResult;
use crate::cni::types::{parse_ip, valid_attachments, NetConf};
use crate::cni::{version, CniError, Plugin, Request};
use crate::netlink::Netlink;
use crate::steps::hostport::iptables::{self, IptConf};
use crate::steps::hostport::{self, nft, Mapping, Options};
use crate::steps::undo::Undo;
use ipnet::IpNet;
use serde::Deserialize;

pub const PLUGIN: Plugin = Plugin {
    name: "portmap",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

/// portmap's own keys (Go's `PortMapConf`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PortMapConf {
    #[serde(rename = "runtimeConfig")]
    runtime_config: Option<RuntimeConfig>,
    snat: Option<bool>,
    #[serde(rename = "masqAll")]
    masq_all: bool,
    #[serde(rename = "markMasqBit")]
    mark_masq_bit: Option<i64>,
    #[serde(rename = "externalSetMarkChain")]
    external_set_mark_chain: Option<String>,
    #[serde(rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
    backend: Option<String>,
    /// cnibox's own: where ADD records which network made a container's
    /// rules, for GC (the reference has no GC and ignores the key).
    #[serde(rename = "dataDir")]
    data_dir: Option<String>,
}

/// The default `dataDir`.
const DATA_DIR: &str = "/var/lib/cni/portmap";

impl PortMapConf {
    /// `<dataDir>/<network>`: one empty file per container of the network.
    fn owners_dir(&self, network: &str) -> std::path::PathBuf {
        std::path::Path::new(self.data_dir.as_deref().unwrap_or(DATA_DIR)).join(network)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    #[serde(rename = "portMappings")]
    port_mappings: Option<Vec<PortMapEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PortMapEntry {
    #[serde(rename = "hostPort")]
    host_port: i64,
    #[serde(rename = "containerPort")]
    container_port: i64,
    protocol: String,
    #[serde(rename = "hostIP")]
    host_ip: String,
}

/// A config checked through: what ADD, CHECK and DEL act on.
struct Plan {
    maps: Vec<Mapping>,
    opts: Options,
    /// `backend: "iptables"` (else nf_tables over netlink).
    iptables: bool,
    mark_bit: u32,
    conditions_v4: Vec<String>,
    conditions_v6: Vec<String>,
}

impl Plan {
    fn ipt_conf<'a>(&'a self, pm: &'a PortMapConf, req: &'a Request, v6: bool) -> IptConf<'a> {
        IptConf {
            network: req.name(),
            container_id: &req.container_id,
            mark_bit: self.mark_bit,
            external_set_mark_chain: pm.external_set_mark_chain.as_deref(),
            conditions: if v6 {
                &self.conditions_v6
            } else {
                &self.conditions_v4
            },
        }
    }
}

/// Check every field before anything changes. Invalid values are code 7
/// naming the field; what cnibox cannot do is code 2.
fn plan(pm: &PortMapConf) -> Result<Plan, CniError> {
    let iptables = match pm.backend.as_deref() {
        None | Some("") | Some("nftables") => false,
        Some("iptables") => true,
        Some(other) => {
            return Err(CniError::config(format!(
                "backend: unrecognized backend {other:?} (want \"nftables\" or \"iptables\")"
            )))
        }
    };
    if let Some(bit) = pm.mark_masq_bit {
        if !(0..=31).contains(&bit) {
            return Err(CniError::config(format!(
                "markMasqBit: {bit}: MasqMarkBit must be between 0 and 31"
            )));
        }
        if pm.external_set_mark_chain.is_some() {
            return Err(CniError::config(
                "markMasqBit: Cannot specify externalSetMarkChain and markMasqBit",
            ));
        }
    }
    if pm.external_set_mark_chain.is_some() && !iptables {
        return Err(CniError::config(
            "externalSetMarkChain: nftables backend was requested but configuration contains iptables-specific options [externalSetMarkChain]",
        ));
    }
    for (field, conds) in [
        ("conditionsV4", &pm.conditions_v4),
        ("conditionsV6", &pm.conditions_v6),
    ] {
        let conds = conds.as_deref().unwrap_or_default();
        let ipt_style = conds
            .first()
            .is_some_and(|c| c.starts_with('-') || c.starts_with('!'));
        if iptables {
            if !conds.is_empty() && !ipt_style {
                return Err(CniError::config(format!(
                    "{field}: iptables backend was requested but configuration contains nftables-specific options [{field}]"
                )));
            }
            continue;
        }
        if ipt_style {
            return Err(CniError::config(format!(
                "{field}: nftables backend was requested but configuration contains iptables-specific options [{field}]"
            )));
        }
        if !conds.is_empty() {
            return Err(CniError::unsupported(format!(
                "{field}: nftables match conditions are not supported by cnibox's portmap (it writes rules over netlink and has no nft syntax parser)"
            )));
        }
    }
    let entries = pm
        .runtime_config
        .as_ref()
        .and_then(|r| r.port_mappings.as_deref())
        .unwrap_or_default();
    let mut maps = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let field = |f: &str| format!("runtimeConfig.portMappings[{i}].{f}");
        let port = |f: &str, v: i64, what: &str| {
            u16::try_from(v).ok().filter(|p| *p > 0).ok_or_else(|| {
                CniError::config(format!("{}: Invalid {what} port number: {v}", field(f)))
            })
        };
        let protocol = hostport::parse_protocol(&e.protocol).ok_or_else(|| {
            CniError::config(format!(
                "{}: unknown protocol {:?} (want tcp, udp or sctp)",
                field("protocol"),
                e.protocol
            ))
        })?;
        let host_ip = match e.host_ip.as_str() {
            "" => None,
            s => Some(parse_ip(s).ok_or_else(|| {
                CniError::config(format!("{}: invalid IP address {s:?}", field("hostIP")))
            })?),
        };
        maps.push(Mapping {
            container_port: port("containerPort", e.container_port, "container")?,
            host_port: port("hostPort", e.host_port, "host")?,
            protocol,
            host_ip,
        });
    }
    Ok(Plan {
        maps,
        opts: Options {
            snat: pm.snat.unwrap_or(true),
            masq_all: pm.masq_all,
        },
        iptables,
        mark_bit: pm.mark_masq_bit.unwrap_or(13) as u32,
        conditions_v4: pm.conditions_v4.clone().unwrap_or_default(),
        conditions_v6: pm.conditions_v6.clone().unwrap_or_default(),
    })
}

/// The container ID becomes the rules' comment, which `nft` (and so Go's
/// plugin) cannot read back beyond 128 bytes: refused before any change.
fn check_container_id(id: &str) -> Result<(), CniError> {
    if id.len() > nft::COMMENT_MAX {
        return Err(CniError::env(format!(
            "CNI_CONTAINERID: {} bytes long; portmap stores it as an nftables rule comment, which holds at most {} bytes",
            id.len(),
            nft::COMMENT_MAX
        )));
    }
    Ok(())
}

fn prev_result(req: &Request, conf: &NetConf) -> Result<CniResult, CniError> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("prevResult: portmap must be called as chained plugin"))?;
    CniResult::parse_as(prev, &req.version).map_err(|e| e.context("failed to parse prevResult"))
}

/// The first v4 and first v6 address of the container interface: an IP
/// whose `interface` is absent or out of range, or names `ifname` in a
/// sandbox (Go's rule).
fn container_ips(result: &CniResult, ifname: &str) -> Vec<IpNet> {
    let ours = |idx: Option<i64>| {
        let iface = idx
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| result.interfaces.get(i));
        iface.is_none_or(|i| i.name == ifname && !i.sandbox.is_empty())
    };
    let mut out: Vec<IpNet> = Vec::new();
    for ip in result.ips.iter().filter(|ip| ours(ip.interface)) {
        let a = ip.address;
        if !out.iter().any(|o| o.addr().is_ipv4() == a.addr().is_ipv4()) {
            out.push(a);
        }
    }
    out.sort_by_key(|a| a.addr().is_ipv6());
    out
}

fn netfilter() -> Result<Netlink, CniError> {
    Netlink::netfilter()
        .map_err(|e| CniError::internal(format!("portmap: open netfilter socket: {e}")))
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = req.net_conf()?;
    let pm: PortMapConf = req.decode()?;
    let plan = plan(&pm)?;
    check_container_id(&req.container_id)?;
    let prev = prev_result(req, &conf)?;
    let ips = container_ips(&prev, &req.ifname);
    if plan.maps.is_empty() || ips.is_empty() {
        return Ok(prev);
    }

    // The binaries of the iptables backend are found before any change.
    let bins = match plan.iptables {
        true => ips
            .iter()
            .map(|ip| iptables::binary(ip.addr().is_ipv6()).map(Some))
            .collect::<Result<Vec<_>, _>>()?,
        false => vec![None; ips.len()],
    };
    let nl = netfilter()?;
    // The record goes first: a crash after it leaves nothing GC misses.
    let owners = pm.owners_dir(req.name());
    let record = owners.join(&req.container_id);
    let mut undo = Undo::new();
    std::fs::create_dir_all(&owners)
        .and_then(|_| crate::steps::statefile::write(&record.to_string_lossy(), b""))
        .map_err(|e| {
            CniError::io(format!(
                "portmap: record owner in {}: {e}",
                owners.display()
            ))
        })?;
    let rec = &record;
    undo.push(move || {
        let _ = std::fs::remove_file(rec);
    });
    let (nl_ref, id, net) = (&nl, req.container_id.as_str(), req.name());
    undo.push(move || {
        let _ = nft::teardown(nl_ref, id);
        let _ = iptables::teardown(Some(nl_ref), net, id);
    });
    for (ip, bin) in ips.iter().zip(&bins) {
        match bin {
            Some(bin) => {
                let c = plan.ipt_conf(&pm, req, ip.addr().is_ipv6());
                iptables::setup(bin, ip, &plan.maps, &plan.opts, &c)?;
            }
            None => nft::setup(&nl, id, &ip.addr(), &plan.maps, &plan.opts)?,
        }
        if ip.addr().is_ipv4() && plan.opts.snat {
            hostport::enable_route_localnet(&ip.addr())?;
        }
    }
    undo.commit();
    // Flows that began before the mapping would keep bypassing it; the
    // reference only logs a failure here, and so do we.
    if let Err(e) = hostport::flush_udp_conntrack(&plan.maps) {
        eprintln!("portmap: {}", e.msg);
    }
    Ok(prev)
}

/// Rules are found by comment alone: no `portMappings`, prevResult or netns
/// is needed (the reference does nothing without `portMappings`, leaking
/// every rule of a runtime that does not resend them).
fn del(req: &Request) -> Result<(), CniError> {
    // Parsed for its shape only: a config ADD would refuse must not make
    // the DEL of a container fail.
    let pm: PortMapConf = req.decode()?;
    let nl = Netlink::netfilter_if_supported()
        .map_err(|e| CniError::internal(format!("portmap: open netfilter socket: {e}")))?;
    // What Go's iptables backend (its default) made for the container goes
    // too: a node moving to cnibox keeps no stale DNAT.
    let ipt = iptables::teardown(nl.as_ref(), req.name(), &req.container_id);
    let nft = match &nl {
        Some(nl) => nft::teardown(nl, &req.container_id),
        None => Ok(()),
    };
    if nft.is_ok() && ipt.is_ok() {
        let _ = std::fs::remove_file(pm.owners_dir(req.name()).join(&req.container_id));
    }
    CniError::combine(nft.err().into_iter().chain(ipt.err()).collect())
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = req.net_conf()?;
    let pm: PortMapConf = req.decode()?;
    let plan = plan(&pm)?;
    let prev = prev_result(req, &conf)?;
    if plan.maps.is_empty() {
        return Ok(());
    }
    let nl = netfilter()?;
    for ip in container_ips(&prev, &req.ifname) {
        if plan.iptables {
            let bin = iptables::binary(ip.addr().is_ipv6())?;
            iptables::check(&bin, req.name(), &req.container_id)?;
        } else {
            nft::check(&nl, &req.container_id, &ip.addr(), &plan.maps, &plan.opts)?;
        }
    }
    Ok(())
}

fn status(req: &Request) -> Result<(), CniError> {
    let pm: PortMapConf = req.decode()?;
    plan(&pm).map(|_| ())
}

/// Remove the rules of this network's containers that are not valid
/// attachments. The rules name only the container, and a runtime lists the
/// valid attachments of one network at a time: only containers whose rules
/// this network made (ADD's records) are candidates, so the GC of one
/// network never removes another network's port forwards.
fn gc(req: &Request) -> Result<(), CniError> {
    let pm: PortMapConf = req.decode()?;
    let Some(valid) = valid_attachments(&req.config)? else {
        return Ok(());
    };
    let owners = pm.owners_dir(req.name());
    let stale: Vec<String> = match std::fs::read_dir(&owners) {
        Ok(d) => d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|id| !valid.iter().any(|a| a.container_id == *id))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CniError::io(format!(
                "portmap: read {}: {e}",
                owners.display()
            )))
        }
    };
    if stale.is_empty() {
        return Ok(());
    }
    let nl = Netlink::netfilter_if_supported()
        .map_err(|e| CniError::internal(format!("portmap: open netfilter socket: {e}")))?;
    // One pass over the nf_tables rules for every stale container; Go's
    // iptables chains are named per container.
    let nft = match &nl {
        Some(nl) => nft::delete_where(nl, "gc", |c| stale.iter().any(|id| id.as_bytes() == c)),
        None => Ok(()),
    };
    let nft_ok = nft.is_ok();
    let mut errors: Vec<CniError> = nft.err().into_iter().collect();
    for id in &stale {
        match iptables::teardown(nl.as_ref(), req.name(), id) {
            Ok(()) if nft_ok => {
                let _ = std::fs::remove_file(owners.join(id));
            }
            Ok(()) => {}
            Err(e) => errors.push(e),
        }
    }
    CniError::combine(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::json;

    fn conf(v: &str) -> PortMapConf {
        json::from_value(json::parse(v.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn defaults_and_protocols_in_any_case() {
        let p = plan(&conf(
            r#"{"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"TCP","hostIP":"0.0.0.0"}]}}"#,
        ))
        .unwrap();
        assert!(p.opts.snat && !p.opts.masq_all);
        assert_eq!(p.maps[0].protocol, 6);
        assert_eq!(p.maps[0].host_ip, Some("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn bad_fields_are_code_7_naming_the_field() {
        for (c, field) in [
            (
                r#"{"runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":1,"protocol":"icmp"}]}}"#,
                "portMappings[0].protocol",
            ),
            (
                r#"{"runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":1,"protocol":"tcp"}]}}"#,
                "portMappings[0].hostPort",
            ),
            (
                r#"{"runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":70000,"protocol":"tcp"}]}}"#,
                "portMappings[0].containerPort",
            ),
            (
                r#"{"runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":1,"protocol":"udp","hostIP":"x"}]}}"#,
                "portMappings[0].hostIP",
            ),
            (r#"{"markMasqBit":32}"#, "markMasqBit"),
            (r#"{"backend":"ebtables"}"#, "backend"),
            (r#"{"conditionsV4":["-s","1.2.3.4"]}"#, "conditionsV4"),
        ] {
            let e = plan(&conf(c)).err().unwrap();
            assert_eq!(e.code, 7, "{c}: {}", e.msg);
            assert!(e.msg.contains(field), "{c}: {}", e.msg);
        }
        let e = plan(&conf(
            r#"{"backend":"iptables","conditionsV4":["ip saddr 10.0.0.0/8"]}"#,
        ))
        .err()
        .unwrap();
        assert_eq!(e.code, 7, "{}", e.msg);
        let p = plan(&conf(
            r#"{"backend":"iptables","externalSetMarkChain":"KUBE-MARK-MASQ","conditionsV4":["-s","10.0.0.0/8"]}"#,
        ))
        .unwrap();
        assert!(p.iptables && p.mark_bit == 13 && p.conditions_v4.len() == 2);
        let e = plan(&conf(r#"{"conditionsV6":["ip6 saddr ::1"]}"#))
            .err()
            .unwrap();
        assert_eq!(e.code, 2, "{}", e.msg);
    }

    #[test]
    fn long_container_ids_are_refused() {
        assert!(check_container_id(&"a".repeat(128)).is_ok());
        let e = check_container_id(&"a".repeat(129)).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_CONTAINERID"), "{}", e.msg);
    }

    #[test]
    fn container_ips_are_the_first_of_each_family_on_ifname() {
        let r = CniResult::parse_any(
            br#"{"cniVersion":"1.0.0","interfaces":[{"name":"veth1"},{"name":"eth0","sandbox":"/n"}],
            "ips":[{"address":"10.0.0.9/24","interface":0},{"address":"fd00::2/64","interface":1},
            {"address":"10.0.0.2/24","interface":1},{"address":"10.0.0.3/24","interface":1}]}"#,
            "1.0.0",
        )
        .unwrap();
        let got = container_ips(&r, "eth0");
        assert_eq!(
            got,
            vec![
                "10.0.0.2/24".parse::<IpNet>().unwrap(),
                "fd00::2/64".parse().unwrap()
            ]
        );
    }
}

/// Fuzzing only (`cargo fuzz`): every config check ADD makes before it
/// changes anything.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = req.decode::<PortMapConf>().map(|pm| plan(&pm));
}
