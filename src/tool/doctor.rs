//! `cnibox doctor`: find and remove leaked CNI state (work in progress).

use std::ffi::OsString;

pub fn main(_args: &[OsString]) -> i32 {
    eprintln!("cnibox doctor: not implemented yet");
    2
}
