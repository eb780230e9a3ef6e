//! The fuzz targets' view of cnibox: cnibox is a binary crate, so its layers
//! are compiled here again from the same source files (by path; nothing is
//! copied), under `cfg(fuzzing)`, which unlocks a few `fuzz_*` entry points
//! that reach private parsers. `main.rs` and `applets.rs` (dispatch) are
//! left out; everything they sit on is in.
//!
//! Each `run_*` function is one target's body, so a finding can be replayed
//! from a test or a debugger without libFuzzer.
#![allow(dead_code, unused_imports, clippy::all)]

#[path = "../../src/cni/mod.rs"]
pub mod cni;
#[path = "../../src/dhcp/mod.rs"]
pub mod dhcp;
#[path = "../../src/etcd/mod.rs"]
pub mod etcd;
#[path = "../../src/gorpc/mod.rs"]
pub mod gorpc;
#[path = "../../src/http/mod.rs"]
pub mod http;
#[path = "../../src/ipam/mod.rs"]
pub mod ipam;
#[path = "../../src/netlink/mod.rs"]
pub mod netlink;
#[path = "../../src/ovsdb/mod.rs"]
pub mod ovsdb;
#[path = "../../src/plugins/mod.rs"]
pub mod plugins;
#[path = "../../src/steps/mod.rs"]
pub mod steps;
#[path = "../../src/tool/mod.rs"]
pub mod tool;

use cni::env::{Command, Env};
use cni::json::{self, GoValue};
use cni::result::CniResult;
use cni::{Invoker, Request};

/// A request as the skel would hand it to a plugin, without running it.
fn request<'a>(
    stdin: &[u8],
    config: GoValue,
    args: &str,
    env: &'a Env,
    invoker: &'a Invoker,
) -> Request<'a> {
    let version = cni::version::config_version(&config).unwrap_or_else(|_| "0.1.0".into());
    Request {
        container_id: "fuzz-ctr".into(),
        netns: "/nonexistent/netns".into(),
        ifname: "eth0".into(),
        args: args.into(),
        stdin: stdin.to_vec(),
        config,
        version,
        env,
        invoker,
    }
}

fn no_plugins(_: &str) -> Option<&'static cni::Plugin> {
    None
}

/// Every config parser of every applet that reads a config, on `data` as
/// stdin: the Go-rule decoder, NetConf, each plugin's own config, the GC
/// list, and the tool's config-list loader and injection.
pub fn run_config(data: &[u8]) {
    let _ = cni::skel::read_bounded(&mut &data[..], cni::skel::MAX_STDIN);
    if let Ok(list) = tool::conf::conf_list_from_bytes(data) {
        for p in &list.plugins {
            let _ = tool::conf::inject(p, &[("name", "\"n\""), ("cniVersion", "\"1.1.0\"")]);
        }
    }
    let _ = tool::conf::plugin_conf_from_bytes(data.to_vec());
    let Ok(config) = json::parse(data) else {
        return;
    };
    config_parsers(data, config, "");
}

fn config_parsers(data: &[u8], config: GoValue, args: &str) {
    let _ = cni::version::config_version(&config);
    let _ = cni::types::valid_attachments(&config);
    if let Some(GoValue::String(n)) = config.get("name") {
        let _ = cni::env::validate_network_name(n);
    }
    let env = Env::default();
    let invoker = Invoker::exec_only();
    let req = request(data, config, args, &env, &invoker);
    let _ = req.net_conf().map(|c| c.ipam_type().map(str::len));
    plugins::ptp::fuzz_config(&req);
    plugins::bridge::fuzz_config(&req);
    plugins::tuning::fuzz_config(&req);
    plugins::portmap::fuzz_config(&req);
    plugins::firewall::fuzz_config(&req);
    plugins::bandwidth::fuzz_config(&req);
    plugins::sbr::fuzz_config(&req);
    plugins::vrf::fuzz_config(&req);
    ipam::host_local::fuzz::config(&req);
    ipam::static_ipam::fuzz_config(&req);
}

const VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "", "9.9.9",
];

/// Results: parse in every version, print in every version; a printed
/// result parses back to the same printout (what libcni and a chained
/// plugin do with it). Also the tool's result cache reader.
pub fn run_result(data: &[u8]) {
    let _ = tool::cache::decode(data).map(|info| tool::cache::stored_result(&info));
    for v in VERSIONS {
        let Ok(r) = CniResult::parse_any(data, v) else {
            continue;
        };
        for out_v in VERSIONS {
            let Ok(printed) = r.to_version_string(out_v) else {
                continue;
            };
            let again = CniResult::parse_any(printed.as_bytes(), out_v)
                .unwrap_or_else(|e| panic!("{out_v} result does not parse back: {e}\n{printed}"));
            let reprinted = again
                .to_version_string(out_v)
                .unwrap_or_else(|e| panic!("{out_v} result does not print again: {e}"));
            assert_eq!(printed, reprinted, "printing {out_v} is not stable");
            let _ = r.to_version_value(out_v);
        }
    }
}

/// `CNI_ARGS` (the plugins' `K=V;...` with Go's rules, the tool's strict
/// one, `--valid`), and the configs that read it (host-local's and
/// static's `IP=`, bridge's `MAC=`).
pub fn run_cni_args(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cni::args::CniArgs::parse(s, &["IP", "GATEWAY", "MAC"]).map(|a| a.get("IP").map(str::len));
    tool::fuzz_args(s);
    const CONF: &[u8] = br#"{"cniVersion":"1.1.0","name":"n","type":"bridge",
        "ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/16"}],[{"subnet":"fd00::/64"}]],
                "addresses":[{"address":"10.2.0.5/24"}]}}"#;
    if let Ok(config) = json::parse(CONF) {
        config_parsers(CONF, config, s);
    }
}

/// host-local's store readers on files holding arbitrary bytes: a
/// reservation file, `last_reserved_ip.0`, and the index's stamp and
/// bucket (`data` is split at the first two `\0\0`).
pub fn run_hostlocal_store(data: &[u8]) {
    ipam::host_local::fuzz::index_codec(data);

    use std::sync::OnceLock;
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let base = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cnibox-fuzz-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    });
    let net = base.join("net");
    let aux = net.join(".cnibox");
    let _ = std::fs::remove_dir_all(base);
    if std::fs::create_dir_all(&aux).is_err() {
        return;
    }
    let mut parts = data.splitn(3, |b| *b == 0);
    let owner = parts.next().unwrap_or_default();
    let last = parts.next().unwrap_or_default();
    let bucket = parts.next().unwrap_or_default();
    let _ = std::fs::write(net.join("10.0.0.2"), owner);
    let _ = std::fs::write(net.join("fd00::2"), bucket);
    let _ = std::fs::write(net.join("last_reserved_ip.0"), last);
    // A stamp that matches nothing (rebuilt) and one made of the input.
    let _ = std::fs::write(aux.join("stamp"), last);
    // The bucket of "c1" (the owner looked up) and another.
    let _ = std::fs::write(aux.join("b6a"), bucket);
    let _ = std::fs::write(aux.join("b00"), owner);
    ipam::host_local::fuzz::read_store(base, "net");
}

/// The netlink reply parsers: links, addresses, routes, neighbours, the
/// attribute iterator (nested to any depth), nf_tables tables, chains,
/// rules and expressions, and what the masquerade and spoof-check steps
/// read from rules.
pub fn run_netlink(data: &[u8]) {
    let _ = netlink::link::parse_link(data);
    let _ = netlink::addr::parse_addr(data);
    let _ = netlink::route::parse_route(data);
    let _ = netlink::neigh::parse_neigh(data);
    let _ = netlink::attr::ip_from_bytes(data);
    let _ = netlink::nftables::parse_comment_udata(data);
    let _ = netlink::nftables::expr::Expr::decode(data);
    fn walk(a: netlink::attr::Attrs<'_>, depth: usize) -> usize {
        let mut n = 0;
        for at in a {
            n += 1;
            let _ = (at.u8(), at.u32(), at.be32(), at.be64(), at.str());
            if depth < 8 {
                n += walk(at.nested(), depth + 1);
            }
        }
        n
    }
    walk(netlink::attr::Attrs::new(data), 0);
    if let Some(rule) = netlink::nftables::fuzz_decode(data) {
        let _ = steps::spoofchk::parse_jump(&rule);
        let _ = rule.encode();
        let _ = rule.same_as(&rule);
    }
}
