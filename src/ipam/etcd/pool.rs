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
    /// `<prefix>/<network>/`.
    base: String,
    /// `<prefix>/_hints/<network>/<node>/`: per range set, the address
    /// this node reserved last (outside `base`: not a reservation).
    hints: String,
}

/// What one attachment holds and where this node goes on.
pub struct Start {
    /// Addresses the owner index says the attachment holds.
    pub held: Vec<IpAddr>,
    /// Per range set index, this node's last reserved address.
    pub hints: Vec<(usize, IpAddr)>,
}

impl Pool {
    pub fn open(conn: &Conn) -> Result<Pool, CniError> {
        let client = etcd::Client::new(&conn.client, random() as usize).map_err(etcd_error)?;
        Ok(Pool {
            client,
            base: conn.base.clone(),
            hints: conn.hints.clone(),
        })
    }

    fn key(&self, ip: IpAddr) -> Vec<u8> {
        format!("{}{ip}", self.base).into_bytes()
    }

    /// The owner index: `<base>_owners/<containerID>/<ifname>/<ip>`, made
    /// and removed in the same txn as the address's key, so DEL and CHECK
    /// need not read the whole pool.
    fn owners(&self, id: &str, ifname: &str) -> String {
        format!("{}_owners/{id}/{ifname}/", self.base)
    }

    fn owner_key(&self, o: &Owner, ip: IpAddr) -> Vec<u8> {
        format!("{}{ip}", self.owners(&o.container_id, &o.ifname)).into_bytes()
    }

    /// One read: what the attachment holds, and this node's hints.
    pub fn start(&mut self, id: &str, ifname: &str) -> Result<Start, CniError> {
        let owners = self.owners(id, ifname);
        let reads = [(owners.as_bytes(), true), (self.hints.as_bytes(), true)];
        let mut got = self.client.read_many(&reads, false).map_err(etcd_error)?;
        let hint_kvs = got.pop().unwrap_or_default();
        let owner_kvs = got.pop().unwrap_or_default();
        let suffix = |k: &[u8], base: &str| {
            std::str::from_utf8(k.get(base.len()..)?)
                .ok()
                .map(str::to_string)
        };
        let held = owner_kvs
            .iter()
            .filter_map(|kv| parse_ip(&suffix(&kv.key, &owners)?))
            .collect();
        let hints = hint_kvs
            .iter()
            .filter_map(|kv| {
                let i = suffix(&kv.key, &self.hints)?.parse().ok()?;
                Some((i, parse_ip(std::str::from_utf8(&kv.value).ok()?)?))
            })
            .collect();
        Ok(Start { held, hints })
    }

    /// The addresses `(id, ifname)` holds, as their keys say (the owner
    /// index checked against the source of truth; stale index entries are
    /// removed).
    pub fn held(&mut self, id: &str, ifname: &str) -> Result<Vec<Entry>, CniError> {
        let listed = self.start(id, ifname)?.held;
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = listed.iter().map(|ip| self.key(*ip)).collect();
        let reads: Vec<(&[u8], bool)> = keys.iter().map(|k| (k.as_slice(), false)).collect();
        let found = self.client.read_many(&reads, false).map_err(etcd_error)?;
        let mut out = Vec::new();
        for (ip, kvs) in listed.into_iter().zip(found) {
            let entry = kvs.into_iter().next().map(|kv| Entry {
                ip,
                owner: serde_json::from_slice(&kv.value).ok(),
                value: kv.value,
            });
            match entry {
                Some(e) if e.held_by(id, ifname) => out.push(e),
                _ => {
                    let stale = format!("{}{ip}", self.owners(id, ifname));
                    self.client.delete(stale.as_bytes()).map_err(etcd_error)?;
                }
            }
        }
        Ok(out)
    }

    /// Every reserved address of the pool (keys that are not an address
    /// are skipped). Reads the whole pool: STATUS and GC only.
    pub fn list(&mut self) -> Result<Vec<Entry>, CniError> {
        let kvs = self
            .client
            .range_prefix(self.base.as_bytes())
            .map_err(etcd_error)?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| {
                let name = std::str::from_utf8(kv.key.get(self.base.len()..)?).ok()?;
                let ip = parse_ip(name)?;
                let owner = serde_json::from_slice(&kv.value).ok();
                Some(Entry {
                    ip,
                    value: kv.value,
                    owner,
                })
            })
            .collect())
    }

    /// Reserve `ip` for `owner` (its JSON is `value`), with its owner index
    /// key and, for an allocation from range set `hint`, this node's hint:
    /// true if it is ours now (also when a retry finds the value an earlier
    /// attempt of this call wrote).
    pub fn reserve(
        &mut self,
        ip: IpAddr,
        owner: &Owner,
        value: &[u8],
        hint: Option<usize>,
    ) -> Result<bool, CniError> {
        let key = self.key(ip);
        let okey = self.owner_key(owner, ip);
        let ip_s = ip.to_string();
        let hkey = hint.map(|i| format!("{}{i}", self.hints));
        let mut also: Vec<(&[u8], &[u8])> = vec![(&okey, b"")];
        if let Some(h) = &hkey {
            also.push((h.as_bytes(), ip_s.as_bytes()));
        }
        match self.client.create(&key, value, &also).map_err(etcd_error)? {
            Created::Done => Ok(true),
            Created::Exists(Some(kv)) => Ok(kv.value == value),
            Created::Exists(None) => Ok(false),
        }
    }

    /// Release `ip` (and its owner index key) if it still holds `value`.
    pub fn release_ip(
        &mut self,
        ip: IpAddr,
        owner: &Owner,
        value: &[u8],
    ) -> Result<bool, CniError> {
        let key = self.key(ip);
        let okey = self.owner_key(owner, ip);
        self.client
            .delete_if_value(&key, value, &[&okey])
            .map_err(etcd_error)
    }

    /// Release an entry read from the pool (never one whose value is not
    /// an owner we can read).
    pub fn release(&mut self, e: &Entry) -> Result<bool, CniError> {
        match &e.owner {
            Some(o) => self.release_ip(e.ip, o, &e.value),
            None => Ok(false),
        }
    }

    /// Reserve one free address of `set` (index `set_idx`). Candidates are
    /// in the reference's order from this node's hint (else a start that
    /// depends on `node`, so nodes work in different parts of the pool),
    /// checked 16 at a time with one read; the first window's free ones
    /// are rotated at random so concurrent calls on one node do not all
    /// race for the same address.
    pub fn allocate(
        &mut self,
        set: &RangeSet,
        set_idx: usize,
        hint: Option<IpAddr>,
        owner: &Owner,
        value: &[u8],
    ) -> Result<Option<IpAddr>, CniError> {
        let start = hint
            .filter(|h| set.contains(*h))
            .or_else(|| node_start(set, &owner.node));
        let mut it = set.iter_from(start).map(|(ip, _)| ip);
        let mut first = true;
        loop {
            let window: Vec<IpAddr> = it.by_ref().take(16).collect();
            if window.is_empty() {
                return Ok(None);
            }
            let keys: Vec<Vec<u8>> = window.iter().map(|ip| self.key(*ip)).collect();
            let reads: Vec<(&[u8], bool)> = keys.iter().map(|k| (k.as_slice(), false)).collect();
            let found = self.client.read_many(&reads, true).map_err(etcd_error)?;
            let mut free: Vec<IpAddr> = window
                .iter()
                .zip(found)
                .filter(|(_, kvs)| kvs.is_empty())
                .map(|(ip, _)| *ip)
                .collect();
            if first && !free.is_empty() {
                let r = (random() % free.len().min(8) as u64) as usize;
                free.rotate_left(r);
            }
            first = false;
            for ip in free {
                if self.reserve(ip, owner, value, Some(set_idx))? {
                    return Ok(Some(ip));
                }
            }
        }
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
    use std::collections::HashSet;

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
