//! Go's `net/rpc` over HTTP CONNECT: the client call and the server loop.
//!
//! Client: `CONNECT /_goRPC_ HTTP/1.0\n\n`, the server answers
//! `HTTP/1.0 200 Connected to Go RPC\n\n`, then each side writes a gob
//! stream: the client `Request{ServiceMethod, Seq}` + the argument, the
//! server `Response{ServiceMethod, Seq, Error}` + the reply (an empty struct
//! when `Error` is set).

use super::gob::{Decoder, Encoder, Ty, Value};
use std::io::{self, BufReader, Read, Write};

pub const CONNECT: &[u8] = b"CONNECT /_goRPC_ HTTP/1.0\n\n";
pub const CONNECTED: &[u8] = b"HTTP/1.0 200 Connected to Go RPC\n\n";
const MAX_HEADER: usize = 8192;

pub static REQUEST: Ty = Ty::Struct {
    name: "Request",
    fields: &[("ServiceMethod", &Ty::String), ("Seq", &Ty::Uint)],
};

pub static RESPONSE: Ty = Ty::Struct {
    name: "Response",
    fields: &[
        ("ServiceMethod", &Ty::String),
        ("Seq", &Ty::Uint),
        ("Error", &Ty::String),
    ],
};

/// `struct{}`: the reply to an error and to calls that return nothing.
pub static EMPTY: Ty = Ty::Struct {
    name: "",
    fields: &[],
};

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// The connection (dial, read, write, a timeout).
    Io(io::Error),
    /// The server answered with `Error` set.
    Remote(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Remote(s) => write!(f, "{s}"),
        }
    }
}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> Self {
        CallError::Io(e)
    }
}

/// Read an HTTP header block (up to the blank line) byte by byte, so no
/// gob byte after it is consumed.
fn read_header(r: &mut impl Read) -> io::Result<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !(buf.ends_with(b"\n\n") || buf.ends_with(b"\r\n\r\n")) {
        if buf.len() > MAX_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP header too long",
            ));
        }
        if r.read(&mut b)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The client's request bytes after CONNECT (fresh gob stream).
pub fn request_bytes(method: &str, args_ty: &'static Ty, args: &Value) -> Vec<u8> {
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    let req = Value::fields(vec![
        ("ServiceMethod", Value::String(method.to_string())),
        ("Seq", Value::Uint(0)),
    ]);
    enc.encode(&mut out, &REQUEST, &req);
    enc.encode(&mut out, args_ty, args);
    out
}

/// One call on a fresh connection `conn`: the reply value.
pub fn call<S: Read + Write>(
    conn: &mut S,
    method: &str,
    args_ty: &'static Ty,
    args: &Value,
) -> Result<Value, CallError> {
    conn.write_all(CONNECT)?;
    let status = read_header(conn)?;
    let first = status.lines().next().unwrap_or_default();
    if first != "HTTP/1.0 200 Connected to Go RPC" {
        return Err(CallError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected HTTP response: {first}"),
        )));
    }
    conn.write_all(&request_bytes(method, args_ty, args))?;
    conn.flush()?;
    let mut dec = Decoder::new(conn);
    let resp = dec.decode()?;
    let body = dec.decode()?;
    let err = resp.str_field("Error");
    if !err.is_empty() {
        return Err(CallError::Remote(err.to_string()));
    }
    Ok(body)
}

/// What a server handler answers: the reply's type and value, or an error
/// text for `Response.Error`.
pub type Reply = Result<(&'static Ty, Value), String>;

/// Serve one connection until the peer closes it: the HTTP CONNECT
/// handshake, then calls answered by `handler(method, args)`. `prepare`
/// reserves type ids on the fresh encoder (Go numbers types per process, so a
/// server can mimic the ids a Go daemon would use). `reader` and `writer`
/// are the two halves of the connection (e.g. a `UnixStream` and its clone).
pub fn serve_conn<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    prepare: impl FnOnce(&mut Encoder),
    mut handler: impl FnMut(&str, &Value) -> Reply,
) -> io::Result<()> {
    let header = read_header(&mut reader)?;
    if !header.starts_with("CONNECT ") {
        writer.write_all(
            b"HTTP/1.0 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n405 must CONNECT\n",
        )?;
        return Ok(());
    }
    writer.write_all(CONNECTED)?;
    let mut enc = Encoder::new();
    prepare(&mut enc);
    let mut dec = Decoder::new(BufReader::new(reader));
    loop {
        let req = match dec.decode() {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let args = dec.decode()?;
        let method = req.str_field("ServiceMethod").to_string();
        let seq = match req.field("Seq") {
            Some(Value::Uint(s)) => *s,
            _ => 0,
        };
        let (ty, body, err) = match handler(&method, &args) {
            Ok((ty, v)) => (ty, v, String::new()),
            Err(e) => (&EMPTY, Value::Struct(vec![]), e),
        };
        let resp = Value::fields(vec![
            ("ServiceMethod", Value::String(method)),
            ("Seq", Value::Uint(seq)),
            ("Error", Value::String(err)),
        ]);
        let mut out = Vec::new();
        enc.encode(&mut out, &RESPONSE, &resp);
        enc.encode(&mut out, ty, &body);
        writer.write_all(&out)?;
        writer.flush()?;
    }
}
