//! Layer 2: one file per plugin, ADD/DEL/CHECK/STATUS/GC top to bottom.
//! Plugins never import each other.

pub mod bridge;
pub mod loopback;
pub mod ptp;
