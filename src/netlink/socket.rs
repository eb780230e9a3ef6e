//! One blocking netlink socket (neli's `NlSocketHandle`), with request/ACK,
//! dump and batch helpers. A socket stays in the network namespace it was
//! created in, so open it inside the target netns, then use it anywhere.

use super::attr::Msg;
use super::consts::*;
use neli::consts::nl::NlmF;
use neli::consts::socket::NlFamily;
use neli::err::SocketError;
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::types::Buffer;
use neli::utils::Groups;
use nix::errno::Errno;
use std::cell::Cell;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A failed netlink operation: the errno the kernel (or the socket) gave,
/// the kernel's extended-ACK message if any, and what we were doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    pub errno: Errno,
    pub ext_ack: String,
    pub what: String,
}

impl NlError {
    /// The kernel's answer `code` (a negative errno) to request `what`, with
    /// its extended-ACK message.
    fn kernel(what: &str, code: i32, ext_ack: String) -> Self {
        NlError {
            errno: Errno::from_raw(code.unsigned_abs() as i32),
            ext_ack,
            what: what.to_string(),
        }
    }

    pub fn new(what: impl Into<String>, errno: Errno) -> Self {
        NlError {
            errno,
            ext_ack: String::new(),
            what: what.into(),
        }
    }

    /// "Already there": fine where an ADD is idempotent.
    pub fn is_exists(&self) -> bool {
        self.errno == Errno::EEXIST
    }

    /// "Already gone": ENODEV/ENOENT/ESRCH (and EADDRNOTAVAIL for
    /// addresses) count as success on delete.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.errno,
            Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL
        )
    }

    pub fn is_unsupported(&self) -> bool {
        matches!(
            self.errno,
            Errno::EOPNOTSUPP | Errno::EPROTONOSUPPORT | Errno::EAFNOSUPPORT
        )
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.errno.desc())?;
        if !self.ext_ack.is_empty() {
            write!(f, " ({})", self.ext_ack)?;
        }
        Ok(())
    }
}

impl std::error::Error for NlError {}

fn socket_errno(e: &SocketError) -> Errno {
    match e {
        SocketError::Io(io) => io.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO),
        _ => Errno::EBADMSG,
    }
}

/// How many times a dump interrupted by a concurrent change is retried
/// (the Go plugins' netlinksafe does the same).
const DUMP_RETRIES: usize = 5;

/// A blocking netlink socket with its own sequence counter. Not `Sync`: one
/// socket per namespace per thread of work, no shared state.
pub struct Netlink {
    handle: NlSocketHandle,
    seq: Cell<u32>,
    /// NETLINK_NETFILTER: its last close is handed off (see `Drop`).
    netfilter: bool,
}

/// Closing the last reference to a NETLINK_NETFILTER socket runs nf_tables'
/// release notifier, which first waits for the destruction of every
/// recently committed transaction (one RCU grace period, ~20 ms on this VM)
/// even when this socket owns nothing. A portmap or firewall ADD commits and
/// then exits, so that wait was most of its time. The close is the kernel's
/// business, not the caller's: the last reference goes to a short-lived
/// grandchild that holds nothing else (every other descriptor closed, so
/// the runtime's stdout pipe and our lock files are not kept open). It
/// waits for EOF on a pipe, which comes once our own reference is gone,
/// then closes the socket and exits. When anything fails, the socket is
/// simply closed here as before.
impl Drop for Netlink {
    fn drop(&mut self) {
        if self.netfilter {
            super::close::hand_off_last_close(self.handle.as_raw_fd());
        }
    }
}

/// One message as received: type, flags and payload bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub ty: u16,
    pub flags: u16,
    pub payload: Vec<u8>,
}

impl Netlink {
    /// An rtnetlink socket in the calling thread's network namespace, with
    /// extended ACKs and strict dump checking on.
    pub fn route() -> Result<Self, NlError> {
        let nl = Self::open(NlFamily::Route)?;
        // Strict checking makes the kernel honour dump filters and reject
        // malformed requests instead of guessing (Linux >= 4.20).
        let _ = nl.handle.enable_strict_checking(true);
        Ok(nl)
    }

    /// A NETLINK_NETFILTER socket (nf_tables) in the calling thread's netns.
    pub fn netfilter() -> Result<Self, NlError> {
        Self::open(NlFamily::Netfilter)
    }

    /// A netfilter socket, or `None` when the kernel has no nf_tables (then
    /// no rule can exist to be removed).
    pub fn netfilter_if_supported() -> Result<Option<Self>, NlError> {
        match Self::netfilter() {
            Ok(nl) => Ok(Some(nl)),
            Err(e) if e.is_unsupported() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open(family: NlFamily) -> Result<Self, NlError> {
        let handle = NlSocketHandle::connect(family, None, Groups::empty())
            .map_err(|e| NlError::new("netlink socket", socket_errno(&e)))?;
        let _ = handle.enable_ext_ack(true);
        // A kernel that never answers must not hang a CNI call forever.
        let fd = handle.as_raw_fd();
        // SAFETY: `fd` is owned by `handle`, which outlives this borrow.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let timeout = nix::sys::time::TimeVal::new(30, 0);
        let _ = nix::sys::socket::setsockopt(
            &borrowed,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &timeout,
        );
        Ok(Netlink {
            handle,
            seq: Cell::new(1),
            netfilter: matches!(family, NlFamily::Netfilter),
        })
    }

    fn next_seq(&self) -> u32 {
        let s = self.seq.get().wrapping_add(1);
        self.seq.set(s);
        s
    }

    fn send(&self, what: &str, ty: u16, flags: u16, seq: u32, body: &[u8]) -> Result<(), NlError> {
        let msg: Nlmsghdr<u16, Buffer> = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(NlmF::from(flags))
            .nl_seq(seq)
            .nl_pid(0)
            .nl_payload(NlPayload::Payload(Buffer::from(body)))
            .build()
            .map_err(|_| NlError::new(what, Errno::EINVAL))?;
        self.handle
            .send(&msg)
            .map_err(|e| NlError::new(what, socket_errno(&e)))
    }

    /// Receive one datagram and hand each message to `each`; stop early when
    /// `each` returns `Some`.
    fn recv_each<T>(
        &self,
        what: &str,
        mut each: impl FnMut(u32, Reply, Option<(i32, String)>) -> Option<Result<T, NlError>>,
    ) -> Result<Option<T>, NlError> {
        let (iter, _) = self
            .handle
            .recv::<u16, Buffer>()
            .map_err(|e| NlError::new(what, socket_errno(&e)))?;
        for msg in iter {
            let msg = msg.map_err(|e| NlError::new(what, socket_errno(&e)))?;
            let seq = *msg.nl_seq();
            let ty = *msg.nl_type();
            let flags: u16 = (*msg.nl_flags()).into();
            let (payload, err) = match msg.nl_payload() {
                NlPayload::Payload(p) => (p.as_ref().to_vec(), None),
                NlPayload::Ack(_) => (Vec::new(), Some((0, String::new()))),
                NlPayload::Err(e) => {
                    let ack = e
                        .ext_ack()
                        .iter()
                        .find(|a| u16::from(*a.nla_type().nla_type()) == NLMSGERR_ATTR_MSG)
                        .map(|a| {
                            let b = a.nla_payload().as_ref();
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            String::from_utf8_lossy(&b[..end]).into_owned()
                        })
                        .unwrap_or_default();
                    (Vec::new(), Some((*e.error(), ack)))
                }
                NlPayload::DumpExtAck(e) => (
                    Vec::new(),
                    if *e.error() != 0 {
                        Some((*e.error(), String::new()))
                    } else {
                        None
                    },
                ),
                NlPayload::Empty => (Vec::new(), None),
            };
            if let Some(done) = each(seq, Reply { ty, flags, payload }, err) {
                return done.map(Some);
            }
        }
        Ok(None)
    }

    /// Send one prepared request and wait for its ACK.
    pub fn run(&self, req: &Req) -> Result<(), NlError> {
        self.request(&req.what, req.ty, req.flags, &req.body)
    }

    /// Send one message with a fresh sequence number and hand the replies
    /// carrying that number to `pick` until it returns `Some` (replies to
    /// anything else, such as a stale ACK, are skipped).
    fn exchange<T>(
        &self,
        what: &str,
        ty: u16,
        flags: u16,
        body: &[u8],
        mut pick: impl FnMut(Reply, Option<(i32, String)>) -> Option<Result<T, NlError>>,
    ) -> Result<T, NlError> {
        let seq = self.next_seq();
        self.send(what, ty, flags, seq, body)?;
        loop {
            let r = self.recv_each(
                what,
                |s, reply, err| if s == seq { pick(reply, err) } else { None },
            )?;
            if let Some(v) = r {
                return Ok(v);
            }
        }
    }

    /// Send one request and wait for its ACK. `flags` are added to
    /// NLM_F_REQUEST|NLM_F_ACK.
    pub fn request(&self, what: &str, ty: u16, flags: u16, body: &[u8]) -> Result<(), NlError> {
        let flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        self.exchange(what, ty, flags, body, |_reply, err| match err {
            Some((0, _)) => Some(Ok(())),
            Some((code, ack)) => Some(Err(NlError::kernel(what, code, ack))),
            None => None,
        })
    }

    /// A delete request: a target already gone (see [`NlError::is_gone`])
    /// is success, so DEL stays idempotent.
    pub(super) fn request_delete(&self, what: &str, ty: u16, body: &[u8]) -> Result<(), NlError> {
        match self.request(what, ty, 0, body) {
            Err(e) if e.is_gone() => Ok(()),
            r => r,
        }
    }

    /// A GET request answered by exactly one message (e.g. RTM_GETLINK by
    /// name), returning its payload.
    pub fn get(&self, what: &str, ty: u16, body: &[u8]) -> Result<Reply, NlError> {
        self.exchange(what, ty, NLM_F_REQUEST, body, |reply, err| match err {
            Some((0, _)) | None if reply.ty != NLMSG_ERROR => Some(Ok(reply)),
            Some((code, ack)) => Some(Err(NlError::kernel(what, code, ack))),
            _ => None,
        })
    }

    /// Dump a table: every message up to NLMSG_DONE. Retried from scratch
    /// when the kernel flags the dump as interrupted by a concurrent change.
    pub fn dump(&self, what: &str, ty: u16, body: &[u8]) -> Result<Vec<Reply>, NlError> {
        for _ in 0..DUMP_RETRIES {
            let mut out = Vec::new();
            let mut interrupted = false;
            self.exchange(what, ty, NLM_F_REQUEST | NLM_F_DUMP, body, |reply, err| {
                if reply.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                if let Some((code, ack)) = err {
                    if code != 0 {
                        return Some(Err(NlError::kernel(what, code, ack)));
                    }
                }
                if reply.ty == NLMSG_DONE {
                    return Some(Ok(()));
                }
                if reply.ty != NLMSG_ERROR {
                    out.push(reply);
                }
                None
            })?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NlError::new(what, Errno::EINTR))
    }

    /// Send several complete netlink messages in ONE datagram (an nf_tables
    /// batch must arrive whole) and wait for the ACK of every message pushed
    /// with `ack`. Returns the first error reported for ANY message of the
    /// frames, acked or not: the kernel (6.18, checked) reports every failed
    /// message of a batch, answers every NLM_F_ACK message even when the
    /// batch was aborted (an ACK of 0 then does not mean "applied"), delivers
    /// all answers in message order after the commit or abort, and reports
    /// transaction-level failures (e.g. ERESTART for a stale generation) on
    /// the batch-begin message alone. `frames` is built with [`Frames`].
    pub fn send_batch(&self, what: &str, frames: &Frames) -> Result<(), NlError> {
        self.send_frames(what, frames)?;
        let mut pending: Vec<u32> = frames.acked.clone();
        let mut first_err: Option<NlError> = None;
        while !pending.is_empty() {
            self.recv_each::<()>(what, |s, _reply, err| {
                let (code, ack) = err?;
                if !frames.contains(s) {
                    return None;
                }
                // Every error counts, acked message or not.
                if code != 0 {
                    first_err.get_or_insert_with(|| NlError::kernel(what, code, ack));
                }
                if s == frames.batch_seq && code != 0 {
                    // The whole transaction failed (commit or framing).
                    pending.clear();
                } else if let Some(pos) = pending.iter().position(|p| *p == s) {
                    pending.remove(pos);
                }
                None
            })?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Write all `frames` in one datagram.
    fn send_frames(&self, what: &str, frames: &Frames) -> Result<(), NlError> {
        nix::sys::socket::send(
            self.handle.as_raw_fd(),
            &frames.buf,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(|e| NlError::new(what, e))?;
        Ok(())
    }

    /// Several independent requests in ONE datagram: the kernel handles
    /// them in order, exactly as if sent one by one, and ACKs each; this
    /// saves a round trip per request. Returns every request's result in
    /// order (a failed request does not stop the later ones).
    pub fn request_all(&self, reqs: &[Req]) -> Result<Vec<Result<(), NlError>>, NlError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut frames = self.frames();
        let seqs: Vec<u32> = reqs
            .iter()
            .map(|r| frames.push(r.ty, r.flags, &r.body, true))
            .collect();
        self.send_frames(&reqs[0].what, &frames)?;
        let mut results: Vec<Option<Result<(), NlError>>> = reqs.iter().map(|_| None).collect();
        let mut remaining = reqs.len();
        while remaining > 0 {
            self.recv_each::<()>(&reqs[0].what, |s, _reply, err| {
                let (code, ack) = err?;
                let i = seqs.iter().position(|x| *x == s)?;
                if results[i].is_none() {
                    remaining -= 1;
                    results[i] = Some(match code {
                        0 => Ok(()),
                        c => Err(NlError::kernel(&reqs[i].what, c, ack)),
                    });
                }
                None
            })?;
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect())
    }

    /// Reserve sequence numbers for a batch being built.
    pub fn frames(&self) -> Frames {
        let first = self.seq.get().wrapping_add(1_000);
        self.seq.set(first.wrapping_add(10_000));
        Frames::starting_at(first)
    }
}

/// One request of [`Netlink::request_all`]: NLM_F_REQUEST and NLM_F_ACK
/// are added to `flags`.
#[derive(Debug, Clone)]
pub struct Req {
    pub what: String,
    pub ty: u16,
    pub flags: u16,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(what: String, ty: u16, flags: u16, body: Msg) -> Req {
        Req {
            what,
            ty,
            flags,
            body: body.into_bytes(),
        }
    }
}

/// Several netlink messages laid out back to back, for [`Netlink::send_batch`].
#[derive(Debug, Clone, Default)]
pub struct Frames {
    buf: Vec<u8>,
    acked: Vec<u32>,
    /// The sequence number of the batch-begin message, which the kernel uses
    /// for transaction-level errors.
    pub batch_seq: u32,
    next_seq: u32,
    /// Sequence number of the first message.
    first_seq: u32,
}

impl Frames {
    /// Fresh frames numbered from `seq` (fixed in golden-byte tests).
    pub fn starting_at(seq: u32) -> Self {
        Frames {
            next_seq: seq,
            first_seq: seq,
            ..Default::default()
        }
    }

    /// Append one message; returns its sequence number. With `ack`, the
    /// message carries NLM_F_ACK and `send_batch` waits for its answer.
    pub fn push(&mut self, ty: u16, flags: u16, body: &[u8], ack: bool) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let flags = flags | NLM_F_REQUEST | if ack { NLM_F_ACK } else { 0 };
        let len = 16 + body.len();
        self.buf.extend_from_slice(&(len as u32).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(body);
        self.buf.resize(super::attr::align(self.buf.len()), 0);
        if ack {
            self.acked.push(seq);
        }
        seq
    }

    /// Whether `seq` belongs to a message of these frames.
    pub fn contains(&self, seq: u32) -> bool {
        let first = self.first_seq;
        seq.wrapping_sub(first) < self.next_seq.wrapping_sub(first)
    }

    #[cfg(test)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// How many messages wait for an ACK.
    #[cfg(test)]
    pub fn acked_count(&self) -> usize {
        self.acked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap() {
        let mut f = Frames::starting_at(u32::MAX);
        f.push(0x10, 0, &[0; 4], false);
        f.push(0x0a06, 0, &[0; 4], true);
        // u32::MAX, then 0
        assert!(f.contains(u32::MAX) && f.contains(0) && !f.contains(1));
    }

    #[test]
    fn frames_lay_out_headers_back_to_back() {
        let mut f = Frames::starting_at(7);
        let a = f.push(0x10, 0, &[1, 0, 0, 0], false);
        let b = f.push(0x0a00, NLM_F_CREATE, &[2, 0, 0, 10, 9], true);
        assert_eq!((a, b), (7, 8));
        let bytes = f.as_bytes();
        assert_eq!(&bytes[..4], &20u32.to_ne_bytes());
        assert_eq!(&bytes[4..6], &0x10u16.to_ne_bytes());
        assert_eq!(&bytes[6..8], &NLM_F_REQUEST.to_ne_bytes());
        assert_eq!(&bytes[8..12], &7u32.to_ne_bytes());
        assert_eq!(bytes.len(), 20 + 24);
        assert_eq!(&bytes[20..24], &21u32.to_ne_bytes());
        assert_eq!(
            &bytes[26..28],
            &(NLM_F_CREATE | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes()
        );
        assert_eq!(f.acked_count(), 1);
        assert!(f.contains(7) && f.contains(8) && !f.contains(9) && !f.contains(6));
    }

    #[test]
    fn error_classes() {
        assert!(NlError::new("x", Errno::ENODEV).is_gone());
        assert!(NlError::new("x", Errno::EEXIST).is_exists());
        assert!(!NlError::new("x", Errno::EPERM).is_gone());
        let mut e = NlError::new("add veth", Errno::EEXIST);
        e.ext_ack = "name in use".into();
        assert_eq!(e.to_string(), "add veth: File exists (name in use)");
    }
}
