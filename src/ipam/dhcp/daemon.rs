//! `dhcp daemon [flags]`: the lease daemon, serving `DHCP.Allocate` and
//! `DHCP.Release` (Go net/rpc, gob) on a unix socket.
//!
//! The daemon is a library type, [`LeaseDaemon`], so another process (the
//! thick-mode `cnibox daemon`) can host it: build a [`DaemonConfig`], call
//! `LeaseDaemon::start(cfg)` (loads saved leases, sends pending releases,
//! starts the maintenance thread), then `serve(listener)` on any thread;
//! `shutdown()` makes `serve` return and stops maintenance. Leases are not
//! released on shutdown (as the reference): they stay saved and a restarted
//! daemon resumes renewing them.

use super::lease::{self, now_secs, Ask, Held};
use super::pending;
use super::wire::{self, CmdArgs};
use crate::gorpc::gob::{Encoder, Value};
use crate::gorpc::rpc::{self, EMPTY, RESPONSE};
use crate::gorpc::RESULT;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The daemon's settings (the reference's flags plus `-leasedir`).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub socket_path: String,
    pub pidfile: String,
    pub host_prefix: String,
    /// Bound of one acquisition (DISCOVER..ACK) or renewal.
    pub timeout: Duration,
    pub resend_max: Duration,
    pub resend_timeout: Duration,
    pub broadcast: bool,
    /// Where leases are saved (beyond the reference).
    pub lease_dir: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket_path: super::config::DEFAULT_SOCKET.into(),
            pidfile: String::new(),
            host_prefix: String::new(),
            timeout: Duration::from_secs(10),
            resend_max: Duration::from_secs(62),
            resend_timeout: Duration::from_secs(208),
            broadcast: false,
            lease_dir: super::config::DEFAULT_LEASE_DIR.into(),
        }
    }
}

/// Every lease the daemon holds, keyed by client id.
pub struct LeaseDaemon {
    cfg: DaemonConfig,
    leases: Mutex<HashMap<String, Held>>,
    stop: AtomicBool,
    wake: Condvar,
    wake_lock: Mutex<()>,
    /// Client ids with an acquisition under way: a second Allocate for one
    /// waits for it instead of starting another exchange; a Release during
    /// it marks it `cancelled`, and the new lease is released at once.
    inflight: Mutex<InFlight>,
    settled: Condvar,
}

#[derive(Default)]
struct InFlight {
    running: HashSet<String>,
    cancelled: HashSet<String>,
}

impl LeaseDaemon {
    /// Load the saved leases, send the releases DELs recorded while no
    /// daemon ran, and start renewing.
    pub fn start(cfg: DaemonConfig) -> Arc<LeaseDaemon> {
        let mut leases = HashMap::new();
        if let Ok(rd) = std::fs::read_dir(&cfg.lease_dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) != Some("json") {
                    continue;
                }
                let Ok(Some(b)) = crate::steps::statefile::read(&p.to_string_lossy()) else {
                    continue;
                };
                match Held::from_json(&b, cfg.resend_max) {
                    Some(h) => {
                        leases.insert(h.client_id.clone(), h);
                    }
                    None => eprintln!("dhcp daemon: ignoring unreadable lease file {p:?}"),
                }
            }
        }
        for (id, file) in pending::list(&cfg.lease_dir) {
            if let Some(h) = leases.remove(&id) {
                if let Err(e) = lease::release(&h) {
                    eprintln!("dhcp daemon: pending release of {id}: {e}");
                }
                h.forget(&cfg.lease_dir);
            }
            let _ = std::fs::remove_file(file);
        }
        let d = Arc::new(LeaseDaemon {
            cfg,
            leases: Mutex::new(leases),
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
            inflight: Mutex::new(InFlight::default()),
            settled: Condvar::new(),
        });
        let m = d.clone();
        std::thread::spawn(move || m.maintenance());
        d
    }

    /// Accept connections until `shutdown`; one thread per connection.
    pub fn serve(self: &Arc<Self>, listener: UnixListener) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        while !self.stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false)?;
                    // A silent client must not pin a thread forever: the
                    // plugin writes its request at once and an Allocate is
                    // answered within the exchange bounds.
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
                    let d = self.clone();
                    std::thread::spawn(move || d.serve_stream(conn));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Serve one accepted connection (HTTP CONNECT, then calls) until the
    /// peer closes it: for a host that accepts connections itself.
    pub fn serve_stream(&self, conn: UnixStream) {
        let Ok(w) = conn.try_clone() else { return };
        let _ = rpc::serve_conn(conn, w, prepare_ids, |m, a| self.handle(m, a));
    }

    /// Stop serving and renewing (leases stay saved, not released).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    fn handle(&self, method: &str, args: &Value) -> rpc::Reply {
        let args = CmdArgs::from_gob(args);
        match method {
            "DHCP.Allocate" => {
                let r = self.allocate(&args)?;
                Ok((&RESULT, wire::result_to_gob(&r)))
            }
            // Beyond the reference: CHECK answers from the lease held and
            // never takes a new one (the Go daemon lacks it; the plugin
            // then falls back to Allocate).
            "DHCP.Check" => {
                let r = self.held_result(&args)?;
                Ok((&RESULT, wire::result_to_gob(&r)))
            }
            "DHCP.Release" => {
                self.release(&args)?;
                Ok((&EMPTY, Value::Struct(vec![])))
            }
            m => Err(format!("rpc: can't find method {m}")),
        }
    }

    fn allocate(&self, args: &CmdArgs) -> Result<crate::cni::result::CniResult, String> {
        let ask = Ask::new(args, &self.cfg.host_prefix, self.cfg.resend_max)?;
        let id = ask.client_id.clone();
        let bound = self.cfg.timeout.min(self.cfg.resend_timeout);
        let give_up = std::time::Instant::now() + bound + Duration::from_secs(1);
        {
            let mut inf = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(h) = self
                    .leases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                {
                    return h.result();
                }
                if inf.running.insert(id.clone()) {
                    inf.cancelled.remove(&id);
                    break;
                }
                let left = give_up.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(format!("another DHCP.Allocate for {id} is still running"));
                }
                inf = self
                    .settled
                    .wait_timeout(inf, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let got = ask.acquire(bound);
        let mut inf = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inf.running.remove(&id);
        let cancelled = inf.cancelled.remove(&id);
        self.settled.notify_all();
        let held = got?;
        if cancelled {
            drop(inf);
            let _ = lease::release(&held);
            return Err(format!(
                "the lease of {id} was released while it was acquired"
            ));
        }
        let result = held.result()?;
        if let Err(e) = held.save(&self.cfg.lease_dir) {
            eprintln!("dhcp daemon: saving lease {id}: {e}");
        }
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, held);
        Ok(result)
    }

    fn held_result(&self, args: &CmdArgs) -> Result<crate::cni::result::CniResult, String> {
        let ask = Ask::new(args, &self.cfg.host_prefix, self.cfg.resend_max)?;
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get(&ask.client_id) {
            Some(h) => h.result(),
            None => Err(format!("no DHCP lease held for {}", ask.client_id)),
        }
    }

    fn release(&self, args: &CmdArgs) -> Result<(), String> {
        let conf = super::config::IpamConf::from_bytes(&args.stdin).map_err(|e| e.msg)?;
        let id = super::config::client_id(&args.container_id, &conf.name, &args.ifname);
        {
            let mut inf = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if inf.running.contains(&id) {
                inf.cancelled.insert(id.clone());
            }
        }
        let held = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(h) = held {
            h.forget(&self.cfg.lease_dir);
            if let Err(e) = lease::release(&h) {
                eprintln!("dhcp daemon: release of {id}: {e}");
            }
        }
        Ok(())
    }

    /// Renew every lease at T1, rebind at T2, re-acquire after expiry.
    fn maintenance(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            let due: Vec<Held> = {
                let now = now_secs();
                let l = self.leases.lock().unwrap_or_else(|p| p.into_inner());
                l.values()
                    .filter(|h| now >= h.t1() && now >= h.next_try)
                    .cloned()
                    .collect()
            };
            for h in due {
                let outcome = lease::maintain(&h, self.cfg.timeout);
                let mut l = self.leases.lock().unwrap_or_else(|p| p.into_inner());
                // Released meanwhile, or released and taken again (a DEL
                // then an ADD during the renewal): drop the outcome, never
                // overwrite the newer lease with the renewed old one.
                let Some(cur) = l.get_mut(&h.client_id) else {
                    continue;
                };
                if cur.acquired != h.acquired || cur.lease.address != h.lease.address {
                    continue;
                }
                match outcome {
                    Ok(Some(n)) => {
                        *cur = n;
                        if let Err(e) = cur.save(&self.cfg.lease_dir) {
                            eprintln!("dhcp daemon: saving lease {}: {e}", cur.client_id);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("dhcp daemon: renewing {}: {e}", h.client_id);
                        let now = now_secs();
                        if now >= cur.expiry() + self.cfg.resend_timeout.as_secs() {
                            // Expired and not regained for -resendtimeout:
                            // the server has let it go; so do we.
                            cur.forget(&self.cfg.lease_dir);
                            l.remove(&h.client_id);
                            continue;
                        }
                        let left = cur.expiry().saturating_sub(now);
                        cur.next_try = now + (left / 2).clamp(1, 60);
                    }
                }
            }
            let g = self.wake_lock.lock().unwrap_or_else(|p| p.into_inner());
            let _ = self.wake.wait_timeout(g, Duration::from_millis(500));
        }
    }
}

/// Go numbers gob types per process: a Go daemon has numbered the Allocate
/// reply's types before it answers Release, so do the same (the fixture).
fn prepare_ids(enc: &mut Encoder) {
    enc.reserve(&RESPONSE);
    enc.reserve(&RESULT);
}

/// `dhcp daemon [flags]`.
pub fn daemon_main(args: &[OsString]) -> i32 {
    let cfg = match super::flags::parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match super::flags::run(cfg) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
