//! bridge's config: decoded and validated before anything changes, with the
//! reference's defaults and messages (VLAN trunks, the MAC's sources).

use crate::cni::args::CniArgs;
use crate::cni::types::NetConf;
use crate::cni::{CniError, Request};
use crate::steps::bridge::VlanPlan;
use crate::steps::veth;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BridgeConf {
    pub(super) bridge: Option<String>,
    #[serde(rename = "isGateway")]
    pub(super) is_gw: bool,
    #[serde(rename = "isDefaultGateway")]
    pub(super) is_default_gw: bool,
    #[serde(rename = "forceAddress")]
    pub(super) force_address: bool,
    #[serde(rename = "ipMasq")]
    pub(super) ip_masq: bool,
    #[serde(rename = "ipMasqBackend")]
    pub(super) ip_masq_backend: Option<String>,
    pub(super) mtu: u32,
    #[serde(rename = "hairpinMode")]
    pub(super) hairpin: bool,
    #[serde(rename = "promiscMode")]
    pub(super) promisc: bool,
    pub(super) vlan: i64,
    #[serde(rename = "vlanTrunk")]
    pub(super) vlan_trunk: Option<Vec<VlanTrunk>>,
    #[serde(rename = "preserveDefaultVlan")]
    pub(super) preserve_default_vlan: bool,
    pub(super) macspoofchk: bool,
    pub(super) enabledad: bool,
    #[serde(rename = "disableContainerInterface")]
    pub(super) disable_container_iface: bool,
    #[serde(rename = "portIsolation")]
    pub(super) port_isolation: bool,
    pub(super) args: MacArgs,
    #[serde(rename = "runtimeConfig")]
    pub(super) runtime_config: MacHolder,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MacArgs {
    pub(super) cni: MacHolder,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MacHolder {
    pub(super) mac: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct VlanTrunk {
    #[serde(rename = "minID")]
    min_id: Option<i64>,
    #[serde(rename = "maxID")]
    max_id: Option<i64>,
    id: Option<i64>,
}

/// The config after validation: everything ADD needs, nothing changed yet.
pub(super) struct Settings {
    /// The keys every plugin has (name, dns, prevResult, ...).
    pub(super) common: NetConf,
    pub(super) conf: BridgeConf,
    pub(super) name: String,
    pub(super) vlans: VlanPlan,
    pub(super) mac: Option<[u8; 6]>,
    /// `ipam.type`, empty for an L2 bridge.
    pub(super) ipam: String,
}

fn vid(v: i64, what: &str) -> Result<u16, CniError> {
    if (1..=4094).contains(&v) {
        Ok(v as u16)
    } else {
        Err(CniError::config(format!(
            "vlanTrunk: incorrect trunk {what} parameter {v}"
        )))
    }
}

/// `vlanTrunk` entries into a sorted set of VIDs (the reference's rules).
fn trunk_vids(trunk: &[VlanTrunk]) -> Result<Vec<u16>, CniError> {
    let mut set = std::collections::BTreeSet::new();
    for t in trunk {
        match (t.min_id, t.max_id) {
            (Some(lo), Some(hi)) => {
                let (lo, hi) = (vid(lo, "minID")?, vid(hi, "maxID")?);
                if hi < lo {
                    return Err(CniError::config(
                        "vlanTrunk: minID is greater than maxID in trunk parameter",
                    ));
                }
                set.extend(lo..=hi);
            }
            (None, Some(_)) => return Err(CniError::config(
                "vlanTrunk: minID and maxID should be configured simultaneously, minID is missing",
            )),
            (Some(_), None) => return Err(CniError::config(
                "vlanTrunk: minID and maxID should be configured simultaneously, maxID is missing",
            )),
            (None, None) => {}
        }
        if let Some(id) = t.id {
            set.insert(vid(id, "id")?);
        }
    }
    Ok(set.into_iter().collect())
}

pub(super) fn settings(req: &Request) -> Result<Settings, CniError> {
    let common = req.net_conf()?;
    let mut conf: BridgeConf = req.decode()?;
    if conf.is_default_gw {
        conf.is_gw = true;
    }
    let name = conf.bridge.clone().unwrap_or_else(|| "cni0".to_string());
    crate::cni::env::validate_ifname(&name)
        .map_err(|e| CniError::config(format!("bridge: {:?}: {}", name, e.msg)))?;
    if !(0..=4094).contains(&conf.vlan) {
        return Err(CniError::config(format!(
            "vlan: invalid VLAN ID {} (must be between 0 and 4094)",
            conf.vlan
        )));
    }
    veth::validate_mtu(conf.mtu)?;
    let trunk = trunk_vids(conf.vlan_trunk.as_deref().unwrap_or_default())?;
    if conf.vlan > 0 && !trunk.is_empty() {
        return Err(CniError::config(
            "vlan, vlanTrunk: cannot set vlan and vlanTrunk at the same time",
        ));
    }
    if conf.hairpin && conf.promisc {
        return Err(CniError::config("hairpinMode, promiscMode: cannot set hairpin mode and promiscuous mode at the same time"));
    }
    let ipam = common.ipam_type()?.to_string();
    if conf.disable_container_iface && !ipam.is_empty() {
        return Err(CniError::config(
            "disableContainerInterface: cannot use IPAM when the container interface is disabled",
        ));
    }
    if conf.is_gw && conf.vlan > 0 && name.len() + 1 + conf.vlan.to_string().len() > 15 {
        return Err(CniError::config(format!(
            "bridge, vlan: the gateway interface name \"{name}.{}\" is longer than 15 characters",
            conf.vlan
        )));
    }
    // MAC precedence, last wins: CNI_ARGS MAC= < args.cni.mac < runtimeConfig.mac.
    let mut mac_src = CniArgs::parse(&req.args, &["MAC"])?
        .get("MAC")
        .map(|m| ("CNI_ARGS MAC", m.to_string()));
    if !conf.args.cni.mac.is_empty() {
        mac_src = Some(("args.cni.mac", conf.args.cni.mac.clone()));
    }
    if !conf.runtime_config.mac.is_empty() {
        mac_src = Some(("runtimeConfig.mac", conf.runtime_config.mac.clone()));
    }
    let mac = match mac_src {
        None => None,
        Some((what, m)) => Some(veth::parse_mac(&m).ok_or_else(|| {
            let msg = format!("{what}: invalid MAC address {m:?}");
            // CNI_ARGS is the environment (code 4), the rest the config.
            if what.starts_with("CNI_ARGS") {
                CniError::env(msg)
            } else {
                CniError::config(msg)
            }
        })?),
    };
    let vlans = VlanPlan {
        access: conf.vlan as u16,
        trunk,
        preserve_default: conf.preserve_default_vlan,
    };
    Ok(Settings {
        common,
        conf,
        name,
        vlans,
        mac,
        ipam,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_parsing_follows_the_reference() {
        let t = |v: serde_json::Value| -> Result<Vec<u16>, CniError> {
            let list: Vec<VlanTrunk> =
                crate::cni::json::from_slice(v.to_string().as_bytes()).unwrap();
            trunk_vids(&list)
        };
        assert_eq!(
            t(serde_json::json!([{"id": 5}, {"minID": 3, "maxID": 6}])).unwrap(),
            vec![3, 4, 5, 6]
        );
        assert!(t(serde_json::json!([{"minID": 7, "maxID": 6}]))
            .unwrap_err()
            .msg
            .contains("greater"));
        assert!(t(serde_json::json!([{"maxID": 6}]))
            .unwrap_err()
            .msg
            .contains("minID is missing"));
        assert!(t(serde_json::json!([{"id": 4095}])).is_err());
        assert!(t(serde_json::json!([{"id": 0}])).is_err());
    }
}
