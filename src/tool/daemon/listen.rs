//! Where the daemon listens: systemd's socket or one we bind (directory
//! and socket modes, stale sockets), and the pidfile.

use super::Options;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// The socket systemd passed (fd 3), when LISTEN_PID names us.
pub fn activated_listener() -> Option<Result<UnixListener, String>> {
    crate::steps::activation::listener()
        .transpose()
        .map(|r| r.map(|(l, _)| l))
}

/// Make the socket's directory (0700, or 0710 for `--socket-group`) when
/// missing, replace a stale socket nobody listens on, bind, chmod 0600 (or
/// 0660 and chgrp).
pub fn bind(opts: &Options) -> Result<UnixListener, String> {
    let path = &opts.socket;
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mode = if opts.socket_group.is_some() {
                0o710
            } else {
                0o700
            };
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| io("creating", dir, e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io("chmod", dir, e))?;
            if let Some(gid) = opts.socket_group {
                nix::unistd::chown(dir, None, Some(nix::unistd::Gid::from_raw(gid)))
                    .map_err(|e| format!("chgrp {}: {e}", dir.display()))?;
            }
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{} is in use: another daemon is serving it",
                    path.display()
                ));
            }
            std::fs::remove_file(path).map_err(|e| io("removing stale socket", path, e))?;
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            ))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| io("binding", path, e))?;
    let mode = if opts.socket_group.is_some() {
        0o660
    } else {
        0o600
    };
    let setup = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("chmod", path, e))
        .and_then(|_| match opts.socket_group {
            Some(gid) => nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| format!("chgrp {}: {e}", path.display())),
            None => Ok(()),
        });
    if let Err(e) = setup {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(listener)
}

pub fn remove_socket(path: &Path, ours: Option<(u64, u64)>) {
    let Some(ours) = ours else { return };
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if (m.dev(), m.ino()) == ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Our pid and a newline, written under a temporary name and renamed.
pub fn write_pidfile(path: &Path) -> Result<(), String> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp.{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("writing pidfile {}: {e}", path.display())
        })
}
