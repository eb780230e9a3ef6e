//! CNI spec versions: the supported list, comparison, the VERSION reply and
//! the config version decoder, with the Go reference's rules and messages.

use super::error::{code, CniError};
use super::json::{self, GoValue};

/// Every spec version we implement (Go's `version.All`).
pub const ALL: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The newest spec version (Go's `version.Current()`).
pub const CURRENT: &str = "1.1.0";

/// The result shape a version uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 0.1.0, 0.2.0: `ip4`/`ip6`
    V02,
    /// 0.3.0, 0.3.1, 0.4.0: `interfaces`/`ips` with `version`
    V04,
    /// 1.0.0, 1.1.0
    V1,
}

/// The result family of a supported version string (exact match, as Go's
/// converters are registered per exact version).
pub fn family(v: &str) -> Option<Family> {
    match v {
        "0.1.0" | "0.2.0" => Some(Family::V02),
        "0.3.0" | "0.3.1" | "0.4.0" => Some(Family::V04),
        "1.0.0" | "1.1.0" => Some(Family::V1),
        _ => None,
    }
}

/// Parse `major[.minor[.micro]]` as Go's `version.ParseVersion`; an empty
/// string is 0.1.0.
pub fn parse(v: &str) -> Result<(u64, u64, u64), String> {
    if v.is_empty() {
        return Ok((0, 1, 0));
    }
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() >= 4 {
        return Err(format!("invalid version {v:?}: too many parts"));
    }
    let num = |i: usize, what: &str| -> Result<u64, String> {
        match parts.get(i) {
            None => Ok(0),
            Some(p) => p.parse::<u64>().map_err(|_| {
                format!("invalid version {v:?}: the {what} version must be an integer")
            }),
        }
    };
    Ok((num(0, "major")?, num(1, "minor")?, num(2, "micro")?))
}

/// `a >= b` (Go's `version.GreaterThanOrEqualTo`).
pub fn ge(a: &str, b: &str) -> Result<bool, String> {
    Ok(parse(a)? >= parse(b)?)
}

/// The VERSION reply, byte for byte as Go's `PluginInfo.Encode`
/// (`json.Encoder`: compact, trailing newline). Like Go it reports the
/// newest version rather than echoing the input.
pub fn version_reply(supported: &[&str]) -> String {
    #[derive(serde::Serialize)]
    struct Info<'a> {
        #[serde(rename = "cniVersion")]
        cni_version: &'a str,
        #[serde(rename = "supportedVersions")]
        supported: &'a [&'a str],
    }
    let mut s = json::to_go_compact(&Info {
        cni_version: CURRENT,
        supported,
    });
    s.push('\n');
    s
}

/// The `cniVersion` of a config (Go's `ConfigDecoder.Decode`): missing or
/// empty means 0.1.0; a non-string is a decoding error (code 6).
pub fn config_version(config: &GoValue) -> Result<String, CniError> {
    match config.get("cniVersion") {
        None | Some(GoValue::Null) => Ok("0.1.0".into()),
        Some(GoValue::String(s)) if s.is_empty() => Ok("0.1.0".into()),
        Some(GoValue::String(s)) => Ok(s.clone()),
        Some(_) => Err(CniError::decode(
            "decoding version from network config: cniVersion: expected a string",
        )),
    }
}

/// Go's reconciler: the config version must be one the plugin lists,
/// compared as exact strings (so "1.0" is not "1.0.0").
pub fn check_supported(config_version: &str, supported: &[&str]) -> Result<(), CniError> {
    if supported.contains(&config_version) {
        return Ok(());
    }
    let list: Vec<String> = supported.iter().map(|v| format!("{v:?}")).collect();
    Err(
        CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions").with_details(
            format!(
                "config is {config_version:?}, plugin supports [{}]",
                list.join(" ")
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_reply_matches_go_bytes() {
        assert_eq!(
            version_reply(ALL),
            "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
        );
    }

    #[test]
    fn parse_and_compare_like_go() {
        assert_eq!(parse("").unwrap(), (0, 1, 0));
        assert_eq!(parse("1.0").unwrap(), (1, 0, 0));
        assert!(parse("1.0.0.0").unwrap_err().contains("too many parts"));
        assert!(parse("a.0").unwrap_err().contains("major"));
        assert!(ge("0.4.0", "0.4.0").unwrap());
        assert!(ge("1.0.0", "0.4.0").unwrap());
        assert!(!ge("0.3.1", "0.4.0").unwrap());
        assert!(ge("0.10.0", "0.4.0").unwrap());
    }

    #[test]
    fn incompatible_version_is_code_1_with_go_details() {
        let e = check_supported("9.9.9", &["0.1.0", "1.0.0"]).unwrap_err();
        assert_eq!(e.code, 1);
        assert_eq!(
            e.details,
            r#"config is "9.9.9", plugin supports ["0.1.0" "1.0.0"]"#
        );
        assert!(check_supported("1.0", ALL).is_err());
    }

    #[test]
    fn config_version_defaults_to_0_1_0() {
        let v = json::parse(br#"{"name":"x"}"#).unwrap();
        assert_eq!(config_version(&v).unwrap(), "0.1.0");
        let v = json::parse(br#"{"CNIVERSION":"1.0.0"}"#).unwrap();
        assert_eq!(config_version(&v).unwrap(), "1.0.0");
        let v = json::parse(br#"{"cniVersion":1}"#).unwrap();
        assert_eq!(config_version(&v).unwrap_err().code, 6);
    }
}
