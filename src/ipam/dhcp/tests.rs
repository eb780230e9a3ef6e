//! The daemon's replies, byte for byte, against what the Go daemon sent
//! (tests/fixtures/goref-head-dhcp-rpc.hex).

use super::daemon::{DaemonConfig, LeaseDaemon};
use super::lease::lease_result;
use super::wire;
use crate::dhcp::message::{self as msg, Message};
use crate::gorpc::gob::Encoder;
use crate::gorpc::rpc::{self, RESPONSE};
use crate::gorpc::RESULT;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;

use crate::gorpc::tests::blocks;

/// dnsmasq's ACK of the capture: 10.99.20.10/24, router .1.
fn ack() -> Message {
    let mut m = Message::request(msg::ACK, 1, [2, 0, 0, 0, 0, 1]);
    m.op = msg::BOOTREPLY;
    m.yiaddr = Ipv4Addr::new(10, 99, 20, 10);
    m.options.push((msg::OPT_SERVER_ID, vec![10, 99, 20, 1]));
    m.options
        .push((msg::OPT_LEASE_TIME, 120u32.to_be_bytes().to_vec()));
    m.options
        .push((msg::OPT_SUBNET_MASK, vec![255, 255, 255, 0]));
    m.options.push((msg::OPT_ROUTERS, vec![10, 99, 20, 1]));
    m
}

#[test]
fn allocate_reply_bytes_match_go_daemon() {
    let r = lease_result(&ack(), &[3, 1], 0).unwrap();
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    let resp = crate::gorpc::gob::Value::fields(vec![
        (
            "ServiceMethod",
            crate::gorpc::gob::Value::String("DHCP.Allocate".into()),
        ),
        ("Seq", crate::gorpc::gob::Value::Uint(0)),
    ]);
    enc.encode(&mut out, &RESPONSE, &resp);
    enc.encode(&mut out, &RESULT, &wire::result_to_gob(&r));
    assert_eq!(out, blocks()[3]);
    // And back.
    let bl = blocks();
    let mut d = crate::gorpc::gob::Decoder::new(&bl[3][..]);
    d.decode().unwrap();
    assert_eq!(wire::result_from_gob(&d.decode().unwrap()).unwrap(), r);
}

#[test]
fn release_over_the_socket_matches_go_daemon() {
    let dir = std::env::temp_dir().join(format!("cnibox-dhcp-ut-{}", std::process::id()));
    let daemon = LeaseDaemon::start(DaemonConfig {
        lease_dir: dir.display().to_string(),
        ..Default::default()
    });
    let bl = blocks();
    let mut req = bl[4].clone();
    req.extend(&bl[6]);
    let got = exchange(&daemon, &req);
    daemon.shutdown();
    let mut want = rpc::CONNECTED.to_vec();
    want.extend(&bl[7]);
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_method_is_an_rpc_error() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let daemon = LeaseDaemon::start(DaemonConfig {
        lease_dir: "/nonexistent/cnibox-dhcp".into(),
        ..Default::default()
    });
    let d = daemon.clone();
    let server = std::thread::spawn(move || d.serve_stream(b));
    let args = wire::CmdArgs::default();
    let err = rpc::call(&mut a, "DHCP.Nope", &crate::gorpc::CMD_ARGS, &args.to_gob()).unwrap_err();
    assert_eq!(err.to_string(), "rpc: can't find method DHCP.Nope");
    drop(a);
    server.join().unwrap();
    daemon.shutdown();
}

#[test]
fn result_routes_dns_priority_as_the_reference() {
    let mut a = ack();
    // Option 121: a default via .254 and a link route (router 0.0.0.0).
    a.options.push((
        msg::OPT_CLASSLESS_ROUTES,
        vec![0, 10, 99, 20, 254, 24, 192, 168, 7, 0, 0, 0, 0],
    ));
    a.options
        .push((msg::OPT_DNS, vec![10, 99, 20, 53, 10, 99, 20, 54]));
    let r = lease_result(&a, &[3, 1], 7).unwrap();
    let v = r.to_version_value("1.0.0").unwrap();
    assert_eq!(
        v["routes"],
        serde_json::json!([
            {"dst": "0.0.0.0/0", "gw": "10.99.20.254", "priority": 7},
            {"dst": "192.168.7.0/24", "priority": 7, "scope": 253}
        ])
    );
    assert!(r.dns.is_empty(), "dns only when option 6 is requested");
    let r = lease_result(&a, &[3, 1, 6], 0).unwrap();
    assert_eq!(r.dns.nameservers, vec!["10.99.20.53", "10.99.20.54"]);
    // Without 121: option 33 (classful) plus the default via the router.
    let mut b = ack();
    b.options
        .push((msg::OPT_STATIC_ROUTES, vec![172, 20, 0, 0, 10, 99, 20, 9]));
    let v = lease_result(&b, &[], 0)
        .unwrap()
        .to_version_value("1.0.0")
        .unwrap();
    assert_eq!(
        v["routes"],
        serde_json::json!([
            {"dst": "172.20.0.0/16", "gw": "10.99.20.9"},
            {"dst": "0.0.0.0/0", "gw": "10.99.20.1"}
        ])
    );
    let mut c = ack();
    c.options.retain(|(o, _)| *o != msg::OPT_SUBNET_MASK);
    assert_eq!(
        lease_result(&c, &[], 0).unwrap_err(),
        "DHCP option Subnet Mask not found in DHCPACK"
    );
}

/// Send `bytes`, close the write side, return what the daemon answered.
fn exchange(daemon: &std::sync::Arc<LeaseDaemon>, bytes: &[u8]) -> Vec<u8> {
    let (mut a, b) = UnixStream::pair().unwrap();
    let d = daemon.clone();
    let server = std::thread::spawn(move || d.serve_stream(b));
    a.write_all(bytes).unwrap();
    a.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    a.read_to_end(&mut got).unwrap();
    server.join().unwrap();
    got
}

#[test]
fn garbage_on_the_socket_closes_that_connection_only() {
    let daemon = LeaseDaemon::start(DaemonConfig {
        lease_dir: "/nonexistent/cnibox-dhcp".into(),
        ..Default::default()
    });
    let got = exchange(&daemon, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.0 405"), "{got:?}");
    let mut junk = rpc::CONNECT.to_vec();
    junk.extend([0x05, 0xff, 0x80, 0x01, 0x02, 0xff, 0xff, 0xff, 0x7f, 0x03]);
    assert_eq!(exchange(&daemon, &junk), rpc::CONNECTED);
    // A truncated request after a good CONNECT: still no panic.
    let mut cut = rpc::CONNECT.to_vec();
    cut.extend(&blocks()[6][..100]);
    assert_eq!(exchange(&daemon, &cut), rpc::CONNECTED);
    // The daemon still answers.
    let mut ok = rpc::CONNECT.to_vec();
    ok.extend(&blocks()[6]);
    assert!(exchange(&daemon, &ok).ends_with(&blocks()[7]));
    daemon.shutdown();
}
