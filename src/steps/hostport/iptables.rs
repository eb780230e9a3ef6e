//! Go's iptables backend (`backend: "iptables"`), run through the
//! iptables/ip6tables binaries as ipMasqBackend does, and the removal on
//! every DEL of what it made for a container, so that a node moving from
//! Go's default backend to cnibox keeps no stale DNAT.
//!
//! Go (plugins/meta/portmap/portmap.go), table nat: chain
//! `CNI-DN-<21 hex of sha512(net+cid)>` holding the DNAT rules, entered from
//! `CNI-HOSTPORT-DNAT` by one jump per protocol and group of ports; older
//! versions also made `CNI-SN-<hash>` entered from `CNI-HOSTPORT-SNAT`. The
//! shared chains (`CNI-HOSTPORT-*`) stay, as Go leaves them.

use super::{Mapping, Options};
use crate::cni::CniError;
use crate::netlink::nftables::consts::{NFPROTO_IPV4, NFPROTO_IPV6};
use crate::netlink::Netlink;
use crate::steps::masq::iptables::{
    append_unique, find, go_quote, is_not_exist, nft_based, nft_chain_exists, run, split_args,
};
use crate::steps::masq::sha512_hex;
use ipnet::IpNet;
use std::path::PathBuf;

pub const DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
pub const SETMARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
pub const MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";
/// At most this many ports per `-m multiport` jump (iptables' limit).
const MULTIPORT_MAX: usize = 15;

/// `CNI-<prefix><hash>`, 28 characters (Go's
/// `utils.MustFormatChainNameWithPrefix`).
pub fn chain_name(prefix: &str, network: &str, container_id: &str) -> String {
    let n = 28 - 4 - prefix.len();
    format!(
        "CNI-{prefix}{}",
        sha512_hex(&format!("{network}{container_id}"), n)
    )
}

/// Remove the container's `CNI-DN-` and `CNI-SN-` chains and every jump to
/// them, in each family whose binary exists. Missing chains are fine.
pub fn teardown(nl: Option<&Netlink>, network: &str, container_id: &str) -> Result<(), CniError> {
    let chains = [
        chain_name("DN-", network, container_id),
        chain_name("SN-", network, container_id),
    ];
    let mut errs = Vec::new();
    for (name, family) in [("iptables", NFPROTO_IPV4), ("ip6tables", NFPROTO_IPV6)] {
        let Some(bin) = find(name) else { continue };
        // iptables-nft keeps its chains in nf_tables: when none of ours is
        // there, the binary need not run.
        let present: Vec<&String> = chains
            .iter()
            .filter(|c| !nft_based(&bin) || nft_chain_exists(nl, family, c))
            .collect();
        if !present.is_empty() {
            errs.extend(teardown_family(&bin, &present).err());
        }
    }
    CniError::combine(errs)
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        _ => "sctp",
    }
}

fn ensure_chain(bin: &PathBuf, chain: &str) -> Result<(), CniError> {
    if run(bin, &["-t", "nat", "-S", chain])?.ok {
        return Ok(());
    }
    let r = run(bin, &["-t", "nat", "-N", chain])?;
    if !r.ok && !r.stderr.contains("exists") {
        return Err(fail(format!("create chain {chain}"), &r.stderr));
    }
    Ok(())
}

/// `-I <chain> 1 <spec>` unless `-C` finds it (go-iptables' InsertUnique).
fn insert_unique(bin: &PathBuf, chain: &str, spec: &[&str]) -> Result<(), CniError> {
    let with = |op: &[&str]| -> Vec<String> {
        ["-t", "nat"]
            .iter()
            .chain(op)
            .chain(spec)
            .map(|s| s.to_string())
            .collect()
    };
    let check = with(&["-C", chain]);
    let check: Vec<&str> = check.iter().map(String::as_str).collect();
    if run(bin, &check)?.ok {
        return Ok(());
    }
    let add = with(&["-I", chain, "1"]);
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    let r = run(bin, &add)?;
    if !r.ok {
        return Err(fail(format!("insert into {chain}"), &r.stderr));
    }
    Ok(())
}

/// What the iptables backend needs besides the mappings.
pub struct IptConf<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub mark_bit: u32,
    pub external_set_mark_chain: Option<&'a str>,
    /// Extra match arguments for the jumps (conditionsV4/V6), verbatim.
    pub conditions: &'a [String],
}

/// The iptables (or ip6tables) binary for `v6`, or code 7 naming `backend`.
pub fn binary(v6: bool) -> Result<PathBuf, CniError> {
    let name = if v6 { "ip6tables" } else { "iptables" };
    find(name).ok_or_else(|| {
        CniError::config(format!(
            "backend: \"iptables\" requested, but no {name} binary was found in PATH"
        ))
    })
}

/// Go's iptables backend for container address `cip` (with its prefix):
/// the shared chains, then `CNI-DN-<hash>` with its mark and DNAT rules and
/// the jumps to it from `CNI-HOSTPORT-DNAT`. Rules are added only when
/// absent, so a repeated ADD duplicates nothing.
pub fn setup(
    bin: &PathBuf,
    cip: &IpNet,
    maps: &[Mapping],
    opts: &Options,
    c: &IptConf,
) -> Result<(), CniError> {
    let v6 = cip.addr().is_ipv6();
    // The jumps list every mapping's port (as Go's do, even for a hostIP of
    // the other family); the chain's rules only this family's mappings.
    let all = maps;
    let maps: Vec<&Mapping> = maps
        .iter()
        .filter(|m| m.host_ip.is_none_or(|h| h.is_ipv6() == v6))
        .collect();
    let setmark = c.external_set_mark_chain.unwrap_or(SETMARK_CHAIN);
    if opts.snat && c.external_set_mark_chain.is_none() {
        let mark = format!("{0:#x}/{0:#x}", 1u32 << c.mark_bit);
        ensure_chain(bin, SETMARK_CHAIN)?;
        append_unique(
            bin,
            SETMARK_CHAIN,
            &[
                "-m",
                "comment",
                "--comment",
                "CNI portfwd masquerade mark",
                "-j",
                "MARK",
                "--set-xmark",
                &mark,
            ],
        )?;
        ensure_chain(bin, MASQ_CHAIN)?;
        append_unique(
            bin,
            MASQ_CHAIN,
            &["-m", "mark", "--mark", &mark, "-j", "MASQUERADE"],
        )?;
        insert_unique(
            bin,
            "POSTROUTING",
            &[
                "-m",
                "comment",
                "--comment",
                "CNI portfwd requiring masquerade",
                "-j",
                MASQ_CHAIN,
            ],
        )?;
    }
    ensure_chain(bin, DNAT_CHAIN)?;
    for entry in ["PREROUTING", "OUTPUT"] {
        append_unique(
            bin,
            entry,
            &["-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT_CHAIN],
        )?;
    }
    let chain = chain_name("DN-", c.network, c.container_id);
    ensure_chain(bin, &chain)?;
    let subnet = if opts.masq_all {
        if v6 { "::/0" } else { "0.0.0.0/0" }.to_string()
    } else {
        cip.trunc().to_string()
    };
    for m in &maps {
        let port = m.host_port.to_string();
        let mut base = vec!["-p", proto_name(m.protocol), "--dport", &port];
        let host_ip = m
            .host_ip
            .filter(|h| !h.is_unspecified())
            .map(|h| h.to_string());
        if let Some(h) = &host_ip {
            base.extend(["-d", h.as_str()]);
        }
        if opts.snat {
            let mut srcs = vec![subnet.as_str()];
            if !v6 {
                srcs.push("127.0.0.1");
            }
            for src in srcs {
                let spec = [&base[..], &["-s", src, "-j", setmark]].concat();
                append_unique(bin, &chain, &spec)?;
            }
        }
        let to = match cip.addr() {
            std::net::IpAddr::V4(a) => format!("{a}:{}", m.container_port),
            std::net::IpAddr::V6(a) => format!("[{a}]:{}", m.container_port),
        };
        let spec = [&base[..], &["-j", "DNAT", "--to-destination", &to]].concat();
        append_unique(bin, &chain, &spec)?;
    }
    let comment = format!(
        "dnat name: {} id: {}",
        go_quote(c.network),
        go_quote(c.container_id)
    );
    let comment: String = comment.chars().take(255).collect();
    for proto in [6u8, 17, 132] {
        let ports: Vec<String> = all
            .iter()
            .filter(|m| m.protocol == proto)
            .map(|m| m.host_port.to_string())
            .collect();
        for group in ports.chunks(MULTIPORT_MAX) {
            let list = group.join(",");
            let mut spec = vec![
                "-m",
                "comment",
                "--comment",
                &comment,
                "-m",
                "multiport",
                "-p",
                proto_name(proto),
                "--destination-ports",
                &list,
            ];
            spec.extend(c.conditions.iter().map(String::as_str));
            spec.extend(["-j", chain.as_str()]);
            append_unique(bin, DNAT_CHAIN, &spec)?;
        }
    }
    Ok(())
}

/// The container's chain and its jumps are there (Go's iptables CHECK).
pub fn check(bin: &PathBuf, network: &str, container_id: &str) -> Result<(), CniError> {
    let chain = chain_name("DN-", network, container_id);
    let listing = run(bin, &["-t", "nat", "-S", DNAT_CHAIN])?;
    let jumps = listing
        .stdout
        .lines()
        .any(|l| l.ends_with(&format!("-j {chain}")));
    if !run(bin, &["-t", "nat", "-S", &chain])?.ok || !jumps {
        return Err(CniError::internal(format!(
            "portmap (iptables): chain {chain} or its jumps are missing"
        )));
    }
    Ok(())
}

fn fail(what: String, stderr: &str) -> CniError {
    CniError::internal(format!("portmap (iptables): {what}: {stderr}"))
}

fn teardown_family(bin: &PathBuf, chains: &[&String]) -> Result<(), CniError> {
    let listing = run(bin, &["-t", "nat", "-S"])?;
    if !listing.ok {
        return Ok(());
    }
    let mut existing = Vec::new();
    for line in listing.stdout.lines() {
        let args = split_args(line);
        if args.len() == 2 && args[0] == "-N" && chains.contains(&&args[1]) {
            existing.push(args[1].clone());
        }
        let jumps = args
            .windows(2)
            .any(|w| w[0] == "-j" && chains.contains(&&w[1]));
        if args.len() > 2 && args[0] == "-A" && jumps {
            let mut del: Vec<&str> = vec!["-t", "nat", "-D"];
            del.extend(args[1..].iter().map(String::as_str));
            let r = run(bin, &del)?;
            if !r.ok && !is_not_exist(&r.stderr) {
                return Err(fail(format!("delete {line}"), &r.stderr));
            }
        }
    }
    for chain in existing {
        for op in ["-F", "-X"] {
            let r = run(bin, &["-t", "nat", op, &chain])?;
            if !r.ok && !is_not_exist(&r.stderr) {
                return Err(fail(format!("{op} {chain}"), &r.stderr));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_28_characters_like_gos() {
        let dn = chain_name("DN-", "test", "1234");
        assert_eq!(dn.len(), 28);
        // sha512("test1234") starts 2bbe0c48b91a7d1b8a6753a8 (Go's utils tests)
        assert_eq!(dn, "CNI-DN-2bbe0c48b91a7d1b8a675");
        assert_eq!(
            chain_name("SN-", "test", "1234"),
            "CNI-SN-2bbe0c48b91a7d1b8a675"
        );
    }
}
