//! IPAM delegation for main plugins (Go's `pkg/ipam` Exec*): the plugin's
//! whole config goes to the IPAM plugin named by `ipam.type`, found in
//! CNI_PATH (our own IPAM applets run in-process).

use crate::cni::result::CniResult;
use crate::cni::types::NetConf;
use crate::cni::{CniError, Request};

/// The IPAM plugin named by the config (`ipam.type`); required.
pub fn ipam_type(conf: &NetConf) -> Result<String, CniError> {
    let t = conf.ipam_type()?;
    if t.is_empty() {
        return Err(CniError::config("ipam.type: no IPAM plugin name provided"));
    }
    Ok(t.to_string())
}

pub fn add(req: &Request, ipam: &str) -> Result<CniResult, CniError> {
    req.invoker.add(ipam, &req.stdin, &req.version, req.env)
}

pub fn del(req: &Request, ipam: &str) -> Result<(), CniError> {
    req.invoker.del(ipam, &req.stdin, req.env)
}

pub fn check(req: &Request, ipam: &str) -> Result<(), CniError> {
    req.invoker.check(ipam, &req.stdin, req.env)
}

pub fn status(req: &Request, ipam: &str) -> Result<(), CniError> {
    req.invoker.status(ipam, &req.stdin, req.env)
}

pub fn gc(req: &Request, ipam: &str) -> Result<(), CniError> {
    req.invoker.gc(ipam, &req.stdin, req.env)
}

/// STATUS of a plugin whose IPAM is optional: the IPAM's, or ready (L2).
pub fn status_if_any(req: &Request) -> Result<(), CniError> {
    match req.net_conf()?.ipam_type()? {
        "" => Ok(()),
        t => status(req, t),
    }
}

/// GC of a plugin whose IPAM is optional: the IPAM's, or nothing (L2).
pub fn gc_if_any(req: &Request) -> Result<(), CniError> {
    match req.net_conf()?.ipam_type()? {
        "" => Ok(()),
        t => gc(req, t),
    }
}

/// An IPAM allocation that is released again unless the ADD succeeds: every
/// failure after IPAM ADD gives the addresses back (the Go ptp leaks on some
/// error paths).
pub struct Allocation<'a> {
    req: &'a Request<'a>,
    ipam: String,
    pub result: CniResult,
    keep: bool,
}

impl<'a> Allocation<'a> {
    pub fn new(req: &'a Request<'a>, ipam: &str) -> Result<Self, CniError> {
        let result = add(req, ipam)?;
        Ok(Allocation {
            req,
            ipam: ipam.to_string(),
            result,
            keep: false,
        })
    }

    /// The ADD succeeded: keep the addresses.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Allocation<'_> {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = del(self.req, &self.ipam) {
                eprintln!("cnibox: releasing IPAM allocation after a failed ADD: {e}");
            }
        }
    }
}
