//! cnibox: every CNI plugin and IPAM module in one static binary, chosen by
//! the name it is run as.
//!
//! Layers, each importing only the ones below:
//! 1. `main` + `applets`: dispatch only.
//! 2. `plugins`, `ipam`, `tool`: one module per plugin or command.
//! 3. `steps`: the shared steps plugins are made of.
//! 4. `cni` (protocol), `netlink` (kernel) and the protocol peers `dhcp`
//!    (DHCPv4 client), `gorpc` (Go net/rpc + gob), `ovsdb` (OVSDB JSON-RPC),
//!    `http` (the daemon's wire) and `etcd` (v3 JSON gateway), which never
//!    import each other.

mod applets;
mod cni;
mod dhcp;
mod etcd;
mod gorpc;
mod http;
mod ipam;
mod netlink;
mod ovsdb;
mod plugins;
mod steps;
mod tool;

use std::io::Write;

/// Even a bug answers in CNI form: the release profile aborts on panic, so
/// print a code-999 error object on stdout first (Go prints a stack trace
/// and no JSON).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => match info.payload().downcast_ref::<String>() {
                Some(s) => s.clone(),
                None => "panic".to_string(),
            },
        };
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let err = cni::CniError::internal(format!("internal error: {what}{loc}"));
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(err.to_json(cni::version::CURRENT).as_bytes());
        let _ = out.flush();
    }));
}

fn main() {
    install_panic_hook();
    // Debug builds only: lets a test prove that a panic still answers in
    // CNI form. Release builds contain no such hook.
    #[cfg(debug_assertions)]
    if std::env::var_os("CNIBOX_TEST_PANIC").is_some() {
        panic!("test panic requested");
    }
    let code = applets::main(std::env::args_os().collect());
    std::process::exit(code);
}
