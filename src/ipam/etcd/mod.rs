//! The `etcd` applet (work in progress: every command answers "not implemented yet").

use crate::cni::result::CniResult;
use crate::cni::{version, CniError, Plugin, Request};

pub const PLUGIN: Plugin = Plugin {
    name: "etcd",
    versions: version::ALL,
    add,
    del,
    check,
    status,
    gc,
};

fn todo() -> CniError {
    CniError::new(
        crate::cni::error::code::NOT_AVAILABLE,
        "etcd: not implemented yet",
    )
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
