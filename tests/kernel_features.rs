//! The link kinds the kernel tests need: on a kernel without them these
//! skip (kind Kernel, listed after `make test`); `make test-kernel` runs
//! them on Debian's stock kernel, where the modules must autoload (the
//! lane's modprobe, modules.dep and modules.softdep) and each kind must
//! work, or the lane fails.

mod common;
use common::*;

/// Make a link of `kind` in a throwaway namespace and read its kind back.
fn make_and_read_back(kind: &str, extra: &[&str]) {
    let ns = TestNs::new("kfeat");
    ns.ip(&["link", "add", "kf0", "type", "veth", "peer", "name", "kf1"]);
    ns.ip(&["link", "set", "kf0", "up"]);
    let mut args = vec!["link", "add"];
    if matches!(kind, "vlan" | "ipvlan" | "macvlan") {
        args.extend(["link", "kf0"]);
    }
    args.extend(["name", "kfx", "type", kind]);
    args.extend(extra);
    ns.ip(&args);
    ns.ip(&["link", "set", "kfx", "up"]);
    let l = ns.ip_json(&["-d", "link", "show", "kfx"]);
    assert_eq!(l[0]["linkinfo"]["info_kind"], kind, "{l}");
}

#[test]
fn ipvlan_links() {
    require_root!();
    require_link_kind!("ipvlan");
    make_and_read_back("ipvlan", &["mode", "l2"]);
}

#[test]
fn vlan_links() {
    require_root!();
    require_link_kind!("vlan");
    make_and_read_back("vlan", &["id", "42"]);
}

#[test]
fn dummy_links() {
    require_root!();
    require_link_kind!("dummy");
    make_and_read_back("dummy", &[]);
}

#[test]
fn vrf_links() {
    require_root!();
    require_link_kind!("vrf");
    make_and_read_back("vrf", &["table", "42"]);
}
