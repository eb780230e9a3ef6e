//! A minimal HTTP/1.1 client exchange over any `Read + Write` stream (a
//! `TcpStream`, a TLS stream, a unix socket): one POST with a JSON body,
//! one response read by `Content-Length` or chunked encoding. The stream is
//! kept open for the next request unless the server says `Connection:
//! close`. Never half-closes the write side (etcd's gateway answers a
//! half-closed request with 408 "context canceled").

use std::io::{self, BufRead, BufReader, Read, Write};

/// The largest response body we accept (a range over a /16 pool with its
/// values is a few MB).
const MAX_BODY: usize = 64 << 20;
/// The largest status line or header line.
const MAX_LINE: usize = 16 << 10;

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server will close the connection after this response.
    pub close: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Send `POST path` with `body` and `headers` (name, value) and read the
/// response.
pub fn post<S: Read + Write>(
    stream: &mut S,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "header with a line break",
            ));
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut msg = req.into_bytes();
    msg.extend_from_slice(body);
    stream.write_all(&msg)?;
    stream.flush()?;
    read_response(stream)
}

fn read_line<R: BufRead>(r: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    if line.len() > MAX_LINE || !line.ends_with(b"\n") {
        return Err(bad("response line too long or truncated"));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| bad("response line is not UTF-8"))
}

/// Read one response. No pipelining, so a `BufReader` per response never
/// holds bytes of the next one.
pub fn read_response<S: Read>(stream: &mut S) -> io::Result<Response> {
    let mut r = BufReader::new(stream);
    let status_line = read_line(&mut r)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("not an HTTP/1.x response: {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line: {status_line:?}")))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = version == "HTTP/1.0";
    loop {
        let line = read_line(&mut r)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("bad header line: {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("bad Content-Length: {value:?}")))?,
                )
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let body = if chunked {
        read_chunked(&mut r)?
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(bad(format!("response body of {n} bytes is too large")));
        }
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        body
    } else {
        // No length: the body runs to the end of the connection.
        close = true;
        let mut body = Vec::new();
        r.take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
        if body.len() > MAX_BODY {
            return Err(bad("response body is too large"));
        }
        body
    };
    Ok(Response {
        status,
        body,
        close,
    })
}

fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let n = usize::from_str_radix(size, 16)
            .map_err(|_| bad(format!("bad chunk size: {line:?}")))?;
        if n == 0 {
            // Trailers, up to the empty line.
            while !read_line(r)?.is_empty() {}
            return Ok(body);
        }
        if n > MAX_BODY.saturating_sub(body.len()) {
            return Err(bad("response body is too large"));
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r)?.is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that reads a canned response and records what is written.
    struct Canned {
        input: io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for Canned {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Canned {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn canned(s: &str) -> Canned {
        Canned {
            input: io::Cursor::new(s.as_bytes().to_vec()),
            written: Vec::new(),
        }
    }

    #[test]
    fn content_length_response_and_the_request_sent() {
        let mut s = canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\n{}");
        let r = post(
            &mut s,
            "h:1",
            "/v3/kv/range",
            &[("Authorization", "t")],
            b"{}",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.close),
            (200, &b"{}"[..], false)
        );
        let sent = String::from_utf8(s.written).unwrap();
        assert!(sent.starts_with("POST /v3/kv/range HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(sent.contains("Content-Length: 2\r\nAuthorization: t\r\n\r\n{}"));
    }

    #[test]
    fn chunked_and_close() {
        let mut s = canned(
            "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        );
        let r = read_response(&mut s).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.close),
            (503, &b"abcde"[..], true)
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(read_response(&mut canned("SSH-2.0\r\n\r\n")).is_err());
        assert!(read_response(&mut canned(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"
        ))
        .is_err());
        assert!(read_response(&mut canned("")).is_err());
        assert!(post(&mut canned(""), "h", "/", &[("a", "b\r\nc")], b"").is_err());
    }
}
