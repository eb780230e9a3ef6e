//! Layer 2: the IPAM modules, one per applet. They import only `cni` and
//! `steps`, never each other or the main plugins.

pub mod dhcp;
pub mod etcd;
pub mod host_local;
pub mod static_ipam;
