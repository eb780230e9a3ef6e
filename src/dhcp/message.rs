//! DHCPv4 messages: the fixed BOOTP header, the magic cookie and options.

use std::net::Ipv4Addr;

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const HEADER: usize = 236;

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
pub const RELEASE: u8 = 7;

pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTERS: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_STATIC_ROUTES: u8 = 33;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_MSG_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_PARAMS: u8 = 55;
pub const OPT_MESSAGE: u8 = 56;
pub const OPT_T1: u8 = 58;
pub const OPT_T2: u8 = 59;
pub const OPT_CLIENT_ID: u8 = 61;
pub const OPT_CLASSLESS_ROUTES: u8 = 121;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// Options in order, without pad and end.
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Message {
    pub fn request(kind: u8, xid: u32, mac: [u8; 6]) -> Message {
        Message {
            op: BOOTREQUEST,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: mac,
            options: vec![(OPT_MSG_TYPE, vec![kind])],
        }
    }

    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn kind(&self) -> u8 {
        self.option(OPT_MSG_TYPE)
            .and_then(|v| v.first().copied())
            .unwrap_or(0)
    }

    pub fn ip_option(&self, code: u8) -> Option<Ipv4Addr> {
        let v = self.option(code)?;
        let b: [u8; 4] = v.get(..4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }

    pub fn u32_option(&self, code: u8) -> Option<u32> {
        let v = self.option(code)?;
        Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(300);
        b.extend([self.op, 1, 6, 0]);
        b.extend(self.xid.to_be_bytes());
        b.extend(self.secs.to_be_bytes());
        b.extend(self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend(a.octets());
        }
        b.extend(self.chaddr);
        b.resize(HEADER, 0); // chaddr padding, sname, file
        b.extend(MAGIC);
        for (code, value) in &self.options {
            // Values over 255 bytes are split into several instances
            // (RFC 3396); an empty value is still sent once.
            let mut chunks: Vec<&[u8]> = value.chunks(255).collect();
            if chunks.is_empty() {
                chunks.push(&[]);
            }
            for c in chunks {
                b.push(*code);
                b.push(c.len() as u8);
                b.extend(c);
            }
        }
        b.push(255);
        if b.len() < 300 {
            b.resize(300, 0);
        }
        b
    }

    pub fn decode(b: &[u8]) -> Option<Message> {
        if b.len() < HEADER + 4 || b[1] != 1 || b[2] != 6 || b[HEADER..HEADER + 4] != MAGIC {
            return None;
        }
        let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
        let mut m = Message {
            op: b[0],
            xid: u32::from_be_bytes(b[4..8].try_into().ok()?),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip(12),
            yiaddr: ip(16),
            siaddr: ip(20),
            giaddr: ip(24),
            chaddr: b[28..34].try_into().ok()?,
            options: Vec::new(),
        };
        let mut i = HEADER + 4;
        while i < b.len() {
            let code = b[i];
            i += 1;
            match code {
                0 => continue,
                255 => break,
                _ => {}
            }
            let len = *b.get(i)? as usize;
            let v = b.get(i + 1..i + 1 + len)?;
            i += 1 + len;
            // Repeated instances are concatenated (RFC 3396).
            match m.options.iter_mut().find(|(c, _)| *c == code) {
                Some((_, old)) => old.extend_from_slice(v),
                None => m.options.push((code, v.to_vec())),
            }
        }
        Some(m)
    }
}

/// A route from option 121 or 33: destination, prefix length, router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptRoute {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub router: Ipv4Addr,
}

/// Option 121 (RFC 3442): width, significant octets, router.
pub fn classless_routes(v: &[u8]) -> Option<Vec<OptRoute>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let width = v[i];
        if width > 32 {
            return None;
        }
        let n = (width as usize).div_ceil(8);
        let mut dst = [0u8; 4];
        dst[..n].copy_from_slice(v.get(i + 1..i + 1 + n)?);
        let r: [u8; 4] = v.get(i + 1 + n..i + 5 + n)?.try_into().ok()?;
        out.push(OptRoute {
            dst: Ipv4Addr::from(dst),
            prefix: width,
            router: Ipv4Addr::from(r),
        });
        i += 5 + n;
    }
    Some(out)
}

/// Option 33: (destination, router) pairs; the destination's classful mask.
pub fn static_routes(v: &[u8]) -> Vec<OptRoute> {
    v.chunks_exact(8)
        .map(|c| {
            let dst = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            let prefix = match c[0] {
                0..=127 => 8,
                128..=191 => 16,
                _ => 24,
            };
            OptRoute {
                dst,
                prefix,
                router: Ipv4Addr::new(c[4], c[5], c[6], c[7]),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_options() {
        let mut m = Message::request(DISCOVER, 0x01020304, [2, 0, 0, 0, 0, 1]);
        m.options.push((OPT_CLIENT_ID, b"\0a/b/eth0".to_vec()));
        m.options.push((OPT_PARAMS, vec![3, 1]));
        let b = m.encode();
        assert_eq!(b.len(), 300);
        assert_eq!(&b[236..240], &MAGIC);
        assert_eq!(&b[240..243], &[53, 1, 1]);
        let d = Message::decode(&b).unwrap();
        assert_eq!(d, m);
        assert_eq!(d.kind(), DISCOVER);
        assert!(Message::decode(&b[..100]).is_none());
        let mut t = b.clone();
        t[245] = 200; // an option length past the end
        let _ = Message::decode(&t);
    }

    #[test]
    fn routes_from_121_and_33() {
        let r = classless_routes(&[0, 10, 0, 0, 1, 24, 192, 168, 5, 0, 0, 0, 0]).unwrap();
        assert_eq!(r[0].prefix, 0);
        assert_eq!(r[0].router, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r[1].dst, Ipv4Addr::new(192, 168, 5, 0));
        assert_eq!(r[1].router, Ipv4Addr::UNSPECIFIED);
        assert!(classless_routes(&[40]).is_none());
        let s = static_routes(&[10, 1, 0, 0, 10, 0, 0, 1]);
        assert_eq!(s[0].prefix, 8);
    }
}
