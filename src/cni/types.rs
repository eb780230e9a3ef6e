//! Config pieces every plugin shares: the common `NetConf` keys, DNS, IP
//! and CIDR parsing with Go's rules, and GC's valid-attachment list.

use super::error::CniError;
use super::json::GoValue;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Parse an IP as Go's `net.ParseIP`; IPv4-mapped IPv6 becomes IPv4 (Go
/// prints and classifies it as IPv4).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Parse `ip/prefix` as Go's `types.ParseCIDR`, keeping the host bits
/// (`10.1.0.5/16` stays `10.1.0.5/16`).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let (ip, prefix) = s.split_once('/')?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ip: IpAddr = ip.parse().ok()?;
    IpNet::new(ip, prefix.parse().ok()?).ok()
}

/// serde helpers for Go's IP types in JSON.
pub mod serde_ip {
    use super::*;
    use serde::de::Error;

    /// `types.IPNet`: a CIDR string.
    pub fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).ok_or_else(|| D::Error::custom(format!("invalid CIDR address: {s}")))
    }

    /// `net.IP`: an IP string; "" is nil, as Go's `UnmarshalText`.
    pub fn opt_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        if s.is_empty() {
            return Ok(None);
        }
        parse_ip(&s)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid IP address: {s}")))
    }

    pub fn ser_cidr<S: serde::Serializer>(n: &IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }

    pub fn ser_opt_ip<S: serde::Serializer>(ip: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
        match ip {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_none(),
        }
    }
}

/// DNS settings, as in configs and results. Absent and empty lists differ in
/// configs (any present field overrides IPAM's DNS), hence the Options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DnsConf {
    pub nameservers: Option<Vec<String>>,
    pub domain: String,
    pub search: Option<Vec<String>>,
    pub options: Option<Vec<String>>,
}

impl DnsConf {
    /// Go's `dnsConfSet`: a list present (even empty) or a domain.
    pub fn is_set(&self) -> bool {
        self.nameservers.is_some()
            || self.search.is_some()
            || self.options.is_some()
            || !self.domain.is_empty()
    }
}

/// DNS in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl From<&DnsConf> for Dns {
    fn from(c: &DnsConf) -> Self {
        Dns {
            nameservers: c.nameservers.clone().unwrap_or_default(),
            domain: c.domain.clone(),
            search: c.search.clone().unwrap_or_default(),
            options: c.options.clone().unwrap_or_default(),
        }
    }
}

/// The keys every plugin config has (Go's `types.NetConf` plus the
/// reserved runtime keys). Plugin-specific keys are decoded separately from
/// the same document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NetConf {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    pub capabilities: BTreeMap<String, bool>,
    pub ipam: Option<GoValue>,
    pub dns: Option<DnsConf>,
    #[serde(rename = "prevResult")]
    pub prev_result: Option<GoValue>,
    #[serde(rename = "runtimeConfig")]
    pub runtime_config: Option<GoValue>,
    pub args: Option<GoValue>,
}

impl NetConf {
    /// `ipam.type`, or "" when there is no IPAM section.
    pub fn ipam_type(&self) -> Result<&str, CniError> {
        match self.ipam.as_ref().and_then(|i| i.get("type")) {
            None | Some(GoValue::Null) => Ok(""),
            Some(GoValue::String(s)) => Ok(s),
            Some(_) => Err(CniError::config("ipam.type: expected a string")),
        }
    }

    /// The DNS override of ptp and bridge: set only if any field is present.
    pub fn dns_override(&self) -> Option<Dns> {
        self.dns.as_ref().filter(|d| d.is_set()).map(Dns::from)
    }
}

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    #[serde(rename = "ifname")]
    pub ifname: String,
}

/// The valid-attachment list of a GC request: `cni.dev/valid-attachments`
/// (or the `cni.dev/attachments` spelling of spec 1.1.0's first text).
/// `None` when neither key is present: a caller that sent no list must not
/// lose everything (an empty list, in contrast, means "nothing is valid").
pub fn valid_attachments(config: &GoValue) -> Result<Option<Vec<Attachment>>, CniError> {
    let raw = config
        .get("cni.dev/valid-attachments")
        .or_else(|| config.get("cni.dev/attachments"));
    match raw {
        None | Some(GoValue::Null) => Ok(None),
        Some(v) => super::json::from_value::<Vec<Attachment>>(v.clone())
            .map(Some)
            .map_err(|e| CniError::config(format!("cni.dev/valid-attachments: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::json;

    #[test]
    fn cidr_keeps_host_bits_and_rejects_junk() {
        assert_eq!(
            parse_cidr("10.1.0.5/16").unwrap().to_string(),
            "10.1.0.5/16"
        );
        assert_eq!(
            parse_cidr("2001:db8::5/64").unwrap().to_string(),
            "2001:db8::5/64"
        );
        for bad in [
            "10.1.0.5",
            "10.1.0.5/33",
            "10.1.0.5/",
            "10.1.0.5/+1",
            "x/8",
            "10.1.0.5/8/8",
        ] {
            assert!(parse_cidr(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_ip("::ffff:1.2.3.4").unwrap().to_string(), "1.2.3.4");
    }

    #[test]
    fn dns_override_needs_a_present_field() {
        let c: NetConf = json::from_slice(br#"{"dns":{}}"#).unwrap();
        assert!(c.dns_override().is_none());
        let c: NetConf = json::from_slice(br#"{"dns":{"nameservers":[]}}"#).unwrap();
        assert_eq!(c.dns_override(), Some(Dns::default()));
        let c: NetConf = json::from_slice(br#"{"DNS":{"Domain":"x"}}"#).unwrap();
        assert_eq!(c.dns_override().unwrap().domain, "x");
    }

    #[test]
    fn valid_attachments_absent_differs_from_empty() {
        let v = json::parse(br#"{"name":"n"}"#).unwrap();
        assert_eq!(valid_attachments(&v).unwrap(), None);
        let v = json::parse(br#"{"cni.dev/valid-attachments":[]}"#).unwrap();
        assert_eq!(valid_attachments(&v).unwrap(), Some(vec![]));
        let v = json::parse(br#"{"cni.dev/attachments":[{"containerID":"c","ifname":"eth0"}]}"#)
            .unwrap();
        assert_eq!(valid_attachments(&v).unwrap().unwrap()[0].container_id, "c");
        let v = json::parse(br#"{"cni.dev/valid-attachments":{}}"#).unwrap();
        assert_eq!(valid_attachments(&v).unwrap_err().code, 7);
    }

    #[test]
    fn ipam_type_reads_raw_section() {
        let c: NetConf =
            json::from_slice(br#"{"ipam":{"TYPE":"host-local","subnet":"x"}}"#).unwrap();
        assert_eq!(c.ipam_type().unwrap(), "host-local");
        let c: NetConf = json::from_slice(br#"{"ipam":{}}"#).unwrap();
        assert_eq!(c.ipam_type().unwrap(), "");
    }
}
