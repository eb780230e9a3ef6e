//! The client side: one request at a time over a kept-alive stream.

use super::{bad, read_body, read_headers, read_line, Error, Headers};
use std::io::{BufReader, Read, Write};

/// The largest response body a client accepts.
pub const MAX_RESPONSE: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// An HTTP/1.1 client over any stream (a unix socket, a TCP or TLS stream).
pub struct Client<S: Read + Write> {
    stream: BufReader<S>,
    host: String,
    /// False once the server said `Connection: close`.
    reusable: bool,
}

impl<S: Read + Write> Client<S> {
    /// `host` is the Host header's value (`localhost` for a unix socket).
    pub fn new(stream: S, host: &str) -> Self {
        Client {
            stream: BufReader::new(stream),
            host: host.to_string(),
            reusable: true,
        }
    }

    /// May another request be sent on this connection?
    #[allow(dead_code)] // general API: the shim sends one request
    pub fn reusable(&self) -> bool {
        self.reusable
    }

    #[allow(dead_code)] // general API
    pub fn get_ref(&self) -> &S {
        self.stream.get_ref()
    }

    /// Send one request and read its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, Error> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        let w = self.stream.get_mut();
        w.write_all(&msg)?;
        w.flush()?;
        self.read_response(method == "HEAD")
    }

    fn read_response(&mut self, head_only: bool) -> Result<Response, Error> {
        let r = &mut self.stream;
        let (status, headers) = loop {
            let line = read_line(r)?.ok_or(Error::Closed)?;
            let mut parts = line.splitn(3, ' ');
            let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
                return Err(bad(502, format!("bad status line {line:?}")));
            };
            if !version.starts_with("HTTP/1.") {
                return Err(bad(502, format!("bad status line {line:?}")));
            }
            let status: u16 = code
                .parse()
                .map_err(|_| bad(502, format!("bad status line {line:?}")))?;
            let headers = read_headers(r)?;
            // Interim responses (100 Continue) come before the real one.
            if !(100..200).contains(&status) {
                break (status, headers);
            }
        };
        let no_body = head_only || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if headers.get("Content-Length").is_some()
            || headers.get("Transfer-Encoding").is_some()
        {
            read_body(r, &headers, MAX_RESPONSE)?
        } else {
            // No length: the body runs to the end of the stream.
            self.reusable = false;
            let mut body = Vec::new();
            r.take(MAX_RESPONSE as u64 + 1).read_to_end(&mut body)?;
            if body.len() > MAX_RESPONSE {
                return Err(bad(502, "response body too large"));
            }
            body
        };
        if headers.has_token("Connection", "close") {
            self.reusable = false;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}
