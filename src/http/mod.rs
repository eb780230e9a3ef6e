//! Minimal HTTP/1.1 over any byte stream (unix sockets in practice): the
//! server side parses requests with bounded sizes, the client side sends a
//! request and reads a Content-Length or chunked response, keeping the
//! connection open for the next one. Layer 4: imports nothing of cnibox.
//!
//! Enough of RFC 9112 for JSON APIs and `curl --unix-socket`: no
//! pipelining, no trailers, no `Expect: 100-continue` (curl only sends it
//! for bodies over 1 MiB), no transfer codings on requests but `chunked`.

mod client;
mod server;

#[allow(unused_imports)] // general API: other clients (etcd) name it
pub use client::{Client, Response};
pub use server::{read_request, write_response, Limits, Reply, Request};

use std::fmt;
use std::io::BufRead;

/// The longest request or status line, or header line, we accept.
pub const MAX_LINE: usize = 8 << 10;
/// The most header lines in one message.
pub const MAX_HEADERS: usize = 64;

/// Why a message could not be read.
#[derive(Debug)]
pub enum Error {
    /// The stream ended cleanly before the first byte of a message.
    Closed,
    /// The peer broke the protocol (status to answer with, and why).
    Bad(u16, String),
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Closed => write!(f, "connection closed"),
            Error::Bad(status, why) => write!(f, "{why} ({status})"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

fn bad(status: u16, why: impl Into<String>) -> Error {
    Error::Bad(status, why.into())
}

/// Header names and values as received (names compared case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Does a comma-separated header (Connection, Transfer-Encoding) hold
    /// `token`?
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// One line ending in CRLF (or LF), without it; at most `MAX_LINE` bytes.
/// `Ok(None)`: clean end of stream before any byte.
fn read_line(r: &mut dyn BufRead) -> Result<Option<String>, Error> {
    let mut buf = Vec::new();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(bad(400, "stream ended inside a line"));
        }
        let (used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        buf.extend_from_slice(&avail[..used]);
        r.consume(used);
        if buf.len() > MAX_LINE + 2 {
            return Err(bad(431, format!("line longer than {MAX_LINE} bytes")));
        }
        if done {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return String::from_utf8(buf)
                .map(Some)
                .map_err(|_| bad(400, "line is not UTF-8"));
        }
    }
}

/// Header lines up to the empty line.
fn read_headers(r: &mut dyn BufRead) -> Result<Headers, Error> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| bad(400, "stream ended inside the headers"))?;
        if line.is_empty() {
            return Ok(Headers(headers));
        }
        if headers.len() == MAX_HEADERS {
            return Err(bad(431, format!("more than {MAX_HEADERS} header lines")));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(400, format!("header line without a colon: {line:?}")))?;
        if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
            return Err(bad(400, format!("bad header name {name:?}")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
}

/// The body a message's headers announce, at most `limit` bytes.
fn read_body(r: &mut dyn BufRead, headers: &Headers, limit: usize) -> Result<Vec<u8>, Error> {
    if headers.has_token("Transfer-Encoding", "chunked") {
        return read_chunked(r, limit);
    }
    if headers.get("Transfer-Encoding").is_some() {
        return Err(bad(501, "only the chunked transfer coding is supported"));
    }
    let len = match headers.get("Content-Length") {
        None => return Ok(Vec::new()),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| bad(400, format!("bad Content-Length {v:?}")))?,
    };
    if len > limit {
        return Err(bad(413, format!("body of {len} bytes is over {limit}")));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad(400, "stream ended inside the body"),
        _ => Error::Io(e),
    })?;
    Ok(body)
}

fn read_chunked(r: &mut dyn BufRead, limit: usize) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| bad(400, "stream ended inside a chunk"))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| bad(400, format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers (ignored) up to the empty line.
            read_headers(r)?;
            return Ok(body);
        }
        if size > limit.saturating_sub(body.len()) {
            return Err(bad(413, format!("chunked body is over {limit} bytes")));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let end = read_line(r)?;
        if end.as_deref() != Some("") {
            return Err(bad(400, "chunk not followed by CRLF"));
        }
    }
}

/// The standard reason phrase of the statuses we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
