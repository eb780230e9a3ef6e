//! `CNI_ARGS` (`K=V;K2=V2`), parsed as Go's `types.LoadArgs`: split on `;`
//! then on `=` (exactly two parts, so values cannot hold `=`), keys match
//! the plugin's known names exactly (case-sensitive), and an unknown key is
//! an error unless `IgnoreUnknown` is `1`/`true`.

use super::error::CniError;

/// The known pairs of a `CNI_ARGS` string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parse `raw`, accepting the keys in `known` (plus `IgnoreUnknown`).
    pub fn parse(raw: &str, known: &[&str]) -> Result<CniArgs, CniError> {
        let mut out = CniArgs::default();
        if raw.is_empty() {
            return Ok(out);
        }
        let mut unknown = Vec::new();
        let mut ignore_unknown = false;
        for pair in raw.split(';') {
            let kv: Vec<&str> = pair.split('=').collect();
            if kv.len() != 2 {
                return Err(CniError::env(format!("ARGS: invalid pair {pair:?}")));
            }
            let (k, v) = (kv[0], kv[1]);
            if k == "IgnoreUnknown" {
                ignore_unknown = match v.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    other => {
                        return Err(CniError::env(format!(
                            "ARGS: error parsing value of pair {pair:?}: boolean unmarshal error: invalid input {other}"
                        )))
                    }
                };
            } else if known.contains(&k) {
                out.pairs.push((k.to_string(), v.to_string()));
            } else {
                unknown.push(format!("{pair:?}"));
            }
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(CniError::env(format!(
                "ARGS: unknown args [{}]",
                unknown.join(" ")
            )));
        }
        Ok(out)
    }

    /// The value of a key (the last one if repeated, as Go overwrites).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_and_ignore_unknown() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.5", &["IP"]).unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("K8S_POD_NAME"), None);
        let a = CniArgs::parse("IP=1.2.3.4;IgnoreUnknown=TRUE;FOO=1", &["IP"]).unwrap();
        assert_eq!(a.get("IP"), Some("1.2.3.4"));
    }

    #[test]
    fn errors_like_go() {
        let e = CniArgs::parse("FOO=1", &["IP"]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (4, r#"ARGS: unknown args ["FOO=1"]"#)
        );
        let e = CniArgs::parse("IP=1=2", &["IP"]).unwrap_err();
        assert_eq!(e.msg, r#"ARGS: invalid pair "IP=1=2""#);
        assert!(
            CniArgs::parse("IP=1;", &["IP"]).is_err(),
            "trailing ; is an empty pair"
        );
        assert!(CniArgs::parse("IgnoreUnknown=yes", &[]).is_err());
        let a = CniArgs::parse("ip=1.2.3.4;IgnoreUnknown=1", &["IP"]).unwrap();
        assert_eq!(a.get("IP"), None, "keys are case-sensitive");
    }
}
