//! The `ovs` config, checked before anything changes.

use super::txn::{PortSpec, OWNER};
use crate::cni::types::NetConf;
use crate::cni::{CniError, Request};
use crate::steps::{sublink, veth};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

const DEFAULT_SOCKET: &str = "/run/openvswitch/db.sock";
const DEFAULT_TIMEOUT: f64 = 10.0;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OvsConf {
    bridge: String,
    #[serde(rename = "ovsdbSocket")]
    ovsdb_socket: String,
    #[serde(rename = "interfaceType")]
    interface_type: String,
    vlan: Option<i64>,
    trunk: Vec<Trunk>,
    mtu: u32,
    mac: String,
    #[serde(rename = "createBridge")]
    create_bridge: bool,
    #[serde(rename = "datapathType")]
    datapath_type: String,
    #[serde(rename = "sharedDir")]
    shared_dir: String,
    /// Where OVS makes server-mode vhost-user sockets (its rundir plus
    /// other_config:vhost-sock-dir).
    #[serde(rename = "ovsSocketDir")]
    ovs_socket_dir: String,
    tunnels: Vec<Tunnel>,
    /// Seconds.
    #[serde(rename = "ovsdbTimeout")]
    ovsdb_timeout: Option<f64>,
    #[serde(rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuntimeConfig {
    mac: String,
}

/// As ovs-cni: `{"id": 10}` or `{"minID": 100, "maxID": 200}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Trunk {
    id: Option<i64>,
    #[serde(rename = "minID")]
    min_id: Option<i64>,
    #[serde(rename = "maxID")]
    max_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tunnel {
    remote: String,
    vni: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Veth,
    /// OVS is the vhost-user server and makes the socket.
    VhostServer,
    /// OVS connects to the socket at a path cnibox chooses.
    VhostClient,
}

pub struct Settings {
    pub common: NetConf,
    pub bridge: String,
    pub socket: String,
    pub timeout: Duration,
    pub kind: Kind,
    pub tag: Option<u16>,
    pub trunks: Vec<u16>,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    pub create_bridge: bool,
    pub datapath_type: String,
    pub shared_dir: String,
    pub ovs_socket_dir: String,
    pub tunnels: Vec<(IpAddr, u32)>,
    /// `ipam.type`, empty for L2.
    pub ipam: String,
}

fn vlan_id(v: i64, what: &str) -> Result<u16, CniError> {
    if (0..=4095).contains(&v) {
        Ok(v as u16)
    } else {
        Err(CniError::config(format!(
            "{what}: VLAN id {v} out of range 0-4095"
        )))
    }
}

pub fn settings(req: &Request) -> Result<Settings, CniError> {
    let common = req.net_conf()?;
    let c: OvsConf = req.decode()?;
    if c.bridge.is_empty() {
        return Err(CniError::config("bridge: an OVS bridge name is required"));
    }
    if c.bridge.len() > 15 || c.bridge.contains('/') {
        return Err(CniError::config(format!(
            "bridge: invalid bridge name {:?}",
            c.bridge
        )));
    }
    let kind = match c.interface_type.as_str() {
        "" | "veth" => Kind::Veth,
        "dpdkvhostuser" => Kind::VhostServer,
        "dpdkvhostuserclient" => Kind::VhostClient,
        other => {
            return Err(CniError::config(format!(
                "interfaceType: unknown {other:?} (veth, dpdkvhostuser or dpdkvhostuserclient)"
            )))
        }
    };
    let tag = c.vlan.map(|v| vlan_id(v, "vlan")).transpose()?;
    let mut trunks = Vec::new();
    for (i, t) in c.trunk.iter().enumerate() {
        let what = format!("trunk[{i}]");
        match (t.id, t.min_id, t.max_id) {
            (Some(id), None, None) => trunks.push(vlan_id(id, &what)?),
            (None, Some(lo), Some(hi)) => {
                let (lo, hi) = (vlan_id(lo, &what)?, vlan_id(hi, &what)?);
                if lo > hi {
                    return Err(CniError::config(format!("{what}: minID > maxID")));
                }
                trunks.extend(lo..=hi);
            }
            _ => {
                return Err(CniError::config(format!(
                    "{what}: give either id or both minID and maxID"
                )))
            }
        }
    }
    trunks.sort_unstable();
    trunks.dedup();
    veth::validate_mtu(c.mtu)?;
    let mac = sublink::mac(&c.mac, &req.args, &c.runtime_config.mac)?;
    if let Some(m) = mac {
        // The kernel refuses these for a veth, after IPAM already ran.
        if m[0] & 1 == 1 || m == [0; 6] {
            return Err(CniError::config(format!(
                "mac: {} is not a unicast address",
                crate::netlink::link::format_mac(&m)
            )));
        }
    }
    match c.datapath_type.as_str() {
        "" | "system" | "netdev" => {}
        other => {
            return Err(CniError::config(format!(
                "datapathType: unknown {other:?} (system or netdev)"
            )))
        }
    }
    let mut tunnels = Vec::new();
    for (i, t) in c.tunnels.iter().enumerate() {
        let ip: IpAddr = t.remote.parse().map_err(|_| {
            CniError::config(format!(
                "tunnels[{i}].remote: not an IP address: {:?}",
                t.remote
            ))
        })?;
        if !(0..1 << 24).contains(&t.vni) {
            return Err(CniError::config(format!(
                "tunnels[{i}].vni: {} out of range 0-16777215",
                t.vni
            )));
        }
        tunnels.push((ip, t.vni as u32));
    }
    let timeout = c.ovsdb_timeout.unwrap_or(DEFAULT_TIMEOUT);
    if !(timeout > 0.0 && timeout <= 3600.0) {
        return Err(CniError::config(format!(
            "ovsdbTimeout: {timeout} is not a number of seconds in (0, 3600]"
        )));
    }
    if kind != Kind::Veth && c.shared_dir.is_empty() {
        return Err(CniError::config(format!(
            "sharedDir: required for interfaceType {:?}",
            c.interface_type
        )));
    }
    let ipam = common.ipam_type()?.to_string();
    Ok(Settings {
        common,
        socket: if c.ovsdb_socket.is_empty() {
            DEFAULT_SOCKET.to_string()
        } else {
            c.ovsdb_socket.trim_start_matches("unix:").to_string()
        },
        bridge: c.bridge,
        timeout: Duration::from_secs_f64(timeout),
        kind,
        tag,
        trunks,
        mtu: c.mtu,
        mac,
        create_bridge: c.create_bridge,
        datapath_type: c.datapath_type,
        shared_dir: c.shared_dir,
        ovs_socket_dir: if c.ovs_socket_dir.is_empty() {
            "/run/openvswitch".to_string()
        } else {
            c.ovs_socket_dir
        },
        tunnels,
        ipam,
    })
}

impl Settings {
    /// The port of this attachment, name and type still to fill in.
    pub fn port_spec(&self, req: &Request) -> PortSpec {
        let ids = [
            ("owner", OWNER),
            ("containerID", req.container_id.as_str()),
            ("ifname", req.ifname.as_str()),
            ("netns", req.netns.as_str()),
            ("network", req.name()),
        ];
        PortSpec {
            tag: self.tag,
            trunks: self.trunks.clone(),
            external_ids: ids
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    /// One VXLAN port per peer, named from the peer and VNI so that every
    /// ADD names it the same (made once, kept by DEL).
    pub fn tunnel_specs(&self) -> Vec<PortSpec> {
        use sha2::{Digest, Sha256};
        self.tunnels
            .iter()
            .map(|(ip, vni)| {
                let h = Sha256::digest(format!("{ip}/{vni}").as_bytes());
                let name = format!("vx{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3]);
                PortSpec {
                    name,
                    iface_type: "vxlan".into(),
                    options: vec![
                        ("remote_ip".into(), ip.to_string()),
                        ("key".into(), vni.to_string()),
                    ],
                    external_ids: vec![
                        ("owner".into(), OWNER.into()),
                        ("cnibox-tunnel".into(), format!("{ip}/{vni}")),
                    ],
                    ..Default::default()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::skel::with_test_request;

    fn parse(conf: &str) -> Result<Settings, CniError> {
        with_test_request(conf, "", settings)
    }

    const BASE: &str = r#""cniVersion":"1.1.0","name":"n","type":"ovs""#;

    #[test]
    fn defaults_and_case_insensitive_keys() {
        let s = parse(&format!(
            r#"{{{BASE},"Bridge":"br0","OVSDBSOCKET":"unix:/x/db.sock"}}"#
        ))
        .unwrap();
        assert_eq!(s.bridge, "br0");
        assert_eq!(s.socket, "/x/db.sock");
        assert_eq!(s.kind, Kind::Veth);
        assert_eq!(s.timeout, Duration::from_secs(10));
        let s = parse(&format!(r#"{{{BASE},"bridge":"br0"}}"#)).unwrap();
        assert_eq!(s.socket, "/run/openvswitch/db.sock");
    }

    #[test]
    fn trunks_expand_sorted_once() {
        let s = parse(&format!(
            r#"{{{BASE},"bridge":"b","vlan":7,"trunk":[{{"minID":12,"maxID":14}},{{"id":3}},{{"id":13}}]}}"#
        ))
        .unwrap();
        assert_eq!(s.tag, Some(7));
        assert_eq!(s.trunks, vec![3, 12, 13, 14]);
        let e = parse(&format!(
            r#"{{{BASE},"bridge":"b","trunk":[{{"minID":9,"maxID":2}}]}}"#
        ))
        .err()
        .unwrap();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("trunk[0]"), "{}", e.msg);
    }

    #[test]
    fn tunnel_ports_are_named_the_same_every_time() {
        let conf =
            format!(r#"{{{BASE},"bridge":"b","tunnels":[{{"remote":"192.0.2.7","vni":100}}]}}"#);
        let a = parse(&conf).unwrap().tunnel_specs();
        let b = parse(&conf).unwrap().tunnel_specs();
        assert_eq!(a[0].name, b[0].name);
        assert!(a[0].name.len() <= 15 && a[0].name.starts_with("vx"));
        assert_eq!(a[0].iface_type, "vxlan");
        assert_eq!(
            a[0].options,
            vec![
                ("remote_ip".to_string(), "192.0.2.7".to_string()),
                ("key".to_string(), "100".to_string())
            ]
        );
    }

    #[test]
    fn the_port_names_its_attachment() {
        with_test_request(&format!(r#"{{{BASE},"bridge":"b"}}"#), "", |req| {
            let p = settings(req).unwrap().port_spec(req);
            let ids: Vec<(&str, &str)> = p
                .external_ids
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                ids,
                vec![
                    ("owner", "cnibox"),
                    ("containerID", "c"),
                    ("ifname", "eth0"),
                    ("netns", ""),
                    ("network", "n")
                ]
            );
        });
    }
}
