//! More RTM_SETLINK/RTM_GETLINK operations for links moved between
//! namespaces (host-device, tap): rename, `IFLA_IFALIAS`, and MTU/MAC/name
//! in one request.

use super::attr::{Attrs, Msg};
use super::consts::*;
use super::link::{format_mac, ifinfomsg};
use super::socket::{Netlink, NlError};
use std::os::fd::RawFd;

/// linux/if_link.h
pub const IFLA_IFALIAS: u16 = 20;

/// The alias (`IFLA_IFALIAS`) of an RTM_NEWLINK payload; "" when unset.
pub fn parse_alias(payload: &[u8]) -> String {
    Attrs::new(payload.get(16..).unwrap_or_default())
        .get(IFLA_IFALIAS)
        .and_then(|a| a.str().map(str::to_string))
        .unwrap_or_default()
}

/// RTM_SETLINK body setting the alias; "" clears it (the kernel frees the
/// alias when it is given zero bytes).
pub fn alias_request(index: u32, alias: &str) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
    if alias.is_empty() {
        m.put(IFLA_IFALIAS, &[]);
    } else {
        m.put(IFLA_IFALIAS, alias.as_bytes());
    }
    m
}

impl Netlink {
    /// Set (or with "" clear) the alias of a link.
    pub fn link_set_alias(&self, index: u32, alias: &str) -> Result<(), NlError> {
        self.request(
            &format!("set alias of link #{index} to {alias:?}"),
            RTM_SETLINK,
            0,
            alias_request(index, alias).as_bytes(),
        )
    }

    /// The alias of a link ("" when none); `Ok(None)` if the link is gone.
    pub fn link_alias(&self, index: u32) -> Result<Option<String>, NlError> {
        let m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        match self.get(&format!("get link #{index}"), RTM_GETLINK, m.as_bytes()) {
            Ok(reply) => Ok(Some(parse_alias(&reply.payload))),
            Err(e) if e.is_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Set MTU (0: unchanged) and MAC (None: unchanged) of a link in one
    /// request.
    pub fn link_set_mtu_mac(
        &self,
        index: u32,
        mtu: u32,
        mac: Option<[u8; 6]>,
    ) -> Result<(), NlError> {
        if mtu == 0 && mac.is_none() {
            return Ok(());
        }
        let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        if mtu > 0 {
            m.put_u32(IFLA_MTU, mtu);
        }
        if let Some(mac) = mac {
            m.put(IFLA_ADDRESS, &mac);
        }
        let what = format!(
            "set link #{index}{}{}",
            if mtu > 0 {
                format!(" mtu {mtu}")
            } else {
                String::new()
            },
            mac.map(|m| format!(" address {}", format_mac(&m)))
                .unwrap_or_default()
        );
        self.request(&what, RTM_SETLINK, 0, m.as_bytes())
    }
}

impl Netlink {
    /// Move a link to the namespace of `netns_fd` and, in the same request,
    /// name it `name` and set its alias (and MAC) there: one RTM_SETLINK,
    /// so one namespace change (each costs an RCU grace period) and no
    /// moment where the link sits in either namespace under a name we did
    /// not choose for it there, except the kernel's own RTNL-held steps.
    pub fn link_move_as(
        &self,
        index: u32,
        netns_fd: RawFd,
        name: &str,
        alias: &str,
        mac: Option<&[u8]>,
    ) -> Result<(), NlError> {
        let mut m = alias_request(index, alias);
        m.put_u32(IFLA_NET_NS_FD, netns_fd as u32);
        let mut ifname = name.as_bytes().to_vec();
        ifname.push(0);
        m.put(IFLA_IFNAME, &ifname);
        if let Some(mac) = mac {
            m.put(IFLA_ADDRESS, mac);
        }
        self.request(
            &format!("move link #{index} to netns as {name:?}"),
            RTM_SETLINK,
            0,
            m.as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_round_trips_through_the_message_encoding() {
        let m = alias_request(7, "eth-orig");
        assert_eq!(parse_alias(m.as_bytes()), "eth-orig");
        let clear = alias_request(7, "");
        // An empty IFLA_IFALIAS attribute: 4 bytes of header, no payload.
        assert_eq!(&clear.as_bytes()[16..], &[4, 0, 20, 0]);
        assert_eq!(parse_alias(clear.as_bytes()), "");
    }
}
