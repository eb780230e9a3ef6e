//! A veth pair for a container: created from the host side in ONE request,
//! with the container end born in the container's namespace under its final
//! name (no temporary name, no move, no rename, no clash with host names).

use super::netns::NetNs;
use super::sysctl;
use crate::cni::result::Interface;
use crate::cni::CniError;
pub use crate::netlink::link::parse_mac;
use crate::netlink::link::{Link, VethSpec};
use crate::netlink::Netlink;
use std::io::Read;

/// Both ends as the kernel reports them after creation.
#[derive(Debug, Clone)]
pub struct VethPair {
    pub host: Link,
    pub container: Link,
}

impl VethPair {
    /// The pair as a result lists it: the host end, then the container
    /// end in `sandbox`.
    pub fn result_interfaces(&self, sandbox: &str) -> [Interface; 2] {
        [
            Interface {
                name: self.host.name.clone(),
                mac: self.host.mac_string(),
                ..Default::default()
            },
            Interface {
                name: self.container.name.clone(),
                mac: self.container.mac_string(),
                sandbox: sandbox.to_string(),
                ..Default::default()
            },
        ]
    }
}

/// How many random host names to try (Go's `RandomVethName` retries too).
const NAME_ATTEMPTS: usize = 10;

/// `veth` + 8 random hex digits, as the Go plugins name host ends.
pub fn random_veth_name() -> String {
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // Fall back on the per-process random hasher keys; names only need
        // to be unlikely to clash, and clashes are retried.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        b = (h.finish() as u32).to_ne_bytes();
    }
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// Options for [`create`].
#[derive(Debug, Clone, Default)]
pub struct VethOptions {
    pub mtu: u32,
    pub container_mac: Option<[u8; 6]>,
}

/// The container has no interface named `ifname` yet (checked before any
/// change, and again when a veth name clashes).
pub fn ensure_absent(container: &Netlink, ifname: &str) -> Result<(), CniError> {
    if container.link_by_name(ifname)?.is_some() {
        return Err(CniError::internal(format!(
            "container veth name provided ({ifname}) already exists"
        )));
    }
    Ok(())
}

/// Create `ifname` in `ns` paired with a new `vethXXXXXXXX` in the host
/// namespace of `host` (the socket's namespace), host end up. `container`
/// is a socket inside `ns`.
pub fn create(
    host: &Netlink,
    ns: &NetNs,
    container: &Netlink,
    ifname: &str,
    opts: &VethOptions,
) -> Result<VethPair, CniError> {
    let mut last_err = None;
    for _ in 0..NAME_ATTEMPTS {
        let name = random_veth_name();
        let spec = VethSpec {
            host_name: &name,
            peer_name: ifname,
            peer_netns_fd: ns.fd(),
            mtu: opts.mtu,
            peer_mac: opts.container_mac,
            host_up: true,
            // Match the Go plugins' veths (their LinkAttrs literal sends 0).
            txqlen: Some(0),
        };
        match host.veth_add(&spec) {
            Ok(()) => {
                let pair = lookup_pair(host, container, &name, ifname);
                if pair.is_err() {
                    let _ = host.link_del_by_name(&name);
                }
                let pair = pair?;
                // The host end must not take router advertisements from the
                // container (Go sets the same; IPv6 may be disabled: ignore).
                let _ = sysctl::write(&sysctl::iface_path("ipv6", &name, "accept_ra"), "0");
                return Ok(pair);
            }
            Err(e) if e.is_exists() => {
                ensure_absent(container, ifname)?;
                last_err = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CniError::internal(format!(
        "failed to find a free host veth name: {}",
        last_err.map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn lookup_pair(
    host: &Netlink,
    container: &Netlink,
    host_name: &str,
    ifname: &str,
) -> Result<VethPair, CniError> {
    let h = host.link_by_name(host_name)?.ok_or_else(|| {
        CniError::internal(format!("host veth {host_name} vanished after creation"))
    })?;
    let c = container.link_by_name(ifname)?.ok_or_else(|| {
        CniError::internal(format!("container veth {ifname} vanished after creation"))
    })?;
    Ok(VethPair {
        host: h,
        container: c,
    })
}

/// Delete `ifname` in the namespace at `netns`; its peer on the host, with
/// the addresses and routes on it, goes too. An empty or missing netns path,
/// or a missing link, is success (DEL is idempotent).
pub fn delete(netns: &str, ifname: &str) -> Result<(), CniError> {
    let Some(ns) = NetNs::open_for_del(netns)? else {
        return Ok(());
    };
    let nl = ns.netlink()?;
    if let Some(link) = nl.link_by_name(ifname)? {
        nl.link_del(link.index)?;
    }
    Ok(())
}

/// The MTUs the kernel takes for a veth or a bridge: 68 (ETH_MIN_MTU) to
/// 65535 (ETH_MAX_MTU); 0 means its default. Checked before any change
/// (code 7 naming the field), where the reference fails at the kernel.
pub fn validate_mtu(mtu: u32) -> Result<(), CniError> {
    if mtu == 0 || (68..=65535).contains(&mtu) {
        Ok(())
    } else {
        Err(CniError::config(format!(
            "mtu: invalid MTU {mtu} (must be between 68 and 65535)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_look_like_go_and_differ() {
        let a = random_veth_name();
        let b = random_veth_name();
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth") && a[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("c2:11:22:33:44:5F"),
            Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x5f])
        );
        assert_eq!(
            parse_mac("c2-11-22-33-44-55"),
            Some([0xc2, 0x11, 0x22, 0x33, 0x44, 0x55])
        );
        assert_eq!(parse_mac("c2:11:22:33:44"), None);
        assert_eq!(parse_mac("c2:11:22:33:44:5"), None);
        assert_eq!(parse_mac("+2:11:22:33:44:55"), None);
        assert_eq!(parse_mac("zz:11:22:33:44:55"), None);
    }
}
