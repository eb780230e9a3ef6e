//! What the Go plugin's iptables backend made for a container, removed on
//! DEL so that a node moving from Go's default backend to cnibox keeps no
//! stale DNAT (cnibox itself writes nf_tables rules only).
//!
//! Go (plugins/meta/portmap/portmap.go), table nat: chain
//! `CNI-DN-<21 hex of sha512(net+cid)>` holding the DNAT rules, entered from
//! `CNI-HOSTPORT-DNAT` by one jump per protocol and group of ports; older
//! versions also made `CNI-SN-<hash>` entered from `CNI-HOSTPORT-SNAT`. The
//! shared chains (`CNI-HOSTPORT-*`) stay, as Go leaves them.

use crate::cni::CniError;
use crate::netlink::nftables::consts::{NFPROTO_IPV4, NFPROTO_IPV6};
use crate::netlink::Netlink;
use crate::steps::masq::iptables::{
    find, is_not_exist, nft_based, nft_chain_exists, run, split_args,
};
use crate::steps::masq::sha512_hex;
use std::path::PathBuf;

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

fn fail(what: String, stderr: &str) -> CniError {
    CniError::internal(format!("portmap (iptables cleanup): {what}: {stderr}"))
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
