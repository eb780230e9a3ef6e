//! The CNI protocol core: environment, config decoding with Go's rules,
//! results in every spec version, error objects, the plugin skeleton and
//! delegation. Layer 4: imports nothing from the rest of cnibox.

pub mod args;
pub mod env;
pub mod error;
pub mod invoke;
pub mod json;
pub mod result;
pub mod skel;
pub mod types;
pub mod version;

pub use env::Env;
pub use error::CniError;
pub use invoke::Invoker;
pub use skel::{Plugin, Request};
