//! Network namespaces (Go's `pkg/ns`): open `CNI_NETNS` only if it really is
//! a namespace file, and do namespace work on a scoped thread that calls
//! `setns` and then dies. The main thread never changes namespace, so no
//! code after us can run in the wrong one.

use crate::cni::CniError;
use crate::netlink::Netlink;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use nix::sys::statfs::{fstatfs, statfs, NSFS_MAGIC, PROC_SUPER_MAGIC};
use std::fmt;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};

/// Why a namespace could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsError {
    /// The path does not exist: for DEL this means "already gone".
    NotExist(String),
    /// The path exists but is not a network namespace.
    NotNs(String),
    /// Anything else (permissions, setns failure, ...).
    Other(String),
}

impl NsError {
    pub fn is_not_exist(&self) -> bool {
        matches!(self, NsError::NotExist(_))
    }
}

impl fmt::Display for NsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsError::NotExist(m) | NsError::NotNs(m) | NsError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NsError {}

/// A bad `CNI_NETNS` is an invalid environment variable (code 4, named).
impl From<NsError> for CniError {
    fn from(e: NsError) -> Self {
        match e {
            NsError::NotExist(_) | NsError::NotNs(_) => CniError::env(format!("CNI_NETNS: {e}")),
            NsError::Other(_) => CniError::internal(e.to_string()),
        }
    }
}

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: String,
}

impl NetNs {
    /// Open a namespace path, refusing anything that is not nsfs or procfs
    /// (a regular file, a directory, a FIFO that would block, ...).
    pub fn open(path: &str) -> Result<NetNs, NsError> {
        let fs = statfs(path).map_err(|e| match e {
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => {
                NsError::NotExist(format!("failed to Statfs {path:?}: {}", e.desc()))
            }
            e => NsError::Other(format!("failed to Statfs {path:?}: {}", e.desc())),
        })?;
        let is_ns = |t| t == NSFS_MAGIC || t == PROC_SUPER_MAGIC;
        if !is_ns(fs.filesystem_type()) {
            return Err(NsError::NotNs(format!(
                "unknown FS magic on {path:?}: {:x}",
                fs.filesystem_type().0
            )));
        }
        let fd = open(
            path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| NsError::Other(format!("failed to open {path:?}: {}", e.desc())))?;
        let file = File::from(fd);
        // Check the file we opened, not just the path we looked at.
        match fstatfs(&file) {
            Ok(s) if is_ns(s.filesystem_type()) => {}
            _ => {
                return Err(NsError::NotNs(format!(
                    "{path:?} is not a network namespace"
                )))
            }
        }
        Ok(NetNs {
            file,
            path: path.to_string(),
        })
    }

    /// [`open`](Self::open) for DEL: an empty path or one that no longer
    /// exists is `None` (the namespace is gone, and with it everything in
    /// it), not an error.
    pub fn open_for_del(path: &str) -> Result<Option<NetNs>, CniError> {
        if path.is_empty() {
            return Ok(None);
        }
        match NetNs::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if e.is_not_exist() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<NetNs, NsError> {
        Self::open("/proc/thread-self/ns/net")
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Run `f` inside this namespace, on a scoped thread that exits
    /// afterwards. Sockets and `/proc/sys/net` files opened inside stay bound
    /// to this namespace when used from other threads.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NsError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NsError::NotNs(format!("setns into {:?}: {}", self.path, e.desc()))
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(NsError::Other("namespace worker panicked".into())))
        })
    }

    /// An rtnetlink socket that lives in this namespace.
    pub fn netlink(&self) -> Result<Netlink, CniError> {
        self.run(Netlink::route)?
            .map_err(|e| CniError::internal(format!("netlink in {}: {e}", self.path)))
    }
}
