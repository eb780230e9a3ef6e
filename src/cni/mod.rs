//! The CNI protocol core: environment, config decoding with Go's rules,
//! results in every spec version, error objects, the plugin skeleton and
//! delegation. Layer 4: imports nothing from the rest of cnibox.

pub mod args;
pub mod env;
pub mod error;
pub mod invoke;
pub mod json;
pub mod result;
pub mod skel;
pub mod types;
pub mod version;

pub use env::Env;
pub use error::CniError;
pub use invoke::Invoker;
pub use skel::{Plugin, Request};

/// Do `a` and `b` (symlinks followed) name the same file (device and
/// inode)? Either one unreadable: no.
fn same_file(a: impl AsRef<std::path::Path>, b: impl AsRef<std::path::Path>) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
