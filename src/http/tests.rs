use super::*;
use std::io::{BufReader, Cursor, Read, Write};

const LIMITS: Limits = Limits { max_body: 64 };

fn req(bytes: &[u8]) -> Result<Request, Error> {
    read_request(&mut BufReader::new(bytes), &LIMITS)
}

#[test]
fn parses_a_post_with_length_and_keep_alive() {
    let r = req(b"POST /cni?x=1 HTTP/1.1\r\nHost: h\r\ncontent-length: 2\r\n\r\n{}").unwrap();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/cni"));
    assert_eq!(r.query, "x=1");
    assert_eq!(r.body, b"{}");
    assert!(r.keep_alive);
    let r = req(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(!r.keep_alive);
    let r = req(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert!(!r.keep_alive);
}

#[test]
fn chunked_request_body() {
    let r = req(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x\r\nc\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.body, b"abc");
}

#[test]
fn bounds_and_bad_input_are_errors_not_allocations() {
    let status = |b: &[u8]| match req(b) {
        Err(Error::Bad(s, _)) => s,
        other => panic!("{other:?}"),
    };
    // A chunk size near usize::MAX after a first chunk: 413, not an
    // overflowed bound and a panicking slice (review finding).
    assert_eq!(
        status(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n"
        ),
        413
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n"),
        413
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n"),
        413
    );
    assert_eq!(status(b"GET / HTTP/2\r\n\r\n"), 400);
    assert_eq!(status(b"get / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"GET /\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"), 400);
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
        400
    );
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE + 10));
    assert_eq!(status(long.as_bytes()), 431);
    let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
    assert_eq!(
        status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
        431
    );
    assert!(matches!(req(b""), Err(Error::Closed)));
}

/// A stream whose reads come from `input` and whose writes are kept.
struct Duplex {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn client_reads_length_chunked_and_close_delimited_responses() {
    let mut answers = Vec::new();
    write_response(&mut answers, &Reply::json(200, "{\"a\":1}"), true).unwrap();
    answers.extend_from_slice(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    answers.extend_from_slice(b"HTTP/1.0 200 OK\r\n\r\nrest of stream");
    let mut c = Client::new(
        Duplex {
            input: Cursor::new(answers),
            output: Vec::new(),
        },
        "localhost",
    );
    let r = c
        .request("POST", "/cni", Some("application/json"), b"{}")
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\":1}"[..]));
    assert_eq!(r.headers.get("content-type"), Some("application/json"));
    assert!(c.reusable());
    let r = c.request("GET", "/status", None, b"").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (503, &b"abc"[..]));
    let r = c.request("GET", "/x", None, b"").unwrap();
    assert_eq!(r.body, b"rest of stream");
    assert!(!c.reusable());
    assert!(matches!(
        c.request("GET", "/", None, b""),
        Err(Error::Closed)
    ));
    let sent = String::from_utf8(c.get_ref().output.clone()).unwrap();
    assert!(sent.starts_with(
        "POST /cni HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}GET /status HTTP/1.1\r\n"
    ), "{sent}");
}

#[test]
fn server_response_round_trips_through_the_parser() {
    let mut out = Vec::new();
    write_response(&mut out, &Reply::text(404, "nope"), false).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
    );
}
