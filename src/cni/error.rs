//! The CNI error object: the only way a plugin reports failure.
//!
//! Printed on stdout as JSON with exit status 1 (SPEC.md "Error"). Codes follow
//! SPEC.md; where the Go reference falls back to 999 for a bad field we use the
//! spec's 2 or 7 (see the reference notes, section 0).

use std::fmt;

/// Well-known error codes (SPEC.md, plus Go's 8 and 999).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const INVALID_NETNS: u32 = 8;
    #[allow(dead_code)] // the spec's table, whole
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    #[allow(dead_code)]
    pub const NOT_AVAILABLE_DEGRADED: u32 = 51;
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: `{code, msg, details}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    /// Several independent failures as one result: none is success, one is
    /// itself, more become one internal error listing them all (DEL and GC
    /// carry on past a failure and report everything).
    pub fn combine(mut errors: Vec<CniError>) -> Result<(), CniError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(CniError::internal(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 7: the network configuration is invalid (message names the field).
    pub fn config(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_CONFIG, msg)
    }

    /// Code 2: a field or value we do not support.
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Self::new(code::UNSUPPORTED_FIELD, msg)
    }

    /// Code 4: an invalid or missing environment variable (message names it).
    pub fn env(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENV, msg)
    }

    /// Code 6: content could not be decoded.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(code::DECODING_FAILURE, msg)
    }

    /// Code 5: an I/O failure.
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(code::IO_FAILURE, msg)
    }

    /// Code 999: anything else, as Go's skel does for plain errors.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(code::INTERNAL, msg)
    }

    /// Prefix the message with context, keeping code and details.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The error object as printed: 4-space indented like Go's
    /// `types.Error.Print`, with `cniVersion` first (SPEC.md; Go omits it) and
    /// `details` omitted when empty (as Go does).
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(serde::Serialize)]
        struct Printed<'a> {
            #[serde(rename = "cniVersion", skip_serializing_if = "str::is_empty")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        crate::cni::json::to_go_pretty(&Printed {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
    }
}

impl fmt::Display for CniError {
    /// Like Go's `types.Error.Error()`: `msg; details`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

/// Leaf helpers use anyhow; at the CNI boundary their errors become code 999
/// unless the helper attached a `CniError` itself.
impl From<anyhow::Error> for CniError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<CniError>() {
            Ok(c) => c,
            Err(e) => CniError::internal(format!("{e:#}")),
        }
    }
}

impl From<std::io::Error> for CniError {
    fn from(e: std::io::Error) -> Self {
        CniError::io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_go_with_cni_version_first_and_no_empty_details() {
        let e = CniError::config("bad mtu");
        assert_eq!(
            e.to_json("1.0.0"),
            "{\n    \"cniVersion\": \"1.0.0\",\n    \"code\": 7,\n    \"msg\": \"bad mtu\"\n}"
        );
        let e = CniError::new(1, "incompatible CNI versions").with_details("x");
        assert!(e.to_json("").starts_with("{\n    \"code\": 1,"));
        assert!(e.to_json("").contains("\"details\": \"x\""));
    }

    #[test]
    fn anyhow_keeps_a_wrapped_cni_error() {
        let inner = CniError::new(11, "later");
        let e: CniError = anyhow::Error::new(inner.clone()).into();
        assert_eq!(e, inner);
        let e: CniError = anyhow::anyhow!("boom").into();
        assert_eq!(e.code, 999);
    }
}
