//! Network sysctls under `/proc/sys/net`. These resolve against the network
//! namespace of the calling *thread*, so container sysctls are written from
//! inside [`super::netns::NetNs::run`].
//!
//! Paths are built with `/` separators and the interface name verbatim, so
//! names with dots (`eth0.100`) need no escaping (the dotted `sysctl -w`
//! notation would be ambiguous).

use crate::cni::CniError;
use std::io;
use std::net::IpAddr;

/// `/proc/sys/net/<family>/conf/<ifname>/<key>`.
pub fn iface_path(family: &str, ifname: &str, key: &str) -> String {
    format!("/proc/sys/net/{family}/conf/{ifname}/{key}")
}

pub fn read(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path).map(|s| s.trim().to_string())
}

/// Write `value` unless the file already holds it (writes to some sysctls,
/// such as the forwarding ones, make the kernel walk every interface).
pub fn ensure(path: &str, value: &str) -> io::Result<()> {
    if read(path).map(|v| v == value).unwrap_or(false) {
        return Ok(());
    }
    write(path, value)
}

/// Write `value` without reading first: for a setting of an interface
/// that was just created, where the read would only cost time.
pub fn write(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("write {path}: {e}")))
}

/// Enable IP forwarding for the families of `addrs` (Go's
/// `ip.EnableForward`).
pub fn enable_forwarding(addrs: impl IntoIterator<Item = IpAddr>) -> Result<(), CniError> {
    let addrs: Vec<IpAddr> = addrs.into_iter().collect();
    for (is_v4, path) in [
        (true, "/proc/sys/net/ipv4/ip_forward"),
        (false, "/proc/sys/net/ipv6/conf/all/forwarding"),
    ] {
        if addrs.iter().any(|a| a.is_ipv4() == is_v4) {
            ensure(path, "1")
                .map_err(|e| CniError::internal(format!("failed to enable forwarding: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_interface_names_stay_verbatim() {
        assert_eq!(
            iface_path("ipv4", "eth0.100", "arp_notify"),
            "/proc/sys/net/ipv4/conf/eth0.100/arp_notify"
        );
    }
}
