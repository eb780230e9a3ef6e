//! Go's `net/rpc` over HTTP CONNECT with a small gob codec, and the Go types
//! of the dhcp plugin's two calls (`DHCP.Allocate`, `DHCP.Release`). Layer
//! 4: imports nothing from the rest of cnibox.

pub mod gob;
pub mod rpc;

use gob::Ty;

/// `skel.CmdArgs` (cni v1.3): the dhcp calls' argument.
pub static CMD_ARGS: Ty = Ty::Struct {
    name: "CmdArgs",
    fields: &[
        ("ContainerID", &Ty::String),
        ("Netns", &Ty::String),
        ("IfName", &Ty::String),
        ("Args", &Ty::String),
        ("Path", &Ty::String),
        ("NetnsOverride", &Ty::String),
        ("StdinData", &Ty::Bytes),
    ],
};

static INTERFACE: Ty = Ty::Struct {
    name: "",
    fields: &[
        ("Name", &Ty::String),
        ("Mac", &Ty::String),
        ("Mtu", &Ty::Int),
        ("Sandbox", &Ty::String),
        ("SocketPath", &Ty::String),
        ("PciID", &Ty::String),
    ],
};
static INTERFACES: Ty = Ty::Slice {
    name: "[]*types100.Interface",
    elem: &INTERFACE,
};
static IPNET: Ty = Ty::Struct {
    name: "IPNet",
    fields: &[("IP", &Ty::Bytes), ("Mask", &Ty::Bytes)],
};
static IPCONFIG: Ty = Ty::Struct {
    name: "",
    fields: &[
        ("Interface", &Ty::Int),
        ("Address", &IPNET),
        ("Gateway", &Ty::Bytes),
    ],
};
static IPCONFIGS: Ty = Ty::Slice {
    name: "[]*types100.IPConfig",
    elem: &IPCONFIG,
};
static ROUTE: Ty = Ty::Struct {
    name: "",
    fields: &[
        ("Dst", &IPNET),
        ("GW", &Ty::Bytes),
        ("MTU", &Ty::Int),
        ("AdvMSS", &Ty::Int),
        ("Priority", &Ty::Int),
        ("Table", &Ty::Int),
        ("Scope", &Ty::Int),
    ],
};
static ROUTES: Ty = Ty::Slice {
    name: "[]*types.Route",
    elem: &ROUTE,
};
static STRINGS: Ty = Ty::Slice {
    name: "[]string",
    elem: &Ty::String,
};
static DNS: Ty = Ty::Struct {
    name: "DNS",
    fields: &[
        ("Nameservers", &STRINGS),
        ("Domain", &Ty::String),
        ("Search", &STRINGS),
        ("Options", &STRINGS),
    ],
};

/// `types100.Result`: `DHCP.Allocate`'s reply.
pub static RESULT: Ty = Ty::Struct {
    name: "Result",
    fields: &[
        ("CNIVersion", &Ty::String),
        ("Interfaces", &INTERFACES),
        ("IPs", &IPCONFIGS),
        ("Routes", &ROUTES),
        ("DNS", &DNS),
    ],
};

#[cfg(test)]
pub(crate) mod tests;
