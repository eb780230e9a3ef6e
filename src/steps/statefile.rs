//! Small state files in a data directory shared with the Go plugins: read
//! and written without ever following a symlink planted in the directory.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;

/// The largest state file we read.
const MAX: u64 = 1 << 20;

/// The file's bytes (at most 1 MiB), `Ok(None)` if it does not exist.
pub fn read(path: &str) -> std::io::Result<Option<Vec<u8>>> {
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    f.take(MAX).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Create or replace the file with `bytes`, mode 0600.
pub fn write(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?
        .write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn planted_symlinks_are_never_followed() {
        let dir = std::env::temp_dir().join(format!("cnibox-statefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.join("link");
        symlink(&target, &link).unwrap();
        let link = link.to_str().unwrap();
        assert!(write(link, b"evil").is_err());
        assert!(read(link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");

        let file = dir.join("state.json");
        let file = file.to_str().unwrap();
        assert_eq!(read(file).unwrap(), None);
        write(file, b"one").unwrap();
        write(file, b"2").unwrap();
        assert_eq!(read(file).unwrap().unwrap(), b"2");
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
