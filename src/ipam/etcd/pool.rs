//! The pool in etcd: one key per reserved address, `<prefix>/<network>/<ip>`,
//! holding `{containerID, ifname, node, since}`. Reserve is one txn
//! (`create_revision == 0 -> put`), release one txn (`value == ours ->
//! delete`): no lock, no allocator, and a late DEL never frees an address
//! someone else holds now.

use super::config::Conn;
use crate::cni::error::code;
use crate::cni::types::parse_ip;
use crate::cni::CniError;
use crate::etcd::{self, Created};
use crate::steps::ipranges::range::{to_int, RangeSet};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Who holds an address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Owner {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub node: String,
    /// When it was reserved (RFC 3339, UTC, nanoseconds: also what makes
    /// each reservation's value unique).
    pub since: String,
}

/// A reserved address as found in etcd.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ip: IpAddr,
    pub key: Vec<u8>,
    /// The exact bytes, for the release txn's compare.
    pub value: Vec<u8>,
    /// `None` when the value is not ours to read (not JSON): never released.
    pub owner: Option<Owner>,
}

impl Entry {
    pub fn held_by(&self, id: &str, ifname: &str) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|o| o.container_id == id && o.ifname == ifname)
    }
}

pub fn etcd_error(e: etcd::Error) -> CniError {
    let c = match &e {
        etcd::Error::Unreachable { .. } => code::TRY_AGAIN_LATER,
        etcd::Error::Config { .. } => code::INVALID_CONFIG,
        _ => code::INTERNAL,
    };
    CniError::new(c, format!("etcd: {e}"))
}

/// A random number (std's per-process random hasher keys).
fn random() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A stable hash (FNV-1a): the same node gets the same start everywhere.
fn stable_hash(s: &str) -> u128 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    }) as u128
}

/// UTC time as RFC 3339 with nanoseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

pub struct Pool {
    client: etcd::Client,
    base: String,
}

impl Pool {
    pub fn open(conn: &Conn) -> Result<Pool, CniError> {
        let client = etcd::Client::new(&conn.client, random() as usize).map_err(etcd_error)?;
        Ok(Pool {
            client,
            base: conn.base.clone(),
        })
    }

    fn key(&self, ip: IpAddr) -> Vec<u8> {
        format!("{}{ip}", self.base).into_bytes()
    }

    /// Every reserved address of the pool (keys that are not an address
    /// are skipped).
    pub fn list(&mut self) -> Result<Vec<Entry>, CniError> {
        let kvs = self
            .client
            .range_prefix(self.base.as_bytes())
            .map_err(etcd_error)?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| {
                let name = std::str::from_utf8(&kv.key[self.base.len()..]).ok()?;
                let ip = parse_ip(name)?;
                let owner = serde_json::from_slice(&kv.value).ok();
                Some(Entry {
                    ip,
                    key: kv.key,
                    value: kv.value,
                    owner,
                })
            })
            .collect())
    }

    /// Reserve `ip` with `value`: true if it is ours now (also when a retry
    /// finds the value an earlier attempt of this call wrote).
    pub fn reserve(&mut self, ip: IpAddr, value: &[u8]) -> Result<bool, CniError> {
        let key = self.key(ip);
        match self.client.create(&key, value).map_err(etcd_error)? {
            Created::Done => Ok(true),
            Created::Exists(Some(kv)) => Ok(kv.value == value),
            Created::Exists(None) => Ok(false),
        }
    }

    /// Release `ip` if it still holds `value`.
    pub fn release_ip(&mut self, ip: IpAddr, value: &[u8]) -> Result<bool, CniError> {
        let key = self.key(ip);
        self.client.delete_if_value(&key, value).map_err(etcd_error)
    }

    pub fn release(&mut self, e: &Entry) -> Result<bool, CniError> {
        self.client
            .delete_if_value(&e.key, &e.value)
            .map_err(etcd_error)
    }

    /// Reserve one free address of `set` with `value`. Candidates are in
    /// the reference's order from a start that depends on `node` (so nodes
    /// work in different parts of the pool), the first few shuffled (so
    /// concurrent calls on one node do not all race for the same one).
    pub fn allocate(
        &mut self,
        set: &RangeSet,
        taken: &HashSet<IpAddr>,
        node: &str,
        value: &[u8],
    ) -> Result<Option<IpAddr>, CniError> {
        let mut free = set
            .iter_from(node_start(set, node))
            .map(|(ip, _)| ip)
            .filter(|ip| !taken.contains(ip));
        let mut head: Vec<IpAddr> = free.by_ref().take(16).collect();
        if !head.is_empty() {
            let r = (random() % head.len() as u64) as usize;
            head.rotate_left(r);
        }
        for ip in head.into_iter().chain(free) {
            if self.reserve(ip, value)? {
                return Ok(Some(ip));
            }
        }
        Ok(None)
    }
}

/// The address after which `node` starts looking: spread over the set by a
/// hash of the node name.
fn node_start(set: &RangeSet, node: &str) -> Option<IpAddr> {
    let sizes: Vec<u128> = set
        .0
        .iter()
        .map(|r| (to_int(r.end) - to_int(r.start)).saturating_add(1))
        .collect();
    let total = sizes.iter().fold(0u128, |a, s| a.saturating_add(*s));
    if total == 0 {
        return None;
    }
    let mut off = stable_hash(node) % total;
    for (r, size) in set.0.iter().zip(sizes) {
        if off < size {
            let n = to_int(r.start) + off;
            return Some(match r.start {
                IpAddr::V4(_) => IpAddr::V4((n as u32).into()),
                IpAddr::V6(_) => IpAddr::V6(n.into()),
            });
        }
        off -= size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::ipranges::range::RawRange;

    #[test]
    fn rfc3339_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 30, "{s}");
        assert!(
            s.starts_with("20") && s.ends_with('Z') && &s[10..11] == "T",
            "{s}"
        );
    }

    #[test]
    fn node_starts_are_stable_and_inside_the_set() {
        let set = RangeSet::canonicalize(&[RawRange {
            subnet: Some("10.0.0.0/24".parse().unwrap()),
            ..Default::default()
        }])
        .unwrap();
        let a = node_start(&set, "node-a").unwrap();
        assert_eq!(Some(a), node_start(&set, "node-a"));
        assert!(set.contains(a));
        let starts: HashSet<_> = (0..8).map(|i| node_start(&set, &format!("n{i}"))).collect();
        assert!(starts.len() >= 6, "{starts:?}");
    }
}
