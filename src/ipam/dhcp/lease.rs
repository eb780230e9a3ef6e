//! The daemon's leases: acquiring one in a container's namespace, the CNI
//! result it gives, the state file that lets a restarted daemon resume it
//! (beyond the reference), renew/rebind/expiry, release.

use super::options;
use crate::cni::result::{CniResult, IpConfig, Route};
use crate::cni::types::Dns;
use crate::dhcp::message::{self as msg, Message};
use crate::dhcp::{client, Client, Lease, Params};
use crate::steps::netns::NetNs;
use crate::steps::statefile;
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// RT_SCOPE_LINK, for option 121 routes whose router is 0.0.0.0.
const SCOPE_LINK: i64 = 253;

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A lease the daemon holds, with what it needs to renew it.
#[derive(Debug, Clone)]
pub struct Held {
    pub client_id: String,
    /// The namespace path as the daemon opens it (host prefix applied).
    pub netns: String,
    pub ifname: String,
    pub params: Params,
    pub lease: Lease,
    /// When the current ACK arrived (unix seconds).
    pub acquired: u64,
    pub priority: i64,
    /// Earliest next maintenance attempt (unix seconds).
    pub next_try: u64,
}

#[derive(Serialize, Deserialize)]
struct HeldFile {
    #[serde(rename = "clientId")]
    client_id: String,
    netns: String,
    ifname: String,
    mac: String,
    request: Vec<u8>,
    provide: Vec<(u8, String)>,
    priority: i64,
    ack: String,
    acquired: u64,
}

impl Held {
    pub fn file_name(&self) -> String {
        format!("{}.json", super::pending::file_name(&self.client_id))
    }

    pub fn to_json(&self) -> Vec<u8> {
        let f = HeldFile {
            client_id: self.client_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            mac: hex(&self.params.mac),
            request: self.params.request.clone(),
            provide: self
                .params
                .provide
                .iter()
                .map(|(c, v)| (*c, hex(v)))
                .collect(),
            priority: self.priority,
            ack: hex(&self.lease.ack.encode()),
            acquired: self.acquired,
        };
        serde_json::to_vec_pretty(&f).unwrap_or_default()
    }

    pub fn from_json(b: &[u8], resend_max: Duration) -> Option<Held> {
        let f: HeldFile = serde_json::from_slice(b).ok()?;
        let ack = Message::decode(&unhex(&f.ack)?)?;
        let mac: [u8; 6] = unhex(&f.mac)?.try_into().ok()?;
        let mut client_id = vec![0u8];
        client_id.extend(f.client_id.as_bytes());
        Some(Held {
            params: Params {
                client_id,
                mac,
                request: f.request,
                provide: f
                    .provide
                    .iter()
                    .filter_map(|(c, v)| Some((*c, unhex(v)?)))
                    .collect(),
                resend_max,
            },
            lease: Lease::from_ack(ack)?,
            client_id: f.client_id,
            netns: f.netns,
            ifname: f.ifname,
            acquired: f.acquired,
            priority: f.priority,
            next_try: 0,
        })
    }

    /// Write the state file atomically (temp file, then rename), 0600.
    pub fn save(&self, dir: &str) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = format!("{dir}/{}", self.file_name());
        let tmp = format!("{path}.tmp");
        statefile::write(&tmp, &self.to_json())?;
        std::fs::rename(&tmp, &path)
    }

    pub fn forget(&self, dir: &str) {
        let _ = std::fs::remove_file(format!("{dir}/{}", self.file_name()));
    }

    pub fn t1(&self) -> u64 {
        self.acquired + self.lease.t1 as u64
    }
    pub fn t2(&self) -> u64 {
        self.acquired + self.lease.t2 as u64
    }
    pub fn expiry(&self) -> u64 {
        self.acquired + self.lease.lease_secs as u64
    }

    /// The CNI result this lease gives (the reference's layout).
    pub fn result(&self) -> Result<CniResult, String> {
        lease_result(&self.lease.ack, &self.params.request, self.priority)
    }
}

pub fn lease_result(ack: &Message, asked: &[u8], priority: i64) -> Result<CniResult, String> {
    let mask = ack
        .ip_option(msg::OPT_SUBNET_MASK)
        .ok_or("DHCP option Subnet Mask not found in DHCPACK")?;
    let prefix = u32::from(mask).leading_ones() as u8;
    let address = Ipv4Net::new(ack.yiaddr, prefix).map_err(|e| e.to_string())?;
    let router = ack.ip_option(msg::OPT_ROUTERS);
    let mut r = CniResult {
        ips: vec![IpConfig {
            interface: None,
            address: IpNet::V4(address),
            gateway: router.map(IpAddr::V4),
        }],
        ..Default::default()
    };
    let route = |dst: Ipv4Addr, prefix: u8, gw: Ipv4Addr| {
        let mut rt = Route::new(
            IpNet::V4(Ipv4Net::new(dst, prefix.min(32)).unwrap_or_default()),
            (!gw.is_unspecified()).then_some(IpAddr::V4(gw)),
        );
        if gw.is_unspecified() {
            rt.scope = Some(SCOPE_LINK);
        }
        rt.priority = priority;
        rt
    };
    if let Some(v) = ack.option(msg::OPT_CLASSLESS_ROUTES) {
        let routes = msg::classless_routes(v).ok_or("malformed option 121 in DHCPACK")?;
        r.routes = routes
            .iter()
            .map(|o| route(o.dst, o.prefix, o.router))
            .collect();
    } else {
        if let Some(v) = ack.option(msg::OPT_STATIC_ROUTES) {
            r.routes = msg::static_routes(v)
                .iter()
                .map(|o| route(o.dst, o.prefix, o.router))
                .collect();
        }
        if let Some(gw) = router {
            r.routes.push(route(Ipv4Addr::UNSPECIFIED, 0, gw));
        }
    }
    if asked.contains(&msg::OPT_DNS) {
        if let Some(v) = ack.option(msg::OPT_DNS) {
            r.dns = Dns {
                nameservers: v
                    .chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string())
                    .collect(),
                ..Default::default()
            };
        }
    }
    Ok(r)
}

/// Open a client on `ifname` in `netns` (set up if down, as the reference).
pub fn open_client(netns: &str, ifname: &str, mut params: Params) -> Result<Client, String> {
    let ns = NetNs::open(netns).map_err(|e| e.to_string())?;
    let nl = ns.netlink().map_err(|e| e.msg)?;
    let link = nl
        .link_by_name(ifname)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("unable to find link {ifname:?} in {netns}"))?;
    if !link.is_up() {
        nl.link_set_up(link.index, true)
            .map_err(|e| format!("failed to set {ifname:?} up: {e}"))?;
    }
    params.mac = link
        .mac
        .get(..6)
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| format!("{ifname:?} has no Ethernet address"))?;
    ns.run(|| Client::open(ifname, params))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("opening a DHCP socket on {ifname:?}: {e}"))
}

/// What an Allocate asks for, decoded from its CmdArgs.
pub struct Ask {
    pub client_id: String,
    pub netns: String,
    pub ifname: String,
    pub params: Params,
    pub priority: i64,
}

impl Ask {
    pub fn new(
        args: &super::wire::CmdArgs,
        host_prefix: &str,
        resend_max: Duration,
    ) -> Result<Ask, String> {
        let conf = super::config::IpamConf::from_bytes(&args.stdin).map_err(|e| e.msg)?;
        let (request, provide) = options::prepare(&args.args, &conf.provide, &conf.request)?;
        let client_id = super::config::client_id(&args.container_id, &conf.name, &args.ifname);
        let mut cid = vec![0u8];
        cid.extend(client_id.as_bytes());
        Ok(Ask {
            client_id,
            netns: format!("{host_prefix}{}", args.netns),
            ifname: args.ifname.clone(),
            params: Params {
                client_id: cid,
                mac: [0; 6],
                request,
                provide,
                resend_max,
            },
            priority: conf.priority,
        })
    }

    /// DISCOVER..ACK in the container, bounded by `timeout`.
    pub fn acquire(self, timeout: Duration) -> Result<Held, String> {
        let deadline = Instant::now() + timeout;
        let c = open_client(&self.netns, &self.ifname, self.params.clone())?;
        let lease = c
            .acquire(deadline)
            .map_err(|e| format!("error acquiring a DHCP lease on {}: {e}", self.ifname))?;
        let held = Held {
            client_id: self.client_id,
            netns: self.netns,
            ifname: self.ifname,
            params: self.params,
            lease,
            acquired: now_secs(),
            priority: self.priority,
            next_try: 0,
        };
        held.result()?;
        Ok(held)
    }
}

/// One maintenance step for a lease whose time has come: renew after T1,
/// rebind after T2, a new acquisition after expiry. `Ok(None)`: nothing due.
pub fn maintain(h: &Held, timeout: Duration) -> Result<Option<Held>, String> {
    let now = now_secs();
    if now < h.t1() || now < h.next_try {
        return Ok(None);
    }
    let c = open_client(&h.netns, &h.ifname, h.params.clone())?;
    let deadline = Instant::now() + timeout;
    let got = if now >= h.expiry() {
        c.acquire(deadline)
    } else {
        match c.renew(&h.lease, now >= h.t2(), deadline) {
            Err(client::Error::Nak(_)) => c.acquire(deadline),
            other => other,
        }
    };
    let lease = got.map_err(|e| e.to_string())?;
    let mut n = h.clone();
    n.lease = lease;
    n.acquired = now_secs();
    n.next_try = 0;
    Ok(Some(n))
}

/// Send DHCPRELEASE from the lease's interface, if it still exists.
pub fn release(h: &Held) -> Result<(), String> {
    let c = open_client(&h.netns, &h.ifname, h.params.clone())?;
    c.release(&h.lease).map_err(|e| e.to_string())
}
