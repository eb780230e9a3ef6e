//! The process environment as a value (so an in-process delegate gets its
//! own copy instead of mutating global state), the CNI commands, and
//! libcni's validation of container IDs, network names and interface names.

use super::error::{code, CniError};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    /// A variable as UTF-8; unset and empty are the same (as Go's Getenv),
    /// and a value that is not UTF-8 is an invalid env var (code 4).
    pub fn get(&self, name: &str) -> Result<&str, CniError> {
        match self.vars.get(OsStr::new(name)) {
            None => Ok(""),
            Some(v) => v
                .to_str()
                .ok_or_else(|| CniError::env(format!("{name} is not valid UTF-8"))),
        }
    }

    /// A variable or "" (also for non-UTF-8 values).
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.insert(name.into(), value.into());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&OsString, &OsString)> {
        self.vars.iter()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Env {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(it: I) -> Self {
        Env {
            vars: it.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }
}

/// A CNI operation (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// The env vars Go's skel requires for this command, in its order.
    pub fn required_env(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => {
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
            }
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Command::Status | Command::Gc => &["CNI_PATH"],
            Command::Version => &[],
        }
    }

    /// Does this command act on one attachment (container + interface)?
    pub fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// libcni's `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, used for container IDs and
/// network names. It also makes both safe as path components (no `/`, no
/// leading `.`).
pub fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            "missing containerID",
        ));
    }
    if !is_valid_id(id) {
        return Err(CniError::env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::config("missing network name"));
    }
    if !is_valid_id(name) {
        return Err(CniError::config("invalid characters found in network name").with_details(name));
    }
    Ok(())
}

/// The longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::env("interface name is empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(
            CniError::env("interface name is too long").with_details(format!(
                "interface name should be less than {} characters",
                MAX_IFNAME_LEN + 1
            )),
        );
    }
    if name == "." || name == ".." {
        return Err(CniError::env("interface name is . or .."));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(CniError::env(
            "interface name contains / or : or whitespace characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_libcni_regex() {
        for ok in ["a", "A1", "abc-def_1.2", "0"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "_a", "a/b", "../x", "a\n", "a b", "ä"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn ifname_rules_and_codes() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("123456789012345").is_ok());
        assert_eq!(
            validate_ifname("1234567890123456").unwrap_err().msg,
            "interface name is too long"
        );
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\u{a0}b"] {
            assert_eq!(validate_ifname(bad).unwrap_err().code, 4, "{bad:?}");
        }
    }

    #[test]
    fn container_id_and_network_codes() {
        assert_eq!(validate_container_id("").unwrap_err().code, 3);
        assert_eq!(validate_container_id("../x").unwrap_err().code, 4);
        assert_eq!(validate_network_name("a/b").unwrap_err().code, 7);
    }

    #[test]
    fn env_treats_unset_and_empty_alike() {
        let e: Env = [("A", ""), ("B", "x")].into_iter().collect();
        assert_eq!(e.get("A").unwrap(), "");
        assert_eq!(e.get("Z").unwrap(), "");
        assert_eq!(e.get("B").unwrap(), "x");
    }
}
