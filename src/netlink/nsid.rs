//! RTM_GETNSID: the id the socket's namespace gives another namespace (as
//! `ip netns list-id` shows them), which is what a veth's
//! `IFLA_LINK_NETNSID` names its peer's namespace by.

use super::attr::{Attrs, Msg};
use super::socket::{Netlink, NlError};
use std::os::fd::RawFd;

const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
/// `struct rtgenmsg`, padded to 4 bytes, family AF_UNSPEC.
const RTGENMSG: [u8; 4] = [0; 4];

impl Netlink {
    /// The id this socket's namespace has for the namespace open at `fd`;
    /// `None` when it has none (nothing here refers to that namespace).
    pub fn nsid_of_fd(&self, fd: RawFd) -> Result<Option<i32>, NlError> {
        let mut m = Msg::with_header(&RTGENMSG);
        m.put_u32(NETNSA_FD, fd as u32);
        let r = self.get("get nsid", RTM_GETNSID, m.as_bytes())?;
        let attrs = Attrs::new(r.payload.get(RTGENMSG.len()..).unwrap_or(&[]));
        Ok(attrs
            .get(NETNSA_NSID)
            .and_then(|a| a.u32())
            .map(|v| v as i32)
            .filter(|v| *v >= 0))
    }
}
