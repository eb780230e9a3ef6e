//! Test-only fault injection. In debug builds, `CNIBOX_FAULT=<point>` makes
//! the named step fail with an error, and `CNIBOX_FAULT=<point>:abort` kills
//! the process there (like `kill -9` mid-ADD: no cleanup runs). Release
//! builds compile this to nothing.

use crate::cni::CniError;

#[cfg(debug_assertions)]
pub fn point(name: &str) -> Result<(), CniError> {
    let Ok(want) = std::env::var("CNIBOX_FAULT") else {
        return Ok(());
    };
    for w in want.split(',') {
        if w == name {
            return Err(CniError::internal(format!("injected fault at {name}")));
        }
        if w.strip_suffix(":abort") == Some(name) {
            std::process::abort();
        }
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) -> Result<(), CniError> {
    Ok(())
}
