//! The plugin's side of the unix socket: one connection per call, bounded.

use super::wire::CmdArgs;
use crate::gorpc::gob::Value;
use crate::gorpc::rpc::{self, CallError};
use crate::gorpc::CMD_ARGS;
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub enum Error {
    /// No connection: the text Go's dialer prints after `dial unix <path>: `.
    Dial(String),
    Call(CallError),
}

/// `connect: no such file or directory`, as Go words it.
fn go_text(op: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let d = nix::errno::Errno::from_raw(n).desc();
            let mut c = d.chars();
            let lower = c
                .next()
                .map(|f| f.to_lowercase().chain(c).collect::<String>())
                .unwrap_or_default();
            format!("{op}: {lower}")
        }
        None => format!("{op}: {e}"),
    }
}

pub fn call(socket: &str, method: &str, args: &CmdArgs, timeout: Duration) -> Result<Value, Error> {
    let mut conn = UnixStream::connect(socket).map_err(|e| Error::Dial(go_text("connect", &e)))?;
    let _ = conn.set_read_timeout(Some(timeout));
    let _ = conn.set_write_timeout(Some(timeout));
    rpc::call(&mut conn, method, &CMD_ARGS, &args.to_gob()).map_err(Error::Call)
}

/// Is nothing listening on `socket` (missing, or refused)?
pub fn daemon_absent(socket: &str) -> bool {
    match UnixStream::connect(socket) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ),
    }
}
