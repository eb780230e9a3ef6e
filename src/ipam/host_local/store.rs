//! The on-disk store, byte-compatible with the reference's:
//!
//! - `<dataDir>/<network>/` (mode 0755) holds one file per reserved IP, named
//!   by the IP (`10.1.2.2`, `2001:db8::2`), created with O_EXCL, mode 0600,
//!   holding `<containerID>\r\n<ifname>` with no newline (older versions
//!   wrote the container ID alone: "legacy" files);
//! - `last_reserved_ip.<set index>` holds the last IP reserved in a range
//!   set, bare, with no newline (Go parses it without trimming);
//! - `lock` (0750) is held with flock(LOCK_EX) for as long as a [`Store`]
//!   lives; every change happens under it.
//!
//! Everything is opened relative to the network directory's descriptor with
//! O_NOFOLLOW, so a symlink planted in the store is never followed, and the
//! network directory itself must not be a symlink.
//!
//! cnibox's own files (the owner index, temporaries) live in the `.cnibox`
//! subdirectory (0700): not an IP, so the reference ignores it, and the
//! contents of its files never equal an owner string.

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, fstatat, futimens, mkdirat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};
use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// cnibox's private subdirectory of a network directory.
pub const AUX_DIR: &str = ".cnibox";
const LOCK_FILE: &str = "lock";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Reservation files are a few dozen bytes; anything longer is not one.
const MAX_OWNER_FILE: usize = 64 << 10;
/// What an oversized file's owner reads as: it matches no attachment.
const OVERSIZED_OWNER: &str = "<oversized reservation file>";

/// The content of a reservation: `id\r\nifname` (the id trimmed, as Go
/// does).
pub fn owner_key(id: &str, ifname: &str) -> String {
    format!("{}\r\n{}", id.trim(), ifname)
}

/// Split an owner into its container ID and, for new-style files, the
/// interface name.
pub fn split_owner(owner: &str) -> (&str, Option<&str>) {
    match owner.split_once("\r\n") {
        Some((id, ifname)) => (id, Some(ifname)),
        None => (owner, None),
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Retry a call interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// A network name usable as one path component (the skel already checks
/// libcni's pattern; this is the store's own guard).
pub fn safe_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0'])
}

/// What a reservation attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// The file is ours now.
    Reserved,
    /// Someone holds the address.
    Taken,
}

/// The identity and modification time of the network directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub dev: u64,
    pub ino: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

/// One entry of the network directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// A regular file or a symlink (never followed); other kinds are not
    /// listed.
    pub is_file: bool,
}

/// An open, locked store. Dropping it releases the lock.
pub struct Store {
    path: PathBuf,
    dir: OwnedFd,
    aux: Option<OwnedFd>,
    _lock: Flock<File>,
    /// Did we create, remove or rename anything in the network directory?
    mutated: Cell<bool>,
}

impl Store {
    /// Open (creating it when `create`) and lock the store of `network`
    /// under `data_dir`. `Ok(None)` when it does not exist and `create` is
    /// false.
    pub fn open(data_dir: &Path, network: &str, create: bool) -> io::Result<Option<Store>> {
        if !safe_name(network) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsafe network name {network:?}"),
            ));
        }
        if create {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(data_dir)?;
        }
        let base = match File::open(data_dir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut created = false;
        if create {
            match mkdirat(&base, network, Mode::from_bits_truncate(0o755)) {
                Ok(()) => created = true,
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(errno(e)),
            }
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = match retry(|| openat(&base, network, flags, Mode::empty())) {
            Ok(fd) => fd,
            // A name too long for a directory was never created.
            Err(Errno::ENOENT) | Err(Errno::ENAMETOOLONG) if !create => return Ok(None),
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory (a symlink there is refused)",
                    data_dir.join(network).display()
                )))
            }
            Err(e) => return Err(errno(e)),
        };
        let lock = retry(|| {
            openat(
                &dir,
                LOCK_FILE,
                OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o750),
            )
        })
        .map_err(|e| io::Error::other(format!("failed to open the lock file: {}", errno(e))))?;
        let mut file = File::from(lock);
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(l) => break l,
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => {
                    return Err(io::Error::other(format!(
                        "failed to lock the store: {}",
                        errno(e)
                    )))
                }
            }
        };
        let mut store = Store {
            path: data_dir.join(network),
            dir,
            aux: None,
            _lock: lock,
            mutated: Cell::new(created),
        };
        store.aux = store.open_aux();
        Ok(Some(store))
    }

    /// Our private subdirectory, created if needed; `None` if that fails
    /// (the store then works without an index).
    fn open_aux(&self) -> Option<OwnedFd> {
        match mkdirat(&self.dir, AUX_DIR, Mode::from_bits_truncate(0o700)) {
            Ok(()) => self.mutated.set(true),
            Err(Errno::EEXIST) => {}
            Err(_) => return None,
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        retry(|| openat(&self.dir, AUX_DIR, flags, Mode::empty())).ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn has_aux(&self) -> bool {
        self.aux.is_some()
    }

    /// Whether we changed the network directory since opening it.
    pub fn mutated(&self) -> bool {
        self.mutated.get()
    }

    // ---- reservations ------------------------------------------------------

    /// Reserve `ip` for `owner`: its file appears with the owner already
    /// in it, or not at all. The owner is written to a temporary in our
    /// subdirectory, which is then hard-linked into place: link(2) fails if
    /// the name exists, so it is as exclusive as O_EXCL, and a crash can
    /// never leave an empty reservation that no DEL matches (the reference
    /// creates, then writes). Without our subdirectory (or across
    /// filesystems), the reference's way. An existing empty file is
    /// reclaimed first: under the lock nobody is between creating and
    /// writing one, so it is what a crash of the reference (or of the
    /// fallback) left behind, and it must not block the address forever.
    pub fn reserve(&self, ip: IpAddr, owner: &str) -> io::Result<Reserve> {
        let name = ip.to_string();
        if let Some(aux) = &self.aux {
            if let Some(r) = self.reserve_by_link(aux, &name, owner)? {
                return Ok(r);
            }
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let created = self.create_reclaiming(&name, || {
            openat(
                &self.dir,
                name.as_str(),
                flags,
                Mode::from_bits_truncate(0o600),
            )
        })?;
        match created {
            Ok(fd) => {
                self.mutated.set(true);
                let mut f = File::from(fd);
                // Tests: die with the file made and still empty.
                let fault = crate::steps::fault::point("host-local:mid-reserve")
                    .map_err(|e| io::Error::other(e.msg));
                if let Err(e) = fault.and_then(|_| f.write_all(owner.as_bytes())) {
                    drop(f);
                    let _ = self.release(&name);
                    return Err(e);
                }
                Ok(Reserve::Reserved)
            }
            Err(Errno::EEXIST) => Ok(Reserve::Taken),
            Err(e) => Err(errno(e)),
        }
    }

    /// Run `create`, which makes `name` exclusively. When `name` is taken by
    /// an empty file (see [`reserve`](Self::reserve)), release that file and
    /// run it once more. The outer error is the release's.
    fn create_reclaiming<T>(
        &self,
        name: &str,
        mut create: impl FnMut() -> nix::Result<T>,
    ) -> io::Result<nix::Result<T>> {
        let first = retry(&mut create);
        if matches!(first, Err(Errno::EEXIST)) && self.is_empty_file(name) {
            self.release(name)?;
            return Ok(retry(create));
        }
        Ok(first)
    }

    /// [`reserve`](Self::reserve) by writing a temporary in `aux` and
    /// linking it into place; `None` when links cannot be made here (the
    /// caller falls back on create-then-write).
    fn reserve_by_link(
        &self,
        aux: &OwnedFd,
        name: &str,
        owner: &str,
    ) -> io::Result<Option<Reserve>> {
        const TMP: &str = "tmp.reserve";
        // Never write through an old temporary: after a crash between link
        // and unlink it IS a reservation.
        match retry(|| unlinkat(aux, TMP, UnlinkatFlags::NoRemoveDir)) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(errno(e)),
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd =
            retry(|| openat(aux, TMP, flags, Mode::from_bits_truncate(0o600))).map_err(errno)?;
        File::from(fd).write_all(owner.as_bytes())?;
        // Tests: die before the reservation exists.
        crate::steps::fault::point("host-local:mid-reserve")
            .map_err(|e| io::Error::other(e.msg))?;
        let linked =
            self.create_reclaiming(name, || linkat(aux, TMP, &self.dir, name, AtFlags::empty()));
        let res = match linked {
            Err(e) => Err(e),
            Ok(Ok(())) => {
                self.mutated.set(true);
                Ok(Some(Reserve::Reserved))
            }
            Ok(Err(Errno::EEXIST)) => Ok(Some(Reserve::Taken)),
            // No hard links here (another filesystem, or one without
            // them): the reference's way.
            Ok(Err(Errno::EXDEV | Errno::EPERM | Errno::EOPNOTSUPP)) => Ok(None),
            Ok(Err(e)) => Err(errno(e)),
        };
        let _ = retry(|| unlinkat(aux, TMP, UnlinkatFlags::NoRemoveDir));
        res
    }

    fn is_empty_file(&self, name: &str) -> bool {
        match fstatat(&self.dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
                    && st.st_size == 0
            }
            Err(_) => false,
        }
    }

    /// Remove a reservation (or any non-directory entry; symlinks are
    /// removed, not followed). `Ok(false)` if it was already gone.
    pub fn release(&self, name: &str) -> io::Result<bool> {
        match retry(|| unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir)) {
            Ok(()) => {
                self.mutated.set(true);
                Ok(true)
            }
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(errno(e)),
        }
    }

    /// The owner recorded in an entry, whitespace-trimmed as Go compares it.
    /// `None` when it is missing or not a regular file (a symlink is never
    /// followed).
    pub fn read_owner(&self, name: &str) -> io::Result<Option<String>> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match retry(|| openat(&self.dir, name, flags, Mode::empty())) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ELOOP) => return Ok(None),
            Err(e) => return Err(errno(e)),
        };
        let st = fstat(&fd).map_err(errno)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(MAX_OWNER_FILE as u64 + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() > MAX_OWNER_FILE {
            return Ok(Some(OVERSIZED_OWNER.to_string()));
        }
        Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string()))
    }

    /// `last_reserved_ip.<set>`, parsed exactly as Go does (no trimming: a
    /// trailing newline makes it unreadable).
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        let name = format!("{LAST_RESERVED_PREFIX}{set}");
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = retry(|| openat(&self.dir, name.as_str(), flags, Mode::empty())).ok()?;
        let mut bytes = Vec::new();
        File::from(fd).take(256).read_to_end(&mut bytes).ok()?;
        crate::cni::types::parse_ip(std::str::from_utf8(&bytes).ok()?)
    }

    /// Record the last IP reserved in a set: bare, no newline, mode 0600,
    /// overwritten in place as the reference does. A crash mid-write can
    /// leave a mix of old and new (e.g. `10.1.2.35` from `10.1.2.3` over
    /// `10.1.2.25`) or an unparsable string: harmless, it only moves where
    /// the next search starts (the reservation files decide what is free).
    /// In exchange no block is freed or allocated, which on ext4 costs ~20x
    /// more than the write (measured: 11 us vs 250 us).
    pub fn write_last_reserved(&self, set: usize, ip: IpAddr) -> io::Result<()> {
        let name = format!("{LAST_RESERVED_PREFIX}{set}");
        self.mutated.set(true);
        overwrite(&self.dir, &name, ip.to_string().as_bytes())
    }

    /// The entries of the network directory that may be reservations:
    /// regular files and symlinks (directories and devices are left out).
    pub fn list(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.path)? {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let ft = e.file_type()?;
            if ft.is_file() || ft.is_symlink() {
                out.push(Entry {
                    name,
                    is_file: ft.is_file(),
                });
            }
        }
        Ok(out)
    }

    // ---- the directory's stamp -------------------------------------------------

    pub fn stamp(&self) -> io::Result<DirStamp> {
        let st = fstat(&self.dir).map_err(errno)?;
        Ok(DirStamp {
            dev: st.st_dev,
            ino: st.st_ino,
            mtime_sec: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
        })
    }

    /// Set the network directory's mtime (atime untouched) and return the
    /// stamp as the filesystem stored it.
    pub fn set_mtime(&self, sec: i64, nsec: i64) -> io::Result<DirStamp> {
        futimens(&self.dir, &TimeSpec::UTIME_OMIT, &TimeSpec::new(sec, nsec)).map_err(errno)?;
        self.stamp()
    }

    // ---- our subdirectory ----------------------------------------------------

    /// Read one of our files (`None` if absent or without a subdirectory).
    pub fn aux_read(&self, name: &str, limit: usize) -> io::Result<Option<Vec<u8>>> {
        let Some(aux) = &self.aux else {
            return Ok(None);
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match retry(|| openat(aux, name, flags, Mode::empty())) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(errno(e)),
        };
        let mut bytes = Vec::new();
        File::from(fd)
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() > limit {
            return Err(io::Error::other(format!(
                "{name} is larger than {limit} bytes"
            )));
        }
        Ok(Some(bytes))
    }

    /// Overwrite one of our files in place. Not atomic on its own: the
    /// index only trusts its files under a stamp written last (see
    /// `Index::commit`), so a torn write is never read as valid.
    pub fn aux_write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let aux = self.aux.as_ref().ok_or_else(no_aux)?;
        overwrite(aux, name, bytes)
    }

    pub fn aux_remove(&self, name: &str) -> io::Result<()> {
        let aux = self.aux.as_ref().ok_or_else(no_aux)?;
        match retry(|| unlinkat(aux, name, UnlinkatFlags::NoRemoveDir)) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    /// The names in our subdirectory.
    pub fn aux_list(&self) -> io::Result<Vec<String>> {
        if self.aux.is_none() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.path.join(AUX_DIR))? {
            if let Ok(name) = e?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }
}

fn no_aux() -> io::Error {
    io::Error::other(format!("no {AUX_DIR} directory"))
}

/// Write `bytes` over `name` in `dir` (created 0600 if missing) without
/// truncating first: write at offset 0, then cut the file to length. Small
/// files keep their block, so nothing is freed and reallocated.
fn overwrite(dir: &impl AsFd, name: &str, bytes: &[u8]) -> io::Result<()> {
    // O_NONBLOCK: a FIFO planted at that name must not hang us.
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o600);
    let fresh = || -> io::Result<OwnedFd> {
        retry(|| unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)).map_err(errno)?;
        retry(|| openat(dir, name, flags | OFlag::O_EXCL, mode)).map_err(errno)
    };
    let fd = match retry(|| openat(dir, name, flags, mode)) {
        // A symlink planted where our file belongs is replaced, never
        // followed.
        Err(Errno::ELOOP) => fresh()?,
        Err(Errno::ENXIO) => fresh()?, // a FIFO with no reader
        r => r.map_err(errno)?,
    };
    // Writing in place must not reach through a planted hard link or into
    // anything but a plain file of ours: replace those.
    let st = fstat(&fd).map_err(errno)?;
    let plain =
        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG && st.st_nlink == 1;
    let fd = if plain { fd } else { fresh()? };
    let file = File::from(fd);
    std::os::unix::fs::FileExt::write_all_at(&file, bytes, 0)?;
    file.set_len(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "cnibox-store-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn reserve_writes_the_reference_bytes_and_modes() {
        let d = tmp("bytes");
        let s = Store::open(&d, "net", true).unwrap().unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            s.reserve(ip, &owner_key("c1", "eth0")).unwrap(),
            Reserve::Reserved
        );
        assert_eq!(
            s.reserve(ip, &owner_key("c2", "eth0")).unwrap(),
            Reserve::Taken
        );
        s.write_last_reserved(0, ip).unwrap();
        let net = d.join("net");
        assert_eq!(std::fs::read(net.join("10.1.2.3")).unwrap(), b"c1\r\neth0");
        assert_eq!(
            std::fs::read(net.join("last_reserved_ip.0")).unwrap(),
            b"10.1.2.3"
        );
        assert_eq!(mode(&net.join("10.1.2.3")), 0o600);
        assert_eq!(mode(&net.join("last_reserved_ip.0")), 0o600);
        assert_eq!(mode(&net), 0o755);
        assert_eq!(mode(&net.join("lock")), 0o750);
        assert_eq!(s.last_reserved(0), Some(ip));
        assert_eq!(s.last_reserved(1), None);
        assert_eq!(s.read_owner("10.1.2.3").unwrap().unwrap(), "c1\r\neth0");
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn empty_files_are_reclaimed_and_symlinks_never_followed() {
        let d = tmp("reclaim");
        let s = Store::open(&d, "net", true).unwrap().unwrap();
        let net = d.join("net");
        std::fs::write(net.join("10.0.0.2"), b"").unwrap();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(s.reserve(ip, "c\r\neth0").unwrap(), Reserve::Reserved);
        assert_eq!(std::fs::read(net.join("10.0.0.2")).unwrap(), b"c\r\neth0");

        let target = d.join("target");
        std::fs::write(&target, b"secret").unwrap();
        std::os::unix::fs::symlink(&target, net.join("10.0.0.3")).unwrap();
        assert_eq!(
            s.reserve("10.0.0.3".parse().unwrap(), "x\r\neth0").unwrap(),
            Reserve::Taken
        );
        assert_eq!(s.read_owner("10.0.0.3").unwrap(), None);
        std::os::unix::fs::symlink(&target, net.join("last_reserved_ip.0")).unwrap();
        assert_eq!(s.last_reserved(0), None);
        s.write_last_reserved(0, ip).unwrap();
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"secret",
            "target untouched"
        );
        assert!(!std::fs::symlink_metadata(net.join("last_reserved_ip.0"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(s.release("10.0.0.3").unwrap());
        assert!(target.exists());
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlinked_network_dir_is_refused() {
        let d = tmp("symdir");
        std::fs::create_dir_all(d.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(d.join("elsewhere"), d.join("net")).unwrap();
        assert!(Store::open(&d, "net", true).is_err());
        assert!(Store::open(&d, "../x", true).is_err());
        assert!(Store::open(&d, ".hidden", true).is_err());
        assert!(Store::open(&d, "missing", false).unwrap().is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn owners_split_into_id_and_ifname() {
        assert_eq!(split_owner("c\r\neth0"), ("c", Some("eth0")));
        assert_eq!(split_owner("c"), ("c", None));
        assert_eq!(owner_key(" c ", "eth0"), "c\r\neth0");
    }
}
