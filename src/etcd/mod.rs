//! Layer 4: a synchronous etcd v3 client over the JSON gateway (`/v3/*`,
//! etcd 3.4+): HTTP/1.1 with keep-alive, plain or TLS (feature `tls`),
//! optional username/password auth, failover across endpoints, and every
//! call bounded by one deadline so an unreachable cluster is an error in
//! time, never a hang.
//!
//! Gateway facts (checked against etcd 3.4): keys and values are base64,
//! int64s are JSON strings, false and empty fields are left out (a failed
//! txn has no `succeeded`, a range miss no `kvs`).

pub mod http;
mod kv;
#[cfg(feature = "tls")]
mod tls;

pub use kv::Created;

use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `http://host:port` or `https://host:port` URLs.
    pub endpoints: Vec<String>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub ca_file: Option<PathBuf>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub cert_file: Option<PathBuf>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub key_file: Option<PathBuf>,
    /// Username and password (etcd auth).
    pub auth: Option<(String, String)>,
    /// The budget of one whole operation (all retries included).
    pub timeout: Duration,
}

/// What went wrong.
#[derive(Debug)]
pub enum Error {
    /// No endpoint answered within the timeout (`last` is the last failure).
    Unreachable { timeout: Duration, last: String },
    /// An endpoint answered with an error (HTTP status, etcd's message).
    Rejected { status: u16, msg: String },
    /// A TLS failure: certificate refused or not trusted.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(String),
    /// The configuration cannot work (bad URL, unreadable file; `field`
    /// names the config key).
    Config { field: &'static str, msg: String },
    /// The gateway's answer did not parse.
    Protocol(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable { timeout, last } => write!(
                f,
                "no etcd endpoint answered within {:.1}s (last error: {last})",
                timeout.as_secs_f64()
            ),
            Error::Rejected { status, msg } => {
                write!(f, "etcd refused the request (HTTP {status}): {msg}")
            }
            Error::Tls(m) => write!(f, "TLS with etcd failed: {m}"),
            Error::Config { field, msg } => write!(f, "{field}: {msg}"),
            Error::Protocol(m) => write!(f, "unexpected answer from etcd: {m}"),
        }
    }
}

struct Endpoint {
    url: String,
    tls: bool,
    /// `host:port` for the Host header; `host` alone for TLS's name.
    authority: String,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    host: String,
}

fn parse_endpoint(url: &str) -> Result<Endpoint, Error> {
    let bad = |m: &str| Error::Config {
        field: "ipam.endpoints",
        msg: format!("{url:?}: {m}"),
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(bad("not an http:// or https:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let authority = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    } else {
        authority.to_string()
    };
    Ok(Endpoint {
        url: url.to_string(),
        tls,
        authority,
        host: host.to_string(),
    })
}

enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tls::Stream>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// One failed attempt: try the next endpoint, or give up now.
enum Attempt {
    Retry(String),
    Fatal(Error),
}

/// A client for one operation: every call it makes, retries included,
/// ends by one deadline (`timeout` after it was made), so an operation of
/// several calls is bounded by `timeout` too.
pub struct Client {
    endpoints: Vec<Endpoint>,
    timeout: Duration,
    deadline: Instant,
    auth: Option<(String, String)>,
    token: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The endpoint in use and its open connection.
    current: usize,
    conn: Option<Conn>,
}

impl Client {
    /// Check the configuration (no network yet). `start` picks the first
    /// endpoint tried (spread nodes over members).
    pub fn new(cfg: &Config, start: usize) -> Result<Client, Error> {
        if cfg.endpoints.is_empty() {
            return Err(Error::Config {
                field: "ipam.endpoints",
                msg: "at least one endpoint is required".into(),
            });
        }
        let endpoints: Vec<Endpoint> = cfg
            .endpoints
            .iter()
            .map(|u| parse_endpoint(u))
            .collect::<Result<_, _>>()?;
        let any_tls = endpoints.iter().any(|e| e.tls);
        #[cfg(not(feature = "tls"))]
        if any_tls {
            return Err(Error::Config {
                field: "ipam.endpoints",
                msg: "https endpoints need cnibox built with the `tls` feature".into(),
            });
        }
        #[cfg(feature = "tls")]
        let tls = if any_tls {
            let ca = cfg.ca_file.as_deref().ok_or(Error::Config {
                field: "ipam.caFile",
                msg: "required for https endpoints".into(),
            })?;
            let pair = match (&cfg.cert_file, &cfg.key_file) {
                (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(Error::Config {
                        field: "ipam.keyFile",
                        msg: "required with certFile".into(),
                    })
                }
                (None, Some(_)) => {
                    return Err(Error::Config {
                        field: "ipam.certFile",
                        msg: "required with keyFile".into(),
                    })
                }
            };
            Some(tls::config(ca, pair).map_err(|e| match e {
                tls::FileError::Ca(msg) => Error::Config {
                    field: "ipam.caFile",
                    msg,
                },
                tls::FileError::Cert(msg) => Error::Config {
                    field: "ipam.certFile",
                    msg,
                },
                tls::FileError::Key(msg) => Error::Config {
                    field: "ipam.keyFile",
                    msg,
                },
                tls::FileError::Other(msg) => Error::Tls(msg),
            })?)
        } else {
            None
        };
        Ok(Client {
            current: start % endpoints.len(),
            endpoints,
            timeout: cfg.timeout,
            deadline: Instant::now() + cfg.timeout,
            auth: cfg.auth.clone(),
            token: None,
            #[cfg(feature = "tls")]
            tls,
            conn: None,
        })
    }

    /// POST `body` to `path` (`/v3/kv/range`...) and return the JSON reply,
    /// failing over across endpoints until the deadline.
    pub fn call(&mut self, path: &str, body: &Value) -> Result<Value, Error> {
        let deadline = self.deadline;
        let body = serde_json::to_vec(body).map_err(|e| Error::Protocol(e.to_string()))?;
        let mut tries = 0usize;
        let mut last = String::from("none tried");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Unreachable {
                    timeout: self.timeout,
                    last,
                });
            }
            match self.attempt(path, &body, deadline) {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(msg)) => {
                    last = format!("{}: {msg}", self.endpoints[self.current].url);
                    self.conn = None;
                    self.token = None;
                    self.current = (self.current + 1) % self.endpoints.len();
                    tries += 1;
                    // A full round failed: pause before the next one (an
                    // election or a restart may be under way).
                    if tries.is_multiple_of(self.endpoints.len()) {
                        let left = deadline.saturating_duration_since(Instant::now());
                        std::thread::sleep(left.min(Duration::from_millis(200)));
                    }
                }
            }
        }
    }

    /// How long one step (connect, one request) may take: a share of the
    /// budget, so one dead member cannot use all of it.
    fn step(&self, deadline: Instant) -> Duration {
        let share = (self.timeout / 3).max(Duration::from_millis(500));
        deadline
            .saturating_duration_since(Instant::now())
            .min(share)
            .max(Duration::from_millis(1))
    }

    fn connect(&mut self, deadline: Instant) -> Result<Conn, Attempt> {
        let ep = &self.endpoints[self.current];
        let addrs: Vec<SocketAddr> = ep
            .authority
            .to_socket_addrs()
            .map_err(|e| Attempt::Retry(format!("resolve {}: {e}", ep.authority)))?
            .collect();
        let mut last = format!("{}: no address", ep.authority);
        for addr in addrs {
            let step = self.step(deadline);
            match TcpStream::connect_timeout(&addr, step) {
                Ok(s) => {
                    let io = |e: io::Error| Attempt::Retry(e.to_string());
                    s.set_nodelay(true).map_err(io)?;
                    s.set_read_timeout(Some(step)).map_err(io)?;
                    s.set_write_timeout(Some(step)).map_err(io)?;
                    if !ep.tls {
                        return Ok(Conn::Plain(s));
                    }
                    #[cfg(feature = "tls")]
                    {
                        let cfg = self.tls.as_ref().expect("tls config made in new");
                        return match tls::connect(cfg, &ep.host, s) {
                            Ok(t) => Ok(Conn::Tls(Box::new(t))),
                            Err(e) if tls::is_tls_error(&e) => {
                                Err(Attempt::Fatal(Error::Tls(format!("{}: {e}", ep.url))))
                            }
                            Err(e) => Err(Attempt::Retry(format!("TLS handshake: {e}"))),
                        };
                    }
                    #[cfg(not(feature = "tls"))]
                    unreachable!("https refused in new");
                }
                Err(e) => last = format!("connect {addr}: {e}"),
            }
        }
        Err(Attempt::Retry(last))
    }

    fn set_timeouts(&mut self, step: Duration) -> io::Result<()> {
        let tcp = match self.conn.as_ref() {
            Some(Conn::Plain(s)) => s,
            #[cfg(feature = "tls")]
            Some(Conn::Tls(s)) => s.get_ref(),
            None => return Ok(()),
        };
        tcp.set_read_timeout(Some(step))?;
        tcp.set_write_timeout(Some(step))
    }

    /// One request to the current endpoint (connecting and logging in
    /// first if needed).
    fn attempt(&mut self, path: &str, body: &[u8], deadline: Instant) -> Result<Value, Attempt> {
        if self.conn.is_none() {
            self.conn = Some(self.connect(deadline)?);
        }
        if self.auth.is_some() && self.token.is_none() {
            let (name, password) = self.auth.clone().unwrap_or_default();
            let req = serde_json::json!({"name": name, "password": password});
            let req = serde_json::to_vec(&req)
                .map_err(|e| Attempt::Fatal(Error::Protocol(e.to_string())))?;
            let reply = self.exchange("/v3/auth/authenticate", &req, deadline)?;
            let token = reply.get("token").and_then(Value::as_str).ok_or_else(|| {
                Attempt::Fatal(Error::Protocol(
                    "authenticate: no token in the reply".into(),
                ))
            })?;
            self.token = Some(token.to_string());
        }
        self.exchange(path, body, deadline)
    }

    fn exchange(&mut self, path: &str, body: &[u8], deadline: Instant) -> Result<Value, Attempt> {
        let step = self.step(deadline);
        self.set_timeouts(step)
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let ep = &self.endpoints[self.current];
        let mut headers = Vec::new();
        if let Some(t) = &self.token {
            headers.push(("Authorization", t.as_str()));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let resp = match http::post(conn, &ep.authority, path, &headers, body) {
            Ok(r) => r,
            #[cfg(feature = "tls")]
            Err(e) if tls::is_tls_error(&e) => {
                return Err(Attempt::Fatal(Error::Tls(format!("{}: {e}", ep.url))))
            }
            Err(e) => return Err(Attempt::Retry(e.to_string())),
        };
        if resp.close {
            self.conn = None;
        }
        let json: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let msg = || {
            json.as_ref()
                .and_then(|j| j.get("error").or_else(|| j.get("message")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned())
        };
        match resp.status {
            200 => json.ok_or_else(|| {
                Attempt::Fatal(Error::Protocol(format!(
                    "{path}: reply is not JSON: {}",
                    String::from_utf8_lossy(&resp.body)
                )))
            }),
            // Timeouts, no leader, leader changed, a member stopping: the
            // next member may do better.
            408 | 429 | 500..=599 => {
                Err(Attempt::Retry(format!("HTTP {}: {}", resp.status, msg())))
            }
            s => {
                let m = msg();
                // An expired token: log in again (once per attempt round).
                if m.contains("invalid auth token") && self.token.is_some() {
                    return Err(Attempt::Retry(m));
                }
                Err(Attempt::Fatal(Error::Rejected { status: s, msg: m }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = parse_endpoint("http://127.0.0.1:2379").unwrap();
        assert_eq!(
            (e.tls, e.authority.as_str(), e.host.as_str()),
            (false, "127.0.0.1:2379", "127.0.0.1")
        );
        let e = parse_endpoint("https://[::1]:2379/").unwrap();
        assert_eq!(
            (e.tls, e.authority.as_str(), e.host.as_str()),
            (true, "[::1]:2379", "::1")
        );
        let e = parse_endpoint("https://etcd.example").unwrap();
        assert_eq!(e.authority, "etcd.example:443");
        assert!(parse_endpoint("etcd:2379").is_err());
        assert!(parse_endpoint("http://").is_err());
    }

    #[test]
    fn a_closed_port_is_unreachable_within_the_timeout() {
        // Bind then drop: the port is (almost surely) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = Config {
            endpoints: vec![format!("http://127.0.0.1:{port}")],
            timeout: Duration::from_millis(600),
            ..Default::default()
        };
        let t = Instant::now();
        let e = Client::new(&cfg, 0)
            .unwrap()
            .call("/v3/kv/range", &serde_json::json!({}))
            .unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}
