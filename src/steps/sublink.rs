//! What macvlan, ipvlan, vlan and dummy share (the reference repeats it in
//! each plugin): finding the master, making the link straight in the
//! container under a temporary name and renaming it there, the L2/L3 ADD
//! with rollback, DEL and CHECK.
//!
//! Unlike the reference, every failed ADD removes the link and releases the
//! addresses, and DEL never needs the master, a default route or the netns.

use super::iface::{self, ConfigureOptions};
use super::netns::NetNs;
use super::nlbatch::Batch;
use super::undo::Undo;
use super::veth::{self, random_veth_name};
use super::{check, fault, ipam, sysctl};
use crate::cni::args::CniArgs;
use crate::cni::result::{CniResult, Interface};
use crate::cni::types::{Dns, NetConf};
use crate::cni::{CniError, Request};
use crate::netlink::consts::{AF_INET, AF_INET6, RT_TABLE_MAIN};
use crate::netlink::link::Link;
use crate::netlink::sublink::SubLinkSpec;
pub use crate::netlink::sublink::{KindData, SubKind};
use crate::netlink::Netlink;

/// The container's namespace with a socket in it, and one in ours (the
/// host's), opened once for a whole ADD or CHECK.
pub struct Place {
    pub ns: NetNs,
    pub cont: Netlink,
    pub host: Netlink,
}

impl Place {
    pub fn open(netns: &str) -> Result<Place, CniError> {
        let ns = NetNs::open(netns)?;
        let cont = ns.netlink()?;
        let host = Netlink::route()?;
        Ok(Place { ns, cont, host })
    }

    /// The socket of the namespace the master lives in: the container's
    /// with `linkInContainer`, else the host's.
    pub fn master_nl(&self, in_container: bool) -> &Netlink {
        if in_container {
            &self.cont
        } else {
            &self.host
        }
    }
}

/// The name of the interface of the first default route of the main table
/// (IPv4 first, then IPv6), as the reference picks a missing `master`.
pub fn default_route_iface(nl: &Netlink) -> Result<String, CniError> {
    for family in [AF_INET, AF_INET6] {
        for r in nl.routes(family)? {
            if r.is_default() && r.oif != 0 && r.table_or_main() == RT_TABLE_MAIN as u32 {
                if let Some(l) = nl.link_by_index(r.oif)? {
                    return Ok(l.name);
                }
            }
        }
    }
    Err(CniError::config(
        "master: not set, and no default route interface found",
    ))
}

/// The master link named `name` in `nl`'s namespace, or the default-route
/// interface when `name` is empty. A missing master is a config error
/// (code 7) naming the field.
pub fn master(nl: &Netlink, name: &str) -> Result<Link, CniError> {
    let name = if name.is_empty() {
        default_route_iface(nl)?
    } else {
        name.to_string()
    };
    nl.link_by_name(&name)?.ok_or_else(|| {
        CniError::config(format!(
            "master: failed to lookup master {name:?}: Link not found"
        ))
    })
}

/// `mtu` must be 0 (the master's) up to the master's MTU.
pub fn validate_mtu(mtu: i64, master: &Link) -> Result<u32, CniError> {
    if mtu < 0 || mtu > i64::from(master.mtu) {
        return Err(CniError::config(format!(
            "mtu: invalid MTU {mtu}, must be [0, master MTU({})]",
            master.mtu
        )));
    }
    Ok(mtu as u32)
}

/// The MAC to give the link: config `mac` < CNI_ARGS `MAC` <
/// `runtimeConfig.mac` (the last one set wins). A bad CNI_ARGS value is an
/// environment error (code 4), a bad config value code 7; both name where
/// the value came from.
pub fn mac(conf_mac: &str, args: &str, runtime_mac: &str) -> Result<Option<[u8; 6]>, CniError> {
    let mut src = (!conf_mac.is_empty()).then(|| ("mac", conf_mac.to_string()));
    if let Some(m) = CniArgs::parse(args, &["MAC"])?.get("MAC") {
        if !m.is_empty() {
            src = Some(("CNI_ARGS MAC", m.to_string()));
        }
    }
    if !runtime_mac.is_empty() {
        src = Some(("runtimeConfig.mac", runtime_mac.to_string()));
    }
    let Some((what, m)) = src else {
        return Ok(None);
    };
    match veth::parse_mac(&m) {
        Some(mac) => Ok(Some(mac)),
        None if what.starts_with("CNI_ARGS") => {
            Err(CniError::env(format!("{what}: invalid MAC address {m:?}")))
        }
        None => Err(CniError::config(format!(
            "{what}: invalid MAC address {m:?}"
        ))),
    }
}

/// The link to make: its kind, its master (`None` for dummy) and settings.
#[derive(Clone)]
pub struct NewLink<'a> {
    pub kind: SubKind,
    /// The master and the socket of the namespace it lives in (the host's,
    /// or the container's with `linkInContainer`).
    pub master: Option<(&'a Netlink, &'a Link)>,
    pub mtu: u32,
    pub txqlen: Option<u32>,
    pub mac: Option<[u8; 6]>,
}

/// How many temporary names to try.
const NAME_ATTEMPTS: usize = 10;

/// Make `ifname` in `ns` (`cont` is a socket in it): created there under a
/// temporary `vethXXXXXXXX` name (a name that may exist on the host cannot
/// clash), then renamed. Returns the link as the kernel reports it; nothing
/// is left behind on failure.
pub fn create(
    host: &Netlink,
    ns: &NetNs,
    cont: &Netlink,
    ifname: &str,
    new: &NewLink,
) -> Result<Link, CniError> {
    if cont.link_by_name(ifname)?.is_some() {
        return Err(CniError::internal(format!(
            "container interface name provided ({ifname}) already exists"
        )));
    }
    let (parent_nl, parent) = match new.master {
        Some((nl, l)) => (nl, l.index),
        None => (host, 0),
    };
    let kind = new.kind.name();
    let mut last_err = None;
    for _ in 0..NAME_ATTEMPTS {
        let tmp = random_veth_name();
        let spec = SubLinkSpec {
            name: &tmp,
            kind: new.kind,
            parent,
            netns_fd: Some(ns.fd()),
            mtu: new.mtu,
            txqlen: new.txqlen,
            mac: new.mac,
        };
        match parent_nl.sublink_add(&spec) {
            Ok(()) => return rename(cont, &tmp, ifname, kind),
            Err(e) if e.is_exists() => last_err = Some(e),
            Err(e) if e.is_unsupported() => {
                return Err(CniError::internal(format!(
                    "failed to create {kind}: {e} (this kernel has no {kind} support)"
                )))
            }
            Err(e) => return Err(CniError::internal(format!("failed to create {kind}: {e}"))),
        }
    }
    Err(CniError::internal(format!(
        "failed to find a free temporary name for the {kind}: {}",
        last_err.map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn rename(cont: &Netlink, tmp: &str, ifname: &str, kind: &str) -> Result<Link, CniError> {
    let made = cont
        .link_by_name(tmp)?
        .ok_or_else(|| CniError::internal(format!("{kind} {tmp} vanished after creation")))?;
    let renamed = cont
        .link_rename(made.index, ifname)
        .map_err(|e| CniError::internal(format!("failed to rename {kind} to {ifname:?}: {e}")))
        .and_then(|()| {
            cont.link_by_index(made.index)?
                .ok_or_else(|| CniError::internal(format!("failed to refetch {kind} {ifname:?}")))
        });
    if renamed.is_err() {
        let _ = cont.link_del(made.index);
    }
    renamed
}

/// Where the addresses of an ADD come from.
pub enum Addressing {
    /// None: the link is only set up (macvlan without IPAM).
    L2,
    /// The IPAM plugin of this type.
    Ipam(String),
    /// A previous plugin's result (ipvlan chained without IPAM).
    Chained(CniResult),
}

/// How an ADD is finished.
pub struct AddFlow<'a> {
    /// The plugin's name, for fault points (`<plugin>:after-link`, ...).
    pub plugin: &'static str,
    pub link: NewLink<'a>,
    pub addressing: Addressing,
    /// Set `arp_notify` and `ndisc_notify` on the link (macvlan, ipvlan).
    pub notify: bool,
    /// The result's DNS: `Some` replaces what IPAM returned (the config's
    /// `dns`, even when empty); `None` keeps IPAM's (dummy).
    pub dns: Option<Dns>,
}

/// ADD: make the link, address it (or just set it up), and build the
/// result (`interfaces = [link]`, every IP on interface 0). Any failure,
/// including a result that cannot be printed in the config's version,
/// removes the link and releases the addresses.
pub fn add(req: &Request, place: &Place, flow: AddFlow) -> Result<CniResult, CniError> {
    let (ns, cont) = (&place.ns, &place.cont);
    let link = create(&place.host, ns, cont, &req.ifname, &flow.link)?;
    let mut undo = Undo::new();
    let index = link.index;
    undo.push(move || {
        let _ = cont.link_del(index);
    });
    fault::point(&format!("{}:after-link", flow.plugin))?;

    let mut result = CniResult {
        cni_version: req.version.clone(),
        ..Default::default()
    };
    let mut alloc = None;
    let addresses = match flow.addressing {
        Addressing::L2 => None,
        Addressing::Chained(prev) => Some(prev),
        Addressing::Ipam(t) => {
            let a = alloc.insert(ipam::Allocation::new(req, &t)?);
            fault::point(&format!("{}:after-ipam", flow.plugin))?;
            Some(std::mem::take(&mut a.result))
        }
    };
    result.interfaces = vec![Interface {
        name: link.name.clone(),
        mac: link.mac_string(),
        sandbox: req.netns.clone(),
        ..Default::default()
    }];
    match addresses {
        None => cont.link_set_up(link.index, true)?,
        Some(r) => {
            if r.ips.is_empty() {
                return Err(CniError::internal("IPAM plugin returned missing IP config"));
            }
            result.ips = r.ips;
            result.routes = r.routes;
            result.dns = r.dns;
            for ip in &mut result.ips {
                ip.interface = Some(0);
            }
            let mut opts = ConfigureOptions::default();
            if flow.notify {
                for (fam, key) in [("ipv4", "arp_notify"), ("ipv6", "ndisc_notify")] {
                    let path = sysctl::iface_path(fam, &link.name, key);
                    opts.sysctls.push((path, "1".to_string()));
                }
            }
            iface::configure(ns, cont, &link, &result, &opts, &[], Batch::new())?;
        }
    }
    fault::point(&format!("{}:after-configure", flow.plugin))?;
    if let Some(dns) = flow.dns {
        result.dns = dns;
    }
    // An L2 result has no 0.1.0/0.2.0 form: fail now, while we can still
    // roll back (the reference prints the error and keeps the link).
    result.to_version_string(&req.version)?;
    undo.commit();
    if let Some(a) = alloc {
        a.keep();
    }
    Ok(result)
}

/// The config's `dns`, as the result's (empty when absent).
pub fn config_dns(conf: &NetConf) -> Dns {
    conf.dns.as_ref().map(Dns::from).unwrap_or_default()
}

/// DEL: release the addresses (when there is an IPAM), then delete the link
/// in the container. A missing or empty netns, or a missing link, is
/// success; neither the master nor a default route is needed.
pub fn del(req: &Request, ipam_type: &str) -> Result<(), CniError> {
    if !ipam_type.is_empty() {
        ipam::del(req, ipam_type)?;
    }
    veth::delete(&req.netns, &req.ifname)
}

/// What CHECK expects of the link beyond its kind and MAC.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub data: KindData,
    /// The MTU, when the config sets one (vlan).
    pub mtu: Option<u32>,
    /// The link must be up (dummy).
    pub up: bool,
    /// Check the result's routes too (all but dummy).
    pub routes: bool,
}

/// CHECK (after the plugin's own config checks and IPAM CHECK): the
/// prevResult's interface for CNI_IFNAME in CNI_NETNS exists there with the
/// kind, MAC and `expect`ed settings, and carries the result's addresses
/// (and routes).
pub fn check(
    req: &Request,
    conf: &NetConf,
    place: &Place,
    kind: &str,
    expect: &Expect,
) -> Result<(), CniError> {
    let mut prev = check::prev_result(req, conf, kind)?;
    if !expect.routes {
        prev.routes.clear();
    }
    let (idx, iface) = check::container_iface(&prev, &req.ifname, &req.netns)?;
    let nl = &place.cont;
    let link = check::link(nl, iface, Some(kind))?;
    let (_, data) = nl
        .link_with_kind_data(&link.name)?
        .ok_or_else(|| CniError::internal(format!("interface {} vanished", link.name)))?;
    let want = expect.data;
    if let Some(m) = want.macvlan_mode.filter(|m| data.macvlan_mode != Some(*m)) {
        return Err(CniError::internal(format!(
            "container macvlan mode {} does not match expected value: {}",
            data.macvlan_mode.map(macvlan_mode_name).unwrap_or("?"),
            macvlan_mode_name(m)
        )));
    }
    if let Some(m) = want.ipvlan_mode.filter(|m| data.ipvlan_mode != Some(*m)) {
        return Err(CniError::internal(format!(
            "container ipvlan mode {} does not match expected value: {}",
            data.ipvlan_mode.map(ipvlan_mode_name).unwrap_or("?"),
            ipvlan_mode_name(m)
        )));
    }
    if let Some(id) = want.vlan_id.filter(|id| data.vlan_id != Some(*id)) {
        return Err(CniError::internal(format!(
            "interface {}: VLAN id {} does not match the configured {id}",
            link.name,
            data.vlan_id.map(|v| v.to_string()).unwrap_or_default()
        )));
    }
    if let Some(mtu) = expect.mtu.filter(|m| *m != link.mtu) {
        return Err(CniError::internal(format!(
            "interface {}: MTU {} does not match the configured {mtu}",
            link.name, link.mtu
        )));
    }
    if expect.up && !link.is_up() {
        return Err(CniError::internal(format!(
            "Interface {} is down",
            link.name
        )));
    }
    check::addresses_and_routes(nl, &link, &prev, idx)
}

use crate::netlink::sublink::{
    IPVLAN_MODE_L2, IPVLAN_MODE_L3, IPVLAN_MODE_L3S, MACVLAN_MODE_BRIDGE, MACVLAN_MODE_PASSTHRU,
    MACVLAN_MODE_PRIVATE, MACVLAN_MODE_VEPA,
};

const MACVLAN_MODES: [(&str, u32); 4] = [
    ("bridge", MACVLAN_MODE_BRIDGE),
    ("private", MACVLAN_MODE_PRIVATE),
    ("vepa", MACVLAN_MODE_VEPA),
    ("passthru", MACVLAN_MODE_PASSTHRU),
];
const IPVLAN_MODES: [(&str, u16); 3] = [
    ("l2", IPVLAN_MODE_L2),
    ("l3", IPVLAN_MODE_L3),
    ("l3s", IPVLAN_MODE_L3S),
];

/// A macvlan `mode` ("" is bridge); unknown is code 7 naming the field.
pub fn macvlan_mode(s: &str) -> Result<u32, CniError> {
    let s = if s.is_empty() { "bridge" } else { s };
    MACVLAN_MODES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, m)| *m)
        .ok_or_else(|| CniError::config(format!("mode: unknown macvlan mode: {s:?}")))
}

fn macvlan_mode_name(m: u32) -> &'static str {
    MACVLAN_MODES
        .iter()
        .find(|(_, v)| *v == m)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

/// An ipvlan `mode` ("" is l2); unknown is code 7 naming the field.
pub fn ipvlan_mode(s: &str) -> Result<u16, CniError> {
    let s = if s.is_empty() { "l2" } else { s };
    IPVLAN_MODES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, m)| *m)
        .ok_or_else(|| CniError::config(format!("mode: unknown ipvlan mode: {s:?}")))
}

fn ipvlan_mode_name(m: u16) -> &'static str {
    IPVLAN_MODES
        .iter()
        .find(|(_, v)| *v == m)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_the_reference_and_name_the_field() {
        assert_eq!(macvlan_mode("").unwrap(), MACVLAN_MODE_BRIDGE);
        assert_eq!(macvlan_mode("passthru").unwrap(), MACVLAN_MODE_PASSTHRU);
        let e = macvlan_mode("Bridge").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with("mode:"), "{}", e.msg);
        assert_eq!(ipvlan_mode("").unwrap(), IPVLAN_MODE_L2);
        assert_eq!(ipvlan_mode("l3s").unwrap(), IPVLAN_MODE_L3S);
        assert_eq!(ipvlan_mode("l4").unwrap_err().code, 7);
        assert_eq!(macvlan_mode_name(MACVLAN_MODE_VEPA), "vepa");
        assert_eq!(ipvlan_mode_name(IPVLAN_MODE_L3), "l3");
    }

    #[test]
    fn mac_precedence_is_config_then_args_then_runtime_config() {
        let a = "c2:00:00:00:00:0a";
        let b = "c2:00:00:00:00:0b";
        let c = "c2:00:00:00:00:0c";
        assert_eq!(mac("", "", "").unwrap(), None);
        assert_eq!(mac(a, "", "").unwrap().unwrap()[5], 0x0a);
        assert_eq!(mac(a, &format!("MAC={b}"), "").unwrap().unwrap()[5], 0x0b);
        assert_eq!(mac(a, &format!("MAC={b}"), c).unwrap().unwrap()[5], 0x0c);
        // A bad value that a later source overrides does not matter.
        assert_eq!(mac("junk", "", c).unwrap().unwrap()[5], 0x0c);
        let e = mac("", "MAC=zz", "").unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_ARGS MAC"), "{}", e.msg);
        let e = mac("01:02", "", "").unwrap_err();
        assert_eq!((e.code, e.msg.starts_with("mac:")), (7, true), "{}", e.msg);
        let e = mac("", "", "x").unwrap_err();
        assert!(e.msg.starts_with("runtimeConfig.mac"), "{}", e.msg);
        // Unknown CNI_ARGS keys fail as in the reference, unless ignored.
        assert_eq!(mac("", "FOO=1", "").unwrap_err().code, 4);
        assert_eq!(mac("", "IgnoreUnknown=1;FOO=1", "").unwrap(), None);
    }

    #[test]
    fn mtu_must_fit_the_master() {
        let m = Link {
            mtu: 1500,
            ..Default::default()
        };
        assert_eq!(validate_mtu(0, &m).unwrap(), 0);
        assert_eq!(validate_mtu(1500, &m).unwrap(), 1500);
        let e = validate_mtu(9000, &m).unwrap_err();
        assert_eq!(e.code, 7);
        assert_eq!(
            e.msg,
            "mtu: invalid MTU 9000, must be [0, master MTU(1500)]"
        );
        assert_eq!(validate_mtu(-1, &m).unwrap_err().code, 7);
    }
}
