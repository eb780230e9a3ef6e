//! Layer 3: the steps plugins are made of, written once (Go's `pkg/ip`,
//! `pkg/ipam`, `pkg/ns`): namespaces, sysctls, veth pairs, interface
//! configuration, masquerade, IPAM delegation.

pub mod bridge;
pub mod check;
pub mod fault;
pub mod iface;
pub mod ipam;
pub mod masq;
pub mod netns;
pub mod nft_retry;
pub mod nlbatch;
pub mod spoofchk;
pub mod sysctl;
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
