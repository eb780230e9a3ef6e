//! The daemon's command line in Go's `flag` syntax (`-x v`, `--x v`,
//! `-x=v`, booleans as `-x` or `-x=false`; parsing stops at the first
//! non-flag or after `--`), and running it as a process: pidfile, socket or
//! systemd socket activation, SIGTERM/SIGINT.

use super::daemon::{DaemonConfig, LeaseDaemon};
use nix::sys::signal::{SigSet, Signal};
use std::ffi::OsString;
use std::os::unix::net::UnixListener;
use std::time::Duration;

const USAGE: &str = "Usage of daemon:
  -broadcast
    \tbroadcast DHCP leases
  -hostprefix string
    \toptional prefix to host root
  -leasedir string
    \tdirectory of the saved leases (default \"/var/lib/cni/dhcp\")
  -pidfile string
    \toptional path to write daemon PID to
  -resendmax duration
    \toptional dhcp client resend max duration (default 1m2s)
  -resendtimeout duration
    \toptional dhcp client resend timeout duration (default 3m28s)
  -socketpath string
    \toptional dhcp server socketpath
  -timeout duration
    \toptional dhcp client timeout duration (default 10s)";

/// Go's `time.ParseDuration` for the units a flag needs.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Duration::try_from_secs_f64(total).ok()
}

pub fn parse(args: &[OsString]) -> Result<DaemonConfig, String> {
    let mut cfg = DaemonConfig {
        socket_path: String::new(),
        ..Default::default()
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        i += 1;
        if a == "--" {
            break;
        }
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            break;
        };
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(format!("bad flag syntax: {a}\n{USAGE}"));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        if name == "broadcast" {
            cfg.broadcast = match inline.as_deref() {
                None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                Some(v) => {
                    return Err(format!(
                        "invalid boolean value {v:?} for -broadcast: parse error\n{USAGE}"
                    ))
                }
            };
            continue;
        }
        if name == "h" || name == "help" {
            return Err(USAGE.into());
        }
        const KNOWN: [&str; 7] = [
            "pidfile",
            "hostprefix",
            "socketpath",
            "leasedir",
            "timeout",
            "resendmax",
            "resendtimeout",
        ];
        if !KNOWN.contains(&name.as_str()) {
            return Err(format!("flag provided but not defined: -{name}\n{USAGE}"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("flag needs an argument: -{name}\n{USAGE}"))?;
                i += 1;
                v.to_string_lossy().into_owned()
            }
        };
        let dur = |v: &str| {
            parse_duration(v).ok_or_else(|| {
                format!("invalid value {v:?} for flag -{name}: parse error\n{USAGE}")
            })
        };
        match name.as_str() {
            "pidfile" => cfg.pidfile = value,
            "hostprefix" => cfg.host_prefix = value,
            "socketpath" => cfg.socket_path = value,
            "leasedir" => cfg.lease_dir = value,
            "timeout" => cfg.timeout = dur(&value)?,
            "resendmax" => cfg.resend_max = dur(&value)?,
            "resendtimeout" => cfg.resend_timeout = dur(&value)?,
            _ => return Err(format!("flag provided but not defined: -{name}\n{USAGE}")),
        }
    }
    if cfg.socket_path.is_empty() {
        cfg.socket_path = super::config::DEFAULT_SOCKET.into();
    }
    Ok(cfg)
}

/// The socket systemd passed (`LISTEN_PID` = us, exactly one), if any.
fn activation_listener() -> Result<Option<UnixListener>, String> {
    match crate::steps::activation::listener() {
        Ok(None) => Ok(None),
        Ok(Some((_, n))) if n > 1 => Err(format!(
            "Error getting listener: Too many ({n}) FDs passed through socket activation"
        )),
        Ok(Some((l, _))) => Ok(Some(l)),
        Err(e) => Err(format!("Error getting listener: {e}")),
    }
}

fn listen(path: &str) -> Result<UnixListener, String> {
    let p = std::path::Path::new(path);
    if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("Error getting listener: mkdir {}: {e}", parent.display()))?;
    }
    UnixListener::bind(p).map_err(|e| format!("Error getting listener: listen unix {path}: {e}"))
}

/// Run the daemon until SIGTERM/SIGINT (or a fatal error).
pub fn run(cfg: DaemonConfig) -> Result<(), String> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    // Blocked before any thread starts, so every thread inherits the mask
    // and only the waiting thread below takes them.
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    if !cfg.pidfile.is_empty() {
        if !cfg.pidfile.starts_with('/') {
            return Err(format!(
                "Error writing pidfile {:?}: path not absolute",
                cfg.pidfile
            ));
        }
        std::fs::write(&cfg.pidfile, std::process::id().to_string())
            .map_err(|e| format!("Error writing pidfile {:?}: {e}", cfg.pidfile))?;
    }
    let socket = format!("{}{}", cfg.host_prefix, cfg.socket_path);
    let activated = activation_listener()?;
    // A socket systemd passed is systemd's to remove (RemoveOnStop), not
    // ours: removing it would break activation after we stop.
    let ours = activated.is_none();
    let listener = match activated {
        Some(l) => l,
        None => listen(&socket)?,
    };
    let pidfile = cfg.pidfile.clone();
    let daemon = LeaseDaemon::start(cfg);
    let d = daemon.clone();
    std::thread::spawn(move || {
        let _ = signals.wait();
        d.shutdown();
    });
    let served = daemon.serve(listener);
    if ours {
        let _ = std::fs::remove_file(&socket);
    }
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    served.map_err(|e| format!("serving: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn go_flag_syntax() {
        let c = parse(&os(&[
            "-socketpath",
            "/tmp/x.sock",
            "--timeout=2s",
            "-resendmax",
            "1m30s",
            "-broadcast",
            "-leasedir=/tmp/l",
        ]))
        .unwrap();
        assert_eq!(c.socket_path, "/tmp/x.sock");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.resend_max, Duration::from_secs(90));
        assert!(c.broadcast);
        assert_eq!(c.lease_dir, "/tmp/l");
        let d = parse(&[]).unwrap();
        assert_eq!(d.socket_path, "/run/cni/dhcp.sock");
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert!(parse(&os(&["-nope"]))
            .unwrap_err()
            .starts_with("flag provided but not defined: -nope"));
        assert!(parse(&os(&["-timeout", "soon"])).is_err());
        assert!(parse(&os(&["-timeout"])).is_err());
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
    }
}
