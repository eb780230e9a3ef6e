//! The last close of a NETLINK_NETFILTER socket, off the caller's critical
//! path (see `Drop for Netlink` in [`super::socket`]).

/// Hand our reference to `sock` to a short-lived grandchild that closes it
/// once ours is gone; close here when that cannot be done.
pub(super) fn hand_off_last_close(sock: std::os::fd::RawFd) {
    use nix::libc;
    use nix::unistd::{fork, ForkResult};
    // As PID 1 (a containerised `cnibox daemon`) nobody would reap the
    // orphaned grandchild: close here and wait instead.
    if std::process::id() == 1 {
        return;
    }
    let mut p = [-1; 2];
    // SAFETY: `p` is a valid array of two c_ints for pipe2 to fill.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    let [r, w] = p;
    // SAFETY: the child and grandchild call only async-signal-safe
    // functions (fork, close_range, read, close, _exit) and never return
    // into Rust, so forking a process that may have other threads is sound.
    match unsafe { fork() } {
        // SAFETY: as above; every descriptor closed is this copy's own.
        Ok(ForkResult::Child) => unsafe {
            if !matches!(fork(), Ok(ForkResult::Child)) {
                libc::_exit(0);
            }
            let (lo, hi) = (sock.min(r) as u32, sock.max(r) as u32);
            if lo > 0 {
                libc::syscall(libc::SYS_close_range, 0u32, lo - 1, 0u32);
            }
            if hi > lo + 1 {
                libc::syscall(libc::SYS_close_range, lo + 1, hi - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, hi + 1, u32::MAX, 0u32);
            let mut b = 0u8;
            while libc::read(r, (&mut b as *mut u8).cast(), 1) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
            libc::close(sock);
            libc::_exit(0);
        },
        Ok(ForkResult::Parent { child }) => {
            let _ = nix::sys::wait::waitpid(child, None);
            // Drop our reference now (the grandchild holds one): `sock`
            // becomes a copy of the pipe's read end, which the socket
            // handle's own drop then closes.
            // SAFETY: both are open descriptors of this process; dup2
            // atomically replaces `sock`, which only the handle uses.
            unsafe { libc::dup2(r, sock) };
        }
        Err(_) => {}
    }
    // SAFETY: `r` and `w` are the pipe made above, used nowhere else.
    unsafe {
        libc::close(w);
        libc::close(r);
    }
}
