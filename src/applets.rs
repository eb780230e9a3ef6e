//! The applet table: the single source of truth for dispatch, `--list`,
//! `cnibox install` and the committed `symlinks/` folder.

use crate::cni::invoke::Output;
use crate::cni::skel::{self, Plugin};
use crate::cni::{Env, Invoker};
use crate::{ipam, plugins, tool};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How an applet runs.
pub enum Entry {
    /// A CNI plugin driven by the protocol skeleton (env + stdin).
    Plugin(&'static Plugin),
    /// A command with its own arguments.
    Command(fn(&[OsString]) -> i32),
    /// A CNI plugin that is also a long-lived server when its first
    /// argument is `daemon` (the dhcp plugin and its lease daemon).
    PluginWithDaemon(&'static Plugin, fn(&[OsString]) -> i32),
}

pub struct Applet {
    pub name: &'static str,
    pub summary: &'static str,
    /// Listed by `--list` and installed as a symlink (CNI plugin names and
    /// `cnitool`); other applets are `cnibox` subcommands only.
    pub link: bool,
    pub entry: Entry,
}

/// Every applet, in ASCII order.
pub const APPLETS: &[Applet] = &[
    Applet {
        name: "bandwidth",
        summary: "traffic shaping of the container (tbf, ifb)",
        link: true,
        entry: Entry::Plugin(&plugins::bandwidth::PLUGIN),
    },
    Applet {
        name: "bridge",
        summary: "containers on a Linux bridge",
        link: true,
        entry: Entry::Plugin(&plugins::bridge::PLUGIN),
    },
    Applet {
        name: "cnitool",
        summary: "cnitool-compatible client (same as `cnibox tool`)",
        link: true,
        entry: Entry::Command(tool_command),
    },
    Applet {
        name: "daemon",
        summary: "thick mode: serve every applet on a unix socket",
        link: false,
        entry: Entry::Command(daemon_command),
    },
    Applet {
        name: "dhcp",
        summary: "IPAM: addresses from a DHCP server (`dhcp daemon` holds the leases)",
        link: true,
        entry: Entry::PluginWithDaemon(&ipam::dhcp::PLUGIN, ipam::dhcp::daemon_main),
    },
    Applet {
        name: "doctor",
        summary: "find (and --fix) leaked CNI state on this node",
        link: false,
        entry: Entry::Command(tool::doctor::main),
    },
    Applet {
        name: "dummy",
        summary: "a dummy link in the container",
        link: true,
        entry: Entry::Plugin(&plugins::dummy::PLUGIN),
    },
    Applet {
        name: "etcd",
        summary: "IPAM: cluster-wide addresses reserved in etcd",
        link: true,
        entry: Entry::Plugin(&ipam::etcd::PLUGIN),
    },
    Applet {
        name: "firewall",
        summary: "let container traffic through the FORWARD chain",
        link: true,
        entry: Entry::Plugin(&plugins::firewall::PLUGIN),
    },
    Applet {
        name: "host-device",
        summary: "move a host device into the container",
        link: true,
        entry: Entry::Plugin(&plugins::host_device::PLUGIN),
    },
    Applet {
        name: "host-local",
        summary: "IPAM: addresses from local ranges, reserved on disk",
        link: true,
        entry: Entry::Plugin(&ipam::host_local::PLUGIN),
    },
    Applet {
        name: "inspect",
        summary: "links, addresses, routes, neighbours in a netns",
        link: false,
        entry: Entry::Command(tool::inspect::main),
    },
    Applet {
        name: "ipam",
        summary: "ipam ls: host-local reservations and owners",
        link: false,
        entry: Entry::Command(tool::ipam_ls::main),
    },
    Applet {
        name: "ipvlan",
        summary: "ipvlan link on a host interface",
        link: true,
        entry: Entry::Plugin(&plugins::ipvlan::PLUGIN),
    },
    Applet {
        name: "loopback",
        summary: "bring lo up in the container",
        link: true,
        entry: Entry::Plugin(&plugins::loopback::PLUGIN),
    },
    Applet {
        name: "macvlan",
        summary: "macvlan link on a host interface",
        link: true,
        entry: Entry::Plugin(&plugins::macvlan::PLUGIN),
    },
    Applet {
        name: "ovs",
        summary: "Open vSwitch ports: veth and DPDK vhost-user",
        link: true,
        entry: Entry::Plugin(&plugins::ovs::PLUGIN),
    },
    Applet {
        name: "portmap",
        summary: "host ports forwarded to the container (nf_tables)",
        link: true,
        entry: Entry::Plugin(&plugins::portmap::PLUGIN),
    },
    Applet {
        name: "ptp",
        summary: "veth pair routed through the host",
        link: true,
        entry: Entry::Plugin(&plugins::ptp::PLUGIN),
    },
    Applet {
        name: "sbr",
        summary: "source-based routing for the container interface",
        link: true,
        entry: Entry::Plugin(&plugins::sbr::PLUGIN),
    },
    Applet {
        name: "static",
        summary: "IPAM: fixed addresses from the config",
        link: true,
        entry: Entry::Plugin(&ipam::static_ipam::PLUGIN),
    },
    Applet {
        name: "tap",
        summary: "a tap device in the container",
        link: true,
        entry: Entry::Plugin(&plugins::tap::PLUGIN),
    },
    Applet {
        name: "tool",
        summary: "add|check|del|gc|status|ls: run networks like libcni",
        link: false,
        entry: Entry::Command(tool_command),
    },
    Applet {
        name: "tuning",
        summary: "sysctls and link settings of the container interface",
        link: true,
        entry: Entry::Plugin(&plugins::tuning::PLUGIN),
    },
    Applet {
        name: "vlan",
        summary: "802.1q VLAN link on a host interface",
        link: true,
        entry: Entry::Plugin(&plugins::vlan::PLUGIN),
    },
    Applet {
        name: "vrf",
        summary: "put the container interface in a VRF",
        link: true,
        entry: Entry::Plugin(&plugins::vrf::PLUGIN),
    },
];

/// `cnibox tool` and `cnitool`: our own plugins run in-process when
/// CNI_PATH leads back to this executable.
fn tool_command(args: &[OsString]) -> i32 {
    tool::main(args, run_in_process)
}

/// `cnibox daemon`: thick mode serves every applet through the same
/// in-process runner as delegation.
fn daemon_command(args: &[OsString]) -> i32 {
    let plugins = APPLETS
        .iter()
        .filter(|a| plugin(a.name).is_some())
        .map(|a| a.name)
        .collect();
    let hosted = [tool::daemon::Hosted {
        name: "dhcp",
        socket: ipam::dhcp::config::DEFAULT_SOCKET,
        serve: ipam::dhcp::serve_hosted,
    }];
    tool::daemon::main(args, run_in_process, plugins, &hosted)
}

/// Delegation's in-process path: run applet `name` through the skel if it
/// is one of our plugins, with the same thick-mode hook as an exec (inside
/// the daemon the request's env says so, and nothing is forwarded).
fn run_in_process(name: &str, env: &Env, stdin: &[u8], invoker: &Invoker) -> Option<Output> {
    plugin(name).map(|p| {
        tool::daemon::shim::run_or_forward(p.name, env, &mut &stdin[..], |stdin| {
            skel::run(p, env, stdin, invoker)
        })
    })
}

pub fn find(name: &str) -> Option<&'static Applet> {
    APPLETS.iter().find(|a| a.name == name)
}

/// The in-process lookup for delegation: only CNI plugins.
pub fn plugin(name: &str) -> Option<&'static Plugin> {
    match find(name)?.entry {
        Entry::Plugin(p) | Entry::PluginWithDaemon(p, _) => Some(p),
        Entry::Command(_) => None,
    }
}

fn run(applet: &Applet, args: &[OsString]) -> i32 {
    match applet.entry {
        Entry::PluginWithDaemon(_, daemon) if args.first().is_some_and(|a| a == "daemon") => {
            daemon(&args[1..])
        }
        Entry::Plugin(p) | Entry::PluginWithDaemon(p, _) => {
            let env = Env::from_process();
            // Thick mode: a config naming a `cniboxDaemon` socket is
            // forwarded there; any other runs here.
            let out = tool::daemon::shim::run_or_forward(
                p.name,
                &env,
                &mut std::io::stdin().lock(),
                |stdin| skel::run(p, &env, stdin, &Invoker::new(run_in_process)),
            );
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&out.stdout);
            let _ = stdout.flush();
            out.status
        }
        Entry::Command(f) => f(args),
    }
}

fn basename(arg0: &OsString) -> String {
    Path::new(arg0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn usage() -> String {
    let mut s = format!(
        "cnibox {}: every CNI plugin in one binary.\n\n\
         usage: APPLET [args]              (run through a symlink named APPLET)\n\
         \x20      cnibox APPLET [args]\n\
         \x20      cnibox --list | --version | --help\n\
         \x20      cnibox install [--force] [DIR]   (symlink the applets into DIR, default /opt/cni/bin)\n\napplets:\n",
        env!("CARGO_PKG_VERSION")
    );
    for a in APPLETS {
        s.push_str(&format!("  {:<12} {}\n", a.name, a.summary));
    }
    s
}

/// A usage error: the message and the usage on stderr, exit status 2.
fn usage_error(msg: &str, usage: &str) -> i32 {
    eprint!("{msg}\n\n{usage}");
    2
}

/// Dispatch on `basename(argv[0])`, else on `argv[1]`. Help asked for is
/// printed on stdout with exit status 0; a usage error (no arguments,
/// unknown option, extra argument) goes to stderr with exit status 2.
pub fn main(args: Vec<OsString>) -> i32 {
    let arg0 = args.first().map(basename).unwrap_or_default();
    if let Some(a) = find(&arg0) {
        return run(a, &args[1.min(args.len())..]);
    }
    let first = args.get(1).map(|a| a.to_string_lossy().into_owned());
    let extra = args.len() > 2;
    match first.as_deref() {
        None => usage_error("cnibox: which applet?", &usage()),
        Some("--help") | Some("-h") | Some("help") if !extra => {
            print!("{}", usage());
            0
        }
        Some("--list") if !extra => {
            for a in APPLETS.iter().filter(|a| a.link) {
                println!("{}", a.name);
            }
            0
        }
        Some("--version") if !extra => {
            println!("cnibox {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some(opt @ ("--help" | "-h" | "help" | "--list" | "--version")) => {
            usage_error(&format!("cnibox: {opt} takes no arguments"), &usage())
        }
        Some("install") => install_command(&args[2..]),
        Some(opt) if opt.starts_with('-') => {
            usage_error(&format!("cnibox: unknown option {opt:?}"), &usage())
        }
        Some(name) => match find(name) {
            Some(a) => run(a, &args[2..]),
            None => usage_error(&format!("cnibox: unknown applet {name:?}"), &usage()),
        },
    }
}

pub const DEFAULT_INSTALL_DIR: &str = "/opt/cni/bin";

const INSTALL_USAGE: &str = "\
usage: cnibox install [--force] [DIR]

Put one symlink per applet (the names `cnibox --list` prints) into DIR
(default /opt/cni/bin), which must exist.

Links point at `cnibox` in DIR when DIR holds it (relative links, so the
directory can move), else at the absolute path of this executable. Each
link is made under a temporary name and renamed into place, so a runtime
watching DIR never sees a missing or half-made link.

A link that already points at a cnibox is refreshed. Anything else in the
way (a Go plugin binary, a link to something else) stops the install
before any change, naming what is there; with --force it is replaced.

options:
  -f, --force   replace whatever is at an applet's name in DIR
  -h, --help    this help
";

fn install_command(args: &[OsString]) -> i32 {
    let mut force = false;
    let mut dir: Option<PathBuf> = None;
    let mut options_done = false;
    for a in args {
        let s = a.to_string_lossy();
        if !options_done && s.starts_with('-') && s != "-" {
            match s.as_ref() {
                "-h" | "--help" => {
                    print!("{INSTALL_USAGE}");
                    return 0;
                }
                "-f" | "--force" => force = true,
                "--" => options_done = true,
                _ => {
                    return usage_error(
                        &format!("cnibox install: unknown option {s:?}"),
                        INSTALL_USAGE,
                    )
                }
            }
        } else if dir.is_some() {
            return usage_error(
                &format!("cnibox install: one directory only (extra argument {s:?})"),
                INSTALL_USAGE,
            );
        } else {
            dir = Some(PathBuf::from(a));
        }
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(DEFAULT_INSTALL_DIR));
    match install(&dir, force) {
        Ok((n, target)) => {
            println!(
                "installed {n} applet links in {} -> {}",
                dir.display(),
                target.display()
            );
            0
        }
        Err(e) => {
            eprintln!("cnibox install: {e}");
            1
        }
    }
}

/// Whether `path` is a symlink to a cnibox: one named `cnibox`, or one
/// that resolves to `target`.
fn is_cnibox_link(path: &Path, target: &Path) -> bool {
    let Ok(to) = std::fs::read_link(path) else {
        return false;
    };
    to.file_name().is_some_and(|n| n == "cnibox")
        || std::fs::canonicalize(path)
            .ok()
            .zip(std::fs::canonicalize(path.with_file_name(target)).ok())
            .is_some_and(|(a, b)| a == b)
}

/// Create or refresh one symlink per linked applet in `dir`, which must
/// exist. Each link is made under a temporary name and renamed into place,
/// so a runtime watching the directory never sees a missing, dangling or
/// half-made link. Links point at `cnibox` in the same directory when it is
/// there (relative, so the directory can move), else at this executable.
/// Without `force`, anything at a link's name that is not already a link to
/// a cnibox stops the install before any change. Returns the number of
/// links and what they point at.
pub fn install(dir: &Path, force: bool) -> Result<(usize, PathBuf), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} does not exist (create it first: mkdir -p {})",
                dir.display(),
                dir.display()
            ))
        }
        Err(e) => return Err(tool::io_error("reading", dir, &e)),
    }
    let target: PathBuf = if dir.join("cnibox").is_file() {
        PathBuf::from("cnibox")
    } else {
        std::fs::canonicalize("/proc/self/exe").map_err(|e| {
            tool::io_error(
                "finding this executable at",
                Path::new("/proc/self/exe"),
                &e,
            )
        })?
    };
    let linked = || APPLETS.iter().filter(|a| a.link);
    if !force {
        let in_the_way: Vec<String> = linked()
            .map(|a| dir.join(a.name))
            .filter(|p| p.symlink_metadata().is_ok() && !is_cnibox_link(p, &target))
            .map(|p| p.display().to_string())
            .collect();
        if !in_the_way.is_empty() {
            return Err(format!(
                "not replacing what is already there (not a link to cnibox): {}; \
                 nothing was changed (--force replaces them)",
                in_the_way.join(", ")
            ));
        }
    }
    let mut n = 0;
    for a in linked() {
        let tmp = dir.join(format!(".{}.cnibox-tmp.{}", a.name, std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .map_err(|e| tool::io_error("making a link at", &tmp, &e))?;
        if let Err(e) = std::fs::rename(&tmp, dir.join(a.name)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(tool::io_error("renaming a link to", &dir.join(a.name), &e));
        }
        n += 1;
    }
    Ok((n, target))
}
