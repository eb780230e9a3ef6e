//! A private, anonymous network namespace: made by `unshare(CLONE_NEWNET)`
//! on a scoped thread that dies right after, never bind-mounted, never
//! named. It lives exactly as long as the returned [`NetNs`] (its fd), so
//! nothing outlives the plugin. host-device passes devices through one
//! instead of giving them a temporary name in the host, where udev or a
//! network manager might race with the rename.
//!
//! When it is dropped with a device still inside, the kernel returns a
//! physical device to the initial namespace and DESTROYS a virtual one:
//! callers move everything out before they let go of it.

use super::netns::NetNs;
use crate::cni::CniError;
use nix::sched::{unshare, CloneFlags};

pub fn create() -> Result<NetNs, CniError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
                CniError::internal(format!(
                    "failed to create a temporary network namespace: {}",
                    e.desc()
                ))
            })?;
            NetNs::current().map_err(CniError::from)
        })
        .join()
        .unwrap_or_else(|_| Err(CniError::internal("namespace worker panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_namespace_is_not_ours_and_has_only_lo() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root");
            return;
        }
        let ns = create().unwrap();
        let mine = NetNs::current().unwrap();
        let id = |n: &NetNs| {
            std::fs::metadata(format!("/proc/self/fd/{}", n.fd()))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap()
        };
        assert_ne!(id(&ns), id(&mine));
        let names: Vec<String> = ns
            .netlink()
            .unwrap()
            .links()
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, vec!["lo".to_string()]);
    }
}
