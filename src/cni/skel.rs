//! The plugin side of the protocol (Go's `pkg/skel`): read `CNI_*` and the
//! config, validate them in the reference's order with its error codes, gate
//! commands by version, call the plugin, print the result or the error.

use super::env::{self, Command, Env};
use super::error::{code, CniError};
use super::invoke::{Invoker, Output};
use super::json::{self, GoValue};
use super::result::CniResult;
use super::types::NetConf;
use super::version;
use std::io::Read;

/// The largest config we read from stdin. Real configs are kilobytes; a
/// larger input is refused instead of being buffered without limit.
pub const MAX_STDIN: usize = 4 << 20;

/// A plugin: its name, supported versions and one function per command.
pub struct Plugin {
    pub name: &'static str,
    pub versions: &'static [&'static str],
    pub add: fn(&Request) -> Result<CniResult, CniError>,
    pub del: fn(&Request) -> Result<(), CniError>,
    pub check: fn(&Request) -> Result<(), CniError>,
    pub status: fn(&Request) -> Result<(), CniError>,
    pub gc: fn(&Request) -> Result<(), CniError>,
}

/// Everything a plugin command gets: the validated environment, the raw
/// config bytes and their parse, and a way to delegate to other plugins.
pub struct Request<'a> {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    /// The config exactly as received (delegates get these bytes).
    pub stdin: Vec<u8>,
    pub config: GoValue,
    /// The config's `cniVersion` (0.1.0 when absent).
    pub version: String,
    pub env: &'a Env,
    pub invoker: &'a Invoker,
}

impl Request<'_> {
    /// The common keys of the config.
    pub fn net_conf(&self) -> Result<NetConf, CniError> {
        self.decode()
    }

    /// Decode the config into a plugin's own struct; a field of the wrong
    /// shape is code 7 with the field's path.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, CniError> {
        json::from_value(self.config.clone())
            .map_err(|e| CniError::config(format!("invalid network config: {e}")))
    }

    /// The network name (validated by the skel).
    pub fn name(&self) -> &str {
        self.config
            .get("name")
            .and_then(GoValue::as_str)
            .unwrap_or_default()
    }
}

/// Read at most `limit` bytes; more is an error, not an allocation.
pub fn read_bounded(r: &mut dyn Read, limit: usize) -> Result<Vec<u8>, CniError> {
    let mut buf = Vec::new();
    let n = r
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CniError::io(format!("error reading from stdin: {e}")))?;
    if n > limit {
        return Err(CniError::config(format!(
            "network config on stdin is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

/// Is `path` the network namespace this process runs in?
fn is_own_netns(path: &str) -> bool {
    super::same_file(path, "/proc/self/ns/net")
}

/// Run one plugin invocation. `stderr` receives the "about" text when no
/// command is given. Never panics on bad input; every failure is a CNI error
/// object on stdout with status 1.
pub fn run(plugin: &Plugin, env: &Env, stdin: &mut dyn Read, invoker: &Invoker) -> Output {
    let mut version_for_errors = version::CURRENT.to_string();
    match dispatch(plugin, env, stdin, invoker, &mut version_for_errors) {
        Ok(out) => out,
        Err(e) => Output {
            stdout: e.to_json(&version_for_errors).into_bytes(),
            status: 1,
        },
    }
}

/// The "about" text Go's skel prints to stderr with no CNI_COMMAND.
pub fn about(plugin: &Plugin) -> String {
    format!(
        "CNI {} plugin v{} (cnibox)\nCNI protocol versions supported: {}\n",
        plugin.name,
        env!("CARGO_PKG_VERSION"),
        plugin.versions.join(", ")
    )
}

fn dispatch(
    plugin: &Plugin,
    env: &Env,
    stdin: &mut dyn Read,
    invoker: &Invoker,
    version_for_errors: &mut String,
) -> Result<Output, CniError> {
    let cmd = env.get("CNI_COMMAND")?;
    if cmd.is_empty() {
        eprint!("{}", about(plugin));
        return Ok(Output::ok(Vec::new()));
    }
    let command =
        Command::parse(cmd).ok_or_else(|| CniError::env(format!("unknown CNI_COMMAND: {cmd}")))?;
    if command == Command::Version {
        return Ok(Output::ok(
            version::version_reply(plugin.versions).into_bytes(),
        ));
    }

    let mut missing = Vec::new();
    for name in command.required_env() {
        if env.get(name)?.is_empty() {
            missing.push(*name);
        }
    }
    if !missing.is_empty() {
        return Err(CniError::env(format!(
            "required env variables [{}] missing",
            missing.join(",")
        )));
    }

    let stdin = read_bounded(stdin, MAX_STDIN)?;
    let config = json::parse(&stdin)
        .map_err(|e| CniError::decode(format!("error unmarshall network config: {e}")))?;
    if !matches!(config, GoValue::Object(_)) {
        return Err(CniError::decode(
            "error unmarshall network config: not a JSON object",
        ));
    }
    let name = match config.get("name") {
        None | Some(GoValue::Null) => "",
        Some(GoValue::String(s)) => s.as_str(),
        Some(_) => {
            return Err(CniError::decode(
                "error unmarshall network config: name: expected a string",
            ))
        }
    };
    env::validate_network_name(name)?;

    let container_id = env.get("CNI_CONTAINERID")?.to_string();
    let ifname = env.get("CNI_IFNAME")?.to_string();
    if command.is_attachment() {
        env::validate_container_id(&container_id)?;
        env::validate_ifname(&ifname)?;
    }

    let conf_version = version::config_version(&config)?;
    version::check_supported(&conf_version, plugin.versions)?;
    *version_for_errors = conf_version.clone();
    let gate = |min: &str| -> Result<(), CniError> {
        if version::ge(&conf_version, min).map_err(CniError::decode)? {
            Ok(())
        } else {
            Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("config version does not allow {}", command.as_str()),
            ))
        }
    };
    match command {
        Command::Check => gate("0.4.0")?,
        Command::Status | Command::Gc => gate("1.1.0")?,
        _ => {}
    }

    let netns = env.get("CNI_NETNS")?.to_string();
    // Go's skel: "1" or any case of "true".
    let override_var = env.get_or_empty("CNI_NETNS_OVERRIDE");
    let override_ok = override_var == "1" || override_var.eq_ignore_ascii_case("true");
    // Checked before any change (Go checks after the command has run): a
    // stale /proc/<pid>/ns/net may point at the host, and loopback's DEL
    // would then take the host's `lo` down.
    if command.is_attachment() && !netns.is_empty() && !override_ok && is_own_netns(&netns) {
        return Err(CniError::new(
            code::INVALID_NETNS,
            "plugin's netns and netns from CNI_NETNS should not be the same",
        ));
    }

    // Not kept (the invoker has its own copy), but a non-UTF-8 value is
    // still an invalid env var (code 4).
    env.get("CNI_PATH")?;
    let req = Request {
        container_id,
        netns,
        ifname,
        args: env.get("CNI_ARGS")?.to_string(),
        stdin,
        config,
        version: conf_version.clone(),
        env,
        invoker,
    };
    match command {
        Command::Add => {
            let result = (plugin.add)(&req)?;
            Ok(Output::ok(
                result.to_version_string(&conf_version)?.into_bytes(),
            ))
        }
        Command::Del => (plugin.del)(&req).map(|_| Output::ok(Vec::new())),
        Command::Check => (plugin.check)(&req).map(|_| Output::ok(Vec::new())),
        Command::Status => (plugin.status)(&req).map(|_| Output::ok(Vec::new())),
        Command::Gc => (plugin.gc)(&req).map(|_| Output::ok(Vec::new())),
        Command::Version => Ok(Output::ok(
            version::version_reply(plugin.versions).into_bytes(),
        )),
    }
}

/// A Request for unit tests of plugin code: ADD of container `c` on `eth0`
/// with `conf` on stdin and `args` as CNI_ARGS, no netns, exec-only
/// delegation.
#[cfg(test)]
pub fn with_test_request<T>(conf: &str, args: &str, f: impl FnOnce(&Request) -> T) -> T {
    let env = Env::default();
    let invoker = Invoker::exec_only();
    let config = json::parse(conf.as_bytes()).unwrap_or(GoValue::Null);
    let version = version::config_version(&config).unwrap_or_default();
    let req = Request {
        container_id: "c".into(),
        netns: String::new(),
        ifname: "eth0".into(),
        args: args.into(),
        stdin: conf.as_bytes().to_vec(),
        config,
        version,
        env: &env,
        invoker: &invoker,
    };
    f(&req)
}
