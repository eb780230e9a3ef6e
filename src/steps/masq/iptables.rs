//! The iptables masquerade backend (Go's `pkg/ip/ipmasq_iptables_linux.go`):
//! runs the `iptables` / `ip6tables` binary, only for `ipMasqBackend:
//! "iptables"` and to clean up chains left by the Go plugins.
//!
//! Per attachment, in table nat: chain `CNI-<24 hex of sha512(net+cid)>`
//! holding `-d <ip/prefix> -j ACCEPT` and `! -d <multicast> -j MASQUERADE`,
//! entered from `POSTROUTING -s <ip> -j <chain>`, each with the comment
//! `name: "<net>" id: "<cid>"` (Go `%q`). As in Go, ifname is not part of
//! the names.

use super::sha512_hex;
use crate::cni::CniError;
use crate::netlink::nftables::consts::{NFPROTO_IPV4, NFPROTO_IPV6};
use crate::netlink::nftables::{self as nf};
use crate::netlink::Netlink;
use ipnet::IpNet;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// Go's `utils.FormatChainName`.
pub fn chain_name(network: &str, container_id: &str) -> String {
    format!(
        "CNI-{}",
        sha512_hex(&format!("{network}{container_id}"), 24)
    )
}

/// Go's `utils.FormatComment`: `name: %q id: %q`.
pub fn comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// Go's `strconv.Quote` for the strings we meet: escapes for `"`, `\` and
/// control characters; other characters kept as they are.
pub fn go_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\u{07}' => o.push_str("\\a"),
            '\u{08}' => o.push_str("\\b"),
            '\u{0c}' => o.push_str("\\f"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\u{0b}' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// An executable called `name` in `path` (a PATH-style list).
pub fn find_in(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    let path: OsString = path.map(OsStr::to_os_string)?;
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// An executable called `name` in `$PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    find_in(name, std::env::var_os("PATH").as_deref())
}

fn bin_for(v6: bool) -> &'static str {
    if v6 {
        "ip6tables"
    } else {
        "iptables"
    }
}

pub(crate) struct Run {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn run(bin: &PathBuf, args: &[&str]) -> Result<Run, CniError> {
    let out = Command::new(bin)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| {
            CniError::internal(format!("ipMasq (iptables): run {}: {e}", bin.display()))
        })?;
    Ok(Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

fn must(bin: &PathBuf, args: &[&str]) -> Result<(), CniError> {
    let r = run(bin, args)?;
    if r.ok {
        Ok(())
    } else {
        Err(CniError::internal(format!(
            "ipMasq (iptables): {} {}: {}",
            bin.display(),
            args.join(" "),
            r.stderr
        )))
    }
}

/// `-A` unless `-C` finds the rule (go-iptables' AppendUnique).
pub(crate) fn append_unique(bin: &PathBuf, chain: &str, spec: &[&str]) -> Result<(), CniError> {
    let check: Vec<&str> = ["-t", "nat", "-C", chain]
        .iter()
        .copied()
        .chain(spec.iter().copied())
        .collect();
    if run(bin, &check)?.ok {
        return Ok(());
    }
    let add: Vec<&str> = ["-t", "nat", "-A", chain]
        .iter()
        .copied()
        .chain(spec.iter().copied())
        .collect();
    must(bin, &add)
}

/// See [`super::setup`]. Every binary needed is looked up before any change.
pub fn setup(ips: &[IpNet], network: &str, container_id: &str) -> Result<(), CniError> {
    let mut bins = Vec::new();
    for ip in ips {
        let name = bin_for(ip.addr().is_ipv6());
        let bin = find(name).ok_or_else(|| {
            CniError::config(format!(
                "ipMasqBackend: \"iptables\" requested, but no {name} binary was found in PATH"
            ))
        })?;
        bins.push(bin);
    }
    let chain = chain_name(network, container_id);
    let comment = comment(network, container_id);
    for (ip, bin) in ips.iter().zip(&bins) {
        let exists = run(bin, &["-t", "nat", "-S", &chain])?.ok;
        if !exists {
            let r = run(bin, &["-t", "nat", "-N", &chain])?;
            if !r.ok && !r.stderr.contains("exists") {
                return Err(CniError::internal(format!(
                    "ipMasq (iptables): create chain {chain}: {}",
                    r.stderr
                )));
            }
        }
        let multicast = if ip.addr().is_ipv6() {
            "ff00::/8"
        } else {
            "224.0.0.0/4"
        };
        let dst = ip.to_string();
        let src = ip.addr().to_string();
        let cm = ["-m", "comment", "--comment", comment.as_str()];
        append_unique(
            bin,
            &chain,
            &[&["-d", &dst, "-j", "ACCEPT"][..], &cm].concat(),
        )?;
        append_unique(
            bin,
            &chain,
            &[&["!", "-d", multicast, "-j", "MASQUERADE"][..], &cm].concat(),
        )?;
        append_unique(
            bin,
            "POSTROUTING",
            &[&["-s", &src, "-j", &chain][..], &cm].concat(),
        )?;
    }
    Ok(())
}

/// Split one line of `iptables -S` into arguments (double quotes, with
/// backslash escapes inside them, as iptables prints comments).
pub fn split_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        q => cur.push(q),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Remove the attachment's chain and every POSTROUTING jump to it, in each
/// family whose binary exists. Works without the addresses (the jumps are
/// found in `-S` output), unlike Go's, which leaks them when `ips` is empty.
/// Missing chains or rules are not errors.
/// `nl` is a netfilter socket to look at iptables-nft's chains with (`None`:
/// the kernel has no nf_tables).
pub fn teardown(nl: Option<&Netlink>, network: &str, container_id: &str) -> Result<(), CniError> {
    let chain = chain_name(network, container_id);
    let mut errs = Vec::new();
    for (name, family) in [("iptables", NFPROTO_IPV4), ("ip6tables", NFPROTO_IPV6)] {
        let Some(bin) = find(name) else { continue };
        if nft_based(&bin) && !nft_chain_exists(nl, family, &chain) {
            // iptables-nft keeps its rules in nf_tables: the chain (which
            // every jump to it needs) is visible over netlink, so an absent
            // chain spares us running the binary.
            continue;
        }
        errs.extend(teardown_family(&bin, &chain).err());
    }
    CniError::combine(errs)
}

/// Is this iptables the nf_tables flavour (Debian's alternatives point
/// `iptables` at `xtables-nft-multi` or `iptables-nft`)?
pub(crate) fn nft_based(bin: &PathBuf) -> bool {
    std::fs::canonicalize(bin)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().contains("nft")))
        .unwrap_or(false)
}

/// Does table `ip|ip6 nat` hold `chain`? Without nf_tables or on any error:
/// assume it might.
pub(crate) fn nft_chain_exists(nl: Option<&Netlink>, family: u8, chain: &str) -> bool {
    let Some(nl) = nl else {
        return true;
    };
    match nf::list_chains(nl, family, "nat") {
        Ok(chains) => chains.iter().any(|c| c.name == chain),
        Err(_) => true,
    }
}

fn teardown_family(bin: &PathBuf, chain: &str) -> Result<(), CniError> {
    let listing = run(bin, &["-t", "nat", "-S"])?;
    if !listing.ok {
        // No nat table support (or no permission to read it): nothing of
        // ours can be there to remove.
        return Ok(());
    }
    let mut has_chain = false;
    for line in listing.stdout.lines() {
        let args = split_args(line);
        if args.len() == 2 && args[0] == "-N" && args[1] == chain {
            has_chain = true;
        }
        let jumps_to_us = args.windows(2).any(|w| w[0] == "-j" && w[1] == chain);
        if args.len() > 2 && args[0] == "-A" && args[1] == "POSTROUTING" && jumps_to_us {
            let mut del: Vec<&str> = vec!["-t", "nat", "-D"];
            del.extend(args[1..].iter().map(String::as_str));
            let r = run(bin, &del)?;
            if !r.ok && !is_not_exist(&r.stderr) {
                return Err(CniError::internal(format!(
                    "ipMasq (iptables): delete POSTROUTING jump to {chain}: {}",
                    r.stderr
                )));
            }
        }
    }
    if has_chain {
        for op in ["-F", "-X"] {
            let r = run(bin, &["-t", "nat", op, chain])?;
            if !r.ok && !is_not_exist(&r.stderr) {
                return Err(CniError::internal(format!(
                    "ipMasq (iptables): {op} {chain}: {}",
                    r.stderr
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn is_not_exist(stderr: &str) -> bool {
    stderr.contains("No chain/target/match by that name")
        || stderr.contains("does a matching rule exist")
        || stderr.contains("does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_go() {
        assert_eq!(chain_name("test", "1234"), "CNI-2bbe0c48b91a7d1b8a6753a8");
        assert_eq!(
            chain_name("testalongnamethatdoesnotmakesense", "1234"),
            "CNI-374f33fe84ab0ed84dcdebe3"
        );
        assert_eq!(comment("net", "c\"1"), "name: \"net\" id: \"c\\\"1\"");
        assert_eq!(go_quote("a\tb\\\u{1}é"), "\"a\\tb\\\\\\x01é\"");
    }

    #[test]
    fn splits_iptables_save_lines() {
        let l = r#"-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \"fix\\\"q\" id: \"c1\"" -j CNI-x"#;
        assert_eq!(
            split_args(l),
            [
                "-A",
                "POSTROUTING",
                "-s",
                "10.0.0.2/32",
                "-m",
                "comment",
                "--comment",
                r#"name: "fix\"q" id: "c1""#,
                "-j",
                "CNI-x"
            ]
        );
        assert!(split_args("").is_empty());
        assert_eq!(split_args("-N  CNI-x "), ["-N", "CNI-x"]);
        assert_eq!(split_args("\"unterminated"), ["unterminated"]);
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;
    use crate::netlink::testns::TestNs;

    #[test]
    fn kernel_iptables_backend_setup_and_teardown_without_ips() {
        if find("iptables").is_none() || find("ip6tables").is_none() {
            eprintln!("skipping: no iptables/ip6tables binary");
            return;
        }
        let Some(ns) = TestNs::new("ipt") else {
            return;
        };
        let run_in = |f: &(dyn Fn() -> Result<(), CniError> + Sync)| ns.run(f).unwrap();
        let ips: Vec<IpNet> = vec![
            "10.99.0.2/24".parse().unwrap(),
            "fd99::2/64".parse().unwrap(),
        ];
        run_in(&|| setup(&ips, "fixture", "fixture0001"));
        run_in(&|| setup(&ips, "fixture", "fixture0001")); // unique: no duplicates
        let chain = chain_name("fixture", "fixture0001");
        let v4 = ns.ok(&["iptables", "-t", "nat", "-S"]);
        let c = r#"--comment "name: \"fixture\" id: \"fixture0001\"""#;
        assert_eq!(v4.matches(&format!("-N {chain}")).count(), 1, "{v4}");
        assert!(
            v4.contains(&format!(
                "-A POSTROUTING -s 10.99.0.2/32 -m comment {c} -j {chain}"
            )),
            "{v4}"
        );
        assert!(
            v4.contains(&format!(
                "-A {chain} -d 10.99.0.0/24 -m comment {c} -j ACCEPT"
            )),
            "{v4}"
        );
        assert!(
            v4.contains(&format!(
                "-A {chain} ! -d 224.0.0.0/4 -m comment {c} -j MASQUERADE"
            )),
            "{v4}"
        );
        assert_eq!(v4.matches("-j MASQUERADE").count(), 1);
        let v6 = ns.ok(&["ip6tables", "-t", "nat", "-S"]);
        assert!(
            v6.contains(&format!(
                "-A {chain} ! -d ff00::/8 -m comment {c} -j MASQUERADE"
            )),
            "{v6}"
        );

        // DEL without addresses (netns gone) still removes everything.
        run_in(&|| teardown(Netlink::netfilter().ok().as_ref(), "fixture", "fixture0001"));
        let v4 = ns.ok(&["iptables", "-t", "nat", "-S"]);
        let v6 = ns.ok(&["ip6tables", "-t", "nat", "-S"]);
        assert!(!v4.contains(&chain) && !v6.contains(&chain), "{v4}{v6}");
        run_in(&|| teardown(Netlink::netfilter().ok().as_ref(), "fixture", "fixture0001"));
    }
}
