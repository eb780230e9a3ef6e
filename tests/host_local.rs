//! host-local through its symlinked name: results, the on-disk store,
//! DEL/CHECK/GC/STATUS, requested IPs, rollback, concurrency and safety.
//! Interop with the Go plugin is in host_local_interop.rs.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;

const NET: &str = "hlnet";

/// An IPAM call that needs no network namespace.
fn hl(cmd: &str, id: &str, ifname: &str) -> Call {
    Call::attach("host-local", cmd, id, "/proc/self/ns/net", ifname).var("CNI_NETNS_OVERRIDE", "1")
}

/// A config with `ipam` merged over `{type, dataDir}`.
fn conf(version: &str, data: &TempDir, ipam: Value) -> Value {
    let mut i = json!({"type": "host-local", "dataDir": data.str()});
    for (k, v) in ipam.as_object().unwrap() {
        i[k] = v.clone();
    }
    json!({"cniVersion": version, "name": NET, "type": "bridge", "ipam": i})
}

fn add(c: &Value, id: &str) -> Reply {
    hl("ADD", id, "eth0").config(c).run()
}

fn add_ip(c: &Value, id: &str) -> String {
    let r = add(c, id);
    r.ok();
    r.json()["ips"][0]["address"].as_str().unwrap().to_string()
}

fn net_dir(data: &TempDir) -> PathBuf {
    data.path().join(NET)
}

/// The reservation files (names that are IPs) and their contents.
fn reservations(data: &TempDir) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(net_dir(data))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.parse::<std::net::IpAddr>().ok()?;
                    let content = std::fs::read_to_string(e.path()).unwrap_or_default();
                    Some((name, content))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn names(data: &TempDir) -> Vec<String> {
    reservations(data).into_iter().map(|(n, _)| n).collect()
}

const VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

#[test]
fn add_prints_the_result_in_every_version() {
    for v in VERSIONS {
        let data = TempDir::new("hl-ver");
        let resolv = data.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver 10.1.0.53\nsearch a.example\n").unwrap();
        let c = conf(
            v,
            &data,
            json!({"subnet": "10.1.2.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                   "resolvConf": resolv.display().to_string()}),
        );
        let r = add(&c, "ctr1");
        r.ok();
        let j = r.json();
        assert_eq!(j["cniVersion"], *v);
        let dns = json!({"nameservers": ["10.1.0.53"], "search": ["a.example"]});
        match *v {
            "0.1.0" | "0.2.0" => {
                assert_eq!(
                    j["ip4"],
                    json!({"ip": "10.1.2.2/24", "gateway": "10.1.2.1",
                           "routes": [{"dst": "0.0.0.0/0"}]}),
                    "{v}"
                );
                assert_eq!(j["dns"], dns);
            }
            "0.3.0" | "0.3.1" | "0.4.0" => {
                assert_eq!(
                    j["ips"],
                    json!([{"version": "4", "address": "10.1.2.2/24", "gateway": "10.1.2.1"}]),
                    "{v}"
                );
                assert_eq!(j["routes"], json!([{"dst": "0.0.0.0/0"}]));
                assert_eq!(j["dns"], dns);
                assert!(j.get("interfaces").is_none());
            }
            _ => {
                assert_eq!(
                    j["ips"],
                    json!([{"address": "10.1.2.2/24", "gateway": "10.1.2.1"}]),
                    "{v}: no interface index, no version"
                );
                assert_eq!(j["dns"], dns);
            }
        }
    }
}

#[test]
fn the_store_has_the_reference_bytes_and_modes() {
    let data = TempDir::new("hl-bytes");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    assert_eq!(add_ip(&c, "ctr1"), "10.1.2.2/24");
    let dir = net_dir(&data);
    assert_eq!(
        std::fs::read(dir.join("10.1.2.2")).unwrap(),
        b"ctr1\r\neth0"
    );
    assert_eq!(
        std::fs::read(dir.join("last_reserved_ip.0")).unwrap(),
        b"10.1.2.2",
        "bare IP, no newline"
    );
    assert_eq!(std::fs::read(dir.join("lock")).unwrap(), b"");
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join("10.1.2.2")), 0o600);
    assert_eq!(mode(&dir.join("last_reserved_ip.0")), 0o600);
    assert_eq!(mode(&dir.join("lock")), 0o750);
    // Nothing of ours is world-writable, and the index is private.
    assert_eq!(mode(&dir.join(".cnibox")), 0o700);
    for e in std::fs::read_dir(dir.join(".cnibox")).unwrap().flatten() {
        assert_eq!(mode(&e.path()), 0o600, "{:?}", e.path());
    }
    let visible: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        visible,
        ["10.1.2.2", "last_reserved_ip.0", "lock", ".cnibox"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn ipv6_and_dual_stack_sets_get_one_address_each() {
    let data = TempDir::new("hl-v6");
    let c = conf(
        "1.0.0",
        &data,
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]}),
    );
    let r = add(&c, "ctr1");
    r.ok();
    assert_eq!(
        r.json()["ips"],
        json!([{"address": "10.1.2.2/24", "gateway": "10.1.2.1"},
               {"address": "2001:db8:1::2/64", "gateway": "2001:db8:1::1"}])
    );
    assert_eq!(
        std::fs::read(net_dir(&data).join("last_reserved_ip.1")).unwrap(),
        b"2001:db8:1::2"
    );
    assert_eq!(
        std::fs::read(net_dir(&data).join("2001:db8:1::2")).unwrap(),
        b"ctr1\r\neth0"
    );

    // The v6 end includes the all-ones address.
    let data = TempDir::new("hl-v6end");
    let c = conf("1.0.0", &data, json!({"subnet": "2001:db8::/126"}));
    assert_eq!(add_ip(&c, "a"), "2001:db8::2/126");
    assert_eq!(add_ip(&c, "b"), "2001:db8::3/126");
    assert_ne!(add(&c, "c").err_code(), 0);
}

#[test]
fn allocation_order_resumes_after_the_last_reservation_and_wraps() {
    let data = TempDir::new("hl-order");
    let c = conf(
        "1.0.0",
        &data,
        json!({"ranges": [[{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/29", "gateway": "10.0.1.5"}]]}),
    );
    // Round robin across the set's ranges, skipping each range's gateway.
    let got: Vec<String> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|id| add_ip(&c, id))
        .collect();
    assert_eq!(
        got,
        [
            "10.0.0.2/30",
            "10.0.1.1/29",
            "10.0.1.2/29",
            "10.0.1.3/29",
            "10.0.1.4/29",
            "10.0.1.6/29"
        ]
    );
    let e = add(&c, "g");
    assert_eq!(e.err_code(), 999);
    assert_eq!(
        e.json()["msg"],
        "failed to allocate for range 0: no IP addresses available in range set: 10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.6"
    );
    // Released addresses come back only after a full cycle.
    hl("DEL", "b", "eth0").config(&c).run().ok();
    hl("DEL", "a", "eth0").config(&c).run().ok();
    assert_eq!(
        add_ip(&c, "h"),
        "10.0.0.2/30",
        "after .1.6 the walk wraps to the first range"
    );
    assert_eq!(add_ip(&c, "i"), "10.0.1.1/29");
}

#[test]
fn del_releases_by_attachment_then_legacy_id_and_unknown_is_success() {
    let data = TempDir::new("hl-del");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    add_ip(&c, "ctr1");
    hl("ADD", "ctr1", "eth1").config(&c).run().ok();
    add_ip(&c, "ctr2");
    std::fs::write(net_dir(&data).join("10.1.2.50"), "ctr1").unwrap();
    std::fs::write(net_dir(&data).join("10.1.2.51"), "ctr3").unwrap();

    hl("DEL", "ctr1", "eth0").config(&c).run().ok();
    assert_eq!(
        names(&data),
        ["10.1.2.3", "10.1.2.4", "10.1.2.50", "10.1.2.51"],
        "only ctr1/eth0's file; the legacy file stays while a new-style one matched"
    );
    hl("DEL", "ctr1", "eth0").config(&c).run().ok();
    assert_eq!(
        names(&data),
        ["10.1.2.3", "10.1.2.4", "10.1.2.51"],
        "then the legacy one"
    );
    hl("DEL", "ctr3", "eth7").config(&c).run().ok();
    assert_eq!(names(&data), ["10.1.2.3", "10.1.2.4"]);
    hl("DEL", "nobody", "eth0").config(&c).run().ok();
    assert_eq!(names(&data), ["10.1.2.3", "10.1.2.4"]);
    // A store that was never created: success, and nothing created.
    let empty = TempDir::new("hl-del-none");
    hl("DEL", "x", "eth0")
        .config(&conf("1.0.0", &empty, json!({"subnet": "10.1.2.0/24"})))
        .run()
        .ok();
    assert!(tree(empty.path()).is_empty());
}

#[test]
fn deliberate_difference_del_works_when_the_config_became_invalid() {
    let data = TempDir::new("hl-del-bad");
    let good = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    add_ip(&good, "ctr1");
    let bad = conf(
        "1.0.0",
        &data,
        json!({"subnet": "10.1.2.7/24", "ranges": "junk"}),
    );
    assert_eq!(add(&bad, "ctr2").err_code(), 7);
    hl("DEL", "ctr1", "eth0").config(&bad).run().ok();
    assert!(names(&data).is_empty());
    // Without a usable dataDir the store cannot be found: the config error
    // is reported.
    let lost = json!({"cniVersion": "1.0.0", "name": NET, "ipam": {"dataDir": 5}});
    assert_eq!(hl("DEL", "ctr1", "eth0").config(&lost).run().err_code(), 7);
}

#[test]
fn config_errors_are_code_7_and_name_the_field() {
    let data = TempDir::new("hl-conf");
    let cases = [
        (
            json!({"ranges": [[{"subnet": "10.9.0.1/29"}]]}),
            "ipam.ranges[0][0].subnet: invalid range set 0: Network has host bits set. For a subnet mask of length 29 the network address is 10.9.0.0",
        ),
        (
            json!({"subnet": "10.9.0.0/31"}),
            "ipam.subnet: invalid range set 0: Network 10.9.0.0/31 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.0.0/24", "rangeStart": "10.9.1.1"}]]}),
            "ipam.ranges[0][0].rangeStart: invalid range set 0: RangeStart 10.9.1.1 not in network 10.9.0.0/24",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.0.0/24"}, {"subnet": "10.9.0.0/25"}]]}),
            "ipam.ranges[0]: invalid range set 0: subnets 10.9.0.1-10.9.0.254 and 10.9.0.1-10.9.0.126 overlap",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.0.0/24"}], [{"subnet": "10.9.0.0/16"}]]}),
            "ipam.ranges[1]: range set 0 overlaps with 1",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.0.0/24"}, {"subnet": "fd00::/64"}]]}),
            "ipam.ranges[0]: invalid range set 0: mixed address families",
        ),
        (json!({}), "ipam.ranges: no IP ranges specified"),
    ];
    for (ipam, msg) in cases {
        let r = add(&conf("1.0.0", &data, ipam), "ctr1");
        assert_eq!(r.err_code(), 7, "{msg}");
        assert_eq!(r.json()["msg"], msg);
    }
    let r = add(
        &conf(
            "0.2.0",
            &data,
            json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]}),
        ),
        "ctr1",
    );
    assert_eq!(r.err_code(), 7);
    assert_eq!(
        r.json()["msg"],
        "ipam.ranges: CNI version 0.2.0 does not support more than 1 address per family"
    );
    let no_ipam = json!({"cniVersion": "1.0.0", "name": NET});
    let r = add(&no_ipam, "ctr1");
    assert_eq!(
        (r.err_code(), r.json()["msg"].clone()),
        (7, json!("IPAM config missing 'ipam' key"))
    );
    assert!(
        tree(data.path()).is_empty(),
        "no config error creates anything"
    );
    // A network name that would leave the data dir never reaches the store.
    let mut evil = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    evil["name"] = json!("../evil");
    assert_eq!(add(&evil, "ctr1").err_code(), 7);
    assert!(tree(data.path()).is_empty());
}

#[test]
fn requested_ips_from_cni_args_args_and_runtime_config() {
    let data = TempDir::new("hl-req");
    let c = conf(
        "1.0.0",
        &data,
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]]}),
    );
    let r = hl("ADD", "a", "eth0")
        .var("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.2.77")
        .config(&c)
        .run();
    r.ok();
    assert_eq!(r.json()["ips"][0]["address"], "10.1.2.77/24");
    assert_eq!(r.json()["ips"][1]["address"], "2001:db8::2/64");

    let mut c2 = c.clone();
    c2["args"] = json!({"cni": {"ips": ["2001:db8::99/64"]}});
    c2["runtimeConfig"] = json!({"ips": ["10.1.2.88"]});
    let r = add(&c2, "b");
    r.ok();
    assert_eq!(
        r.json()["ips"],
        json!([{"address": "10.1.2.88/24", "gateway": "10.1.2.1"},
               {"address": "2001:db8::99/64", "gateway": "2001:db8::1"}])
    );
    assert_eq!(
        std::fs::read(net_dir(&data).join("last_reserved_ip.0")).unwrap(),
        b"10.1.2.88",
        "requested IPs update last_reserved_ip too"
    );

    // Taken, gateway, outside every range, and two in one set: all fail and
    // leave no reservation behind.
    let before = reservations(&data);
    // An address in no range set is known to be wrong before the store is
    // touched: code 4, as CNI_ARGS is the environment (Go: 999, after
    // allocating from the other sets).
    for (args, code, msg) in [
        ("IP=10.1.2.77", 999, "failed to allocate for range 0: requested IP address 10.1.2.77 is not available in range set 10.1.2.1-10.1.2.254"),
        ("IP=10.1.2.1", 999, "failed to allocate for range 0: requested ip 10.1.2.1 is subnet's gateway"),
        ("IP=10.9.9.9", 4, "CNI_ARGS IP: failed to allocate all requested IPs: 10.9.9.9 is in no range set"),
    ] {
        let r = hl("ADD", "c", "eth0").var("CNI_ARGS", args).config(&c).run();
        assert_eq!(r.err_code(), code, "{args}");
        assert_eq!(r.json()["msg"], msg);
        assert_eq!(reservations(&data), before, "{args}: rolled back");
    }
    let mut two = c.clone();
    two["runtimeConfig"] = json!({"ips": ["10.1.2.100", "10.1.2.101"]});
    let r = add(&two, "d");
    assert_eq!(
        r.json()["msg"],
        "failed to allocate all requested IPs: 10.1.2.101"
    );
    assert_eq!(reservations(&data), before);

    let r = hl("ADD", "e", "eth0")
        .var("CNI_ARGS", "IP=bogus")
        .config(&c)
        .run();
    assert_eq!(r.err_code(), 4);
    assert_eq!(
        r.json()["msg"],
        "ARGS: error parsing value of pair \"IP=bogus\": invalid IP address bogus"
    );
}

#[test]
fn duplicate_attachment_is_refused_per_set() {
    let data = TempDir::new("hl-dup");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    add_ip(&c, "ctr1");
    let r = add(&c, "ctr1");
    assert_eq!(r.err_code(), 999);
    assert_eq!(
        r.json()["msg"],
        "failed to allocate for range 0: 10.1.2.2 has been allocated to ctr1, duplicate allocation is not allowed"
    );
    // Another interface of the same container is another attachment.
    let r = hl("ADD", "ctr1", "eth1").config(&c).run();
    r.ok();
    assert_eq!(r.json()["ips"][0]["address"], "10.1.2.3/24");
}

#[test]
fn deliberate_difference_a_failed_add_releases_only_its_own_reservations() {
    // The reference's rollback releases everything the attachment holds;
    // here an ADD that fails leaves an earlier reservation alone.
    let data = TempDir::new("hl-rollback");
    let c = conf(
        "1.0.0",
        &data,
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/30"}]]}),
    );
    let mut first = c.clone();
    first["runtimeConfig"] = json!({"ips": ["10.1.2.9"]});
    add(&first, "ctr1").ok();
    assert_eq!(names(&data), ["10.1.2.9", "10.1.3.2"]);
    // A second ADD of the same attachment with another requested IP: set 0
    // succeeds (requested IPs skip the duplicate check), set 1 refuses the
    // duplicate.
    let mut again = c.clone();
    again["runtimeConfig"] = json!({"ips": ["10.1.2.10"]});
    let r = add(&again, "ctr1");
    assert_eq!(r.err_code(), 999);
    assert!(r.json()["msg"]
        .as_str()
        .unwrap()
        .starts_with("failed to allocate for range 1: "));
    assert_eq!(
        names(&data),
        ["10.1.2.9", "10.1.3.2"],
        "the first ADD's addresses survive"
    );
}

#[test]
fn check_finds_the_reservation_and_matches_prev_result() {
    let data = TempDir::new("hl-check");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    let r = add(&c, "ctr1");
    r.ok();
    add_ip(&c, "ctr2");
    let mut with_prev = c.clone();
    with_prev["prevResult"] = r.json();
    hl("CHECK", "ctr1", "eth0").config(&c).run().ok();
    hl("CHECK", "ctr1", "eth0").config(&with_prev).run().ok();

    let r = hl("CHECK", "ctr9", "eth0").config(&c).run();
    assert_eq!(r.err_code(), 999);
    assert_eq!(
        r.json()["msg"],
        "host-local: Failed to find address added by container ctr9"
    );

    // Beyond the reference: an address of ours in prevResult must be held
    // by this attachment.
    let mut wrong = c.clone();
    wrong["prevResult"] = json!({"cniVersion": "1.0.0",
        "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1"}]});
    let r = hl("CHECK", "ctr1", "eth0").config(&wrong).run();
    assert_eq!(r.err_code(), 999);
    assert_eq!(
        r.json()["msg"],
        "host-local: address 10.1.2.3 in prevResult is not reserved by container ctr1 interface eth0"
    );
    // Addresses outside our ranges are someone else's business.
    let mut other = c.clone();
    other["prevResult"] = json!({"cniVersion": "1.0.0",
        "ips": [{"address": "192.168.0.5/24"}]});
    hl("CHECK", "ctr1", "eth0").config(&other).run().ok();
    // CHECK needs 0.4.0.
    let old = conf("0.3.1", &data, json!({"subnet": "10.1.2.0/24"}));
    assert_eq!(hl("CHECK", "ctr1", "eth0").config(&old).run().err_code(), 1);
}

fn gc_call(c: &Value, valid: Option<Value>) -> Reply {
    let mut c = c.clone();
    if let Some(v) = valid {
        c["cni.dev/valid-attachments"] = v;
    }
    Call::new("host-local", "GC").config(&c).run()
}

#[test]
fn gc_releases_what_is_not_valid_and_nothing_else() {
    let data = TempDir::new("hl-gc");
    let c = conf(
        "1.1.0",
        &data,
        json!({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]]}),
    );
    add(&c, "keep").ok();
    hl("ADD", "twoif", "eth0").config(&c).run().ok();
    hl("ADD", "twoif", "eth1").config(&c).run().ok();
    add(&c, "gone").ok();
    let dir = net_dir(&data);
    std::fs::write(dir.join("10.1.2.200"), "legacy-keep").unwrap();
    std::fs::write(dir.join("10.1.2.201"), "legacy-gone").unwrap();
    std::fs::write(dir.join("10.1.2.202"), "").unwrap();
    std::fs::write(dir.join("not-an-ip"), "gone\r\neth0").unwrap();
    let last = std::fs::read(dir.join("last_reserved_ip.0")).unwrap();

    // No list: nothing happens.
    gc_call(&c, None).ok();
    assert_eq!(names(&data).len(), 11);

    let valid = json!([
        {"containerID": "keep", "ifname": "eth0"},
        {"containerID": "twoif", "ifname": "eth0"},
        {"containerID": "legacy-keep", "ifname": "eth3"}
    ]);
    gc_call(&c, Some(valid)).ok();
    let left: Vec<(String, String)> = reservations(&data);
    assert_eq!(
        left,
        [
            ("10.1.2.2", "keep\r\neth0"),
            ("10.1.2.200", "legacy-keep"),
            ("10.1.2.3", "twoif\r\neth0"),
            ("2001:db8::2", "keep\r\neth0"),
            ("2001:db8::3", "twoif\r\neth0"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect::<Vec<_>>()
    );
    assert!(dir.join("lock").exists());
    assert_eq!(std::fs::read(dir.join("last_reserved_ip.0")).unwrap(), last);
    assert!(dir.join("not-an-ip").exists(), "only reservations are GC'd");

    // Freed addresses are allocatable again, and the index agrees.
    let r = add(&c, "gone");
    r.ok();
    hl("CHECK", "gone", "eth0").config(&c).run().ok();

    // An empty list releases everything.
    gc_call(&c, Some(json!([]))).ok();
    assert!(names(&data).is_empty());
    assert!(dir.join("lock").exists() && dir.join("last_reserved_ip.1").exists());

    // GC below 1.1.0 is refused by the protocol; a store never created is fine.
    let old = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    assert_eq!(gc_call(&old, Some(json!([]))).err_code(), 1);
    let none = TempDir::new("hl-gc-none");
    gc_call(
        &conf("1.1.0", &none, json!({"subnet": "10.1.2.0/24"})),
        Some(json!([])),
    )
    .ok();
    assert!(tree(none.path()).is_empty());
}

#[test]
fn status_reports_exhaustion_with_code_50() {
    let data = TempDir::new("hl-status");
    let c = conf("1.1.0", &data, json!({"subnet": "10.1.2.0/30"}));
    let status = || Call::new("host-local", "STATUS").config(&c).run();
    status().ok();
    assert!(tree(data.path()).is_empty(), "STATUS creates nothing");
    add(&c, "a").ok();
    let r = status();
    assert_eq!(r.err_code(), 50);
    assert_eq!(
        r.json()["msg"],
        "host-local: range set 0 is exhausted: no IP addresses available in range set: 10.1.2.1-10.1.2.2"
    );
    hl("DEL", "a", "eth0").config(&c).run().ok();
    status().ok();
    // An empty (crash leftover) file does not count as used.
    std::fs::write(net_dir(&data).join("10.1.2.2"), "").unwrap();
    status().ok();
    let old = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/30"}));
    assert_eq!(
        Call::new("host-local", "STATUS")
            .config(&old)
            .run()
            .err_code(),
        1
    );
}

/// A read-only tmpfs mounted on a fresh directory, unmounted on drop.
struct RoMount(TempDir);

impl RoMount {
    fn new() -> RoMount {
        let d = TempDir::new("hl-ro");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(d.path())
            .status()
            .unwrap();
        assert!(st.success());
        RoMount(d)
    }
}

impl Drop for RoMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn status_reports_an_unwritable_data_dir_with_code_50() {
    require_root!();
    let ro = RoMount::new();
    let c = conf("1.1.0", &ro.0, json!({"subnet": "10.1.2.0/24"}));
    let r = Call::new("host-local", "STATUS").config(&c).run();
    assert_eq!(r.err_code(), 50);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("host-local: data directory ") && msg.contains("not writable"),
        "{msg}"
    );
    // And ADD there fails with an I/O error rather than a bogus result.
    assert_eq!(add(&c, "a").err_code(), 5);
}

#[test]
fn a_crash_leftover_empty_file_does_not_block_an_address_forever() {
    let data = TempDir::new("hl-empty");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/30"}));
    std::fs::create_dir_all(net_dir(&data)).unwrap();
    std::fs::write(net_dir(&data).join("10.1.2.2"), "").unwrap();
    assert_eq!(add_ip(&c, "a"), "10.1.2.2/30");
    assert_eq!(
        std::fs::read(net_dir(&data).join("10.1.2.2")).unwrap(),
        b"a\r\neth0"
    );
}

#[test]
fn symlinks_planted_in_the_store_are_never_followed() {
    let data = TempDir::new("hl-sym");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/29"}));
    let dir = net_dir(&data);
    std::fs::create_dir_all(&dir).unwrap();
    let victim = data.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("10.1.2.2")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("last_reserved_ip.0")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("10.1.2.3")).unwrap();
    std::fs::write(&victim, "a\r\neth0").unwrap();

    assert_eq!(
        add_ip(&c, "a"),
        "10.1.2.4/29",
        "symlinked addresses are taken, not followed"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"a\r\neth0");
    assert!(!std::fs::symlink_metadata(dir.join("last_reserved_ip.0"))
        .unwrap()
        .file_type()
        .is_symlink());
    // DEL does not treat the symlink's target as a reservation of `a`.
    hl("DEL", "a", "eth0").config(&c).run().ok();
    assert!(std::fs::symlink_metadata(dir.join("10.1.2.2")).is_ok());
    assert_eq!(std::fs::read(&victim).unwrap(), b"a\r\neth0");

    // A symlinked lock is refused.
    let data2 = TempDir::new("hl-sym2");
    let dir2 = net_dir(&data2);
    std::fs::create_dir_all(&dir2).unwrap();
    std::os::unix::fs::symlink(&victim, dir2.join("lock")).unwrap();
    let c2 = conf("1.0.0", &data2, json!({"subnet": "10.1.2.0/29"}));
    assert_eq!(add(&c2, "a").err_code(), 5);
    // So is a symlinked network directory.
    let data3 = TempDir::new("hl-sym3");
    std::os::unix::fs::symlink(data.path(), data3.path().join(NET)).unwrap();
    let c3 = conf("1.0.0", &data3, json!({"subnet": "10.1.2.0/29"}));
    assert_eq!(add(&c3, "a").err_code(), 5);
    // GC removes the planted links (unlink never follows).
    let c1 = conf("1.1.0", &data, json!({"subnet": "10.1.2.0/29"}));
    gc_call(&c1, Some(json!([]))).ok();
    assert!(std::fs::symlink_metadata(dir.join("10.1.2.2")).is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"a\r\neth0");
}

/// Run `n` ADDs at once, each its own process.
fn parallel_adds(c: &Value, n: usize) -> Vec<Reply> {
    let c = c.clone();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || add(&c, &format!("par{i}")))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn sixty_four_parallel_adds_get_sixty_four_distinct_addresses() {
    let data = TempDir::new("hl-par");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    let replies = parallel_adds(&c, 64);
    let mut got = BTreeSet::new();
    for r in &replies {
        r.ok();
        assert!(got.insert(r.json()["ips"][0]["address"].as_str().unwrap().to_string()));
    }
    assert_eq!(got.len(), 64);
    let files = reservations(&data);
    assert_eq!(files.len(), 64);
    for (_, content) in &files {
        assert!(
            content.starts_with("par") && content.ends_with("\r\neth0"),
            "{content:?}"
        );
    }
    // The index agrees with the files: every attachment is found by CHECK.
    let c11 = conf("1.1.0", &data, json!({"subnet": "10.1.2.0/24"}));
    for i in [0, 31, 63] {
        hl("CHECK", &format!("par{i}"), "eth0")
            .config(&c11)
            .run()
            .ok();
    }
}

#[test]
fn three_hundred_parallel_adds_fail_cleanly_past_exhaustion() {
    let data = TempDir::new("hl-exh");
    let c = conf("1.0.0", &data, json!({"subnet": "10.1.2.0/24"}));
    let replies = parallel_adds(&c, 300);
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 0).collect();
    assert_eq!(ok.len(), 253, ".2 to .254");
    for r in replies.iter().filter(|r| r.status != 0) {
        assert_eq!(r.err_code(), 999);
        assert_eq!(
            r.json()["msg"],
            "failed to allocate for range 0: no IP addresses available in range set: 10.1.2.1-10.1.2.254"
        );
    }
    let files = reservations(&data);
    assert_eq!(files.len(), 253);
    let owners: BTreeSet<&String> = files.iter().map(|(_, c)| c).collect();
    assert_eq!(owners.len(), 253, "no address handed out twice");
    for (name, content) in &files {
        assert!(
            content.starts_with("par") && content.ends_with("\r\neth0"),
            "{name}: {content:?}"
        );
    }
    let leftovers: Vec<String> = tree(&net_dir(&data))
        .into_iter()
        .filter(|p| p.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary left: {leftovers:?}");
}

#[test]
fn deliberate_difference_a_v4_range_start_at_the_broadcast_address_is_refused() {
    // The reference accepts it (the default rangeEnd is broadcast - 1, never
    // compared with rangeStart), hands out 10.9.0.255, then 10.9.1.0,
    // outside the subnet.
    let data = TempDir::new("hl-bcast");
    let c = conf(
        "1.0.0",
        &data,
        json!({"subnet": "10.9.0.0/24", "rangeStart": "10.9.0.255"}),
    );
    let r = add(&c, "a");
    assert_eq!(r.err_code(), 7);
    assert_eq!(
        r.json()["msg"],
        "ipam.rangeStart: invalid range set 0: RangeStart 10.9.0.255 is after RangeEnd 10.9.0.254"
    );
    assert!(tree(data.path()).is_empty());
}

/// The owner index is only a shortcut: DEL reads the file before removing
/// it, so an index that went stale without the directory changing (a file
/// rewritten in place, which keeps the directory's mtime) can never make a
/// DEL release another container's address.
#[test]
fn del_never_releases_an_address_whose_file_names_another_owner() {
    let data = TempDir::new("hl-stale");
    let c = conf("1.0.0", &data, json!({"subnet": "10.61.0.0/24"}));
    assert_eq!(add_ip(&c, "ctr-a"), "10.61.0.2/24");
    // Rewrite the file in place: same inode, the directory is untouched.
    let file = net_dir(&data).join("10.61.0.2");
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(b"ctr-b\r\neth0").unwrap();
        f.set_len(11).unwrap();
    }
    hl("DEL", "ctr-a", "eth0").config(&c).run().ok();
    assert_eq!(
        reservations(&data),
        vec![("10.61.0.2".to_string(), "ctr-b\r\neth0".to_string())]
    );
    hl("DEL", "ctr-b", "eth0").config(&c).run().ok();
    assert!(reservations(&data).is_empty());
}
