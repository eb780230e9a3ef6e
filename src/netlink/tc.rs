//! Traffic control over rtnetlink (RTM_*QDISC, RTM_*TFILTER) and ifb links:
//! exactly what the bandwidth plugin makes (a root TBF, the `ingress`
//! qdisc, a match-all u32 filter redirecting to an ifb with mirred), in the
//! message shapes the Go reference (vishvananda/netlink) sends, so `tc`
//! shows the same. No `tc` binary.

use super::attr::{Attrs, Msg};
use super::consts::*;
use super::link::ifinfomsg;
use super::socket::{Netlink, NlError};

// linux/rtnetlink.h
pub const RTM_NEWQDISC: u16 = 36;
pub const RTM_DELQDISC: u16 = 37;
pub const RTM_GETQDISC: u16 = 38;
pub const RTM_NEWTFILTER: u16 = 44;
pub const TCA_KIND: u16 = 1;
pub const TCA_OPTIONS: u16 = 2;
// linux/pkt_sched.h
pub const TC_H_ROOT: u32 = 0xffff_ffff;
pub const TC_H_INGRESS: u32 = 0xffff_fff1;
pub const TCA_TBF_PARMS: u16 = 1;
pub const TCA_TBF_RATE64: u16 = 4;
// linux/pkt_cls.h
pub const TCA_U32_CLASSID: u16 = 1;
pub const TCA_U32_SEL: u16 = 5;
pub const TCA_U32_ACT: u16 = 7;
pub const TC_U32_TERMINAL: u8 = 1;
pub const TCA_ACT_KIND: u16 = 1;
pub const TCA_ACT_OPTIONS: u16 = 2;
pub const TCA_MIRRED_PARMS: u16 = 2;
pub const TCA_EGRESS_REDIR: i32 = 1;
pub const TC_ACT_OK: i32 = 0;
pub const TC_ACT_STOLEN: i32 = 4;
pub const ETH_P_ALL: u16 = 0x0003;

/// `maj:min` as the kernel stores handles.
pub const fn handle(maj: u16, min: u16) -> u32 {
    ((maj as u32) << 16) | min as u32
}

/// The 20-byte `struct tcmsg`.
pub fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    h[8..12].copy_from_slice(&handle.to_ne_bytes());
    h[12..16].copy_from_slice(&parent.to_ne_bytes());
    h[16..20].copy_from_slice(&info.to_ne_bytes());
    h
}

/// TBF settings as the kernel takes them (`tc_tbf_qopt`): bytes per
/// second, queue limit in bytes, bucket size in psched ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    pub rate: u64,
    pub limit: u32,
    pub buffer: u32,
}

/// The bandwidth plugin's fixed queueing latency.
pub const LATENCY_MS: f64 = 25.0;

/// Go's float-to-uint32 conversion on amd64 (through int64, keeping the
/// low 32 bits), so out-of-range values come out as the reference's do.
fn go_u32(f: f64) -> u32 {
    f as i64 as u32
}

impl Tbf {
    /// TBF parameters for `rate_bits` bits/s and `burst_bits` bits, with
    /// the reference's arithmetic (floats included): buffer is the time to
    /// send the burst at the rate, in ticks; limit is 25 ms at the rate plus
    /// the burst. `tick_in_usec` comes from [`tick_in_usec`].
    pub fn new(rate_bits: u64, burst_bits: u64, tick_in_usec: f64) -> Tbf {
        let rate = rate_bits / 8;
        let burst = (burst_bits / 8) as u32;
        let usec = go_u32(burst as f64 * 1e6 / rate as f64);
        let buffer = go_u32(usec as f64 * tick_in_usec);
        let latency = 1e6 * (LATENCY_MS / 1000.0);
        let limit = go_u32(rate as f64 * latency / 1e6).wrapping_add(burst);
        Tbf {
            rate,
            limit,
            buffer,
        }
    }
}

/// psched ticks per microsecond from `/proc/net/psched` (its four hex
/// numbers: t2us, us2t, clock resolution, hz), as Go's netlink computes it.
pub fn tick_in_usec(psched: &str) -> Option<f64> {
    let v: Vec<u64> = psched
        .split_whitespace()
        .take(4)
        .map(|p| u64::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 || v[1] == 0 {
        return None;
    }
    let t2us = if v[2] == 1_000_000_000 { v[1] } else { v[0] };
    let clock_factor = v[2] as f64 / 1e6;
    Some(t2us as f64 / v[1] as f64 * clock_factor)
}

/// RTM_NEWQDISC for a root TBF with handle 1: on `ifindex`.
pub fn tbf_request(ifindex: u32, tbf: &Tbf) -> Msg {
    let mut m = Msg::with_header(&tcmsg(ifindex, handle(1, 0), TC_H_ROOT, 0));
    m.put_str(TCA_KIND, "tbf");
    m.nest(TCA_OPTIONS, |m| {
        // tc_tbf_qopt: rate and peakrate (tc_ratespec, 12 bytes each),
        // limit, buffer, mtu.
        let mut q = [0u8; 36];
        q[8..12].copy_from_slice(&(tbf.rate as u32).to_ne_bytes());
        q[24..28].copy_from_slice(&tbf.limit.to_ne_bytes());
        q[28..32].copy_from_slice(&tbf.buffer.to_ne_bytes());
        m.put(TCA_TBF_PARMS, &q);
        if tbf.rate >= 1 << 32 {
            m.put(TCA_TBF_RATE64, &tbf.rate.to_ne_bytes());
        }
    });
    m
}

/// RTM_NEWQDISC for the `ingress` qdisc (handle ffff:).
pub fn ingress_request(ifindex: u32) -> Msg {
    let mut m = Msg::with_header(&tcmsg(ifindex, handle(0xffff, 0), TC_H_INGRESS, 0));
    m.put_str(TCA_KIND, "ingress");
    m.nest(TCA_OPTIONS, |_| {});
    m
}

/// One mirred action in a filter's action table.
fn mirred(m: &mut Msg, slot: u16, action: i32, ifindex: u32) {
    m.nest(slot, |m| {
        m.put_str(TCA_ACT_KIND, "mirred");
        m.nest(TCA_ACT_OPTIONS, |m| {
            // tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt),
            // eaction, ifindex.
            let mut p = [0u8; 28];
            p[8..12].copy_from_slice(&action.to_ne_bytes());
            p[20..24].copy_from_slice(&TCA_EGRESS_REDIR.to_ne_bytes());
            p[24..28].copy_from_slice(&ifindex.to_ne_bytes());
            m.put(TCA_MIRRED_PARMS, &p);
        });
    });
}

/// RTM_NEWTFILTER: on the ingress qdisc of `ifindex`, prio 1, all
/// protocols, a match-all u32 with classid 1:1 whose actions redirect to
/// `ifb` — twice, stolen then ok, as the reference's library sends it
/// (`tc filter show` lists both actions).
pub fn redirect_filter_request(ifindex: u32, ifb: u32) -> Msg {
    let info = (1u32 << 16) | ETH_P_ALL.to_be() as u32;
    let mut m = Msg::with_header(&tcmsg(ifindex, 0, handle(0xffff, 0), info));
    m.put_str(TCA_KIND, "u32");
    m.nest(TCA_OPTIONS, |m| {
        // tc_u32_sel (16 bytes) with one all-zero tc_u32_key (16 bytes).
        let mut sel = [0u8; 32];
        sel[0] = TC_U32_TERMINAL;
        sel[2] = 1; // nkeys
        m.put(TCA_U32_SEL, &sel);
        m.put_u32(TCA_U32_CLASSID, handle(1, 1));
        m.nest(TCA_U32_ACT, |m| {
            mirred(m, 1, TC_ACT_STOLEN, ifb);
            mirred(m, 2, TC_ACT_OK, ifb);
        });
    });
    m
}

/// RTM_NEWLINK for an ifb, up, with the reference's explicit txqlen 0.
pub fn ifb_request(name: &str, mtu: u32) -> Msg {
    let mut m = Msg::with_header(&ifinfomsg(AF_UNSPEC, 0, IFF_UP, IFF_UP));
    m.put_str(IFLA_IFNAME, name);
    if mtu > 0 {
        m.put_u32(IFLA_MTU, mtu);
    }
    m.put_u32(IFLA_TXQLEN, 0);
    m.nest(IFLA_LINKINFO, |m| {
        m.put_str(IFLA_INFO_KIND, "ifb");
    });
    m
}

/// A qdisc as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub kind: String,
    pub handle: u32,
    pub parent: u32,
    /// For a TBF, its parameters.
    pub tbf: Option<Tbf>,
}

pub fn parse_qdisc(payload: &[u8]) -> Option<(u32, Qdisc)> {
    let ifindex = super::attr::ne_u32(payload, 4)?;
    let mut q = Qdisc {
        kind: String::new(),
        handle: super::attr::ne_u32(payload, 8)?,
        parent: super::attr::ne_u32(payload, 12)?,
        tbf: None,
    };
    let attrs = Attrs::new(payload.get(20..)?);
    q.kind = attrs.get(TCA_KIND)?.str()?.to_string();
    if q.kind == "tbf" {
        let opts = attrs.get(TCA_OPTIONS)?.nested();
        let p = opts.get(TCA_TBF_PARMS)?.payload;
        let u = |o: usize| super::attr::ne_u32(p, o);
        let mut rate = u(8)? as u64;
        if let Some(r64) = opts.get(TCA_TBF_RATE64) {
            rate = u64::from_ne_bytes(r64.payload.get(..8)?.try_into().ok()?);
        }
        q.tbf = Some(Tbf {
            rate,
            limit: u(24)?,
            buffer: u(28)?,
        });
    }
    Some((ifindex, q))
}

impl Netlink {
    fn tc_create(&self, what: &str, ty: u16, m: Msg) -> Result<(), NlError> {
        self.request(what, ty, NLM_F_CREATE | NLM_F_EXCL, m.as_bytes())
    }

    pub fn tbf_add(&self, ifindex: u32, tbf: &Tbf) -> Result<(), NlError> {
        let what = format!("add tbf qdisc on link #{ifindex}");
        self.tc_create(&what, RTM_NEWQDISC, tbf_request(ifindex, tbf))
    }

    pub fn ingress_add(&self, ifindex: u32) -> Result<(), NlError> {
        let what = format!("add ingress qdisc on link #{ifindex}");
        self.tc_create(&what, RTM_NEWQDISC, ingress_request(ifindex))
    }

    pub fn redirect_filter_add(&self, ifindex: u32, ifb: u32) -> Result<(), NlError> {
        let what = format!("add u32 redirect filter on link #{ifindex}");
        self.tc_create(&what, RTM_NEWTFILTER, redirect_filter_request(ifindex, ifb))
    }

    /// Delete the root qdisc (`ingress`: the ingress one) of a link; none
    /// there is success.
    pub fn qdisc_del(&self, ifindex: u32, ingress: bool) -> Result<(), NlError> {
        let (h, parent) = match ingress {
            true => (handle(0xffff, 0), TC_H_INGRESS),
            false => (0, TC_H_ROOT),
        };
        let m = Msg::with_header(&tcmsg(ifindex, h, parent, 0));
        let what = format!("delete qdisc on link #{ifindex}");
        match self.request(&what, RTM_DELQDISC, 0, m.as_bytes()) {
            // ENOENT/ENODEV: gone; EINVAL: nothing to delete.
            Err(e) if e.is_gone() || e.errno == nix::errno::Errno::EINVAL => Ok(()),
            r => r,
        }
    }

    pub fn ifb_add(&self, name: &str, mtu: u32) -> Result<(), NlError> {
        let what = format!("create ifb {name}");
        self.tc_create(&what, RTM_NEWLINK, ifb_request(name, mtu))
    }

    /// The qdiscs of one link.
    pub fn qdiscs(&self, ifindex: u32) -> Result<Vec<Qdisc>, NlError> {
        let m = Msg::with_header(&tcmsg(0, 0, 0, 0));
        Ok(self
            .dump("dump qdiscs", RTM_GETQDISC, m.as_bytes())?
            .iter()
            .filter_map(|r| parse_qdisc(&r.payload))
            .filter(|(i, _)| *i == ifindex)
            .map(|(_, q)| q)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: f64 = 15.625;

    #[test]
    fn psched_tick_as_go_computes_it() {
        assert_eq!(
            tick_in_usec("000003e8 00000040 000f4240 3b9aca00\n"),
            Some(15.625)
        );
        // A clock resolution of 1 GHz: t2us is taken from us2t.
        assert_eq!(
            tick_in_usec("000003e8 00000040 3b9aca00 3b9aca00"),
            Some(1000.0)
        );
        assert_eq!(tick_in_usec("garbage"), None);
    }

    #[test]
    fn tbf_parameters_match_the_reference_observation() {
        // 1 Mbit/s, 200 kbit burst: rate 125000 B/s, buffer 3125000 ticks,
        // limit 28125 B (tc: rate 1Mbit burst 25000b lat 25ms).
        let t = Tbf::new(1_000_000, 200_000, TICK);
        assert_eq!((t.rate, t.buffer, t.limit), (125_000, 3_125_000, 28_125));
        let big = Tbf::new(80_000_000_000, 8_000_000, TICK);
        assert_eq!(big.rate, 10_000_000_000);
    }

    #[test]
    fn tbf_golden_bytes() {
        let t = Tbf::new(1_000_000, 200_000, TICK);
        let m = tbf_request(7, &t);
        let mut want: Vec<u8> = Vec::new();
        want.extend_from_slice(&tcmsg(7, 0x10000, TC_H_ROOT, 0));
        want.extend_from_slice(&[8, 0, 1, 0]);
        want.extend_from_slice(b"tbf\0");
        want.extend_from_slice(&[44, 0, 2, 0x80, 40, 0, 1, 0]);
        let mut q = [0u8; 36];
        q[8..12].copy_from_slice(&125_000u32.to_ne_bytes());
        q[24..28].copy_from_slice(&28_125u32.to_ne_bytes());
        q[28..32].copy_from_slice(&3_125_000u32.to_ne_bytes());
        want.extend_from_slice(&q);
        assert_eq!(m.as_bytes(), &want[..]);
        // Parsed back.
        let (idx, q) = parse_qdisc(m.as_bytes()).unwrap();
        assert_eq!((idx, q.kind.as_str(), q.tbf), (7, "tbf", Some(t)));
        // 10 Gbyte/s needs TCA_TBF_RATE64.
        let big = Tbf::new(80_000_000_000, 8_000_000, TICK);
        let (_, q) = parse_qdisc(tbf_request(7, &big).as_bytes()).unwrap();
        assert_eq!(q.tbf.unwrap().rate, 10_000_000_000);
    }

    #[test]
    fn ingress_golden_bytes() {
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &tcmsg(3, 0xffff_0000, 0xffff_fff1, 0)[..],
            &[12, 0, 1, 0], b"ingress\0",
            &[4, 0, 2, 0x80],
        ].concat();
        assert_eq!(ingress_request(3).as_bytes(), &want[..]);
    }

    #[test]
    fn redirect_filter_golden_bytes() {
        let m = redirect_filter_request(3, 9);
        let mut p1 = [0u8; 28];
        p1[8..12].copy_from_slice(&4i32.to_ne_bytes());
        p1[20..24].copy_from_slice(&1i32.to_ne_bytes());
        p1[24..28].copy_from_slice(&9u32.to_ne_bytes());
        let mut p2 = p1;
        p2[8..12].copy_from_slice(&0i32.to_ne_bytes());
        let act = |slot: u8, p: &[u8; 28]| -> Vec<u8> {
            [
                &[52, 0, slot, 0x80][..],
                &[11, 0, 1, 0],
                b"mirred\0\0",
                &[36, 0, 2, 0x80, 32, 0, 2, 0],
                &p[..],
            ]
            .concat()
        };
        let mut sel = [0u8; 32];
        sel[0] = 1;
        sel[2] = 1;
        #[rustfmt::skip]
        let want: Vec<u8> = [
            // tcmsg: ifindex 3, handle 0, parent ffff:, info prio 1 | htons(ETH_P_ALL)
            &tcmsg(3, 0, 0xffff_0000, 0x0001_0300)[..],
            &[8, 0, 1, 0], b"u32\0",
            &[156, 0, 2, 0x80],                      // TCA_OPTIONS
            &[36, 0, 5, 0], &sel[..],                //   TCA_U32_SEL
            &[8, 0, 1, 0, 1, 0, 1, 0],               //   TCA_U32_CLASSID 1:1
            &[108, 0, 7, 0x80],                      //   TCA_U32_ACT
            &act(1, &p1), &act(2, &p2),
        ].concat();
        assert_eq!(m.as_bytes(), &want[..]);
    }

    #[test]
    fn ifb_golden_bytes() {
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &ifinfomsg(AF_UNSPEC, 0, IFF_UP, IFF_UP)[..],
            &[20, 0, 3, 0], b"bwp3db9ee5dbe5e\0",
            &[8, 0, 4, 0], &1500u32.to_ne_bytes(),
            &[8, 0, 13, 0, 0, 0, 0, 0],
            &[12, 0, 18, 0x80, 8, 0, 1, 0], b"ifb\0",
        ].concat();
        assert_eq!(ifb_request("bwp3db9ee5dbe5e", 1500).as_bytes(), &want[..]);
    }
}
