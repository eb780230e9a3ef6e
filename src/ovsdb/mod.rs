//! A small OVSDB client (RFC 7047): JSON-RPC over a unix socket, with
//! `transact` and the `echo` keepalive answered. No `monitor`: the plugin
//! polls the few columns it waits on.
//!
//! Messages are bare JSON objects with no framing: they are cut out of the
//! byte stream by parsing. Every read and write has a deadline.
//!
//! Layer 4: imports nothing of cnibox.

pub mod ops;

use serde_json::{json, Value};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The socket could not be reached (no server, no file, no permission).
    Connect(String),
    /// The deadline passed.
    Timeout(String),
    /// The peer broke the protocol or the connection.
    Protocol(String),
    /// The database refused the transaction: `error` and `details` of the
    /// first failed operation, and its index.
    Db {
        op: usize,
        error: String,
        details: String,
    },
}

impl Error {
    /// A `constraint violation` (a duplicate name in an indexed column):
    /// a concurrent writer won, so a retry may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Db { error, .. } if error == "constraint violation")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(m) | Error::Timeout(m) | Error::Protocol(m) => f.write_str(m),
            Error::Db { op, error, details } if details.is_empty() => {
                write!(f, "ovsdb: operation {op}: {error}")
            }
            Error::Db { op, error, details } => {
                write!(f, "ovsdb: operation {op}: {error}: {details}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The largest reply accepted (a select of every Port of a big switch
/// stays far below).
const MAX_MESSAGE: usize = 64 << 20;

/// A connection to an ovsdb-server.
pub struct Client {
    stream: UnixStream,
    path: String,
    buf: Vec<u8>,
    next_id: u64,
    timeout: Duration,
}

impl Client {
    /// Connect to the unix socket at `path`; `timeout` bounds every call.
    pub fn connect(path: &str, timeout: Duration) -> Result<Client, Error> {
        let stream = UnixStream::connect(path)
            .map_err(|e| Error::Connect(format!("ovsdb: cannot connect to {path}: {e}")))?;
        Ok(Client {
            stream,
            path: path.to_string(),
            buf: Vec::new(),
            next_id: 0,
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `ops` as one transaction on `db`; the per-operation results on
    /// success, the first failed operation's error otherwise.
    pub fn transact(&mut self, db: &str, ops: &[Value]) -> Result<Vec<Value>, Error> {
        let mut params = vec![Value::String(db.to_string())];
        params.extend(ops.iter().cloned());
        let reply = self.call("transact", Value::Array(params))?;
        check_results(reply, ops.len())
    }

    /// `list_dbs`: the names of the server's databases.
    pub fn list_dbs(&mut self) -> Result<Vec<String>, Error> {
        let reply = self.call("list_dbs", json!([]))?;
        serde_json::from_value(reply)
            .map_err(|e| Error::Protocol(format!("ovsdb: bad list_dbs reply: {e}")))
    }

    /// Send one request and wait for its reply, answering `echo`
    /// requests and skipping notifications meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let deadline = Instant::now() + self.timeout;
        self.next_id += 1;
        let id = self.next_id;
        let req = json!({"method": method, "params": params, "id": id});
        self.send(&req, deadline)?;
        loop {
            let msg = self.receive(deadline)?;
            if msg.get("method").and_then(Value::as_str) == Some("echo") {
                let answer = json!({
                    "result": msg.get("params").cloned().unwrap_or(json!([])),
                    "error": null,
                    "id": msg.get("id").cloned().unwrap_or(Value::Null),
                });
                self.send(&answer, deadline)?;
                continue;
            }
            if msg.get("id").and_then(Value::as_u64) != Some(id) {
                continue; // a notification or a stale reply
            }
            match msg.get("error") {
                None | Some(Value::Null) => {}
                Some(e) => {
                    return Err(Error::Protocol(format!(
                        "ovsdb: {method} failed: {}",
                        e.as_str().map(str::to_string).unwrap_or(e.to_string())
                    )))
                }
            }
            return Ok(msg.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout(format!(
                "ovsdb: no answer from {} within {:?}",
                self.path, self.timeout
            )));
        }
        Ok(left)
    }

    fn send(&mut self, msg: &Value, deadline: Instant) -> Result<(), Error> {
        let bytes = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
        let left = self.remaining(deadline)?;
        let _ = self.stream.set_write_timeout(Some(left));
        self.stream
            .write_all(&bytes)
            .map_err(|e| self.io_error("write to", e))
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                Error::Timeout(format!(
                    "ovsdb: no answer from {} within {:?}",
                    self.path, self.timeout
                ))
            }
            _ => Error::Protocol(format!("ovsdb: {what} {}: {e}", self.path)),
        }
    }

    /// The next whole JSON value from the stream.
    fn receive(&mut self, deadline: Instant) -> Result<Value, Error> {
        loop {
            if let Some(v) = take_message(&mut self.buf)? {
                return Ok(v);
            }
            if self.buf.len() > MAX_MESSAGE {
                return Err(Error::Protocol(format!(
                    "ovsdb: message from {} larger than {MAX_MESSAGE} bytes",
                    self.path
                )));
            }
            let left = self.remaining(deadline)?;
            let _ = self.stream.set_read_timeout(Some(left));
            let mut chunk = [0u8; 16384];
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| self.io_error("read from", e))?;
            if n == 0 {
                return Err(Error::Protocol(format!(
                    "ovsdb: {} closed the connection",
                    self.path
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Cut the first complete JSON value off `buf`; `None` when it is not all
/// there yet.
fn take_message(buf: &mut Vec<u8>) -> Result<Option<Value>, Error> {
    let start = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if start == buf.len() {
        buf.clear();
        return Ok(None);
    }
    let mut it = serde_json::Deserializer::from_slice(&buf[start..]).into_iter::<Value>();
    match it.next() {
        Some(Ok(v)) => {
            let used = start + it.byte_offset();
            buf.drain(..used);
            Ok(Some(v))
        }
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(Error::Protocol(format!("ovsdb: bad JSON from server: {e}"))),
        None => Ok(None),
    }
}

/// A transact reply: one result per operation; any with `error` fails the
/// whole transaction (an extra trailing entry reports a commit error).
fn check_results(reply: Value, n_ops: usize) -> Result<Vec<Value>, Error> {
    let Value::Array(results) = reply else {
        return Err(Error::Protocol(format!(
            "ovsdb: transact reply is not an array: {reply}"
        )));
    };
    for (i, r) in results.iter().enumerate() {
        if let Some(e) = r.get("error").filter(|e| !e.is_null()) {
            return Err(Error::Db {
                op: i,
                error: e.as_str().map(str::to_string).unwrap_or(e.to_string()),
                details: r
                    .get("details")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    if results.len() < n_ops {
        return Err(Error::Protocol(format!(
            "ovsdb: transact answered {} of {n_ops} operations",
            results.len()
        )));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn messages_are_cut_from_a_stream() {
        let mut buf = br#" {"id":1,"result":[]}{"id":2,"#.to_vec();
        let v = take_message(&mut buf).unwrap().unwrap();
        assert_eq!(v["id"], 1);
        assert_eq!(take_message(&mut buf).unwrap(), None);
        buf.extend_from_slice(br#""result":{}}"#);
        assert_eq!(take_message(&mut buf).unwrap().unwrap()["id"], 2);
        assert!(buf.is_empty());
        let mut bad = b"]".to_vec();
        assert!(take_message(&mut bad).is_err());
    }

    #[test]
    fn the_first_failed_operation_is_the_error() {
        let reply =
            json!([{"uuid": ["uuid", "x"]}, {"error": "constraint violation", "details": "dup"}]);
        let e = check_results(reply, 2).unwrap_err();
        assert!(e.is_conflict());
        assert_eq!(
            e.to_string(),
            "ovsdb: operation 1: constraint violation: dup"
        );
        // A commit error comes as an extra entry.
        let reply = json!([{"count": 1}, {"error": "timed out"}]);
        assert!(check_results(reply, 1).is_err());
        assert_eq!(check_results(json!([{"count": 1}]), 1).unwrap().len(), 1);
        assert!(check_results(json!([]), 1).is_err());
    }

    /// A fake server that sends an echo first, then answers the transact:
    /// the client answers the echo and returns the transact result.
    #[test]
    fn echo_is_answered_and_the_reply_matched_by_id() {
        let dir = std::env::temp_dir().join(format!("ovsdb-ut-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("db.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let req = loop {
                if let Some(v) = take_message(&mut buf).unwrap() {
                    break v;
                }
                let n = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
            };
            s.write_all(br#"{"method":"echo","params":["hi"],"id":"echo"}"#)
                .unwrap();
            let echo = loop {
                if let Some(v) = take_message(&mut buf).unwrap() {
                    break v;
                }
                let n = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
            };
            let reply = json!({"id": req["id"], "error": null, "result": [{"count": 1}]});
            s.write_all(reply.to_string().as_bytes()).unwrap();
            (req, echo)
        });
        let mut c = Client::connect(path.to_str().unwrap(), Duration::from_secs(5)).unwrap();
        let ops = [json!({"op": "comment", "comment": "x"})];
        let r = c.transact("Open_vSwitch", &ops).unwrap();
        assert_eq!(r, vec![json!({"count": 1})]);
        let (req, echo) = server.join().unwrap();
        assert_eq!(
            req,
            json!({"method": "transact", "params": ["Open_vSwitch", {"op": "comment", "comment": "x"}], "id": 1})
        );
        assert_eq!(echo, json!({"result": ["hi"], "error": null, "id": "echo"}));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_silent_server_times_out() {
        let dir = std::env::temp_dir().join(format!("ovsdb-ut2-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("db.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = UnixListener::bind(&path).unwrap();
        let mut c = Client::connect(path.to_str().unwrap(), Duration::from_millis(100)).unwrap();
        let e = c.list_dbs().unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            Client::connect(path.to_str().unwrap(), Duration::from_millis(100)),
            Err(Error::Connect(_))
        ));
    }
}
