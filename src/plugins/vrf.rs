//! vrf: not written yet (a stub so the applet table, symlinks and
//! dispatch are in place; the plugin replaces this file).

use crate::cni::result::CniResult;
use crate::cni::{version, CniError, Plugin, Request};

pub const PLUGIN: Plugin = Plugin {
    name: "vrf",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

fn todo() -> CniError {
    CniError::unsupported("vrf is not implemented yet")
}

fn add(_req: &Request) -> Result<CniResult, CniError> {
    Err(todo())
}

fn del(_req: &Request) -> Result<(), CniError> {
    Err(todo())
}

fn check(_req: &Request) -> Result<(), CniError> {
    Err(todo())
}

fn status(_req: &Request) -> Result<(), CniError> {
    Err(todo())
}

fn gc(_req: &Request) -> Result<(), CniError> {
    Err(todo())
}
