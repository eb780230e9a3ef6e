//! The client's exchanges over a UDP socket bound to port 68 on one
//! interface (`SO_BINDTODEVICE`). Acquisition asks for broadcast replies
//! (flag 0x8000), so no raw socket is needed while the interface has no
//! address; renew and release are unicast from the leased address. Every
//! wait is bounded by a deadline.

use super::message::*;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

const BROADCAST_FLAG: u16 = 0x8000;

/// What a lease asks for and who asks.
#[derive(Debug, Clone)]
pub struct Params {
    /// Option 61's value as sent (type byte first).
    pub client_id: Vec<u8>,
    pub mac: [u8; 6],
    /// Option 55.
    pub request: Vec<u8>,
    /// Further options sent in DISCOVER and REQUEST.
    pub provide: Vec<(u8, Vec<u8>)>,
    /// The longest delay between two resends.
    pub resend_max: Duration,
}

/// A lease: the server's ACK and what follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ack: Message,
    pub address: Ipv4Addr,
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    pub t1: u32,
    pub t2: u32,
}

impl Lease {
    pub fn from_ack(ack: Message) -> Option<Lease> {
        let server = ack.ip_option(OPT_SERVER_ID).unwrap_or(ack.siaddr);
        let lease_secs = ack.u32_option(OPT_LEASE_TIME).unwrap_or(3600);
        let t1 = ack.u32_option(OPT_T1).unwrap_or(lease_secs / 2);
        let t2 = ack
            .u32_option(OPT_T2)
            .unwrap_or((lease_secs as u64 * 85 / 100) as u32);
        if ack.yiaddr.is_unspecified() {
            return None;
        }
        Some(Lease {
            address: ack.yiaddr,
            server,
            lease_secs,
            t1,
            t2,
            ack,
        })
    }
}

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// No answer before the deadline (what was awaited).
    Timeout(&'static str),
    /// The server refused (its option 56 text, if any).
    Nak(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Timeout(what) => write!(f, "no {what} from a DHCP server before the timeout"),
            Error::Nak(m) if m.is_empty() => write!(f, "the DHCP server answered DHCPNAK"),
            Error::Nak(m) => write!(f, "the DHCP server answered DHCPNAK: {m}"),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<nix::errno::Errno> for Error {
    fn from(e: nix::errno::Errno) -> Self {
        Error::Io(e.into())
    }
}

fn random_xid() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// A client socket on one interface. Open it inside the interface's
/// network namespace; it may then be used from any thread.
pub struct Client {
    sock: UdpSocket,
    params: Params,
}

impl Client {
    pub fn open(ifname: &str, params: Params) -> Result<Client, Error> {
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        socket::setsockopt(&fd, sockopt::Broadcast, &true)?;
        socket::setsockopt(
            &fd,
            sockopt::BindToDevice,
            &std::ffi::OsString::from(ifname),
        )?;
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)),
        )?;
        Ok(Client {
            sock: UdpSocket::from(fd),
            params,
        })
    }

    fn base(&self, kind: u8, xid: u32) -> Message {
        let mut m = Message::request(kind, xid, self.params.mac);
        m.options
            .push((OPT_CLIENT_ID, self.params.client_id.clone()));
        m
    }

    fn with_asks(&self, mut m: Message) -> Message {
        if !self.params.request.is_empty() {
            m.options.push((OPT_PARAMS, self.params.request.clone()));
        }
        m.options.extend(self.params.provide.iter().cloned());
        m
    }

    fn send(&self, m: &Message, to: Ipv4Addr) -> io::Result<()> {
        self.sock
            .send_to(&m.encode(), SocketAddrV4::new(to, 67))
            .map(drop)
    }

    /// Wait for a reply to `xid` of one of `kinds` until `until`.
    fn wait(&self, xid: u32, kinds: &[u8], until: Instant) -> io::Result<Option<Message>> {
        let mut buf = [0u8; 1500];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Some(m) = Message::decode(&buf[..n]) {
                        if m.op == BOOTREPLY
                            && m.xid == xid
                            && m.chaddr == self.params.mac
                            && kinds.contains(&m.kind())
                        {
                            return Ok(Some(m));
                        }
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Send `m` to `to` and resend with backoff (1 s doubling up to
    /// `resend_max`) until a reply of `kinds` arrives or `deadline` passes.
    fn transact(
        &self,
        m: &Message,
        to: Ipv4Addr,
        kinds: &[u8],
        deadline: Instant,
        what: &'static str,
    ) -> Result<Message, Error> {
        let mut delay = Duration::from_secs(1);
        loop {
            self.send(m, to)?;
            let until = (Instant::now() + delay).min(deadline);
            if let Some(r) = self.wait(m.xid, kinds, until)? {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(what));
            }
            delay = delay
                .saturating_mul(2)
                .min(self.params.resend_max.max(Duration::from_secs(1)));
        }
    }

    fn nak(m: &Message) -> Error {
        Error::Nak(String::from_utf8_lossy(m.option(OPT_MESSAGE).unwrap_or_default()).into_owned())
    }

    /// DISCOVER, OFFER, REQUEST, ACK, all before `deadline`.
    pub fn acquire(&self, deadline: Instant) -> Result<Lease, Error> {
        let xid = random_xid();
        let mut d = self.with_asks(self.base(DISCOVER, xid));
        d.flags = BROADCAST_FLAG;
        let offer = self.transact(&d, Ipv4Addr::BROADCAST, &[OFFER], deadline, "DHCPOFFER")?;
        let server = offer.ip_option(OPT_SERVER_ID).unwrap_or(offer.siaddr);
        let mut r = self.base(REQUEST, xid);
        r.flags = BROADCAST_FLAG;
        r.options
            .push((OPT_REQUESTED_IP, offer.yiaddr.octets().to_vec()));
        r.options.push((OPT_SERVER_ID, server.octets().to_vec()));
        let r = self.with_asks(r);
        let ack = self.transact(&r, Ipv4Addr::BROADCAST, &[ACK, NAK], deadline, "DHCPACK")?;
        if ack.kind() == NAK {
            return Err(Self::nak(&ack));
        }
        Lease::from_ack(ack).ok_or(Error::Nak("DHCPACK without an address".into()))
    }

    /// RENEWING (unicast to the server) or REBINDING (broadcast): a REQUEST
    /// with `ciaddr` set. The new lease, or NAK/timeout.
    pub fn renew(&self, lease: &Lease, rebind: bool, deadline: Instant) -> Result<Lease, Error> {
        let mut r = self.base(REQUEST, random_xid());
        r.ciaddr = lease.address;
        let r = self.with_asks(r);
        let to = if rebind {
            Ipv4Addr::BROADCAST
        } else {
            lease.server
        };
        let ack = self.transact(&r, to, &[ACK, NAK], deadline, "DHCPACK")?;
        if ack.kind() == NAK {
            return Err(Self::nak(&ack));
        }
        Lease::from_ack(ack).ok_or(Error::Nak("DHCPACK without an address".into()))
    }

    /// DHCPRELEASE, unicast to the server from the leased address (the
    /// kernel picks it as the source while the interface holds it).
    pub fn release(&self, lease: &Lease) -> Result<(), Error> {
        let mut r = self.base(RELEASE, random_xid());
        r.ciaddr = lease.address;
        r.options
            .push((OPT_SERVER_ID, lease.server.octets().to_vec()));
        self.send(&r, lease.server)?;
        Ok(())
    }
}
