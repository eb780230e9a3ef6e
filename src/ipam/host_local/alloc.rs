//! One allocation from one range set, as the reference's `IPAllocator.Get`:
//! a requested address, or the next free one in round-robin order.

use super::index::Index;
use super::store::{owner_key, Reserve, Store};
use crate::cni::CniError;
use crate::steps::ipranges::range::{Range, RangeSet};
use std::net::IpAddr;

/// An address reserved by [`get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    pub ip: IpAddr,
    pub prefix: u8,
    pub gateway: IpAddr,
}

/// Reserve one address of `set` (index `set_idx`) for `(id, ifname)`.
pub fn get(
    store: &Store,
    index: &mut Index,
    set: &RangeSet,
    set_idx: usize,
    id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> Result<Allocated, CniError> {
    let owner = owner_key(id, ifname);
    if let Some(ip) = requested {
        let r = set
            .range_for(ip)
            .ok_or_else(|| CniError::internal(format!("{ip} not in range set {set}")))?;
        if ip == r.gateway {
            return Err(CniError::internal(format!(
                "requested ip {ip} is subnet's gateway"
            )));
        }
        return take(store, index, set_idx, &owner, ip, r)?.ok_or_else(|| {
            CniError::internal(format!(
                "requested IP address {ip} is not available in range set {set}"
            ))
        });
    }

    // One address per attachment and set: an existing one (new-style or
    // legacy) is an error, as the spec forbids duplicate allocation.
    let held = index.owned_by(store, id, ifname)?;
    let mut names: Vec<&String> = held.current.iter().chain(&held.legacy).collect();
    names.sort();
    for name in names {
        if let Some(ip) = crate::cni::types::parse_ip(name) {
            if set.contains(ip) {
                return Err(CniError::internal(format!(
                    "{ip} has been allocated to {}, duplicate allocation is not allowed",
                    id.trim()
                )));
            }
        }
    }

    for (ip, r) in set.iter_from(store.last_reserved(set_idx)) {
        if let Some(a) = take(store, index, set_idx, &owner, ip, r)? {
            return Ok(a);
        }
    }
    Err(CniError::internal(format!(
        "no IP addresses available in range set: {set}"
    )))
}

/// Reserve `ip` of range `r` and [`record`] it; `None` when it is taken.
fn take(
    store: &Store,
    index: &mut Index,
    set_idx: usize,
    owner: &str,
    ip: IpAddr,
    r: &Range,
) -> Result<Option<Allocated>, CniError> {
    if store.reserve(ip, owner)? == Reserve::Taken {
        return Ok(None);
    }
    let a = Allocated {
        ip,
        prefix: r.subnet.prefix_len(),
        gateway: r.gateway,
    };
    record(store, index, set_idx, owner, &a)?;
    Ok(Some(a))
}

/// Note a new reservation in `last_reserved_ip.<set>` and the index. If the
/// last-reserved file cannot be written, the reservation is undone (the
/// reference fails the same way, and its rollback removes the file).
fn record(
    store: &Store,
    index: &mut Index,
    set_idx: usize,
    owner: &str,
    a: &Allocated,
) -> Result<(), CniError> {
    let name = a.ip.to_string();
    let res = (|| {
        crate::steps::fault::point("host-local:after-reserve")?;
        // A reclaimed empty file may have been indexed with an empty owner.
        let _ = index.remove(store, &name, "");
        store.write_last_reserved(set_idx, a.ip)?;
        index.insert(store, &name, owner).map_err(CniError::from)
    })();
    if res.is_err() {
        // The caller's rollback only knows the addresses recorded; this one
        // is not, so give it back here (never leave a file no DEL finds).
        let _ = store.release(&name);
        let _ = index.remove(store, &name, owner);
    }
    res
}

#[cfg(test)]
mod tests {
    //! The reference allocator's cases, on a real store in a temp dir.
    use super::*;
    use crate::steps::ipranges::range::RawRange;
    use std::path::PathBuf;

    struct Fixture {
        dir: PathBuf,
        set: RangeSet,
    }

    impl Fixture {
        fn new(tag: &str, subnets: &[&str]) -> Fixture {
            let dir = std::env::temp_dir().join(format!(
                "cnibox-alloc-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("net")).unwrap();
            let raws: Vec<RawRange> = subnets
                .iter()
                .map(|s| RawRange {
                    subnet: Some(crate::cni::types::parse_cidr(s).unwrap()),
                    ..Default::default()
                })
                .collect();
            let set = RangeSet::canonicalize(&raws).unwrap();
            Fixture { dir, set }
        }

        /// A file written behind the index's back, as the Go plugin would.
        fn file(&self, name: &str, content: &str) {
            std::fs::write(self.dir.join("net").join(name), content).unwrap();
        }

        fn get(&mut self, id: &str, requested: Option<&str>) -> Result<String, String> {
            let store = Store::open(&self.dir, "net", true).unwrap().unwrap();
            let mut index = Index::load(&store).unwrap();
            let r = get(
                &store,
                &mut index,
                &self.set,
                0,
                id,
                "eth0",
                requested.map(|s| s.parse().unwrap()),
            );
            index.commit(&store).unwrap();
            r.map(|a| format!("{}/{}", a.ip, a.prefix))
                .map_err(|e| e.msg)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    struct Case {
        subnets: &'static [&'static str],
        taken: &'static [&'static str],
        last: &'static str,
        expect: &'static str,
    }

    #[test]
    fn allocates_in_round_robin_like_the_reference() {
        let cases = [
            // fresh start
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &[],
                last: "",
                expect: "10.0.0.2",
            },
            Case {
                subnets: &["2001:db8:1::0/64"],
                taken: &[],
                last: "",
                expect: "2001:db8:1::2",
            },
            Case {
                subnets: &["10.0.0.0/30"],
                taken: &[],
                last: "",
                expect: "10.0.0.2",
            },
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &["10.0.0.2"],
                last: "",
                expect: "10.0.0.3",
            },
            // next ip of last reserved ip
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &[],
                last: "10.0.0.5",
                expect: "10.0.0.6",
            },
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &["10.0.0.4", "10.0.0.5"],
                last: "10.0.0.3",
                expect: "10.0.0.6",
            },
            // round robin to the beginning
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &["10.0.0.6"],
                last: "10.0.0.5",
                expect: "10.0.0.2",
            },
            // lastIP is out of range
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &["10.0.0.2"],
                last: "10.0.0.128",
                expect: "10.0.0.3",
            },
            // subnet is completely full except for lastip: wrap around and reserve lastIP
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &["10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
                last: "10.0.0.3",
                expect: "10.0.0.3",
            },
            // allocate from multiple subnets
            Case {
                subnets: &["10.0.0.0/30", "10.0.1.0/30"],
                taken: &[],
                last: "",
                expect: "10.0.0.2",
            },
            // advance to next subnet
            Case {
                subnets: &["10.0.0.0/30", "10.0.1.0/30"],
                taken: &[],
                last: "10.0.0.2",
                expect: "10.0.1.2",
            },
            // roll to start subnet
            Case {
                subnets: &["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"],
                taken: &[],
                last: "10.0.2.2",
                expect: "10.0.0.2",
            },
            // a trailing newline in last_reserved_ip disables round robin (Go parses it untrimmed)
            Case {
                subnets: &["10.0.0.0/29"],
                taken: &[],
                last: "10.0.0.5\n",
                expect: "10.0.0.2",
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut f = Fixture::new(&format!("rr{i}"), c.subnets);
            for t in c.taken {
                f.file(t, "id");
            }
            if !c.last.is_empty() {
                f.file("last_reserved_ip.0", c.last);
            }
            let got = f.get("ID", None).unwrap();
            assert_eq!(got.split('/').next().unwrap(), c.expect, "case {i}");
        }
    }

    #[test]
    fn out_of_ips_is_a_meaningful_error() {
        let cases: [(&[&str], &[&str]); 3] = [
            (&["10.0.0.0/30"], &["10.0.0.2"]),
            (
                &["10.0.0.0/29"],
                &["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
            ),
            (&["10.0.0.0/30", "10.0.1.0/30"], &["10.0.0.2", "10.0.1.2"]),
        ];
        for (i, (subnets, taken)) in cases.iter().enumerate() {
            let mut f = Fixture::new(&format!("full{i}"), subnets);
            for t in *taken {
                f.file(t, "id");
            }
            let e = f.get("ID", None).unwrap_err();
            assert!(
                e.starts_with("no IP addresses available in range set: "),
                "{e}"
            );
        }
        let mut f = Fixture::new("fullmsg", &["10.0.0.0/30", "10.0.1.0/30"]);
        f.file("10.0.0.2", "a");
        f.file("10.0.1.2", "b");
        assert_eq!(
            f.get("ID", None).unwrap_err(),
            "no IP addresses available in range set: 10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2"
        );
    }

    #[test]
    fn never_hands_out_the_broadcast_address_and_round_robins_after_release() {
        let mut f = Fixture::new("bcast", &["192.168.1.0/29"]);
        for i in 2..7 {
            assert_eq!(
                f.get(&format!("ID{i}"), None).unwrap(),
                format!("192.168.1.{i}/29")
            );
        }
        assert!(f.get("ID8", None).is_err());

        let mut f = Fixture::new("rr-release", &["192.168.1.0/29"]);
        assert_eq!(f.get("ID", None).unwrap(), "192.168.1.2/29");
        std::fs::remove_file(f.dir.join("net/192.168.1.2")).unwrap();
        assert_eq!(f.get("ID", None).unwrap(), "192.168.1.3/29");
    }

    #[test]
    fn requested_ips() {
        let mut f = Fixture::new("req", &["192.168.1.0/29"]);
        assert_eq!(f.get("ID", Some("192.168.1.5")).unwrap(), "192.168.1.5/29");
        assert_eq!(
            f.get("ID", Some("192.168.1.5")).unwrap_err(),
            "requested IP address 192.168.1.5 is not available in range set 192.168.1.1-192.168.1.6"
        );
        assert_eq!(
            f.get("ID2", Some("192.168.1.1")).unwrap_err(),
            "requested ip 192.168.1.1 is subnet's gateway"
        );
        assert_eq!(
            std::fs::read_to_string(f.dir.join("net/last_reserved_ip.0")).unwrap(),
            "192.168.1.5",
            "a requested IP updates last_reserved_ip too"
        );
        assert_eq!(f.get("ID3", None).unwrap(), "192.168.1.6/29");
    }

    #[test]
    fn requested_ipv6() {
        let mut f = Fixture::new("req6", &["2001:db8::/64"]);
        assert_eq!(f.get("ID", Some("2001:db8::5")).unwrap(), "2001:db8::5/64");
        assert_eq!(
            f.get("ID2", Some("2001:db8::1")).unwrap_err(),
            "requested ip 2001:db8::1 is subnet's gateway"
        );
        assert_eq!(
            f.get("ID3", Some("2001:db8::5")).unwrap_err(),
            "requested IP address 2001:db8::5 is not available in range set 2001:db8::1-2001:db8::ffff:ffff:ffff:ffff"
        );
        assert_eq!(f.get("ID4", None).unwrap(), "2001:db8::6/64");
    }

    #[test]
    fn duplicates_are_refused_per_set_including_legacy_files() {
        let mut f = Fixture::new("dup", &["10.0.0.0/29"]);
        assert_eq!(f.get("ID", None).unwrap(), "10.0.0.2/29");
        assert_eq!(
            f.get("ID", None).unwrap_err(),
            "10.0.0.2 has been allocated to ID, duplicate allocation is not allowed"
        );
        f.file("10.0.0.6", "OLD");
        assert_eq!(
            f.get("OLD", None).unwrap_err(),
            "10.0.0.6 has been allocated to OLD, duplicate allocation is not allowed"
        );
        // Held elsewhere (outside the set): not a duplicate for this set.
        f.file("10.9.0.6", "OTHER\r\neth0");
        assert_eq!(f.get("OTHER", None).unwrap(), "10.0.0.3/29");
    }

    #[test]
    fn a_crash_leftover_empty_file_does_not_block_its_address() {
        let mut f = Fixture::new("empty", &["10.0.0.0/30"]);
        f.file("10.0.0.2", "");
        assert_eq!(f.get("ID", None).unwrap(), "10.0.0.2/30");
        assert_eq!(
            std::fs::read(f.dir.join("net/10.0.0.2")).unwrap(),
            b"ID\r\neth0"
        );
    }
}
