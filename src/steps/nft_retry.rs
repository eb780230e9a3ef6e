//! Read, plan, commit: the one retry loop for nf_tables tables that other
//! plugin runs change at the same moment (masquerade and spoof-check, on
//! ADD, DEL and GC).
//!
//! What we read can be stale by the time the batch lands, and a dump can be
//! cut short by a concurrent commit. Either way the kernel says so with an
//! errno ([`is_race`]); we read again, with a short back-off, instead of
//! failing the container's ADD or DEL.

use crate::cni::CniError;
use crate::netlink::NlError;
use nix::errno::Errno;

/// Attempts before giving up when concurrent changes keep invalidating
/// what we read. At 8 parallel DELs on one table a dump is cut a handful of
/// times in a row; 50 with the back-off below is about 0.3 s at worst.
pub const ATTEMPTS: u32 = 50;

/// Why one attempt stopped.
pub enum Stop {
    /// A netlink error: retried if it is a race, else the step fails.
    Nl(NlError),
    /// A decision (bad existing state, a failed link dump): fail now.
    Fail(CniError),
}

impl From<NlError> for Stop {
    fn from(e: NlError) -> Self {
        Stop::Nl(e)
    }
}

impl From<CniError> for Stop {
    fn from(e: CniError) -> Self {
        Stop::Fail(e)
    }
}

/// Errors that mean "what we read is no longer true": start over.
/// ERESTART: the batch was pinned to a generation that moved on. ENOENT: a
/// rule or chain we planned to delete went (a concurrent DEL or GC).
/// EEXIST/EBUSY: one being created or still referenced by a concurrent
/// transaction. EINTR: a dump interrupted by a commit (NLM_F_DUMP_INTR,
/// after the socket's own retries).
pub fn is_race(e: &NlError) -> bool {
    matches!(
        e.errno,
        Errno::ERESTART | Errno::ENOENT | Errno::EEXIST | Errno::EBUSY | Errno::EINTR
    )
}

/// Run `attempt` until it succeeds, fails for a reason other than a race,
/// or [`ATTEMPTS`] runs out. `fail` turns the netlink error into the
/// step's CNI error.
pub fn retry<T>(
    fail: impl Fn(NlError) -> CniError,
    mut attempt: impl FnMut() -> Result<T, Stop>,
) -> Result<T, CniError> {
    let mut last = None;
    for n in 0..ATTEMPTS {
        backoff(n);
        match attempt() {
            Ok(v) => return Ok(v),
            Err(Stop::Nl(e)) if is_race(&e) => last = Some(e),
            Err(Stop::Nl(e)) => return Err(fail(e)),
            Err(Stop::Fail(e)) => return Err(e),
        }
    }
    let last = last.expect("ATTEMPTS > 0");
    Err(fail(NlError {
        what: format!("{} (the ruleset kept changing)", last.what),
        ..last
    }))
}

/// The first tries go back at once (the usual race is one other commit);
/// after that, sleep a little longer each time so a busy table settles.
fn backoff(attempt: u32) {
    if attempt > 2 {
        std::thread::sleep(std::time::Duration::from_micros(200 * attempt as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn fail(e: NlError) -> CniError {
        CniError::internal(format!("test: {e}"))
    }

    #[test]
    fn an_interrupted_dump_is_read_again_until_it_succeeds() {
        let tries = Cell::new(0);
        let r = retry(fail, || {
            tries.set(tries.get() + 1);
            if tries.get() < 7 {
                Err(Stop::Nl(NlError::new("nftables: list rules", Errno::EINTR)))
            } else {
                Ok(tries.get())
            }
        });
        assert_eq!(r.unwrap(), 7);
    }

    #[test]
    fn a_real_error_fails_at_once() {
        let tries = Cell::new(0);
        let r: Result<(), _> = retry(fail, || {
            tries.set(tries.get() + 1);
            Err(Stop::Nl(NlError::new("nftables: add rule", Errno::EPERM)))
        });
        assert_eq!(tries.get(), 1);
        let e = r.unwrap_err();
        assert!(e.msg.contains("add rule"), "{}", e.msg);
    }

    #[test]
    fn a_decision_fails_at_once_with_its_own_error() {
        let r: Result<(), _> = retry(fail, || {
            Err(CniError::config("chain has another hook").into())
        });
        assert_eq!(r.unwrap_err().msg, "chain has another hook");
    }

    #[test]
    fn a_race_that_never_ends_gives_up_naming_the_last_error() {
        let tries = Cell::new(0);
        let r: Result<(), _> = retry(fail, || {
            tries.set(tries.get() + 1);
            Err(Stop::Nl(NlError::new("nftables: commit", Errno::ERESTART)))
        });
        assert_eq!(tries.get(), ATTEMPTS);
        let msg = r.unwrap_err().msg;
        assert!(msg.contains("commit (the ruleset kept changing)"), "{msg}");
    }
}
