//! Layer 2: one file per plugin, ADD/DEL/CHECK/STATUS/GC top to bottom.
//! Plugins never import each other.

pub mod bandwidth;
pub mod bridge;
pub mod dummy;
pub mod firewall;
pub mod host_device;
pub mod ipvlan;
pub mod loopback;
pub mod macvlan;
pub mod ovs;
pub mod portmap;
pub mod ptp;
pub mod sbr;
pub mod tap;
pub mod tuning;
pub mod vlan;
pub mod vrf;
