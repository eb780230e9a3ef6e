//! The ADD result: one internal (1.x) shape, parsed from and printed in every
//! spec version with the Go reference's conversions and byte layout.
//!
//! Printing, as Go's `types.PrintResult`:
//! - 1.x goes through a `map[string]interface{}` in Go, so keys are sorted at
//!   every level and an empty `dns` is dropped;
//! - 0.3.x/0.4.0 print struct order and always print `"dns": {}`;
//! - 0.1.0/0.2.0 keep the first IPv4 and IPv6 address only and fail with
//!   `cannot convert: no valid IP addresses` when there is none.

use super::error::CniError;
use super::json::{self, GoValue};
use super::types::{serde_ip, Dns};
use super::version::{self, Family};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// An interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// 1.1.0
    pub mtu: i64,
    pub sandbox: String,
    /// 1.1.0
    #[serde(rename = "socketPath")]
    pub socket_path: String,
    /// 1.1.0
    #[serde(rename = "pciID")]
    pub pci_id: String,
}

/// An address in a result; `interface` indexes `interfaces`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpConfig {
    #[serde(default)]
    pub interface: Option<i64>,
    #[serde(deserialize_with = "serde_ip::cidr")]
    pub address: IpNet,
    #[serde(default, deserialize_with = "serde_ip::opt_ip")]
    pub gateway: Option<IpAddr>,
}

impl IpConfig {
    pub fn is_v4(&self) -> bool {
        self.address.addr().is_ipv4()
    }
}

/// A route in a result or an IPAM config (Go's shared `types.Route`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Route {
    #[serde(deserialize_with = "serde_ip::cidr")]
    pub dst: IpNet,
    #[serde(default, deserialize_with = "serde_ip::opt_ip")]
    pub gw: Option<IpAddr>,
    #[serde(default)]
    pub mtu: i64,
    #[serde(default)]
    pub advmss: i64,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub table: Option<i64>,
    #[serde(default)]
    pub scope: Option<i64>,
}

impl Route {
    /// A route an IPAM config may hand out (code 7 naming `path` if not):
    /// `gw` of the family of `dst`. The reference passes it on and the main
    /// plugin fails after it has made changes. (Host bits in `dst` are
    /// accepted, as the reference's own static tests use them.)
    pub fn validate(&self, path: &str) -> Result<(), CniError> {
        if let Some(gw) = self.gw.filter(|g| g.is_ipv4() != self.dst.addr().is_ipv4()) {
            return Err(CniError::config(format!(
                "{path}.gw: {gw} is not of the family of dst {}",
                self.dst
            )));
        }
        Ok(())
    }

    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: 0,
            advmss: 0,
            priority: 0,
            table: None,
            scope: None,
        }
    }
}

/// A result in its newest (1.x) form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

// ---- parsing ---------------------------------------------------------------

#[derive(Deserialize)]
struct Wire1 {
    #[serde(default, rename = "cniVersion")]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Deserialize)]
struct Wire04 {
    #[serde(default, rename = "cniVersion")]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface04>,
    #[serde(default)]
    ips: Vec<IpConfig>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Interface04 {
    name: String,
    mac: String,
    sandbox: String,
}

#[derive(Deserialize)]
struct Wire02 {
    #[serde(default, rename = "cniVersion")]
    cni_version: String,
    #[serde(default)]
    ip4: Option<IpConfig02>,
    #[serde(default)]
    ip6: Option<IpConfig02>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Deserialize)]
struct IpConfig02 {
    #[serde(deserialize_with = "serde_ip::cidr")]
    ip: IpNet,
    #[serde(default, deserialize_with = "serde_ip::opt_ip")]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
}

fn unsupported_version(version: &str) -> CniError {
    CniError::new(1, format!("unsupported CNI result version {version:?}"))
}

impl CniResult {
    /// Parse a result written in `as_version`'s family (Go's
    /// `create.Create(version, bytes)`): the document's own `cniVersion` must
    /// belong to that family.
    pub fn parse_as(value: &GoValue, as_version: &str) -> Result<CniResult, CniError> {
        Self::parse_owned(value.clone(), as_version)
    }

    /// [`parse_as`](Self::parse_as), consuming a value the caller owns.
    fn parse_owned(value: GoValue, as_version: &str) -> Result<CniResult, CniError> {
        let fam = version::family(as_version).ok_or_else(|| unsupported_version(as_version))?;
        let doc_version = match value.get("cniVersion") {
            Some(GoValue::String(s)) => s.clone(),
            _ => String::new(),
        };
        if version::family(&doc_version) != Some(fam) {
            let allowed: Vec<&str> = version::ALL
                .iter()
                .copied()
                .filter(|v| version::family(v) == Some(fam))
                .collect();
            return Err(CniError::decode(format!(
                "result type supports [{}] but unmarshalled CNIVersion is {doc_version:?}",
                allowed.join(" ")
            )));
        }
        let bad = |e: json::DecodeError| CniError::decode(format!("failed to parse result: {e}"));
        let r = match fam {
            Family::V1 => {
                let w: Wire1 = json::from_value(value).map_err(bad)?;
                CniResult {
                    cni_version: w.cni_version,
                    interfaces: w.interfaces,
                    ips: w.ips,
                    routes: w.routes,
                    dns: w.dns,
                }
            }
            Family::V04 => {
                let w: Wire04 = json::from_value(value).map_err(bad)?;
                CniResult {
                    cni_version: w.cni_version,
                    interfaces: w
                        .interfaces
                        .into_iter()
                        .map(|i| Interface {
                            name: i.name,
                            mac: i.mac,
                            sandbox: i.sandbox,
                            ..Default::default()
                        })
                        .collect(),
                    ips: w.ips,
                    routes: w.routes,
                    dns: w.dns,
                }
            }
            Family::V02 => {
                let w: Wire02 = json::from_value(value).map_err(bad)?;
                let mut r = CniResult {
                    cni_version: w.cni_version,
                    dns: w.dns,
                    ..Default::default()
                };
                for ipc in [w.ip4, w.ip6].into_iter().flatten() {
                    r.ips.push(IpConfig {
                        interface: None,
                        address: ipc.ip,
                        gateway: ipc.gateway,
                    });
                    r.routes.extend(ipc.routes);
                }
                r
            }
        };
        Ok(r)
    }

    /// Parse a result in whatever version it declares; a result without
    /// `cniVersion` takes `default_version` (libcni's `fixupResultVersion`).
    pub fn parse_any(bytes: &[u8], default_version: &str) -> Result<CniResult, CniError> {
        let value = json::parse(bytes)
            .map_err(|e| CniError::decode(format!("failed to parse result: {e}")))?;
        let v = match value.get("cniVersion") {
            Some(GoValue::String(s)) if !s.is_empty() => s.clone(),
            _ => default_version.to_string(),
        };
        let mut value = value;
        value.set("cniVersion", GoValue::String(v.clone()));
        Self::parse_owned(value, &v)
    }

    // ---- printing ------------------------------------------------------------

    /// The result printed in `version` (Go's `PrintResult(result, version)`).
    pub fn to_version_string(&self, version: &str) -> Result<String, CniError> {
        match version::family(version) {
            Some(Family::V1) => Ok(json::to_go_pretty(&self.to_v1_value(version))),
            Some(Family::V04) => Ok(json::to_go_pretty(&self.to_v04(version))),
            Some(Family::V02) => Ok(json::to_go_pretty(&self.to_v02(version)?)),
            None => Err(unsupported_version(version)),
        }
    }

    /// The result as a JSON value in `version` (for prevResult injection and
    /// the result cache). The value's maps are sorted, as the printed
    /// result parsed back would be.
    pub fn to_version_value(&self, version: &str) -> Result<serde_json::Value, CniError> {
        let value = match version::family(version) {
            Some(Family::V1) => return Ok(self.to_v1_value(version)),
            Some(Family::V04) => serde_json::to_value(self.to_v04(version)),
            Some(Family::V02) => serde_json::to_value(self.to_v02(version)?),
            None => return Err(unsupported_version(version)),
        };
        value.map_err(|e| CniError::internal(e.to_string()))
    }

    /// 1.x: Go re-marshals the result through a map, so keys are sorted at
    /// every level; serializing into a `serde_json::Value` (whose map is
    /// sorted) gives the same. Empty lists and an empty DNS are omitted.
    fn to_v1_value(&self, version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Printed1<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            interfaces: Vec<Printed1Interface<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            ips: Vec<PrintedIp>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            routes: Vec<PrintedRoute>,
            #[serde(skip_serializing_if = "Dns::is_empty")]
            dns: &'a Dns,
        }
        #[derive(Serialize)]
        struct Printed1Interface<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            mac: &'a str,
            #[serde(skip_serializing_if = "is_zero")]
            mtu: i64,
            #[serde(skip_serializing_if = "str::is_empty")]
            sandbox: &'a str,
            #[serde(rename = "socketPath", skip_serializing_if = "str::is_empty")]
            socket_path: &'a str,
            #[serde(rename = "pciID", skip_serializing_if = "str::is_empty")]
            pci_id: &'a str,
        }
        let printed = Printed1 {
            cni_version: version,
            interfaces: self
                .interfaces
                .iter()
                .map(|i| Printed1Interface {
                    name: &i.name,
                    mac: &i.mac,
                    mtu: i.mtu,
                    sandbox: &i.sandbox,
                    socket_path: &i.socket_path,
                    pci_id: &i.pci_id,
                })
                .collect(),
            ips: self.ips.iter().map(|ip| PrintedIp::new(ip, None)).collect(),
            routes: self.routes.iter().map(PrintedRoute::from).collect(),
            dns: &self.dns,
        };
        serde_json::to_value(&printed).unwrap_or_default()
    }

    fn to_v04(&self, version: &str) -> Printed04 {
        Printed04 {
            cni_version: version.to_string(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| Printed04Interface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| PrintedIp::new(ip, Some(if ip.is_v4() { "4" } else { "6" })))
                .collect(),
            routes: self.routes.iter().map(PrintedRoute::from).collect(),
            dns: self.dns.clone(),
        }
    }

    fn to_v02(&self, version: &str) -> Result<Printed02, CniError> {
        let pick = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| ip.is_v4() == v4)
                .map(|ip| Printed02Ip {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: Vec::new(),
                })
        };
        let mut ip4 = pick(true);
        let mut ip6 = pick(false);
        for r in &self.routes {
            let slim = Route::new(r.dst, r.gw);
            let target = if r.dst.addr().is_ipv4() {
                ip4.as_mut()
            } else {
                ip6.as_mut()
            };
            if let Some(t) = target {
                t.routes.push(PrintedRoute::from(&slim));
            }
        }
        if ip4.is_none() && ip6.is_none() {
            return Err(CniError::internal("cannot convert: no valid IP addresses"));
        }
        Ok(Printed02 {
            cni_version: version.to_string(),
            ip4,
            ip6,
            dns: self.dns.clone(),
        })
    }
}

/// A route as Go's `types.Route.MarshalJSON` writes it: dst, gw, mtu,
/// advmss, priority, table, scope, zero values omitted.
#[derive(Serialize)]
struct PrintedRoute {
    #[serde(serialize_with = "serde_ip::ser_cidr")]
    dst: IpNet,
    #[serde(
        serialize_with = "serde_ip::ser_opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    gw: Option<IpAddr>,
    #[serde(skip_serializing_if = "is_zero")]
    mtu: i64,
    #[serde(skip_serializing_if = "is_zero")]
    advmss: i64,
    #[serde(skip_serializing_if = "is_zero")]
    priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<i64>,
}

impl From<&Route> for PrintedRoute {
    fn from(r: &Route) -> Self {
        PrintedRoute {
            dst: r.dst,
            gw: r.gw,
            mtu: r.mtu,
            advmss: r.advmss,
            priority: r.priority,
            table: r.table,
            scope: r.scope,
        }
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct Printed04 {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Printed04Interface>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<PrintedIp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<PrintedRoute>,
    dns: Dns,
}

#[derive(Serialize)]
struct Printed04Interface {
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    sandbox: String,
}

/// An IP config: 0.3/0.4 carry `version` ("4"/"6"), 1.x does not.
#[derive(Serialize)]
struct PrintedIp {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<i64>,
    #[serde(serialize_with = "serde_ip::ser_cidr")]
    address: IpNet,
    #[serde(
        serialize_with = "serde_ip::ser_opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    gateway: Option<IpAddr>,
}

impl PrintedIp {
    fn new(ip: &IpConfig, version: Option<&'static str>) -> Self {
        PrintedIp {
            version,
            interface: ip.interface,
            address: ip.address,
            gateway: ip.gateway,
        }
    }
}

#[derive(Serialize)]
struct Printed02 {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip4: Option<Printed02Ip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip6: Option<Printed02Ip>,
    dns: Dns,
}

#[derive(Serialize)]
struct Printed02Ip {
    #[serde(serialize_with = "serde_ip::ser_cidr")]
    ip: IpNet,
    #[serde(
        serialize_with = "serde_ip::ser_opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<PrintedRoute>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            cni_version: "1.1.0".into(),
            interfaces: vec![
                Interface {
                    name: "veth1".into(),
                    mac: "aa:bb:cc:dd:ee:01".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: "aa:bb:cc:dd:ee:02".into(),
                    sandbox: "/run/netns/x".into(),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.5/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(1),
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                },
            ],
            routes: vec![Route::new("0.0.0.0/0".parse().unwrap(), None)],
            dns: Dns::default(),
        }
    }

    #[test]
    fn the_value_form_is_the_printed_result_parsed_back_in_every_version() {
        let mut r = sample();
        r.dns.nameservers = vec!["10.1.0.1".into()];
        for v in version::ALL {
            let printed: serde_json::Value =
                serde_json::from_str(&r.to_version_string(v).unwrap()).unwrap();
            assert_eq!(r.to_version_value(v).unwrap(), printed, "{v}");
        }
        assert_eq!(r.to_version_value("9.9.9").unwrap_err().code, 1);
    }

    #[test]
    fn prints_1_x_with_sorted_keys_and_no_empty_dns() {
        let s = sample().to_version_string("1.0.0").unwrap();
        let want = r#"{
    "cniVersion": "1.0.0",
    "interfaces": [
        {
            "mac": "aa:bb:cc:dd:ee:01",
            "name": "veth1"
        },
        {
            "mac": "aa:bb:cc:dd:ee:02",
            "name": "eth0",
            "sandbox": "/run/netns/x"
        }
    ],
    "ips": [
        {
            "address": "10.1.0.5/24",
            "gateway": "10.1.0.1",
            "interface": 1
        },
        {
            "address": "fd00::5/64",
            "interface": 1
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0"
        }
    ]
}"#;
        assert_eq!(s, want);
    }

    #[test]
    fn prints_0_4_in_struct_order_with_version_and_dns() {
        let s = sample().to_version_string("0.4.0").unwrap();
        let want = r#"{
    "cniVersion": "0.4.0",
    "interfaces": [
        {
            "name": "veth1",
            "mac": "aa:bb:cc:dd:ee:01"
        },
        {
            "name": "eth0",
            "mac": "aa:bb:cc:dd:ee:02",
            "sandbox": "/run/netns/x"
        }
    ],
    "ips": [
        {
            "version": "4",
            "interface": 1,
            "address": "10.1.0.5/24",
            "gateway": "10.1.0.1"
        },
        {
            "version": "6",
            "interface": 1,
            "address": "fd00::5/64"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0"
        }
    ],
    "dns": {}
}"#;
        assert_eq!(s, want);
    }

    #[test]
    fn prints_0_2_with_first_ip_per_family_and_split_routes() {
        let mut r = sample();
        r.ips.push(IpConfig {
            interface: Some(1),
            address: "10.2.0.5/24".parse().unwrap(),
            gateway: None,
        });
        let s = r.to_version_string("0.2.0").unwrap();
        let want = r#"{
    "cniVersion": "0.2.0",
    "ip4": {
        "ip": "10.1.0.5/24",
        "gateway": "10.1.0.1",
        "routes": [
            {
                "dst": "0.0.0.0/0"
            }
        ]
    },
    "ip6": {
        "ip": "fd00::5/64"
    },
    "dns": {}
}"#;
        assert_eq!(s, want);
        let empty = CniResult::default();
        assert_eq!(
            empty.to_version_string("0.1.0").unwrap_err().msg,
            "cannot convert: no valid IP addresses"
        );
    }

    #[test]
    fn round_trips_through_every_version() {
        let r = sample();
        for v in version::ALL {
            let Ok(s) = r.to_version_string(v) else {
                continue;
            };
            let back = CniResult::parse_any(s.as_bytes(), "1.0.0").unwrap();
            assert_eq!(back.cni_version, *v);
            assert_eq!(back.ips[0].address, r.ips[0].address, "{v}");
            if version::family(v) != Some(Family::V02) {
                assert_eq!(back.interfaces.len(), 2);
                assert_eq!(back.ips[1].interface, Some(1));
            }
        }
    }

    #[test]
    fn parse_as_checks_the_version_family_like_go() {
        let v = json::parse(br#"{"cniVersion":"0.4.0","ips":[]}"#).unwrap();
        let e = CniResult::parse_as(&v, "1.0.0").unwrap_err();
        assert_eq!(
            e.msg,
            r#"result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0""#
        );
        assert!(CniResult::parse_as(&v, "0.3.1").is_ok());
    }

    #[test]
    fn missing_version_takes_the_config_version() {
        let r = CniResult::parse_any(
            br#"{"ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}]}"#,
            "0.4.0",
        )
        .unwrap();
        assert_eq!(r.cni_version, "0.4.0");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.0.0.1");
    }

    #[test]
    fn html_characters_are_escaped_like_go() {
        let mut r = sample();
        r.dns.domain = "a<b>&c".into();
        let s = r.to_version_string("1.1.0").unwrap();
        assert!(s.contains(r#""domain": "a\u003cb\u003e\u0026c""#), "{s}");
    }
}
