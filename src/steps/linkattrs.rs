//! Link attributes a plugin changes and may later put back (tuning, and any
//! plugin that sets a MAC or MTU on an existing link): MAC, promiscuous and
//! all-multicast mode, MTU, txqueuelen. A field left `None` is not touched.

use crate::netlink::link::{Link, IFF_ALLMULTI};
use crate::netlink::{Netlink, NlError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkAttrs {
    pub mac: Option<Vec<u8>>,
    pub promisc: Option<bool>,
    pub mtu: Option<u32>,
    pub allmulti: Option<bool>,
    pub txqlen: Option<u32>,
}

impl LinkAttrs {
    pub fn is_empty(&self) -> bool {
        *self == LinkAttrs::default()
    }

    /// The current values on `link` (whose txqueuelen is `txqlen`) of the
    /// fields set in `self`: what to put back after applying `self`.
    pub fn current(&self, link: &Link, txqlen: u32) -> LinkAttrs {
        LinkAttrs {
            mac: self.mac.as_ref().map(|_| link.mac.clone()),
            promisc: self.promisc.map(|_| link.is_promisc()),
            mtu: self.mtu.map(|_| link.mtu),
            allmulti: self.allmulti.map(|_| link.flags & IFF_ALLMULTI != 0),
            txqlen: self.txqlen.map(|_| txqlen),
        }
    }

    /// Set every field present on link `index`, in the order MAC, promisc,
    /// MTU, allmulti, txqueuelen (Go tuning's), stopping at the first error.
    pub fn apply(&self, nl: &Netlink, index: u32) -> Result<(), NlError> {
        if let Some(mac) = &self.mac {
            nl.link_set_mac(index, mac)?;
        }
        if let Some(on) = self.promisc {
            nl.link_set_promisc(index, on)?;
        }
        if let Some(mtu) = self.mtu {
            nl.link_set_mtu(index, mtu)?;
        }
        if let Some(on) = self.allmulti {
            nl.link_set_allmulti(index, on)?;
        }
        if let Some(q) = self.txqlen {
            nl.link_set_txqlen(index, q)?;
        }
        Ok(())
    }

    /// Put values back: every field present, going on after a failure
    /// (MTU first, as Go tuning restores). True if all succeeded.
    pub fn restore(&self, nl: &Netlink, index: u32) -> bool {
        let mut ok = true;
        let mut step = |r: Result<(), NlError>| ok &= r.is_ok();
        if let Some(mtu) = self.mtu {
            step(nl.link_set_mtu(index, mtu));
        }
        if let Some(mac) = &self.mac {
            step(nl.link_set_mac(index, mac));
        }
        if let Some(on) = self.promisc {
            step(nl.link_set_promisc(index, on));
        }
        if let Some(on) = self.allmulti {
            step(nl.link_set_allmulti(index, on));
        }
        if let Some(q) = self.txqlen {
            step(nl.link_set_txqlen(index, q));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link::Link;

    #[test]
    fn current_reads_only_the_fields_being_set() {
        let link = Link {
            mac: vec![2, 0, 0, 0, 0, 1],
            mtu: 1500,
            flags: IFF_ALLMULTI,
            ..Default::default()
        };
        let want = LinkAttrs {
            mtu: Some(9000),
            allmulti: Some(false),
            ..Default::default()
        };
        assert_eq!(
            want.current(&link, 1000),
            LinkAttrs {
                mtu: Some(1500),
                allmulti: Some(true),
                ..Default::default()
            }
        );
        let all = LinkAttrs {
            mac: Some(vec![2, 0, 0, 0, 0, 9]),
            promisc: Some(true),
            mtu: Some(1),
            allmulti: Some(true),
            txqlen: Some(1),
        };
        let old = all.current(&link, 1000);
        assert_eq!(old.mac.as_deref(), Some(&[2u8, 0, 0, 0, 0, 1][..]));
        assert_eq!(old.promisc, Some(false));
        assert_eq!(old.txqlen, Some(1000));
        assert!(LinkAttrs::default().is_empty() && !old.is_empty());
    }
}
