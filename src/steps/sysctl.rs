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

// ---- tuning: user-given sysctl keys ----------------------------------------

/// The file of a user-given network sysctl key (Go tuning's mapping): every
/// `.` becomes `/`, then the first `IFNAME` becomes `ifname`, the result is
/// joined under `/proc/sys` and cleaned, and must stay under
/// `/proc/sys/net/`. `Err` carries the mapped key, as Go's message does.
pub fn net_key_path(key: &str, ifname: &str) -> Result<String, String> {
    let mapped = key.replace('.', "/").replacen("IFNAME", ifname, 1);
    let path = clean(&format!("/proc/sys/{mapped}"));
    if !path.starts_with("/proc/sys/net/") || path.contains('\0') {
        return Err(mapped);
    }
    Ok(path)
}

/// Lexical cleaning of an absolute path (Go's `filepath.Clean`): no empty,
/// `.` or `..` elements (`..` at the root stays at the root).
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

/// A sysctl's value with one trailing newline removed (what Go's tuning
/// CHECK compares).
pub fn read_untrimmed(path: &str) -> io::Result<String> {
    let s = std::fs::read_to_string(path)?;
    Ok(s.strip_suffix('\n').map(str::to_string).unwrap_or(s))
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn keys_map_like_go_tuning() {
        let p = |k: &str| net_key_path(k, "eth0.100");
        assert_eq!(
            p("net.core.somaxconn").unwrap(),
            "/proc/sys/net/core/somaxconn"
        );
        assert_eq!(
            p("net.ipv4.conf.IFNAME.arp_notify").unwrap(),
            "/proc/sys/net/ipv4/conf/eth0.100/arp_notify"
        );
        // Only the first IFNAME is replaced.
        assert_eq!(
            p("net/IFNAME/IFNAME").unwrap(),
            "/proc/sys/net/eth0.100/IFNAME"
        );
        assert_eq!(p("/net//ipv4/./x").unwrap(), "/proc/sys/net/ipv4/x");
        assert_eq!(p("kernel.hostname").unwrap_err(), "kernel/hostname");
        // Dots are separators, so `..` cannot climb out of net/ ...
        assert_eq!(
            p("net/../kernel/hostname").unwrap(),
            "/proc/sys/net/kernel/hostname"
        );
        // ... but an interface name can hold dots (`..` is refused by the
        // skel), and cleaning still keeps the result under net/.
        assert!(net_key_path("net/IFNAME/../../kernel", "..").is_err());
        assert_eq!(clean("/proc/sys/net/../../../.."), "/");
        assert!(p("net").is_err());
        assert!(p("").is_err());
        assert!(p("net/a\0b").is_err());
    }
}

/// Go tuning's allow-list: when the file at `path` exists, every key must
/// match one of its non-empty (trimmed) lines, each a Go regexp matched
/// unanchored against the key as written. A line we cannot read as a
/// regexp is an error, never a silent match or mismatch.
pub fn check_allowlist<'k>(
    path: &str,
    keys: impl IntoIterator<Item = &'k str>,
) -> Result<(), CniError> {
    let mut keys = keys.into_iter().peekable();
    if keys.peek().is_none() {
        return Ok(());
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CniError::io(format!("failed to read {path}: {e}"))),
    };
    let lines: Vec<&str> = text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut patterns = Vec::new();
    for l in &lines {
        let re = super::goregexp::Regex::new(l)
            .map_err(|e| CniError::config(format!("{path}: pattern {l:?}: {e}")))?;
        patterns.push(re);
    }
    for key in keys {
        if !patterns.iter().any(|p| p.is_match(key)) {
            return Err(CniError::config(format!(
                "sysctl: Sysctl {key} is not allowed. Only the following sysctls are allowed: [{}]",
                lines.join(" ")
            )));
        }
    }
    Ok(())
}
