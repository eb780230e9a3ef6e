//! The server side: read one request, write one response.

use super::{bad, read_body, read_headers, read_line, reason, Error, Headers};
use std::io::{BufRead, Write};

/// Bounds on what one request may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target without its query string.
    pub path: String,
    pub query: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// May the connection carry another request after this one?
    pub keep_alive: bool,
}

/// Read the next request. `Error::Closed`: the client closed the connection
/// between requests (the normal end of a keep-alive connection).
pub fn read_request(r: &mut dyn BufRead, limits: &Limits) -> Result<Request, Error> {
    let line = loop {
        match read_line(r)? {
            None => return Err(Error::Closed),
            // RFC 9112 2.2: ignore empty lines before a request line.
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(400, format!("bad request line {line:?}")));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(bad(400, format!("unsupported protocol {version:?}"))),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad(400, format!("bad method {method:?}")));
    }
    let headers = read_headers(r)?;
    let body = read_body(r, &headers, limits.max_body)?;
    let keep_alive = if http10 {
        headers.has_token("Connection", "keep-alive")
    } else {
        !headers.has_token("Connection", "close")
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
        keep_alive,
    })
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    #[allow(dead_code)] // general API
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Write `reply` with a Content-Length; `keep_alive` false adds
/// `Connection: close` (the caller then closes).
pub fn write_response(w: &mut dyn Write, reply: &Reply, keep_alive: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(&reply.body);
    w.write_all(&msg)?;
    w.flush()
}
