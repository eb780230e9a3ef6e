//! The dhcp calls' Go types as gob values: `skel.CmdArgs` and
//! `types100.Result`, to and from cnibox's own types.

use crate::cni::result::{CniResult, Interface, IpConfig, Route};
use crate::cni::types::Dns;
use crate::gorpc::gob::Value;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The argument of both calls (what Go's skel.CmdArgs carries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CmdArgs {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: String,
    pub stdin: Vec<u8>,
}

impl CmdArgs {
    pub fn to_gob(&self) -> Value {
        Value::fields(vec![
            ("ContainerID", Value::String(self.container_id.clone())),
            ("Netns", Value::String(self.netns.clone())),
            ("IfName", Value::String(self.ifname.clone())),
            ("Args", Value::String(self.args.clone())),
            ("Path", Value::String(self.path.clone())),
            ("StdinData", Value::Bytes(self.stdin.clone())),
        ])
    }

    pub fn from_gob(v: &Value) -> CmdArgs {
        CmdArgs {
            container_id: v.str_field("ContainerID").to_string(),
            netns: v.str_field("Netns").to_string(),
            ifname: v.str_field("IfName").to_string(),
            args: v.str_field("Args").to_string(),
            path: v.str_field("Path").to_string(),
            stdin: v.bytes_field("StdinData").to_vec(),
        }
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let a: [u8; 16] = b.try_into().ok()?;
            let v6 = Ipv6Addr::from(a);
            // Go's 16-byte form of an IPv4 address.
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

fn ipnet_gob(n: &IpNet) -> Value {
    Value::fields(vec![
        ("IP", Value::Bytes(ip_bytes(n.addr()))),
        ("Mask", Value::Bytes(ip_bytes(n.netmask()))),
    ])
}

fn ipnet_from(v: Option<&Value>) -> Result<IpNet, String> {
    let v = v.ok_or("missing address")?;
    let ip = ip_from(v.bytes_field("IP")).ok_or("bad IP in result")?;
    let mask = v.bytes_field("Mask");
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let ones = if ip.is_ipv4() && mask.len() == 16 {
        ones.saturating_sub(96)
    } else {
        ones
    };
    IpNet::new(ip, ones as u8).map_err(|e| format!("bad mask in result: {e}"))
}

fn int(v: i64) -> Value {
    Value::Int(v)
}

fn strings(v: &[String]) -> Value {
    Value::Slice(v.iter().map(|s| Value::String(s.clone())).collect())
}

pub fn result_to_gob(r: &CniResult) -> Value {
    let ifaces = r
        .interfaces
        .iter()
        .map(|i| {
            Value::fields(vec![
                ("Name", Value::String(i.name.clone())),
                ("Mac", Value::String(i.mac.clone())),
                ("Mtu", int(i.mtu)),
                ("Sandbox", Value::String(i.sandbox.clone())),
                ("SocketPath", Value::String(i.socket_path.clone())),
                ("PciID", Value::String(i.pci_id.clone())),
            ])
        })
        .collect();
    let ips = r
        .ips
        .iter()
        .map(|c| {
            let mut f = vec![];
            if let Some(i) = c.interface {
                f.push(("Interface", int(i)));
            }
            f.push(("Address", ipnet_gob(&c.address)));
            if let Some(g) = c.gateway {
                f.push(("Gateway", Value::Bytes(ip_bytes(g))));
            }
            Value::fields(f)
        })
        .collect();
    let routes = r
        .routes
        .iter()
        .map(|rt| {
            let mut f = vec![("Dst", ipnet_gob(&rt.dst))];
            if let Some(g) = rt.gw {
                f.push(("GW", Value::Bytes(ip_bytes(g))));
            }
            f.push(("MTU", int(rt.mtu)));
            f.push(("AdvMSS", int(rt.advmss)));
            f.push(("Priority", int(rt.priority)));
            if let Some(t) = rt.table {
                f.push(("Table", int(t)));
            }
            if let Some(s) = rt.scope {
                f.push(("Scope", int(s)));
            }
            Value::fields(f)
        })
        .collect();
    Value::fields(vec![
        ("CNIVersion", Value::String(String::new())),
        ("Interfaces", Value::Slice(ifaces)),
        ("IPs", Value::Slice(ips)),
        ("Routes", Value::Slice(routes)),
        (
            "DNS",
            Value::fields(vec![
                ("Nameservers", strings(&r.dns.nameservers)),
                ("Domain", Value::String(r.dns.domain.clone())),
                ("Search", strings(&r.dns.search)),
                ("Options", strings(&r.dns.options)),
            ]),
        ),
    ])
}

fn string_list(v: &Value, name: &str) -> Vec<String> {
    v.slice_field(name)
        .iter()
        .filter_map(|s| match s {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

pub fn result_from_gob(v: &Value) -> Result<CniResult, String> {
    let mut r = CniResult {
        cni_version: v.str_field("CNIVersion").to_string(),
        ..Default::default()
    };
    for i in v.slice_field("Interfaces") {
        r.interfaces.push(Interface {
            name: i.str_field("Name").to_string(),
            mac: i.str_field("Mac").to_string(),
            mtu: i.int_field("Mtu").unwrap_or(0),
            sandbox: i.str_field("Sandbox").to_string(),
            socket_path: i.str_field("SocketPath").to_string(),
            pci_id: i.str_field("PciID").to_string(),
        });
    }
    for c in v.slice_field("IPs") {
        r.ips.push(IpConfig {
            interface: c.int_field("Interface"),
            address: ipnet_from(c.field("Address"))?,
            gateway: ip_from(c.bytes_field("Gateway")),
        });
    }
    for rt in v.slice_field("Routes") {
        r.routes.push(Route {
            dst: ipnet_from(rt.field("Dst"))?,
            gw: ip_from(rt.bytes_field("GW")),
            mtu: rt.int_field("MTU").unwrap_or(0),
            advmss: rt.int_field("AdvMSS").unwrap_or(0),
            priority: rt.int_field("Priority").unwrap_or(0),
            table: rt.int_field("Table"),
            scope: rt.int_field("Scope"),
        });
    }
    if let Some(d) = v.field("DNS") {
        r.dns = Dns {
            nameservers: string_list(d, "Nameservers"),
            domain: d.str_field("Domain").to_string(),
            search: string_list(d, "Search"),
            options: string_list(d, "Options"),
        };
    }
    Ok(r)
}
