//! `cnibox daemon`: thick mode. Every CNI plugin applet served over
//! HTTP/1.1 + JSON on a unix socket, so a node keeps one long-lived,
//! privileged process (a DaemonSet pod) and runtimes exec a thin shim.
//!
//! - `POST /cni` `{applet?, env: {CNI_*}, config | stdin}` ->
//!   `{stdout, exitCode}`, exactly what a direct exec prints and exits with.
//! - `GET /status`: version, applets, uptime, requests in flight.
//! - `GET /metrics`: Prometheus text.
//!
//! Each request runs in-process on its connection's thread with its own
//! [`Env`](crate::cni::Env) built from the request (the daemon's own
//! environment never reaches a plugin); netns work happens, as always, on
//! scoped threads that `setns` and die. Requests for one container and
//! interface are serialised, others run in parallel (one thread per
//! connection, at most `--max-connections`).
//!
//! Hosting other servers (the dhcp lease daemon): a hosted server is a
//! `fn(UnixListener)` run on its own thread next to the CNI socket, on its
//! own socket (`/run/cni/dhcp.sock` stays where the dhcp plugin looks for
//! it, speaking its own protocol); see [`Hosted`]. None is wired yet.

mod listen;
mod metrics;
mod serve;
pub mod shim;

use crate::cni::invoke::InProcessLookup;
use listen::{activated_listener, bind, remove_socket, write_pidfile};
use metrics::Metrics;
use serve::KeyedLocks;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEFAULT_SOCKET: &str = "/run/cni/cnibox.sock";

/// Set in the environment of every request the daemon runs: a plugin it
/// execs (not in-process) must run locally, not forward back to us.
pub const IN_DAEMON: &str = "CNIBOX_IN_DAEMON";

/// How long a connection may sit idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

const USAGE: &str = "\
usage: cnibox daemon [options]

Serve every CNI plugin applet over HTTP/1.1 + JSON on a unix socket
(thick mode). A plugin config with a top-level \"cniboxDaemon\": \"SOCKET\"
makes the applet a thin shim that forwards the call here.

options:
  --socket PATH          listen here (default /run/cni/cnibox.sock; its
                         directory is made 0700, the socket is 0600).
                         With systemd socket activation (LISTEN_FDS) the
                         passed socket is used instead.
  --socket-group GID     let group GID connect too (socket 0660, a
                         directory we create 0710 owned by GID). The group
                         is root-equivalent: calls choose CNI_PATH and
                         dataDirs the daemon uses as root.
  --pidfile PATH         write our pid here (removed on clean shutdown)
  --hostprefix DIR       we run in a container that sees the host's /proc
                         and /run/netns under DIR: netns paths are
                         opened there (results still name the host paths)
  --max-connections N    connections served at once (default 64; more
                         get 503, which the shim reports as code 11)
  --max-request BYTES    largest request body (default 8388608)
  --dhcp                 host the dhcp lease daemon too, on
                         /run/cni/dhcp.sock (what `dhcp daemon` serves:
                         Go's net/rpc, so Go's dhcp plugin works with it)
  --dhcp-socket PATH     the same on PATH
  --dhcp-statedir DIR    where it keeps leases (default /var/lib/cni/dhcp)
  -h, --help             this help

endpoints: POST /cni, GET /status, GET /metrics
  curl --unix-socket /run/cni/cnibox.sock http://localhost/status

SIGTERM or SIGINT: stop accepting, let requests in flight finish, remove
the socket and pidfile, exit 0.
";

#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub socket_group: Option<u32>,
    pub pidfile: Option<PathBuf>,
    pub hostprefix: Option<String>,
    pub max_connections: usize,
    pub max_request: usize,
    /// The socket came from systemd (LISTEN_FDS): not ours to remove.
    pub activated: bool,
    /// The hosted servers turned on (`--NAME`, `--NAME-socket PATH`): name,
    /// socket, state directory (`--NAME-statedir DIR`, "" for its default).
    pub hosted: Vec<(&'static str, PathBuf, String)>,
}

impl Options {
    fn socket_display(&self) -> String {
        self.socket.display().to_string()
    }
}

fn parse_args(args: &[OsString], hosted: &[Hosted]) -> Result<Option<Options>, String> {
    let mut o = Options {
        socket: PathBuf::from(DEFAULT_SOCKET),
        socket_group: None,
        pidfile: None,
        hostprefix: None,
        max_connections: 64,
        max_request: 8 << 20,
        activated: false,
        hosted: Vec::new(),
    };
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |name: &str, v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name}: not a positive number: {v:?}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--socket" => o.socket = PathBuf::from(value("--socket")?),
            "--pidfile" => o.pidfile = Some(PathBuf::from(value("--pidfile")?)),
            "--hostprefix" => {
                let v = value("--hostprefix")?;
                if !v.starts_with('/') {
                    return Err(format!("--hostprefix must be absolute: {v:?}"));
                }
                o.hostprefix = Some(v.trim_end_matches('/').to_string()).filter(|p| !p.is_empty());
            }
            "--socket-group" => {
                let v = value("--socket-group")?;
                o.socket_group = Some(
                    v.parse()
                        .map_err(|_| format!("--socket-group: not a numeric gid: {v:?}"))?,
                );
            }
            "--max-connections" => {
                o.max_connections = number("--max-connections", value("--max-connections")?)?
            }
            "--max-request" => o.max_request = number("--max-request", value("--max-request")?)?,
            f => {
                let Some(h) = hosted.iter().find(|h| {
                    f.strip_prefix("--")
                        .and_then(|r| r.strip_prefix(h.name))
                        .is_some_and(|r| ["", "-socket", "-statedir"].contains(&r))
                }) else {
                    return Err(format!("unknown argument {a:?}"));
                };
                let i = match o.hosted.iter().position(|(n, _, _)| *n == h.name) {
                    Some(i) => i,
                    None => {
                        o.hosted
                            .push((h.name, PathBuf::from(h.socket), String::new()));
                        o.hosted.len() - 1
                    }
                };
                if f.ends_with("-socket") {
                    o.hosted[i].1 = PathBuf::from(value(f)?);
                } else if f.ends_with("-statedir") {
                    o.hosted[i].2 = value(f)?;
                }
            }
        }
    }
    Ok(Some(o))
}

/// Another server living in this process on its own socket and protocol:
/// the dhcp lease daemon, on the socket the dhcp plugin dials (Go's net/rpc,
/// so a Go dhcp plugin keeps working). Bound after the CNI socket, served
/// on its own thread; it ends with the process, after the CNI side has
/// drained. A socket another process serves is left alone (a warning).
pub struct Hosted {
    pub name: &'static str,
    /// Its socket for `--NAME` (`--NAME-socket PATH` names another).
    pub socket: &'static str,
    /// Serve on `listener`, given `--hostprefix` and `--NAME-statedir`
    /// ("" when not set).
    pub serve: fn(UnixListener, &str, &str),
}

/// What every connection thread shares.
pub struct Shared {
    opts: Options,
    lookup: InProcessLookup,
    applets: Vec<&'static str>,
    metrics: Metrics,
    locks: KeyedLocks,
    started: Instant,
    stop: AtomicBool,
    in_flight: AtomicUsize,
    /// Open connections (a clone of each stream, to end idle ones at
    /// shutdown).
    conns: Mutex<HashMap<u64, UnixStream>>,
}

/// A connection in `Shared::conns` while alive.
struct Registered<'a>(&'a Shared, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.0.conns.lock() {
            conns.remove(&self.1);
        }
    }
}

/// Counts a request in flight while alive.
pub struct Flight<'a>(&'a AtomicUsize);

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn flight(&self) -> Flight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Flight(&self.in_flight)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn metrics_text(&self) -> String {
        self.metrics.render(&[
            (
                "cnibox_daemon_in_flight",
                "CNI requests being served now.",
                self.in_flight() as f64,
            ),
            (
                "cnibox_daemon_connections",
                "Open client connections.",
                self.connections() as f64,
            ),
            (
                "cnibox_daemon_uptime_seconds",
                "Seconds since the daemon started.",
                self.started.elapsed().as_secs_f64(),
            ),
        ])
    }
}

pub fn main(
    args: &[OsString],
    lookup: InProcessLookup,
    applets: Vec<&'static str>,
    hosted: &[Hosted],
) -> i32 {
    let mut opts = match parse_args(args, hosted) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprint!("cnibox daemon: {e}\n\n{USAGE}");
            return 2;
        }
    };
    // Block the stop signals before any thread exists, so every thread
    // inherits the mask and only the signal thread receives them.
    let mut signals = nix::sys::signal::SigSet::empty();
    signals.add(nix::sys::signal::Signal::SIGTERM);
    signals.add(nix::sys::signal::Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("cnibox daemon: blocking signals: {e}");
        return 1;
    }
    let listener = match activated_listener() {
        Some(Ok(l)) => {
            opts.activated = true;
            l
        }
        Some(Err(e)) => {
            eprintln!("cnibox daemon: LISTEN_FDS: {e}");
            return 1;
        }
        None => match bind(&opts) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cnibox daemon: {e}");
                return 1;
            }
        },
    };
    // Ours to remove at the end only if it is still the one we made.
    let our_socket = (!opts.activated)
        .then(|| std::fs::symlink_metadata(&opts.socket).ok())
        .flatten()
        .map(|m| (m.dev(), m.ino()));
    if let Some(pidfile) = &opts.pidfile {
        if let Err(e) = write_pidfile(pidfile) {
            eprintln!("cnibox daemon: {e}");
            remove_socket(&opts.socket, our_socket);
            return 1;
        }
    }
    let hosted_sockets = start_hosted(&opts, hosted);
    let listener = Arc::new(listener);
    let shared = Arc::new(Shared {
        opts,
        lookup,
        applets,
        metrics: Metrics::default(),
        locks: KeyedLocks::default(),
        started: Instant::now(),
        stop: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        conns: Mutex::new(HashMap::new()),
    });
    {
        let (shared, listener) = (shared.clone(), listener.clone());
        std::thread::spawn(move || {
            if let Ok(sig) = signals.wait() {
                eprintln!("cnibox daemon: {sig}: stopping (requests in flight finish)");
            }
            shared.stop.store(true, Ordering::SeqCst);
            // Wakes the accept below with EINVAL (Linux).
            let _ =
                nix::sys::socket::shutdown(listener.as_raw_fd(), nix::sys::socket::Shutdown::Read);
        });
    }
    eprintln!(
        "cnibox daemon: serving on {} (pid {})",
        shared.opts.socket_display(),
        std::process::id()
    );
    let threads = accept_loop(&shared, &listener);
    // New callers get "not reachable" (code 11 at the shim) from now on.
    remove_socket(&shared.opts.socket, our_socket);
    for (path, ours) in &hosted_sockets {
        remove_socket(path, Some(*ours));
    }
    drain(&shared, threads);
    if let Some(pidfile) = &shared.opts.pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    eprintln!("cnibox daemon: stopped");
    0
}

/// Accept and start a thread per connection until the stop signal; the
/// connection threads still running.
fn accept_loop(shared: &Arc<Shared>, listener: &UnixListener) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    while !shared.stopping() {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) if shared.stopping() => break,
            Err(e) => {
                eprintln!("cnibox daemon: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        threads.retain(|t| !t.is_finished());
        if shared.connections() >= shared.opts.max_connections {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            // Read what the client sent first: closing with unread data
            // resets the connection before it can read the 503.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = std::io::Read::read(&mut &stream, &mut [0u8; 16 << 10]);
            shared.metrics.http(503);
            let reply = crate::http::Reply::json(
                503,
                "{\"error\":\"too many connections, try again later\"}\n",
            );
            let _ = crate::http::write_response(&mut &stream, &reply, false);
            continue;
        }
        let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
        let id = next_id;
        next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            if let Ok(mut conns) = shared.conns.lock() {
                conns.insert(id, clone);
            }
        }
        let shared2 = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn{id}"))
            .spawn(move || {
                // Unregistered even if serving panics (debug builds).
                let _registered = Registered(&shared2, id);
                serve::connection(&shared2, stream);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                eprintln!("cnibox daemon: cannot start a connection thread: {e}");
                if let Ok(mut conns) = shared.conns.lock() {
                    conns.remove(&id);
                }
            }
        }
    }
    threads
}

/// Idle connections end now; a request being served finishes and is
/// answered with `Connection: close`.
fn drain(shared: &Shared, threads: Vec<std::thread::JoinHandle<()>>) {
    if let Ok(conns) = shared.conns.lock() {
        for c in conns.values() {
            let _ = c.shutdown(std::net::Shutdown::Read);
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Bind and serve each hosted server (see [`Hosted`]) on a thread of its
/// own, with the CNI socket's modes. Returns the sockets made, to remove
/// at shutdown.
fn start_hosted(opts: &Options, hosted: &[Hosted]) -> Vec<(PathBuf, (u64, u64))> {
    let mut made = Vec::new();
    for (name, path, state) in &opts.hosted {
        let Some(h) = hosted.iter().find(|h| h.name == *name) else {
            continue;
        };
        let sock_opts = Options {
            socket: path.clone(),
            ..opts.clone()
        };
        match bind(&sock_opts) {
            Ok(l) => {
                if let Ok(m) = std::fs::symlink_metadata(path) {
                    made.push((path.clone(), (m.dev(), m.ino())));
                }
                let (serve, state) = (h.serve, state.clone());
                let prefix = opts.hostprefix.clone().unwrap_or_default();
                std::thread::spawn(move || serve(l, &prefix, &state));
                eprintln!("cnibox daemon: {name} on {}", path.display());
            }
            Err(e) => eprintln!("cnibox daemon: not serving {name}: {e}"),
        }
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn serve_nothing(_: UnixListener, _: &str, _: &str) {}

    const HOSTED: &[Hosted] = &[Hosted {
        name: "dhcp",
        socket: "/run/cni/dhcp.sock",
        serve: serve_nothing,
    }];

    fn parse_args(a: &[OsString]) -> Result<Option<Options>, String> {
        super::parse_args(a, HOSTED)
    }

    #[test]
    fn hosted_servers_are_off_unless_asked_for() {
        assert!(parse_args(&args(&[])).unwrap().unwrap().hosted.is_empty());
        let o = parse_args(&args(&["--dhcp"])).unwrap().unwrap();
        assert_eq!(
            o.hosted,
            vec![("dhcp", PathBuf::from("/run/cni/dhcp.sock"), String::new())]
        );
        let o = parse_args(&args(&["--dhcp-statedir", "/s", "--dhcp-socket=/x.sock"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            o.hosted,
            vec![("dhcp", PathBuf::from("/x.sock"), "/s".to_string())]
        );
        assert!(parse_args(&args(&["--dhcpx"])).is_err());
        assert!(parse_args(&args(&["--ovs"])).is_err());
    }

    #[test]
    fn options_parse_with_defaults_and_errors() {
        let o = parse_args(&args(&[])).unwrap().unwrap();
        assert_eq!(o.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(o.max_connections, 64);
        let o = parse_args(&args(&[
            "--socket=/tmp/s",
            "--pidfile",
            "/tmp/p",
            "--hostprefix",
            "/host/",
            "--max-connections",
            "3",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.socket, PathBuf::from("/tmp/s"));
        assert_eq!(o.pidfile, Some(PathBuf::from("/tmp/p")));
        assert_eq!(o.hostprefix.as_deref(), Some("/host"));
        assert_eq!(o.max_connections, 3);
        assert!(parse_args(&args(&["--help"])).unwrap().is_none());
        for bad in [
            &["--bogus"][..],
            &["--socket"],
            &["--hostprefix", "rel"],
            &["--max-connections", "0"],
            &["--socket-group", "wheel"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
