//! `resolvConf`: a resolv.conf file turned into the result's DNS, as the
//! reference reads it (nameserver and search/options append, domain sets,
//! `#` and `;` lines skipped, other keywords ignored).

use crate::cni::types::Dns;
use crate::cni::CniError;
use std::io::Read;

/// The most we read of a resolv.conf (real ones are a few hundred bytes).
const MAX_RESOLV_CONF: u64 = 1 << 20;

pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = fields[1].to_string(),
            "search" => dns.search.extend(fields[1..].iter().map(|s| s.to_string())),
            "options" => dns
                .options
                .extend(fields[1..].iter().map(|s| s.to_string())),
            _ => {}
        }
    }
    dns
}

/// Read and parse `path`; a file that cannot be read is an invalid config.
pub fn read(path: &str) -> Result<Dns, CniError> {
    let fail = |e: &dyn std::fmt::Display| CniError::config(format!("ipam.resolvConf: {e}"));
    let file = std::fs::File::open(path).map_err(|e| fail(&format!("open {path}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_RESOLV_CONF + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&format!("read {path}: {e}")))?;
    if bytes.len() as u64 > MAX_RESOLV_CONF {
        return Err(fail(&format!(
            "{path} is larger than {MAX_RESOLV_CONF} bytes"
        )));
    }
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        let d = parse(
            "# comment\n; also\nnameserver 1.1.1.1\n  nameserver   8.8.8.8 extra\n\
             domain a.example\ndomain b.example\nsearch x.example y.example\nsearch z\n\
             options ndots:5 rotate\nsortlist 1.2.3.4\nnameserver\nNAMESERVER 9.9.9.9\n",
        );
        assert_eq!(d.nameservers, ["1.1.1.1", "8.8.8.8"]);
        assert_eq!(d.domain, "b.example");
        assert_eq!(d.search, ["x.example", "y.example", "z"]);
        assert_eq!(d.options, ["ndots:5", "rotate"]);
    }

    #[test]
    fn a_missing_file_is_a_config_error() {
        let e = read("/nonexistent/resolv.conf").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e
            .msg
            .starts_with("ipam.resolvConf: open /nonexistent/resolv.conf: "));
    }
}
