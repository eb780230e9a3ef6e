//! `cnibox daemon`: thick mode (work in progress).

use crate::cni::invoke::InProcessLookup;
use std::ffi::OsString;

pub fn main(_args: &[OsString], _lookup: InProcessLookup) -> i32 {
    eprintln!("cnibox daemon: not implemented yet");
    1
}
