//! Test-only fault injection. In debug builds, `CNIBOX_FAULT=<point>` makes
//! the named step fail with an error, and `CNIBOX_FAULT=<point>:abort` kills
//! the process there (like `kill -9` mid-ADD: no cleanup runs), and
//! `<point>:panic` panics there (a bug: it must still answer in CNI form). Release
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
        if w.strip_suffix(":panic") == Some(name) {
            panic!("injected panic at {name}");
        }
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) -> Result<(), CniError> {
    Ok(())
}
