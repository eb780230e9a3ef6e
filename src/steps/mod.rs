//! Layer 3: the steps plugins are made of, written once (Go's `pkg/ip`,
//! `pkg/ipam`, `pkg/ns`): namespaces, sysctls, veth pairs, interface
//! configuration, masquerade, IPAM delegation.

pub mod activation;
pub mod bridge;
pub mod check;
pub mod devmove;
pub mod fault;
pub mod goregexp;
pub mod hostport;
pub mod iface;
pub mod ipam;
pub mod ipranges;
pub mod l2result;
pub mod linkattrs;
pub mod masq;
pub mod netns;
pub mod nft_retry;
pub mod nlbatch;
pub mod private_ns;
pub mod spoofchk;
pub mod statefile;
pub mod sublink;
pub mod sysctl;
pub mod sysfs_net;
pub mod undo;
pub mod veth;
pub mod xtables;
pub mod xtables_legacy;

use crate::cni::CniError;
use crate::netlink::NlError;

/// Netlink failures reach the runtime as internal errors (999, as Go's
/// plugins report them) with the operation and the kernel's message.
impl From<NlError> for CniError {
    fn from(e: NlError) -> Self {
        CniError::internal(e.to_string())
    }
}
