//! The shim side of thick mode: an applet whose config has a top-level
//! `"cniboxDaemon": "SOCKET"` sends the whole call (its `CNI_*` variables
//! and stdin) to `cnibox daemon` and relays the answer unchanged: the same
//! stdout, the same exit status. A daemon that is not there, busy, or dies
//! mid-call is a code-11 error ("try again later") within a bounded time.
//! No netlink, no file I/O: the socket only.

use super::IN_DAEMON;
use crate::cni::env::Command;
use crate::cni::error::code;
use crate::cni::invoke::Output;
use crate::cni::json::{self, GoValue};
use crate::cni::skel::MAX_STDIN;
use crate::cni::{version, CniError, Env};
use crate::http::{self, Client};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The config key naming the daemon's socket.
pub const KEY: &str = "cniboxDaemon";

/// How long to wait for the daemon to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for an answer (an ADD may wait for DAD or a lease):
/// longer than any bound inside the daemon (the dhcp plugin waits up to
/// 300 s for its lease daemon), so the shim never reports code 11 for a
/// call the daemon then completes.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(330);

/// Forward the call when its config names a daemon; otherwise run `local`
/// on the same stdin bytes (so a direct run is unchanged).
pub fn run_or_forward(
    applet: &str,
    env: &Env,
    stdin: &mut dyn Read,
    local: impl FnOnce(&mut dyn Read) -> Output,
) -> Output {
    // Inside the daemon (an exec'd delegate): never forward back.
    let forwardable =
        Command::parse(env.get_or_empty("CNI_COMMAND")).is_some_and(|c| c != Command::Version);
    if !forwardable || !env.get_or_empty(IN_DAEMON).is_empty() {
        return local(stdin);
    }
    // One byte over the skel's limit, so it still reports the oversize.
    let mut buf = Vec::new();
    if stdin
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut buf)
        .is_err()
    {
        return local(&mut (&buf[..]).chain(stdin));
    }
    let Ok(config) = json::parse(&buf) else {
        return local(&mut &buf[..]);
    };
    let err_version =
        version::config_version(&config).unwrap_or_else(|_| version::CURRENT.to_string());
    match config.get(KEY) {
        None | Some(GoValue::Null) => local(&mut &buf[..]),
        Some(GoValue::String(s)) if s.is_empty() => local(&mut &buf[..]),
        Some(GoValue::String(socket)) => {
            forward(applet, socket, env, &buf).unwrap_or_else(|e| failed(&e, &err_version))
        }
        Some(_) => failed(
            &CniError::config(format!(
                "{KEY}: expected the daemon's socket path (a string)"
            )),
            &err_version,
        ),
    }
}

fn failed(e: &CniError, version: &str) -> Output {
    Output {
        stdout: e.to_json(version).into_bytes(),
        status: 1,
    }
}

fn try_again(msg: String) -> CniError {
    CniError::new(code::TRY_AGAIN_LATER, msg)
}

fn forward(applet: &str, socket: &str, env: &Env, stdin: &[u8]) -> Result<Output, CniError> {
    let vars: BTreeMap<String, String> = env
        .iter()
        .filter_map(|(k, v)| Some((k.to_str()?, v.to_str()?)))
        .filter(|(k, _)| k.starts_with("CNI_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stdin =
        std::str::from_utf8(stdin).map_err(|_| CniError::decode("network config is not UTF-8"))?;
    let body = serde_json::json!({ "applet": applet, "env": vars, "stdin": stdin }).to_string();
    let stream = connect(socket)?;
    let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
    let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
    let mut client = Client::new(stream, "localhost");
    let r = client
        .request("POST", "/cni", Some("application/json"), body.as_bytes())
        .map_err(|e| {
            try_again(format!(
                "cnibox daemon at {socket} gave no answer ({}): the call may or may not \
                 have taken effect; retry (DEL, then ADD)",
                match e {
                    http::Error::Closed => "connection closed".to_string(),
                    other => other.to_string(),
                }
            ))
        })?;
    let text = String::from_utf8_lossy(&r.body);
    match r.status {
        200 => {
            #[derive(serde::Deserialize)]
            struct Answer {
                stdout: String,
                #[serde(rename = "exitCode")]
                exit_code: i32,
            }
            let a: Answer = serde_json::from_slice(&r.body).map_err(|e| {
                CniError::internal(format!("cnibox daemon at {socket}: bad answer: {e}"))
            })?;
            Ok(Output {
                stdout: a.stdout.into_bytes(),
                status: a.exit_code,
            })
        }
        503 => Err(try_again(format!(
            "cnibox daemon at {socket} is busy: {}",
            text.trim()
        ))),
        s => Err(CniError::internal(format!(
            "cnibox daemon at {socket} refused the call ({s}): {}",
            text.trim()
        ))),
    }
}

/// Connect, giving up after `CONNECT_TIMEOUT` (a daemon that stopped
/// accepting leaves connects hanging on a full backlog).
fn connect(socket: &str) -> Result<UnixStream, CniError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = socket.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(UnixStream::connect(&path));
    });
    match rx.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(try_again(format!(
            "cnibox daemon is not reachable at {socket}: {e}; try again later"
        ))),
        Err(_) => Err(try_again(format!(
            "cnibox daemon at {socket} did not accept within {}s; try again later",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}
