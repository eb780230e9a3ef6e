//! TUN/TAP devices through `/dev/net/tun` ioctls (what `ip tuntap add`
//! does): create a persistent tap in the calling thread's network
//! namespace, with an owner and a group. No `ip` is executed.
//!
//! The device is born in the namespace the `/dev/net/tun` file was OPENED
//! in, so [`create_tap`] must run on a thread inside the target namespace.

use super::socket::NlError;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::libc;
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, OwnedFd};

// linux/if_tun.h: _IOW('T', nr, int)
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;
const TUNSETGROUP: libc::c_ulong = 0x4004_54ce;
pub const IFF_TAP: u16 = 0x0002;
pub const IFF_MULTI_QUEUE: u16 = 0x0100;
pub const IFF_NO_PI: u16 = 0x1000;
/// Fail with EBUSY instead of attaching to a device of that name that
/// already exists (not stored in the device's flags).
pub const IFF_TUN_EXCL: u16 = 0x8000;

/// What to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapSpec<'a> {
    pub name: &'a str,
    pub multi_queue: bool,
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then `ifr_flags`.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: u16,
    _pad: [u8; 22],
}

/// The flags TUNSETIFF gets for `spec`: a tap without packet information
/// and without a vnet header (the flags `ip tuntap add mode tap` gives).
pub fn tap_flags(spec: &TapSpec) -> u16 {
    let mut f = IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL;
    if spec.multi_queue {
        f |= IFF_MULTI_QUEUE;
    }
    f
}

/// Create a persistent tap named `spec.name` in the calling thread's
/// network namespace. A name already in use is EBUSY (never attached to).
pub fn create_tap(spec: &TapSpec) -> Result<(), NlError> {
    let what = format!("create tap {}", spec.name);
    let err = |e: Errno| NlError::new(what.clone(), e);
    if spec.name.is_empty() || spec.name.len() >= libc::IFNAMSIZ {
        return Err(err(Errno::EINVAL));
    }
    let fd: OwnedFd = open(
        "/dev/net/tun",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| NlError::new(format!("open /dev/net/tun for {}", spec.name), e))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: tap_flags(spec),
        _pad: [0; 22],
    };
    req.name[..spec.name.len()].copy_from_slice(spec.name.as_bytes());
    // SAFETY: `fd` is an open /dev/net/tun descriptor and `req` is a live,
    // properly sized `struct ifreq` (40 bytes) the kernel reads and writes
    // only within its size.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) }).map_err(err)?;
    // From here the device exists; until TUNSETPERSIST it goes away with
    // `fd`, so an error below leaves nothing behind.
    if let Some(uid) = spec.owner {
        // SAFETY: TUNSETOWNER takes its argument by value; no memory is
        // passed.
        Errno::result(unsafe {
            libc::ioctl(fd.as_raw_fd(), TUNSETOWNER as _, uid as libc::c_ulong)
        })
        .map_err(|e| NlError::new(format!("set owner {uid} of tap {}", spec.name), e))?;
    }
    if let Some(gid) = spec.group {
        // SAFETY: as TUNSETOWNER, by value.
        Errno::result(unsafe {
            libc::ioctl(fd.as_raw_fd(), TUNSETGROUP as _, gid as libc::c_ulong)
        })
        .map_err(|e| NlError::new(format!("set group {gid} of tap {}", spec.name), e))?;
    }
    // SAFETY: as TUNSETOWNER, by value.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST as _, 1 as libc::c_ulong) })
        .map_err(|e| NlError::new(format!("make tap {} persistent", spec.name), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::offset_of!(IfReq, flags), 16);
    }

    #[test]
    fn flags_are_a_plain_tap_without_pi_or_vnet_header() {
        let plain = tap_flags(&TapSpec::default());
        assert_eq!(plain, 0x9002);
        let mq = tap_flags(&TapSpec {
            multi_queue: true,
            ..Default::default()
        });
        assert_eq!(mq, 0x9102);
        // Never IFF_VNET_HDR (0x4000).
        assert_eq!(mq & 0x4000, 0);
    }
}
