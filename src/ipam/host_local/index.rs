//! The owner index: which addresses each container holds, so ADD's
//! duplicate check, DEL and CHECK do not read every reservation file (the
//! reference does, on every call: 620-690 ms at 60,000 reservations).
//!
//! It lives in the store's `.cnibox/` subdirectory as 256 bucket files
//! (`b00`..`bff`, by a hash of the container ID) plus a `stamp`. The Go
//! plugin does not maintain it, so it is trusted only when the stamp matches
//! the network directory exactly, checked under the store's lock:
//!
//! - after every change we make, we set the directory's mtime to a moment a
//!   second in the past and record the mtime the filesystem stored. Any later
//!   change by anyone else (the Go plugin, an operator) sets the mtime to the
//!   current time, which cannot equal it, whatever the timestamp granularity;
//! - the stamp also records the directory's device and inode (a directory
//!   wiped and re-created is a different one) and the kernel's boot ID (after
//!   a crash or power loss, unsynced index writes may be lost, so the index
//!   is rebuilt once per boot rather than fsynced on every call).
//!
//! An untrusted index is rebuilt from the reservation files, then saved.
//! Nothing here can be mistaken for a reservation by the reference: the
//! names are not IPs and every file has several lines and no `\r`.

use super::store::{split_owner, Store};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const STAMP: &str = "stamp";
const STAMP_MAGIC: &str = "# cnibox host-local owner index v1";
const BUCKET_MAGIC: &str = "# cnibox host-local owner index bucket v1";
const BUCKETS: usize = 256;
const MAX_BUCKET_FILE: usize = 64 << 20;

/// One reservation: its file name (an IP) and owner (trimmed content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub owner: String,
}

/// The reservations of one attachment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owned {
    /// Files holding `id\r\nifname`.
    pub current: Vec<String>,
    /// Files holding the container ID alone (written by old versions).
    pub legacy: Vec<String>,
}

impl Owned {
    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.legacy.is_empty()
    }
}

pub struct Index {
    buckets: HashMap<usize, Vec<Item>>,
    dirty: BTreeSet<usize>,
    /// Every bucket is in memory, built from the reservation files.
    rebuilt: bool,
    /// Some reservation file could not be read: what is in memory may miss
    /// an owner, so it is never stamped as trustworthy.
    incomplete: bool,
    /// Which buckets have a file, as the stamp records it: a bucket file
    /// removed (or left over) behind our back is noticed.
    present: [bool; BUCKETS],
    /// This boot's ID, read once per call (the stamp records it).
    boot: String,
}

fn bucket_of(id: &str) -> usize {
    // FNV-1a: spreads container IDs; nothing here needs to resist an
    // adversary (a bad spread only costs time).
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    (h as usize) % BUCKETS
}

fn bucket_name(b: usize) -> String {
    format!("b{b:02x}")
}

const UNKNOWN_BOOT: &str = "unknown";

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| UNKNOWN_BOOT.into())
}

/// The stamp's first lines: what the directory must still look like.
fn stamp_head(boot: &str, st: super::store::DirStamp) -> String {
    format!(
        "{STAMP_MAGIC}\nboot {boot}\ndir {} {} {} {}\n",
        st.dev, st.ino, st.mtime_sec, st.mtime_nsec
    )
}

fn encode_present(present: &[bool; BUCKETS]) -> String {
    let mut out = String::with_capacity(BUCKETS / 4);
    for chunk in present.chunks(4) {
        let nibble = chunk
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, p)| acc | ((*p as u8) << i));
        out.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
    }
    out
}

fn decode_present(hex: &str) -> Option<[bool; BUCKETS]> {
    if hex.len() != BUCKETS / 4 {
        return None;
    }
    let mut out = [false; BUCKETS];
    for (i, c) in hex.chars().enumerate() {
        let nibble = c.to_digit(16)?;
        for bit in 0..4 {
            out[i * 4 + bit] = nibble & (1 << bit) != 0;
        }
    }
    Some(out)
}

/// The bucket map of a saved stamp, if its head matches the directory now.
fn check_stamp(saved: &[u8], head: &str) -> Option<[bool; BUCKETS]> {
    let rest = std::str::from_utf8(saved).ok()?.strip_prefix(head)?;
    let hex = rest.strip_prefix("buckets ")?.strip_suffix('\n')?;
    decode_present(hex)
}

/// Escape an owner for one line: bytes outside `!`..`~` and `%` as `%XX`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn encode_bucket(items: &[Item]) -> Vec<u8> {
    let mut s = String::from(BUCKET_MAGIC);
    s.push('\n');
    for it in items {
        s.push_str(&it.name);
        s.push(' ');
        s.push_str(&escape(&it.owner));
        s.push('\n');
    }
    s.into_bytes()
}

fn decode_bucket(bytes: &[u8]) -> Option<Vec<Item>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != BUCKET_MAGIC {
        return None;
    }
    lines
        .map(|l| {
            let (name, owner) = l.split_once(' ')?;
            Some(Item {
                name: name.to_string(),
                owner: unescape(owner)?,
            })
        })
        .collect()
}

impl Index {
    /// No buckets yet; the boot ID read once for the stamp.
    fn empty(rebuilt: bool, incomplete: bool) -> Index {
        Index {
            buckets: HashMap::new(),
            dirty: BTreeSet::new(),
            rebuilt,
            incomplete,
            present: [false; BUCKETS],
            boot: boot_id(),
        }
    }

    /// The index of an open store: the saved one if its stamp matches,
    /// otherwise rebuilt from the reservation files.
    pub fn load(store: &Store) -> io::Result<Index> {
        let mut idx = Index::empty(false, false);
        let trusted = if store.mutated() {
            None
        } else {
            match (store.aux_read(STAMP, 4096), store.stamp()) {
                // Without a boot ID a stamp could survive a power loss that
                // tore our in-place writes: never trust the index then.
                (Ok(Some(saved)), Ok(st)) if idx.boot != UNKNOWN_BOOT => {
                    check_stamp(&saved, &stamp_head(&idx.boot, st))
                }
                _ => None,
            }
        };
        match trusted {
            Some(present) => idx.present = present,
            None => idx.rebuild(store)?,
        }
        Ok(idx)
    }

    /// Read every reservation file (what the reference does on each call).
    fn rebuild(&mut self, store: &Store) -> io::Result<()> {
        self.buckets.clear();
        self.incomplete = false;
        for e in store.list()? {
            if !e.is_file || crate::cni::types::parse_ip(&e.name).is_none() {
                continue;
            }
            match store.read_owner(&e.name) {
                Ok(Some(owner)) => {
                    let b = bucket_of(split_owner(&owner).0);
                    self.buckets.entry(b).or_default().push(Item {
                        name: e.name,
                        owner,
                    });
                }
                Ok(None) => {}
                // As the reference, a file that cannot be read matches
                // nothing this time; the next call reads it again.
                Err(_) => self.incomplete = true,
            }
        }
        for items in self.buckets.values_mut() {
            items.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.rebuilt = true;
        self.dirty.clear();
        Ok(())
    }

    /// The bucket `b`, read from disk on first use. A damaged bucket means a
    /// damaged index: rebuild.
    fn bucket(&mut self, store: &Store, b: usize) -> io::Result<&mut Vec<Item>> {
        if !self.rebuilt && !self.buckets.contains_key(&b) {
            let items = match store.aux_read(&bucket_name(b), MAX_BUCKET_FILE) {
                Ok(None) if !self.present[b] => Some(Vec::new()),
                Ok(Some(bytes)) if self.present[b] => decode_bucket(&bytes),
                _ => None,
            };
            match items {
                Some(items) => {
                    self.buckets.insert(b, items);
                }
                None => self.rebuild(store)?,
            }
        }
        Ok(self.buckets.entry(b).or_default())
    }

    /// The files held by `(id, ifname)`, and by `id` alone (legacy), in file
    /// name order (the reference's walk order).
    pub fn owned_by(&mut self, store: &Store, id: &str, ifname: &str) -> io::Result<Owned> {
        let key = super::store::owner_key(id, ifname);
        let id = id.trim();
        let mut out = Owned::default();
        for it in self.bucket(store, bucket_of(id))?.iter() {
            if it.owner == key {
                out.current.push(it.name.clone());
            } else if it.owner == id {
                out.legacy.push(it.name.clone());
            }
        }
        out.current.sort();
        out.legacy.sort();
        Ok(out)
    }

    pub fn insert(&mut self, store: &Store, name: &str, owner: &str) -> io::Result<()> {
        let b = bucket_of(split_owner(owner).0);
        let items = self.bucket(store, b)?;
        items.retain(|it| it.name != name);
        items.push(Item {
            name: name.to_string(),
            owner: owner.to_string(),
        });
        self.dirty.insert(b);
        Ok(())
    }

    pub fn remove(&mut self, store: &Store, name: &str, owner: &str) -> io::Result<()> {
        let b = bucket_of(split_owner(owner).0);
        self.bucket(store, b)?.retain(|it| it.name != name);
        self.dirty.insert(b);
        Ok(())
    }

    /// Every reservation (reads all buckets).
    pub fn all(&mut self, store: &Store) -> io::Result<Vec<Item>> {
        let mut out = Vec::new();
        for b in 0..BUCKETS {
            out.extend(self.bucket(store, b)?.iter().cloned());
        }
        Ok(out)
    }

    /// An index of exactly `items` (after GC has read every file), saved
    /// in full by the next commit.
    pub fn from_items(items: Vec<Item>, complete: bool) -> Index {
        let mut idx = Index::empty(true, !complete);
        for it in items {
            let b = bucket_of(split_owner(&it.owner).0);
            idx.buckets.entry(b).or_default().push(it);
        }
        idx
    }

    /// Save what changed and stamp the directory. Without a change, nothing
    /// is written. On failure the stamp is removed, so the next call
    /// rebuilds instead of trusting a partial save.
    pub fn commit(&mut self, store: &Store) -> io::Result<()> {
        if !store.has_aux() || !(store.mutated() || self.rebuilt || !self.dirty.is_empty()) {
            return Ok(());
        }
        let res = self.save(store);
        if res.is_err() {
            let _ = store.aux_remove(STAMP);
        }
        res
    }

    fn save(&mut self, store: &Store) -> io::Result<()> {
        // Files are overwritten in place, so the stamp must not vouch for
        // them while they change: void it first, in place too (unlinking
        // and recreating it would free and allocate a block each time).
        store.aux_write(STAMP, b"void\n")?;
        let targets: Vec<usize> = if self.rebuilt {
            (0..BUCKETS).collect()
        } else {
            self.dirty.iter().copied().collect()
        };
        let existing: BTreeSet<String> = if self.rebuilt {
            store.aux_list()?.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        for b in targets {
            let name = bucket_name(b);
            match self.buckets.get(&b) {
                Some(items) if !items.is_empty() => {
                    store.aux_write(&name, &encode_bucket(items))?;
                    self.present[b] = true;
                }
                _ => {
                    if !self.rebuilt || existing.contains(&name) {
                        store.aux_remove(&name)?;
                    }
                    self.present[b] = false;
                }
            }
        }
        // A moment that no later change can be stamped with.
        let past = SystemTime::now()
            .checked_sub(Duration::from_secs(1))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let st = store.set_mtime(past.as_secs() as i64, past.subsec_nanos() as i64)?;
        if !self.incomplete {
            let stamp = format!(
                "{}buckets {}\n",
                stamp_head(&self.boot, st),
                encode_present(&self.present)
            );
            store.aux_write(STAMP, stamp.as_bytes())?;
        }
        self.rebuilt = false;
        self.dirty.clear();
        Ok(())
    }
}

/// Fuzzing only: decoding never panics, and what we write reads back.
#[cfg(fuzzing)]
pub(super) fn fuzz_codec(bytes: &[u8]) {
    let _ = decode_bucket(bytes);
    let _ = check_stamp(bytes, STAMP_MAGIC);
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = decode_present(s);
        let _ = unescape(s);
        assert_eq!(
            unescape(&escape(s)).as_deref(),
            Some(s),
            "escape round trip"
        );
        let items = vec![Item {
            name: "10.0.0.2".into(),
            owner: s.to_string(),
        }];
        assert_eq!(decode_bucket(&encode_bucket(&items)), Some(items));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::path::PathBuf;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "cnibox-index-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    fn reserve(s: &Store, idx: &mut Index, ip: &str, owner: &str) {
        let ip: IpAddr = ip.parse().unwrap();
        s.reserve(ip, owner).unwrap();
        idx.insert(s, &ip.to_string(), owner).unwrap();
    }

    #[test]
    fn escaping_round_trips_and_never_writes_an_owner() {
        for s in ["c1\r\neth0", "", "a b%c\u{e9}", "%%"] {
            assert_eq!(unescape(&escape(s)).unwrap(), s);
        }
        let items = vec![Item {
            name: "10.0.0.2".into(),
            owner: "c1\r\neth0".into(),
        }];
        let bytes = encode_bucket(&items);
        assert!(!bytes.contains(&b'\r'));
        assert_eq!(decode_bucket(&bytes).unwrap(), items);
        assert!(decode_bucket(b"garbage\n").is_none());
    }

    #[test]
    fn trusted_after_our_own_changes_rebuilt_after_anyone_elses() {
        let d = tmp("trust");
        {
            let s = Store::open(&d, "n", true).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            assert!(idx.rebuilt, "a new store has no index yet");
            reserve(&s, &mut idx, "10.0.0.2", "a\r\neth0");
            reserve(&s, &mut idx, "10.0.0.3", "b\r\neth0");
            idx.commit(&s).unwrap();
        }
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            assert!(!idx.rebuilt, "our own last change keeps it trusted");
            assert_eq!(idx.owned_by(&s, "a", "eth0").unwrap().current, ["10.0.0.2"]);
        }
        // A change made behind our back, the way the Go plugin makes it.
        std::fs::write(d.join("n/10.0.0.9"), b"a").unwrap();
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            assert!(idx.rebuilt, "a foreign change is noticed");
            let o = idx.owned_by(&s, "a", "eth0").unwrap();
            assert_eq!(o.current, ["10.0.0.2"]);
            assert_eq!(o.legacy, ["10.0.0.9"]);
            idx.commit(&s).unwrap();
        }
        // An immediate foreign change, within the same timestamp tick.
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            assert!(!Index::load(&s).unwrap().rebuilt);
        }
        std::fs::remove_file(d.join("n/10.0.0.3")).unwrap();
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            assert!(idx.rebuilt);
            assert!(idx.owned_by(&s, "b", "eth0").unwrap().is_empty());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_bucket_or_stamp_means_a_rebuild() {
        let d = tmp("damage");
        {
            let s = Store::open(&d, "n", true).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            reserve(&s, &mut idx, "10.0.0.2", "a\r\neth0");
            idx.commit(&s).unwrap();
        }
        let b = bucket_name(bucket_of("a"));
        std::fs::write(d.join("n/.cnibox").join(&b), b"junk").unwrap();
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            assert!(!idx.rebuilt, "the stamp still matches");
            assert_eq!(
                idx.owned_by(&s, "a", "eth0").unwrap().current,
                ["10.0.0.2"],
                "the junk bucket was noticed and the index rebuilt"
            );
            idx.commit(&s).unwrap();
        }
        std::fs::write(d.join("n/.cnibox/stamp"), b"junk").unwrap();
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            assert!(Index::load(&s).unwrap().rebuilt);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bucket_removed_behind_our_back_means_a_rebuild() {
        let d = tmp("gone-bucket");
        {
            let s = Store::open(&d, "n", true).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            reserve(&s, &mut idx, "10.0.0.2", "a\r\neth0");
            idx.commit(&s).unwrap();
        }
        std::fs::remove_file(d.join("n/.cnibox").join(bucket_name(bucket_of("a")))).unwrap();
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            assert!(!idx.rebuilt);
            assert_eq!(idx.owned_by(&s, "a", "eth0").unwrap().current, ["10.0.0.2"]);
            assert!(idx.rebuilt);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_bucket_map_round_trips() {
        let mut p = [false; BUCKETS];
        for i in [0, 1, 7, 128, 255] {
            p[i] = true;
        }
        assert_eq!(decode_present(&encode_present(&p)).unwrap(), p);
        assert!(decode_present("xyz").is_none());
    }

    #[test]
    fn a_wiped_and_recreated_store_is_not_trusted() {
        let d = tmp("wipe");
        {
            let s = Store::open(&d, "n", true).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            reserve(&s, &mut idx, "10.0.0.2", "a\r\neth0");
            idx.commit(&s).unwrap();
        }
        let saved = std::fs::read(d.join("n/.cnibox/stamp")).unwrap();
        std::fs::remove_dir_all(d.join("n")).unwrap();
        std::fs::create_dir_all(d.join("n/.cnibox")).unwrap();
        std::fs::write(d.join("n/.cnibox/stamp"), saved).unwrap();
        {
            let s = Store::open(&d, "n", false).unwrap().unwrap();
            let mut idx = Index::load(&s).unwrap();
            assert!(idx.owned_by(&s, "a", "eth0").unwrap().is_empty());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
