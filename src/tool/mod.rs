//! `cnibox tool` (also run as `cnitool`): a cnitool-compatible client with
//! libcni's runtime behaviour and its on-disk result cache, plus `tool ls`.
//! `cnibox inspect` and `cnibox ipam` (debugging applets) live here too.
//!
//! Layer 2: uses `cni` (protocol, delegation) and `steps`/`netlink` only.

pub mod cache;
pub mod conf;
pub mod daemon;
pub mod doctor;
pub mod gojson;
pub mod inspect;
pub mod ipam_ls;
pub mod ipam_ls_etcd;
pub mod ls;
pub mod runtime;

use crate::cni::env;
use crate::cni::invoke::InProcessLookup;
use crate::cni::{Env, Invoker};
use cache::RuntimeConf;
use runtime::Runtime;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

const USAGE: &str = "\
usage: cnibox tool add|check|del [options] <network> <netns>
       cnibox tool status <network>
       cnibox tool gc [--valid ID/IFNAME,...] [--cache-dir DIR] <network>
       cnibox tool ls [--json] [--cache-dir DIR] [<network>]
       cnibox tool help [COMMAND]
(`cnitool` takes the same arguments.)

Run a network's plugins as a container runtime (libcni) would, and share
libcni's result cache. <network> is the `name` in a config under
$NETCONFPATH; <netns> is a namespace path such as /run/netns/blue.

commands:
  add      attach the namespace to the network; prints the result
  check    check an attachment (cniVersion 0.4.0 and up)
  del      detach (the cached result is the plugins' prevResult)
  gc       delete cached attachments of the network that are not valid,
           then send GC to the plugins (cniVersion 1.1.0 and up)
  status   ask every plugin whether it can take ADDs (1.1.0 and up)
  ls       list cached attachments

options:
  -i, --ifname NAME    interface name (default: $CNI_IFNAME, else eth0)
      --id ID          container ID (default: cnitool-<20 hex of sha512(netns)>)
      --cache-dir DIR  result cache (default /var/lib/cni)
  -h, --help           help for a command: cnibox tool COMMAND --help
                       (or cnibox tool help COMMAND)

environment:
  NETCONFPATH  where configs are (default /etc/cni/net.d)
  CNI_PATH     where plugins are (':'-separated)
  CNI_ARGS     K=V;K2=V2 passed to the plugins
  CAP_ARGS     capability arguments as a JSON object, e.g.
               {\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\"}]}
";

fn help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "add" => {
            "\
usage: cnibox tool add [-i IFNAME] [--id ID] [--cache-dir DIR] <network> <netns>

Run the network's plugins for ADD in order, each getting the previous
result as prevResult; write the result cache; print the result (in the
result's cniVersion, as a plugin prints it). On failure nothing is cached
and nothing is undone: run `del` to clean up, as a runtime would.
"
        }
        "check" => {
            "\
usage: cnibox tool check [-i IFNAME] [--id ID] [--cache-dir DIR] <network> <netns>

Run the plugins for CHECK in order with the cached ADD result as
prevResult. Needs cniVersion 0.4.0 or later; succeeds at once when the
network sets disableCheck. Prints nothing on success.
"
        }
        "del" => {
            "\
usage: cnibox tool del [-i IFNAME] [--id ID] [--cache-dir DIR] <network> <netns>

Run the plugins for DEL in reverse order with the cached ADD result as
prevResult (cniVersion 0.4.0 and up; an unreadable cache is deleted and
ignored), then remove the cache. The first failing plugin stops it and the
cache is kept. Prints nothing on success.
"
        }
        "gc" => {
            "\
usage: cnibox tool gc [--valid ID/IFNAME,...] [--cache-dir DIR] <network>

Delete every cached attachment of the network that is not in the valid
list (a full DEL with the current config and the cached netns, CNI_ARGS
and capability args), then, for cniVersion 1.1.0 and up, send GC to every
plugin with cni.dev/valid-attachments. Without --valid (cnitool's way)
every cached attachment of the network is deleted and the plugins get no
list. --valid '' means nothing is valid. Does nothing when the network
sets disableGC. A netns argument after <network> (cnitool's form) is
accepted and ignored.
"
        }
        "status" => {
            "\
usage: cnibox tool status <network>

Send STATUS to every plugin in order (cniVersion 1.1.0 and up) and say
whether the network is ready. Below 1.1.0 nothing is run and it says so
(exit status 0, as libcni). The first failure is printed and the exit
status is 1. A netns argument after <network> (cnitool's form) is
accepted and ignored.
"
        }
        "ls" => {
            "\
usage: cnibox tool ls [--json] [--cache-dir DIR] [<network>]

List the cached attachments (what libcni's GetCachedAttachments sees):
network, container ID, interface, netns and the result's IPs. --json
prints them as a JSON array for scripts.
"
        }
        _ => return None,
    })
}

/// Parsed command line.
#[derive(Debug, Default)]
struct Cli {
    command: String,
    positional: Vec<String>,
    ifname: Option<String>,
    id: Option<String>,
    cache_dir: Option<String>,
    valid: Option<String>,
    json: bool,
    help: bool,
}

fn usage_error(msg: impl std::fmt::Display) -> i32 {
    eprintln!("cnibox tool: {msg}\n");
    eprint!("{USAGE}");
    2
}

fn parse(args: &[OsString]) -> Result<Cli, String> {
    let mut cli = Cli::default();
    let mut it = args.iter();
    let mut flags_done = false;
    while let Some(a) = it.next() {
        let a = a
            .to_str()
            .ok_or_else(|| format!("argument {a:?} is not valid UTF-8"))?;
        if flags_done || !a.starts_with('-') || a == "-" {
            if cli.command.is_empty() {
                cli.command = a.to_string();
            } else {
                cli.positional.push(a.to_string());
            }
            continue;
        }
        if a == "--" {
            flags_done = true;
            continue;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None if a.len() > 2 && a.starts_with("-i") && !a.starts_with("--") => {
                ("-i", Some(a[2..].to_string()))
            }
            None => (a, None),
        };
        let mut value = |flag: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .and_then(|v| v.to_str())
                    .map(str::to_string)
                    .ok_or_else(|| format!("flag needs an argument: {flag}")),
            }
        };
        match name {
            "-i" | "--ifname" => cli.ifname = Some(value(name)?),
            "--id" => cli.id = Some(value(name)?),
            "--cache-dir" => cli.cache_dir = Some(value(name)?),
            "--valid" => cli.valid = Some(value(name)?),
            "--json" if inline.is_none() => cli.json = true,
            "-h" | "--help" if inline.is_none() => cli.help = true,
            _ => return Err(format!("unknown flag: {a}")),
        }
    }
    Ok(cli)
}

/// Entry point for `cnibox tool ARGS` and the `cnitool` link. `lookup`
/// runs our own applets in-process when CNI_PATH leads back to us.
pub fn main(args: &[OsString], lookup: InProcessLookup) -> i32 {
    let cli = match parse(args) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let command = cli.command.clone();
    if command.is_empty() && !cli.help {
        return usage_error("which command?");
    }
    match command.as_str() {
        "" | "help" => {
            if cli.positional.len() > 1 {
                return usage_error("help takes one command name");
            }
            if let Some(c) = cli.positional.first() {
                if help(c).is_none() {
                    return usage_error(format!("help: unknown command {c:?}"));
                }
            }
            match cli.positional.first().and_then(|c| help(c)) {
                Some(h) => print!("{h}"),
                None => print!("{USAGE}"),
            }
            return 0;
        }
        c if help(c).is_none() => return usage_error(format!("unknown command {c:?}")),
        _ => {}
    }
    if cli.help {
        print!("{}", help(&command).unwrap_or(USAGE));
        return 0;
    }
    if cli.valid.is_some() && command != "gc" {
        return usage_error("--valid is for gc only");
    }
    if cli.json && command != "ls" {
        return usage_error("--json is for ls only");
    }
    let cache_dir = PathBuf::from(
        cli.cache_dir
            .clone()
            .unwrap_or_else(|| cache::DEFAULT_DIR.into()),
    );
    if command == "ls" {
        if cli.positional.len() > 1 {
            return usage_error("ls takes at most one network name");
        }
        return ls::run(
            &cache_dir,
            cli.positional.first().map(String::as_str),
            cli.json,
        );
    }
    let (min, max) = match command.as_str() {
        "gc" | "status" => (1, 2),
        _ => (2, 2),
    };
    if cli.positional.len() < min {
        return usage_error(if min == 2 {
            format!("{command}: network name and namespace are required")
        } else {
            format!("{command}: network name is required")
        });
    }
    if cli.positional.len() > max {
        return usage_error(format!("{command}: too many arguments"));
    }
    match run(&cli, &cache_dir, lookup) {
        Ok(out) => {
            if !out.is_empty() {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(out.as_bytes());
                // Byte-exact like cnitool for scripts; a newline for people.
                if nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
                    let _ = stdout.write_all(b"\n");
                }
                let _ = stdout.flush();
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The reason in an I/O error as Go and libcni word it ("no such file or
/// directory"), without Rust's " (os error 2)". The debugging applets say
/// what they were doing, the path, then this: the same style as the
/// libcni messages `cnibox tool` repeats.
pub fn io_reason(e: &std::io::Error) -> String {
    let full = conf::go_io_error("", Path::new(""), e);
    full.trim_start_matches(" : ").to_string()
}

/// `<doing> <path>: <reason>`, the debugging applets' error style.
pub fn io_error(doing: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{doing} {}: {}", path.display(), io_reason(e))
}

/// cnitool's strict `CNI_ARGS` parsing.
fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(';')
        .map(|pair| {
            let kv: Vec<&str> = pair.split('=').collect();
            if kv.len() != 2 || kv[0].is_empty() || kv[1].is_empty() {
                return Err(format!("invalid CNI_ARGS pair {pair:?}"));
            }
            Ok((kv[0].to_string(), kv[1].to_string()))
        })
        .collect()
}

/// `--valid ID/IFNAME,ID2/IFNAME2` ('' is an empty list). Every entry must
/// be a valid container ID and interface name: a typo must not turn into a
/// list that makes GC release everything.
fn parse_valid(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.trim().split_once('/') {
            Some((id, ifname)) if env::is_valid_id(id) && env::validate_ifname(ifname).is_ok() => {
                Ok((id.to_string(), ifname.to_string()))
            }
            _ => Err(format!("--valid: {p:?} is not CONTAINERID/IFNAME")),
        })
        .collect()
}

/// Go's `filepath.Abs`: joined to the working directory if relative, then
/// cleaned lexically.
pub fn abs_path(p: &str) -> Result<String, String> {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        format!("{}/{p}", cwd.display())
    };
    Ok(clean(&joined))
}

/// Go's `filepath.Clean` for an absolute path.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// cnitool's container ID: `cnitool-` + the first 10 bytes of
/// SHA-512(netns) in hex.
pub fn container_id(netns: &str) -> String {
    format!("cnitool-{}", crate::steps::masq::sha512_hex(netns, 20))
}

fn run(cli: &Cli, cache_dir: &Path, lookup: InProcessLookup) -> Result<String, String> {
    let env = Env::from_process();
    let net = &cli.positional[0];
    let netdir = match env.get_or_empty("NETCONFPATH") {
        "" => "/etc/cni/net.d".to_string(),
        d => d.to_string(),
    };
    let list = conf::load_network_conf(Path::new(&netdir), net)?;
    let capability_args = match env.get_or_empty("CAP_ARGS") {
        "" => None,
        s => match serde_json::from_str::<serde_json::Value>(s)
            .map_err(|e| format!("CAP_ARGS: {e}"))?
        {
            serde_json::Value::Object(m) => Some(m),
            serde_json::Value::Null => None,
            _ => return Err(
                "CAP_ARGS: json: cannot unmarshal into Go value of type map[string]interface {}"
                    .into(),
            ),
        },
    };
    let args = parse_cni_args(env.get_or_empty("CNI_ARGS"))?;
    let ifname = match &cli.ifname {
        Some(i) if !i.is_empty() => i.clone(),
        _ => match env.get_or_empty("CNI_IFNAME") {
            "" => "eth0".to_string(),
            i => i.to_string(),
        },
    };
    let netns = abs_path(cli.positional.get(1).map(String::as_str).unwrap_or(""))?;
    let rt = RuntimeConf {
        container_id: cli.id.clone().unwrap_or_else(|| container_id(&netns)),
        netns,
        ifname,
        args,
        capability_args,
    };
    let runtime = Runtime {
        path: env.get_or_empty("CNI_PATH").to_string(),
        cache_dir: cache_dir.to_path_buf(),
        invoker: Invoker::new(lookup),
        base_env: env.clone(),
    };
    match cli.command.as_str() {
        "add" => {
            let r = runtime.add_list(&list, &rt)?;
            r.to_version_string(&r.cni_version)
                .map_err(|e| e.to_string())
        }
        "check" => runtime.check_list(&list, &rt).map(|_| String::new()),
        "del" => runtime.del_list(&list, &rt).map(|_| String::new()),
        "status" => {
            // Say what happened: libcni succeeds silently below 1.1.0.
            if !crate::cni::version::ge(&list.cni_version, "1.1.0").unwrap_or(false) {
                println!(
                    "{}: STATUS needs cniVersion 1.1.0; this network is {} (nothing was asked)",
                    list.name, list.cni_version
                );
                return Ok(String::new());
            }
            runtime.status_list(&list)?;
            println!(
                "{}: ready ({} plugin{} answered STATUS)",
                list.name,
                list.plugins.len(),
                if list.plugins.len() == 1 { "" } else { "s" }
            );
            Ok(String::new())
        }
        "gc" => {
            let valid = cli.valid.as_deref().map(parse_valid).transpose()?;
            runtime
                .gc_list(&list, valid.as_deref())
                .map(|_| String::new())
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Fuzzing only (`cargo fuzz`): the tool's `CNI_ARGS` and `--valid` parsers.
#[cfg(fuzzing)]
pub fn fuzz_args(s: &str) {
    let _ = parse_cni_args(s);
    let _ = parse_valid(s);
    let _ = abs_path(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_is_cnitools() {
        // printf %s /var/run/netns/test | sha512sum | cut -c1-20
        assert_eq!(
            container_id("/var/run/netns/test"),
            "cnitool-7b8a61d5d8e94d07cbe4"
        );
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(clean("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("/"), "/");
        assert_eq!(abs_path("/run/netns/x/").unwrap(), "/run/netns/x");
        assert!(abs_path("x").unwrap().ends_with("/x"));
    }

    #[test]
    fn cni_args_are_strict() {
        assert_eq!(
            parse_cni_args("A=1;B=2").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        for bad in ["A", "A=", "=1", "A=1=2", "A=1;", ";A=1"] {
            assert_eq!(
                parse_cni_args(bad).unwrap_err(),
                format!(
                    "invalid CNI_ARGS pair {:?}",
                    bad.split(';')
                        .find(|p| {
                            let kv: Vec<&str> = p.split('=').collect();
                            kv.len() != 2 || kv[0].is_empty() || kv[1].is_empty()
                        })
                        .unwrap()
                )
            );
        }
    }

    #[test]
    fn valid_lists() {
        assert_eq!(parse_valid("").unwrap(), vec![]);
        assert_eq!(
            parse_valid("a/eth0, b/net1").unwrap(),
            vec![("a".into(), "eth0".into()), ("b".into(), "net1".into())]
        );
        assert!(parse_valid("a").is_err());
        assert!(parse_valid("/eth0").is_err());
    }

    #[test]
    fn flags_anywhere_in_cobra_forms() {
        let args: Vec<OsString> = ["add", "-ieth1", "n", "--id=x", "/ns", "--cache-dir", "/c"]
            .iter()
            .map(OsString::from)
            .collect();
        let c = parse(&args).unwrap();
        assert_eq!(c.command, "add");
        assert_eq!(c.positional, vec!["n", "/ns"]);
        assert_eq!(c.ifname.as_deref(), Some("eth1"));
        assert_eq!(c.id.as_deref(), Some("x"));
        assert_eq!(c.cache_dir.as_deref(), Some("/c"));
        assert!(parse(&[OsString::from("--bogus")]).is_err());
        assert!(parse(&[OsString::from("--id")]).is_err());
    }
}
