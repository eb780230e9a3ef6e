//! One connection: read requests, route them, answer. `POST /cni` runs an
//! applet in-process with the request's own environment (never the
//! daemon's), serialised per container and interface.

use super::metrics::result_label;
use super::{Shared, IN_DAEMON};
use crate::cni::env::Command;
use crate::cni::error::code;
use crate::cni::invoke::{InProcessLookup, Output};
use crate::cni::{json, version, CniError, Env, Invoker};
use crate::http::{self, Reply, Request};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The body of `POST /cni`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CniCall {
    /// The applet to run; the config's `type` when absent.
    #[serde(default)]
    applet: Option<String>,
    /// `CNI_*` variables only.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// The network config: a JSON value, kept byte for byte.
    #[serde(default)]
    config: Option<Box<serde_json::value::RawValue>>,
    /// Or stdin exactly as the runtime gave it (the shim sends this).
    #[serde(default)]
    stdin: Option<String>,
}

/// The answer of `POST /cni`: what a direct exec would have printed.
#[derive(Serialize)]
struct CniAnswer<'a> {
    stdout: &'a str,
    #[serde(rename = "exitCode")]
    exit_code: i32,
}

/// Serve requests on `stream` until the client closes it, asks to close,
/// or the daemon stops.
pub fn connection(shared: &Shared, stream: UnixStream) {
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut writer = writer;
    let mut reader = BufReader::new(stream);
    let limits = http::Limits {
        max_body: shared.opts.max_request,
    };
    loop {
        let req = match http::read_request(&mut reader, &limits) {
            Ok(r) => r,
            Err(http::Error::Bad(status, why)) => {
                shared.metrics.http(status);
                let _ = http::write_response(&mut writer, &error_reply(status, &why), false);
                return;
            }
            Err(_) => return,
        };
        let keep_alive = req.keep_alive && !shared.stopping();
        let reply = route(shared, &req);
        shared.metrics.http(reply.status);
        if http::write_response(&mut writer, &reply, keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

fn error_reply(status: u16, why: &str) -> Reply {
    Reply::json(
        status,
        serde_json::json!({ "error": why }).to_string() + "\n",
    )
}

fn route(shared: &Shared, req: &Request) -> Reply {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/cni") => match serde_json::from_slice::<CniCall>(&req.body) {
            Ok(call) => cni(shared, call),
            Err(e) => error_reply(400, &format!("bad /cni request body: {e}")),
        },
        ("GET", "/status") => status(shared),
        ("GET", "/metrics") => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: shared.metrics_text().into_bytes(),
        },
        (_, "/cni" | "/status" | "/metrics") => error_reply(405, "method not allowed"),
        _ => error_reply(404, &format!("no such endpoint {:?}", req.path)),
    }
}

fn status(shared: &Shared) -> Reply {
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "socket": shared.opts.socket_display(),
        "hostprefix": shared.opts.hostprefix,
        "uptimeSeconds": shared.started.elapsed().as_secs(),
        "inFlight": shared.in_flight(),
        "connections": shared.connections(),
        "applets": shared.applets,
    });
    Reply::json(200, format!("{body:#}\n"))
}

fn cni(shared: &Shared, call: CniCall) -> Reply {
    let started = Instant::now();
    let stdin: Vec<u8> = match (&call.stdin, &call.config) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, Some(raw)) => raw.get().as_bytes().to_vec(),
        (None, None) => Vec::new(),
    };
    if let Some(k) = call.env.keys().find(|k| !k.starts_with("CNI_")) {
        return error_reply(
            400,
            &format!("env may hold CNI_* variables only, not {k:?}"),
        );
    }
    let parsed = json::parse(&stdin).ok();
    let applet = match call.applet.clone().or_else(|| {
        parsed
            .as_ref()
            .and_then(|c| c.get("type"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
    }) {
        Some(a) => a,
        None => {
            return error_reply(
                400,
                "no applet: give \"applet\" or a config with a \"type\"",
            )
        }
    };
    let mut env: Env = call
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.set(IN_DAEMON, "1");
    let command = env.get_or_empty("CNI_COMMAND").to_string();
    let err_version = parsed
        .as_ref()
        .and_then(|c| version::config_version(c).ok())
        .unwrap_or_else(|| version::CURRENT.to_string());

    let out = match netns_policy(shared.opts.hostprefix.as_deref(), &mut env) {
        Err(e) => Output {
            stdout: e.to_json(&err_version).into_bytes(),
            status: 1,
        },
        Ok(rewritten) => {
            let attachment = Command::parse(&command).is_some_and(Command::is_attachment);
            let key = attachment.then(|| {
                format!(
                    "{}/{}",
                    env.get_or_empty("CNI_CONTAINERID"),
                    env.get_or_empty("CNI_IFNAME")
                )
            });
            // prevResult names the host's path: CHECK compares it.
            let stdin = match &rewritten {
                Some((inside, outside)) => swap_json_string(&stdin, outside, inside),
                None => stdin,
            };
            let _flight = shared.flight();
            let ran = shared.locks.with(key, || {
                run_applet(shared.lookup, &applet, &env, &stdin, &err_version)
            });
            let Some(mut out) = ran else {
                return error_reply(404, &format!("no CNI plugin applet named {applet:?}"));
            };
            if let Some((inside, outside)) = rewritten {
                out.stdout = swap_json_string(&out.stdout, &inside, &outside);
            }
            out
        }
    };
    let took = started.elapsed();
    shared
        .metrics
        .cni(&applet, &command, result_label(out.status), took);
    if out.status != 0 {
        // Failures in the daemon's log: one place to see what went wrong.
        let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        eprintln!(
            "cnibox daemon: {command:?} {applet:?} {:?} {:?}: exit {} in {} ms: code {} {}",
            call.env.get("CNI_CONTAINERID").map_or("", String::as_str),
            call.env.get("CNI_IFNAME").map_or("", String::as_str),
            out.status,
            took.as_millis(),
            err["code"],
            err["msg"]
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let body = serde_json::to_string(&CniAnswer {
        stdout: &stdout,
        exit_code: out.status,
    })
    .unwrap_or_default();
    Reply::json(200, body + "\n")
}

/// Run `applet` as a direct exec would, a panic (debug builds; release
/// builds abort) answered as a code-999 error.
fn run_applet(
    lookup: InProcessLookup,
    applet: &str,
    env: &Env,
    stdin: &[u8],
    err_version: &str,
) -> Option<Output> {
    let invoker = Invoker::new(lookup);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lookup(applet, env, stdin, &invoker)
    }))
    .unwrap_or_else(|_| {
        Some(Output {
            stdout: CniError::internal(format!("internal error: {applet} panicked"))
                .to_json(err_version)
                .into_bytes(),
            status: 1,
        })
    })
}

/// The netns paths a request may name.
const NETNS_ROOTS: [&str; 3] = ["/proc/", "/run/netns/", "/var/run/netns/"];

/// Refuse a `CNI_NETNS` outside the namespace roots (or the hostprefix),
/// and put it under the hostprefix when there is one. `Some((inside,
/// outside))`: the path was rewritten, and results must name `outside`.
fn netns_policy(
    hostprefix: Option<&str>,
    env: &mut Env,
) -> Result<Option<(String, String)>, CniError> {
    let netns = env.get("CNI_NETNS")?.to_string();
    if netns.is_empty() {
        return Ok(None);
    }
    let prefix = hostprefix.map(|p| p.trim_end_matches('/'));
    let refused = || {
        let mut roots: Vec<String> = NETNS_ROOTS.iter().map(|r| r.to_string()).collect();
        roots.extend(prefix.map(|p| format!("{p}/")));
        CniError::new(
            code::INVALID_ENV,
            format!(
                "CNI_NETNS {netns:?} is outside the paths this daemon accepts ({})",
                roots.join(", ")
            ),
        )
    };
    if !netns.starts_with('/') || netns.split('/').any(|c| c == "..") {
        return Err(refused());
    }
    let under_prefix = prefix.is_some_and(|p| {
        netns
            .strip_prefix(p)
            .is_some_and(|rest| NETNS_ROOTS.iter().any(|r| rest.starts_with(r)))
    });
    if under_prefix {
        return Ok(None);
    }
    if !NETNS_ROOTS.iter().any(|r| netns.starts_with(r)) {
        return Err(refused());
    }
    match prefix {
        Some(p) if !p.is_empty() => {
            let inside = format!("{p}{netns}");
            env.set("CNI_NETNS", &inside);
            Ok(Some((inside, netns)))
        }
        _ => Ok(None),
    }
}

/// Every JSON string equal to `from` (the whole string) made `to`.
fn swap_json_string(json: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (Ok(from), Ok(to)) = (serde_json::to_string(from), serde_json::to_string(to)) else {
        return json.to_vec();
    };
    String::from_utf8_lossy(json)
        .replace(&from, &to)
        .into_bytes()
}

/// Per-key mutexes: requests for one container and interface run one at a
/// time; others run in parallel. Entries go away when nobody holds them.
#[derive(Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl KeyedLocks {
    pub fn with<T>(&self, key: Option<String>, f: impl FnOnce() -> T) -> T {
        let Some(key) = key else {
            return f();
        };
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let out = {
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            f()
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Ours and the map's: nobody else waits for it.
        if Arc::strong_count(&lock) == 2 {
            map.remove(&key);
        }
        out
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn same_key_is_serialised_other_keys_are_not() {
        let locks = KeyedLocks::default();
        let inside = AtomicUsize::new(0);
        let max = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    locks.with(Some("c/eth0".into()), || {
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                });
            }
        });
        assert_eq!(max.load(Ordering::SeqCst), 1);
        assert_eq!(locks.len(), 0);
        // Two keys overlap.
        let both = AtomicUsize::new(0);
        let seen = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for k in ["a/eth0", "b/eth0"] {
                let (both, seen) = (&both, &seen);
                let locks = &locks;
                s.spawn(move || {
                    locks.with(Some(k.into()), || {
                        both.fetch_add(1, Ordering::SeqCst);
                        for _ in 0..200 {
                            if both.load(Ordering::SeqCst) == 2 {
                                seen.store(1, Ordering::SeqCst);
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                    })
                });
            }
        });
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn netns_paths_outside_the_roots_are_refused() {
        let policy = |prefix: Option<&str>, netns: &str| {
            let mut env: Env = [("CNI_NETNS", netns)].into_iter().collect();
            netns_policy(prefix, &mut env)
                .map(|r| (r, env.get_or_empty("CNI_NETNS").to_string()))
                .map_err(|e| e.code)
        };
        for ok in ["/proc/1/ns/net", "/run/netns/a", "/var/run/netns/a", ""] {
            assert_eq!(policy(None, ok), Ok((None, ok.to_string())), "{ok}");
        }
        for bad in [
            "/tmp/x",
            "/run/netns/../../etc/x",
            "proc/1/ns/net",
            "/procx/1",
        ] {
            assert_eq!(policy(None, bad), Err(4), "{bad}");
        }
        assert_eq!(
            policy(Some("/host/"), "/run/netns/a"),
            Ok((
                Some(("/host/run/netns/a".into(), "/run/netns/a".into())),
                "/host/run/netns/a".into()
            ))
        );
        assert_eq!(
            policy(Some("/host"), "/host/proc/1/ns/net"),
            Ok((None, "/host/proc/1/ns/net".into()))
        );
        assert_eq!(policy(Some("/host"), "/host/etc/x"), Err(4));
    }

    #[test]
    fn swap_replaces_whole_json_strings_only() {
        let out = br#"{"sandbox":"/host/proc/1/ns/net","x":"/host/proc/1/ns/netx"}"#;
        assert_eq!(
            swap_json_string(out, "/host/proc/1/ns/net", "/proc/1/ns/net"),
            br#"{"sandbox":"/proc/1/ns/net","x":"/host/proc/1/ns/netx"}"#.to_vec()
        );
    }
}
