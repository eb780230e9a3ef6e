//! Netlink attribute (TLV) encoding and decoding.
//!
//! neli's `Rtattr` never sets NLA_F_NESTED and needs a builder call per
//! attribute; the kernel requires the flag in more and more places (bridge
//! IFLA_PROTINFO, nf_tables), so we encode attributes ourselves and set it on
//! every nested attribute, always.

use super::consts::{NLA_F_NESTED, NLA_F_NET_BYTEORDER};
use std::net::IpAddr;

/// Round up to the 4-byte netlink alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A growable message body: a fixed header followed by attributes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    /// Start a body with a fixed header (ifinfomsg, rtmsg, nfgenmsg, ...).
    pub fn with_header(header: &[u8]) -> Self {
        let mut m = Msg {
            buf: Vec::with_capacity(256),
        };
        m.buf.extend_from_slice(header);
        m.pad();
        m
    }

    fn pad(&mut self) {
        let to = align(self.buf.len());
        self.buf.resize(to, 0);
    }

    /// Append one attribute with a raw payload.
    pub fn put(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    pub fn put_u8(&mut self, ty: u16, v: u8) -> &mut Self {
        self.put(ty, &[v])
    }

    pub fn put_u16(&mut self, ty: u16, v: u16) -> &mut Self {
        self.put(ty, &v.to_ne_bytes())
    }

    pub fn put_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_ne_bytes())
    }

    /// A big-endian u32 (nf_tables attributes are in network byte order).
    pub fn put_be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    pub fn put_be64(&mut self, ty: u16, v: u64) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    /// A NUL-terminated string, as the kernel expects for names.
    pub fn put_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(ty, &v)
    }

    /// A nested attribute; NLA_F_NESTED is always set.
    pub fn nest(&mut self, ty: u16, fill: impl FnOnce(&mut Msg)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        fill(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// A nested attribute whose payload starts with a fixed header (the veth
    /// peer's ifinfomsg).
    pub fn nest_with_header(
        &mut self,
        ty: u16,
        header: &[u8],
        fill: impl FnOnce(&mut Msg),
    ) -> &mut Self {
        self.nest(ty, |m| {
            m.buf.extend_from_slice(header);
            m.pad();
            fill(m);
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// One decoded attribute; `ty` has the NESTED and BYTEORDER bits masked off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub ty: u16,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u8(&self) -> Option<u8> {
        self.payload.first().copied()
    }

    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?))
    }

    pub fn be32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.payload.get(..4)?.try_into().ok()?))
    }

    pub fn be64(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.payload.get(..8)?.try_into().ok()?))
    }

    /// A string attribute without its trailing NUL(s).
    pub fn str(&self) -> Option<&'a str> {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        std::str::from_utf8(&self.payload[..end]).ok()
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }
}

/// An iterator over the attributes in a byte slice. Stops at the first
/// malformed attribute (a short or overlong length) instead of panicking.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Attrs { rest: bytes }
    }

    /// The payload of the first attribute of type `ty`.
    pub fn get(&self, ty: u16) -> Option<Attr<'a>> {
        self.clone().find(|a: &Attr<'a>| a.ty == ty)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let ty = u16::from_ne_bytes([self.rest[2], self.rest[3]])
            & !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let payload = &self.rest[4..len];
        let next = align(len).min(self.rest.len());
        self.rest = &self.rest[next..];
        Some(Attr { ty, payload })
    }
}

/// An address as it goes in an attribute: 4 or 16 bytes.
pub fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An address attribute's payload (4 or 16 bytes; anything else: `None`).
pub fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// Read a native-endian u32 at `off` (for fixed headers), if present.
pub fn ne_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_padded_attributes_and_nested_flag() {
        let mut m = Msg::with_header(&[1, 2, 3]);
        m.put_str(3, "lo").nest(18, |m| {
            m.put_u8(1, 7);
        });
        assert_eq!(
            m.as_bytes(),
            &[
                1, 2, 3, 0, // header padded to 4
                7, 0, 3, 0, b'l', b'o', 0, 0, // IFLA_IFNAME "lo\0" + pad
                12, 0, 18, 0x80, // nested, len 12, type 18|NLA_F_NESTED
                5, 0, 1, 0, 7, 0, 0, 0, // u8 attr + pad
            ]
        );
    }

    #[test]
    fn decodes_and_masks_flags() {
        let mut m = Msg::default();
        m.nest(18, |m| {
            m.put_u32(4, 1500).put_str(1, "veth");
        });
        let outer: Vec<_> = Attrs::new(m.as_bytes()).collect();
        assert_eq!(outer.len(), 1);
        assert_eq!(outer[0].ty, 18);
        let inner: Vec<_> = outer[0].nested().collect();
        assert_eq!(inner[0].u32(), Some(1500));
        assert_eq!(inner[1].str(), Some("veth"));
    }

    #[test]
    fn malformed_lengths_stop_iteration() {
        assert_eq!(Attrs::new(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(Attrs::new(&[200, 0, 1, 0, 0, 0]).count(), 0);
        assert_eq!(Attrs::new(&[4, 0, 1, 0, 9]).count(), 1);
    }
}
