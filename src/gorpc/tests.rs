//! Byte-for-byte checks against the Go HEAD capture
//! (tests/fixtures/goref-head-dhcp-rpc.hex).

use super::gob::{Decoder, Encoder, Value};
use super::rpc::{self, EMPTY, RESPONSE};
use super::{CMD_ARGS, RESULT};

const FIXTURE: &str = include_str!("../../tests/fixtures/goref-head-dhcp-rpc.hex");

/// The fixture's blocks, in order, as bytes.
pub(crate) fn blocks() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in FIXTURE.lines() {
        if line.starts_with("## ") {
            out.push(Vec::new());
        } else if !line.trim().is_empty() {
            let l = line.trim();
            let bytes = (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap());
            out.last_mut().unwrap().extend(bytes);
        }
    }
    out
}

const STDIN: &[u8] = b"{\"bridge\":\"dhbr0\",\"cniVersion\":\"1.0.0\",\"ipam\":{\"daemonSocketPath\":\"/run/w2/dhcp.sock\",\"type\":\"dhcp\"},\"name\":\"dhnet\",\"type\":\"bridge\"}\n";

fn cmd_args() -> Value {
    Value::fields(vec![
        ("ContainerID", Value::String("dh0001".into())),
        ("Netns", Value::String("/run/netns/w2c8".into())),
        ("IfName", Value::String("eth0".into())),
        ("Args", Value::String(String::new())),
        ("Path", Value::String("/usr/lib/cni".into())),
        ("StdinData", Value::Bytes(STDIN.to_vec())),
    ])
}

fn ipnet(ip: [u8; 4], mask: [u8; 4]) -> Value {
    Value::fields(vec![
        ("IP", Value::Bytes(ip.to_vec())),
        ("Mask", Value::Bytes(mask.to_vec())),
    ])
}

fn fixture_result() -> Value {
    Value::fields(vec![
        (
            "IPs",
            Value::Slice(vec![Value::fields(vec![
                ("Address", ipnet([10, 99, 20, 10], [255, 255, 255, 0])),
                ("Gateway", Value::Bytes(vec![10, 99, 20, 1])),
            ])]),
        ),
        (
            "Routes",
            Value::Slice(vec![Value::fields(vec![
                ("Dst", ipnet([0; 4], [0; 4])),
                ("GW", Value::Bytes(vec![10, 99, 20, 1])),
            ])]),
        ),
        ("DNS", Value::Struct(vec![])),
    ])
}

#[test]
fn connect_lines_match_go() {
    let b = blocks();
    assert_eq!(b[0], rpc::CONNECT);
    assert_eq!(b[1], rpc::CONNECTED);
    assert_eq!(b[4], rpc::CONNECT);
}

#[test]
fn allocate_request_is_byte_exact() {
    let b = blocks();
    assert_eq!(
        rpc::request_bytes("DHCP.Allocate", &CMD_ARGS, &cmd_args()),
        b[2]
    );
}

#[test]
fn release_request_is_byte_exact() {
    let b = blocks();
    assert_eq!(
        rpc::request_bytes("DHCP.Release", &CMD_ARGS, &cmd_args()),
        b[6]
    );
}

fn response(method: &str) -> Value {
    Value::fields(vec![
        ("ServiceMethod", Value::String(method.into())),
        ("Seq", Value::Uint(0)),
        ("Error", Value::String(String::new())),
    ])
}

#[test]
fn allocate_reply_is_byte_exact() {
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    enc.encode(&mut out, &RESPONSE, &response("DHCP.Allocate"));
    enc.encode(&mut out, &RESULT, &fixture_result());
    assert_eq!(out, blocks()[3]);
}

#[test]
fn release_reply_is_byte_exact_with_go_type_ids() {
    // The Go daemon had numbered the Allocate reply's types before.
    let mut enc = Encoder::new();
    enc.reserve(&RESPONSE);
    enc.reserve(&RESULT);
    let mut out = Vec::new();
    let mut first = Encoder::new();
    first.encode(&mut out, &RESPONSE, &response("DHCP.Release"));
    let mut body = Vec::new();
    enc.encode(&mut body, &EMPTY, &Value::Struct(vec![]));
    out.extend(body);
    assert_eq!(out, blocks()[7]);
}

#[test]
fn decodes_requests_and_replies() {
    let b = blocks();
    let mut d = Decoder::new(&b[2][..]);
    let req = d.decode().unwrap();
    assert_eq!(req.str_field("ServiceMethod"), "DHCP.Allocate");
    let args = d.decode().unwrap();
    assert_eq!(args.str_field("ContainerID"), "dh0001");
    assert_eq!(args.str_field("Netns"), "/run/netns/w2c8");
    assert_eq!(args.str_field("IfName"), "eth0");
    assert_eq!(args.str_field("Path"), "/usr/lib/cni");
    assert_eq!(args.bytes_field("StdinData"), STDIN);

    let mut d = Decoder::new(&b[3][..]);
    let resp = d.decode().unwrap();
    assert_eq!(resp.str_field("ServiceMethod"), "DHCP.Allocate");
    assert_eq!(resp.str_field("Error"), "");
    assert_eq!(d.decode().unwrap(), fixture_result());

    let mut d = Decoder::new(&b[7][..]);
    assert_eq!(
        d.decode().unwrap().str_field("ServiceMethod"),
        "DHCP.Release"
    );
    assert_eq!(d.decode().unwrap(), Value::Struct(vec![]));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bytes in [
        &b"\x05\xff\x80\x01"[..],
        b"\xff\xff\xff",
        b"\x03\x7f\x03\x09",
        b"",
    ] {
        assert!(Decoder::new(bytes).decode().is_err());
    }
    let b = blocks();
    for cut in 0..b[3].len() {
        let mut d = Decoder::new(&b[3][..cut]);
        let _ = d.decode().and_then(|_| d.decode());
    }
}

#[test]
fn call_and_serve_round_trip() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || {
        let w = b.try_clone().unwrap();
        rpc::serve_conn(
            b,
            w,
            |_| {},
            |m, args| {
                assert_eq!(m, "DHCP.Allocate");
                assert_eq!(args.str_field("IfName"), "eth0");
                Ok((&RESULT, fixture_result()))
            },
        )
        .unwrap();
    });
    let mut a = a;
    let reply = rpc::call(&mut a, "DHCP.Allocate", &CMD_ARGS, &cmd_args()).unwrap();
    assert_eq!(reply, fixture_result());
    drop(a);
    server.join().unwrap();
}
