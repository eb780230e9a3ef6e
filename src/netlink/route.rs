//! Routes (RTM_*ROUTE): add, append (ECMP), replace, delete, dump.

use super::attr::{ip_bytes, ip_from_bytes, Attrs, Msg};
use super::consts::*;
use super::socket::{Netlink, NlError, Req};
use ipnet::IpNet;
use std::net::IpAddr;

/// A route as we add it or read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; `/0` for a default route.
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: u32,
    pub src: Option<IpAddr>,
    pub scope: u8,
    /// Routing table; 0 means main.
    pub table: u32,
    pub priority: u32,
    pub protocol: u8,
    pub mtu: u32,
    pub advmss: u32,
}

impl Route {
    /// A unicast route to `dst` out of `oif`, in the main table, global scope.
    pub fn new(dst: IpNet, oif: u32) -> Self {
        Route {
            dst,
            gw: None,
            oif,
            src: None,
            scope: RT_SCOPE_UNIVERSE,
            table: 0,
            priority: 0,
            protocol: RTPROT_BOOT,
            mtu: 0,
            advmss: 0,
        }
    }

    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gw = Some(gw);
        self
    }

    pub fn src(mut self, src: IpAddr) -> Self {
        self.src = Some(src);
        self
    }

    pub fn scope(mut self, scope: u8) -> Self {
        self.scope = scope;
        self
    }

    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }

    fn family(&self) -> u8 {
        super::addr::family_of(&self.dst.addr())
    }

    /// The effective table (0 is read as main).
    pub fn table_or_main(&self) -> u32 {
        if self.table == 0 {
            RT_TABLE_MAIN as u32
        } else {
            self.table
        }
    }
}

/// How an added route treats an existing one with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    /// Fail with EEXIST.
    Add,
    /// Add another next hop (ECMP), as Go's ConfigureIface does.
    Append,
    /// Replace the existing route (no caller yet; part of the route API).
    #[allow(dead_code)]
    Replace,
}

impl RouteMode {
    /// The RTM_NEWROUTE flags for this mode.
    pub fn flags(self) -> u16 {
        NLM_F_CREATE
            | match self {
                RouteMode::Add => NLM_F_EXCL,
                RouteMode::Append => NLM_F_APPEND,
                RouteMode::Replace => NLM_F_REPLACE,
            }
    }
}

/// The 12-byte `struct rtmsg`.
fn rtmsg(family: u8, dst_len: u8, table: u8, protocol: u8, scope: u8, rtype: u8) -> [u8; 12] {
    [
        family, dst_len, 0, 0, table, protocol, scope, rtype, 0, 0, 0, 0,
    ]
}

/// RTM_NEWROUTE body (also used for RTM_DELROUTE with `for_delete`, which
/// leaves protocol, scope and type as wildcards so any matching route goes).
pub fn route_request(r: &Route, for_delete: bool) -> Msg {
    let table = r.table_or_main();
    let table_u8 = if table < 256 {
        table as u8
    } else {
        RT_TABLE_UNSPEC
    };
    let (protocol, scope, rtype) = if for_delete {
        (0, 255, 0)
    } else {
        (r.protocol, r.scope, RTN_UNICAST)
    };
    let mut m = Msg::with_header(&rtmsg(
        r.family(),
        r.dst.prefix_len(),
        table_u8,
        protocol,
        scope,
        rtype,
    ));
    if r.dst.prefix_len() > 0 {
        m.put(RTA_DST, &ip_bytes(&r.dst.network()));
    }
    if let Some(gw) = r.gw {
        m.put(RTA_GATEWAY, &ip_bytes(&gw));
    }
    if let Some(src) = r.src {
        m.put(RTA_PREFSRC, &ip_bytes(&src));
    }
    if r.oif > 0 {
        m.put_u32(RTA_OIF, r.oif);
    }
    if r.priority > 0 {
        m.put_u32(RTA_PRIORITY, r.priority);
    }
    if table >= 256 {
        m.put_u32(RTA_TABLE, table);
    }
    if !for_delete && (r.mtu > 0 || r.advmss > 0) {
        m.nest(RTA_METRICS, |m| {
            if r.mtu > 0 {
                m.put_u32(RTAX_MTU, r.mtu);
            }
            if r.advmss > 0 {
                m.put_u32(RTAX_ADVMSS, r.advmss);
            }
        });
    }
    m
}

pub fn parse_route(payload: &[u8]) -> Option<Route> {
    let family = *payload.first()?;
    let dst_len = *payload.get(1)?;
    let mut table = *payload.get(4)? as u32;
    let protocol = *payload.get(5)?;
    let scope = *payload.get(6)?;
    let rtype = *payload.get(7)?;
    if rtype != RTN_UNICAST {
        return None;
    }
    let unspecified: IpAddr = if family == AF_INET {
        IpAddr::from([0u8; 4])
    } else if family == AF_INET6 {
        IpAddr::from([0u8; 16])
    } else {
        return None;
    };
    let mut r = Route::new(IpNet::new(unspecified, 0).ok()?, 0);
    r.scope = scope;
    r.protocol = protocol;
    for a in Attrs::new(payload.get(12..)?) {
        match a.ty {
            RTA_DST => r.dst = IpNet::new(ip_from_bytes(a.payload)?, dst_len).ok()?,
            RTA_GATEWAY => r.gw = ip_from_bytes(a.payload),
            RTA_PREFSRC => r.src = ip_from_bytes(a.payload),
            RTA_OIF => r.oif = a.u32().unwrap_or(0),
            RTA_PRIORITY => r.priority = a.u32().unwrap_or(0),
            RTA_TABLE => table = a.u32().unwrap_or(table),
            RTA_METRICS => {
                for m in a.nested() {
                    match m.ty {
                        RTAX_MTU => r.mtu = m.u32().unwrap_or(0),
                        RTAX_ADVMSS => r.advmss = m.u32().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    r.table = table;
    Some(r)
}

impl Req {
    pub fn route_add(r: &Route, mode: RouteMode) -> Req {
        let what = match r.gw {
            Some(gw) => format!("add route {} via {gw}", r.dst),
            None => format!("add route {}", r.dst),
        };
        Req::new(what, RTM_NEWROUTE, mode.flags(), route_request(r, false))
    }

    /// Delete a route (ESRCH when it is already gone).
    pub fn route_del(r: &Route) -> Req {
        Req::new(
            format!("delete route {}", r.dst),
            RTM_DELROUTE,
            0,
            route_request(r, true),
        )
    }
}

impl Netlink {
    /// Unicast routes of a family in every table.
    pub fn routes(&self, family: u8) -> Result<Vec<Route>, NlError> {
        let m = Msg::with_header(&rtmsg(family, 0, 0, 0, 0, 0));
        Ok(self
            .dump("dump routes", RTM_GETROUTE, m.as_bytes())?
            .iter()
            .filter_map(|r| parse_route(&r.payload))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_with_gateway_and_src_golden_bytes() {
        let r = Route::new("10.1.0.0/16".parse().unwrap(), 4)
            .via("10.1.0.1".parse().unwrap())
            .src("10.1.0.5".parse().unwrap());
        #[rustfmt::skip]
        let want = [
            2u8, 16, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // rtmsg: inet /16 main boot universe unicast
            8, 0, 1, 0, 10, 1, 0, 0,                 // RTA_DST
            8, 0, 5, 0, 10, 1, 0, 1,                 // RTA_GATEWAY
            8, 0, 7, 0, 10, 1, 0, 5,                 // RTA_PREFSRC
            8, 0, 4, 0, 4, 0, 0, 0,                  // RTA_OIF
        ];
        assert_eq!(route_request(&r, false).as_bytes(), &want[..]);
        let back = parse_route(&want).unwrap();
        assert_eq!(back.dst.to_string(), "10.1.0.0/16");
        assert_eq!(back.gw, r.gw);
        assert_eq!(back.oif, 4);
        assert_eq!(back.table, 254);
    }

    #[test]
    fn delete_uses_wildcards_and_big_tables_use_rta_table() {
        let mut r = Route::new("::/0".parse().unwrap(), 2);
        r.table = 1000;
        let b = route_request(&r, true);
        let b = b.as_bytes();
        assert_eq!(&b[..8], &[AF_INET6, 0, 0, 0, 0, 0, 255, 0]);
        assert_eq!(
            Attrs::new(&b[12..]).get(RTA_TABLE).unwrap().u32(),
            Some(1000)
        );
        assert!(Attrs::new(&b[12..]).get(RTA_DST).is_none());
    }
}
