//! bandwidth: token-bucket shaping of a container's veth (reference:
//! plugins/meta/bandwidth). Chained after ptp or bridge.
//!
//! "ingress" is traffic INTO the container: a root TBF on the host end of
//! the veth. "egress" is traffic FROM the container: the host end's ingress
//! qdisc redirects everything (u32 + mirred) to an ifb named
//! `bwp<12 hex of sha512(netName + containerID)>`, shaped by a root TBF.
//! All over rtnetlink (netlink::tc), no `tc` binary.
//!
//! Differences from the reference (tests named for them): no bandwidth and
//! no prevResult is an empty result (the reference panics), and a failed
//! ADD removes the qdiscs and the ifb it made (the reference leaves them).

use crate::cni::result::{CniResult, Interface};
use crate::cni::{CniError, Plugin, Request};
use crate::netlink::link::Link;
use crate::netlink::tc::{self, Tbf};
use crate::netlink::Netlink;
use crate::steps::masq::sha512_hex;
use crate::steps::netns::NetNs;
use crate::steps::undo::Undo;
use serde::Deserialize;

pub const PLUGIN: Plugin = Plugin {
    name: "bandwidth",
    // As the reference: from 0.3.0 on.
    versions: &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    add,
    del,
    check,
    status,
    gc,
};

/// The four keys, at the top level or in `runtimeConfig.bandwidth`
/// (bits per second and bits; 0 is "no limit").
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct Entry {
    #[serde(rename = "ingressRate")]
    ingress_rate: Option<u64>,
    #[serde(rename = "ingressBurst")]
    ingress_burst: Option<u64>,
    #[serde(rename = "egressRate")]
    egress_rate: Option<u64>,
    #[serde(rename = "egressBurst")]
    egress_burst: Option<u64>,
}

impl Entry {
    fn any_set(&self) -> bool {
        self.ingress_rate.is_some()
            || self.ingress_burst.is_some()
            || self.egress_rate.is_some()
            || self.egress_burst.is_some()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Runtime {
    bandwidth: Option<Entry>,
}

/// The config: the same four keys at the top level (no serde flatten: the
/// Go-style decoder matches keys case-insensitively per struct).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BwConf {
    #[serde(rename = "ingressRate")]
    ingress_rate: Option<u64>,
    #[serde(rename = "ingressBurst")]
    ingress_burst: Option<u64>,
    #[serde(rename = "egressRate")]
    egress_rate: Option<u64>,
    #[serde(rename = "egressBurst")]
    egress_burst: Option<u64>,
    #[serde(rename = "runtimeConfig")]
    runtime: Option<Runtime>,
}

/// Rate and burst of one direction, validated (both set or both 0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Limit {
    rate: u64,
    burst: u64,
}

impl Limit {
    fn is_set(&self) -> bool {
        self.rate > 0 && self.burst > 0
    }

    fn tbf(&self, tick: f64) -> Tbf {
        Tbf::new(self.rate, self.burst, tick)
    }
}

#[derive(Debug, Default)]
struct Conf {
    /// None: no bandwidth section at all.
    limits: Option<(Limit, Limit)>,
}

fn direction(prefix: &str, rate: Option<u64>, burst: Option<u64>) -> Result<Limit, CniError> {
    let (rate, burst) = (rate.unwrap_or(0), burst.unwrap_or(0));
    if burst == 0 && rate != 0 {
        return Err(CniError::config(format!(
            "{prefix}Burst: if rate is set, burst must also be set"
        )));
    }
    if rate == 0 && burst != 0 {
        return Err(CniError::config(format!(
            "{prefix}Rate: if burst is set, rate must also be set"
        )));
    }
    if burst / 8 >= u32::MAX as u64 {
        return Err(CniError::config(format!(
            "{prefix}Burst: burst cannot be more than 4GB"
        )));
    }
    // Below a byte the TBF would get a zero rate or bucket (the reference
    // divides by zero here).
    if rate != 0 && rate < 8 {
        return Err(CniError::config(format!(
            "{prefix}Rate: {rate} bits/s is below one byte per second"
        )));
    }
    if burst != 0 && burst < 8 {
        return Err(CniError::config(format!(
            "{prefix}Burst: {burst} bits is below one byte"
        )));
    }
    Ok(Limit { rate, burst })
}

/// Top-level keys win entirely over `runtimeConfig.bandwidth` when any of
/// the four is present.
fn load(req: &Request) -> Result<Conf, CniError> {
    let raw: BwConf = req.decode()?;
    let top = Entry {
        ingress_rate: raw.ingress_rate,
        ingress_burst: raw.ingress_burst,
        egress_rate: raw.egress_rate,
        egress_burst: raw.egress_burst,
    };
    let entry = if top.any_set() {
        Some(top)
    } else {
        raw.runtime.and_then(|r| r.bandwidth)
    };
    let Some(e) = entry else {
        return Ok(Conf::default());
    };
    let ingress = direction("ingress", e.ingress_rate, e.ingress_burst)?;
    let egress = direction("egress", e.egress_rate, e.egress_burst)?;
    Ok(Conf {
        limits: Some((ingress, egress)),
    })
}

/// `bwp` + 12 hex of sha512(netName + containerID): 15 characters.
fn ifb_name(net: &str, container_id: &str) -> String {
    format!("bwp{}", sha512_hex(&format!("{net}{container_id}"), 12))
}

fn prev_result(req: &Request) -> Result<Option<CniResult>, CniError> {
    match req.net_conf()?.prev_result {
        None => Ok(None),
        Some(p) => CniResult::parse_as(&p, &req.version)
            .map(Some)
            .map_err(|e| e.context("could not parse prevResult")),
    }
}

fn tick() -> Result<f64, CniError> {
    let s = std::fs::read_to_string("/proc/net/psched")
        .map_err(|e| CniError::internal(format!("read /proc/net/psched: {e}")))?;
    tc::tick_in_usec(&s).ok_or_else(|| CniError::internal("unreadable /proc/net/psched"))
}

/// The host end of `CNI_IFNAME`: the container link must be a veth whose
/// peer, in our namespace, is a prevResult interface without a sandbox.
fn host_veth(req: &Request, prev: &CniResult, host_nl: &Netlink) -> Result<Link, CniError> {
    let ns = NetNs::open(&req.netns)?;
    let cont = ns.netlink()?.link_by_name(&req.ifname)?.ok_or_else(|| {
        CniError::internal(format!("container interface {} not found", req.ifname))
    })?;
    if cont.kind != "veth" || cont.link == 0 {
        return Err(CniError::internal(format!(
            "container interface {} has no veth peer",
            req.ifname
        )));
    }
    let peer = host_nl.link_by_index(cont.link)?.ok_or_else(|| {
        CniError::internal(format!(
            "veth peer with index {} is not in host ns",
            cont.link
        ))
    })?;
    if !prev
        .interfaces
        .iter()
        .any(|i| i.sandbox.is_empty() && i.name == peer.name)
    {
        return Err(CniError::internal(
            "no veth peer of container interface found in host ns",
        ));
    }
    Ok(peer)
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = load(req)?;
    let prev = prev_result(req)?;
    let limits = conf.limits.filter(|(i, e)| i.is_set() || e.is_set());
    let Some((ingress, egress)) = limits else {
        // Nothing to shape: pass the result on (an empty one when there is
        // none; the reference dereferences nil here and panics).
        let mut r = prev.unwrap_or_default();
        r.cni_version = req.version.clone();
        return Ok(r);
    };
    let mut result = prev.ok_or_else(|| {
        CniError::config("prevResult: missing; bandwidth must be called as a chained plugin")
    })?;
    let nl = Netlink::route()?;
    let host = host_veth(req, &result, &nl)?;
    let tick = tick()?;

    let mut undo = Undo::new();
    let nlr = &nl;
    if ingress.is_set() {
        nl.tbf_add(host.index, &ingress.tbf(tick))?;
        undo.push(move || {
            let _ = nlr.qdisc_del(host.index, false);
        });
    }
    if egress.is_set() {
        let name = ifb_name(req.name(), &req.container_id);
        nl.ifb_add(&name, host.mtu)?;
        let del_name = name.clone();
        undo.push(move || {
            let _ = nlr.link_del_by_name(&del_name);
        });
        let ifb = nl
            .link_by_name(&name)?
            .ok_or_else(|| CniError::internal(format!("ifb {name} vanished")))?;
        result.interfaces.push(Interface {
            name,
            mac: ifb.mac_string(),
            ..Default::default()
        });
        nl.ingress_add(host.index)?;
        undo.push(move || {
            let _ = nlr.qdisc_del(host.index, true);
        });
        nl.redirect_filter_add(host.index, ifb.index)?;
        nl.tbf_add(ifb.index, &egress.tbf(tick))?;
    }
    undo.commit();
    result.cni_version = req.version.clone();
    Ok(result)
}

/// The ifb goes, found by name (the veth's qdiscs die with the veth). Works
/// without prevResult, without the netns, without the veth.
fn del(req: &Request) -> Result<(), CniError> {
    load(req)?;
    let nl = Netlink::route()?;
    nl.link_del_by_name(&ifb_name(req.name(), &req.container_id))?;
    Ok(())
}

/// As the reference: the first qdiscs of the host veth (ingress) and the
/// ifb (egress) up to the first non-TBF carry the configured parameters.
fn check(req: &Request) -> Result<(), CniError> {
    let conf = load(req)?;
    let prev = prev_result(req)?.ok_or_else(|| {
        CniError::config("prevResult: missing; bandwidth must be called as a chained plugin")
    })?;
    let nl = Netlink::route()?;
    let host = host_veth(req, &prev, &nl)?;
    let Some((ingress, egress)) = conf.limits else {
        return Ok(());
    };
    let tick = tick()?;
    if ingress.is_set() {
        check_tbfs(&nl, host.index, &ingress.tbf(tick))?;
    }
    if egress.is_set() {
        let name = ifb_name(req.name(), &req.container_id);
        let ifb = nl
            .link_by_name(&name)?
            .ok_or_else(|| CniError::internal(format!("get ifb device: {name} not found")))?;
        check_tbfs(&nl, ifb.index, &egress.tbf(tick))?;
    }
    Ok(())
}

fn check_tbfs(nl: &Netlink, index: u32, want: &Tbf) -> Result<(), CniError> {
    let qdiscs: Vec<_> = nl
        .qdiscs(index)?
        .into_iter()
        .filter(|q| q.kind != "pfifo_fast")
        .collect();
    if qdiscs.is_empty() {
        return Err(CniError::internal("Failed to find qdisc"));
    }
    for q in qdiscs {
        let Some(t) = q.tbf else { break };
        for (ok, what) in [
            (t.rate == want.rate, "Rate"),
            (t.limit == want.limit, "Limit"),
            (t.buffer == want.buffer, "Buffer"),
        ] {
            if !ok {
                return Err(CniError::internal(format!("{what} doesn't match")));
            }
        }
    }
    Ok(())
}

fn status(req: &Request) -> Result<(), CniError> {
    load(req).map(|_| ())
}

/// The ifb names hash the network name and container ID together, so an
/// ifb cannot be traced back to its network: nothing is collected.
fn gc(req: &Request) -> Result<(), CniError> {
    load(req).map(|_| ())
}

/// Fuzzing only (`cargo fuzz`): every config check ADD makes before it
/// changes anything.
#[cfg(fuzzing)]
pub fn fuzz_config(req: &Request) {
    let _ = load(req);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::skel::with_test_request;

    fn conf_of(extra: &str) -> Result<Conf, CniError> {
        let c = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"bandwidth"{extra}}}"#);
        with_test_request(&c, "", load)
    }

    #[test]
    fn top_level_wins_entirely_over_runtime_config() {
        let rt = r#","runtimeConfig":{"bandwidth":{"ingressRate":8000,"ingressBurst":800,"egressRate":16000,"egressBurst":1600}}"#;
        let c = conf_of(rt).unwrap().limits.unwrap();
        assert_eq!(
            c.0,
            Limit {
                rate: 8000,
                burst: 800
            }
        );
        assert_eq!(
            c.1,
            Limit {
                rate: 16000,
                burst: 1600
            }
        );
        let both = format!(r#","EgressRate":1000,"egressBurst":100{rt}"#);
        let c = conf_of(&both).unwrap().limits.unwrap();
        assert_eq!(c.0, Limit::default(), "runtime ingress ignored");
        assert_eq!(
            c.1,
            Limit {
                rate: 1000,
                burst: 100
            }
        );
        assert!(conf_of("").unwrap().limits.is_none());
    }

    #[test]
    fn validation_names_the_field() {
        for (bad, words) in [
            (r#","ingressRate":1000"#, "ingressBurst: if rate is set"),
            (r#","egressBurst":1000"#, "egressRate: if burst is set"),
            (
                r#","egressRate":1,"egressBurst":34359738368"#,
                "burst cannot be more than 4GB",
            ),
            (r#","ingressRate":-1,"ingressBurst":5"#, "ingressRate"),
            (
                r#","ingressRate":7,"ingressBurst":800"#,
                "ingressRate: 7 bits/s",
            ),
            (
                r#","egressRate":800,"egressBurst":7"#,
                "egressBurst: 7 bits",
            ),
        ] {
            let e = conf_of(bad).unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.contains(words), "{bad}: {}", e.msg);
        }
    }

    #[test]
    fn ifb_name_is_bwp_and_12_hex() {
        let n = ifb_name("net", "ctr");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("bwp"));
        assert_eq!(n, format!("bwp{}", sha512_hex("netctr", 12)));
    }
}
