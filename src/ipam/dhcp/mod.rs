//! The `dhcp` applet (reference: plugins/ipam/dhcp). Two roles in one
//! binary, as the reference: `dhcp daemon [flags]` is the long-lived DHCP
//! client holding every lease (see `daemon`), any other call is the IPAM
//! plugin below, a thin client of the daemon speaking Go's net/rpc (gob over
//! HTTP CONNECT on a unix socket), so it works with the Go daemon too.
//!
//! - ADD: `DHCP.Allocate`, the reply printed in the config's version.
//! - DEL: `DHCP.Release`. Beyond the reference: when no daemon answers, the
//!   release is recorded as a pending file under the lease directory (the
//!   cnibox daemon sends it when it starts) and DEL succeeds.
//! - CHECK: beyond the reference, `DHCP.Check` (the cnibox daemon answers
//!   from the lease it holds and never takes a new one; a Go daemon answers
//!   "can't find method" and is asked `DHCP.Allocate` as the reference
//!   does), then the address must be the one in prevResult.
//! - STATUS (beyond the reference, which has none): code 50 when no
//!   daemon listens on the socket.
//! - Every call is bounded (the reference can wait minutes or forever).

pub mod client;
pub mod config;
pub mod daemon;
pub mod flags;
pub mod lease;
pub mod options;
pub mod pending;
pub mod wire;

use crate::cni::result::CniResult;
use crate::cni::{version, CniError, Plugin, Request};
use crate::gorpc::gob::Value;
use crate::gorpc::rpc::CallError;
use config::IpamConf;
use std::time::Duration;
use wire::CmdArgs;

pub use daemon::daemon_main;

/// The lease daemon inside `cnibox daemon` (thick mode): the defaults of
/// `dhcp daemon` with the host's prefix, on a socket the host bound.
pub fn serve_hosted(listener: std::os::unix::net::UnixListener, host_prefix: &str, dir: &str) {
    let mut cfg = daemon::DaemonConfig {
        host_prefix: host_prefix.to_string(),
        ..Default::default()
    };
    if !dir.is_empty() {
        cfg.lease_dir = dir.to_string();
    }
    let d = daemon::LeaseDaemon::start(cfg);
    if let Err(e) = d.serve(listener) {
        eprintln!("cnibox daemon: dhcp: {e}");
    }
}

#[cfg(test)]
mod tests;

pub const PLUGIN: Plugin = Plugin {
    name: "dhcp",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc: |_| Ok(()),
};

/// The longest a call waits for the daemon (a Go daemon can retry for
/// ~3.5 minutes; the cnibox daemon answers within its `-timeout` bound).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

fn cmd_args(req: &Request) -> CmdArgs {
    let mut netns = req.netns.clone();
    if !netns.is_empty() && !netns.starts_with('/') {
        if let Ok(cwd) = std::env::current_dir() {
            netns = cwd.join(&netns).to_string_lossy().into_owned();
        }
    }
    CmdArgs {
        container_id: req.container_id.clone(),
        netns,
        ifname: req.ifname.clone(),
        args: req.args.clone(),
        path: req.env.get_or_empty("CNI_PATH").to_string(),
        stdin: req.stdin.clone(),
    }
}

fn call(conf: &IpamConf, method: &str, args: &CmdArgs) -> Result<Value, CniError> {
    client::call(&conf.daemon_socket_path, method, args, CALL_TIMEOUT).map_err(|e| match e {
        client::Error::Dial(e) => CniError::internal(format!(
            "error dialing DHCP daemon: dial unix {}: {e}",
            conf.daemon_socket_path
        )),
        client::Error::Call(CallError::Remote(s)) => {
            CniError::internal(format!("error calling {method}: {s}"))
        }
        client::Error::Call(CallError::Io(e)) => {
            CniError::internal(format!("error calling {method}: {e}"))
        }
    })
}

fn allocate(req: &Request, conf: &IpamConf, method: &str) -> Result<CniResult, CniError> {
    let reply = call(conf, method, &cmd_args(req))?;
    wire::result_from_gob(&reply)
        .map_err(|e| CniError::decode(format!("error calling {method}: {e}")))
}

fn add(req: &Request) -> Result<CniResult, CniError> {
    let conf = IpamConf::from_request(req)?;
    let mut result = allocate(req, &conf, "DHCP.Allocate")?;
    result.cni_version = req.version.clone();
    Ok(result)
}

fn del(req: &Request) -> Result<(), CniError> {
    let conf = IpamConf::from_request(req)?;
    let args = cmd_args(req);
    match call(&conf, "DHCP.Release", &args) {
        Ok(_) => Ok(()),
        Err(e) if client::daemon_absent(&conf.daemon_socket_path) => {
            // Beyond the reference: record the release for the daemon.
            pending::record(&conf.lease_dir, &args)
                .map_err(|io| CniError::io(format!("{}; recording a pending release: {io}", e.msg)))
        }
        Err(e) => Err(e),
    }
}

fn check(req: &Request) -> Result<(), CniError> {
    let conf = IpamConf::from_request(req)?;
    // The cnibox daemon answers DHCP.Check from the lease it holds; a Go
    // daemon does not know it, and is asked DHCP.Allocate as the reference.
    let got = match allocate(req, &conf, "DHCP.Check") {
        Err(e) if e.msg.contains("rpc: can't find method") => {
            allocate(req, &conf, "DHCP.Allocate")?
        }
        other => other?,
    };
    let Some(prev) = req.config.get("prevResult").filter(|p| !p.is_null()) else {
        return Ok(());
    };
    let prev = CniResult::parse_as(prev, &req.version)?;
    for ip in &got.ips {
        if !prev
            .ips
            .iter()
            .any(|p| p.address.addr() == ip.address.addr())
        {
            return Err(CniError::internal(format!(
                "dhcp: the lease's address {} is not in prevResult",
                ip.address
            )));
        }
    }
    Ok(())
}

fn status(req: &Request) -> Result<(), CniError> {
    let conf = IpamConf::from_request(req)?;
    if client::daemon_absent(&conf.daemon_socket_path) {
        return Err(CniError::new(
            crate::cni::error::code::NOT_AVAILABLE,
            format!("no DHCP daemon listening on {}", conf.daemon_socket_path),
        ));
    }
    Ok(())
}
