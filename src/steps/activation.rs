//! systemd socket activation (`sd_listen_fds`): a unit's socket arrives as
//! fd 3, with `LISTEN_PID` naming us and `LISTEN_FDS` counting the sockets.
//! Shared by `dhcp daemon` and `cnibox daemon`.

use std::os::unix::net::UnixListener;

/// The first socket systemd passed and how many it passed, or `None` when
/// this process was not socket-activated. Fd 3 must be a unix socket.
pub fn listener() -> Result<Option<(UnixListener, usize)>, String> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: usize = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !ours || count == 0 {
        return Ok(None);
    }
    const FIRST: i32 = 3;
    if nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(FIRST).is_err() {
        return Err(format!(
            "LISTEN_FDS={count} but fd {FIRST} is not a unix socket"
        ));
    }
    // SAFETY: the socket-activation protocol hands fd 3 to this process
    // (LISTEN_PID is our pid, checked above) and nothing else in cnibox
    // opens or owns it; each daemon calls this once, at start.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(FIRST) };
    Ok(Some((UnixListener::from(fd), count)))
}
