//! Running other plugins (Go's `pkg/invoke`): find a `type` in `CNI_PATH`,
//! run it with our environment and `CNI_COMMAND` replaced, stdin = config,
//! stderr passed through, and turn its stdout into a result or its error
//! object (code kept). When the file found is this very executable, the
//! applet runs in-process (a runner given by the dispatch layer, so this
//! module needs nothing of the skel), with identical output.

use super::env::{Command, Env};
use super::error::CniError;
use super::json;
use super::result::CniResult;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// What a plugin run produced: bytes for stdout and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub status: i32,
}

impl Output {
    pub fn ok(stdout: Vec<u8>) -> Self {
        Output { stdout, status: 0 }
    }
}

/// Runs a plugin in-process when this executable has an applet of that
/// name (`None`: it has not). Given by the dispatch layer, so delegation
/// needs nothing of the plugin skeleton.
pub type InProcessLookup = fn(&str, &Env, &[u8], &Invoker) -> Option<Output>;

/// How delegated plugins are run.
#[derive(Clone, Copy)]
pub struct Invoker {
    in_process: Option<InProcessLookup>,
}

/// libcni retries exec this many times, a second apart, on ETXTBSY (a
/// binary being replaced while we start it).
const TEXT_BUSY_RETRIES: u32 = 5;

impl Invoker {
    /// Exec plugins, but run our own applets in-process when `CNI_PATH`
    /// resolves to this executable.
    pub fn new(in_process: InProcessLookup) -> Self {
        Invoker {
            in_process: Some(in_process),
        }
    }

    /// Always exec (tests use it to compare both paths; the fuzz harness
    /// must never run an applet in-process).
    #[cfg(any(test, fuzzing))]
    pub fn exec_only() -> Self {
        Invoker { in_process: None }
    }

    /// `FindInPath`: the first `dir/type` in `cni_path` that is a regular
    /// file (symlinks followed, so links to a multicall binary work).
    pub fn find(plugin_type: &str, cni_path: &str) -> Result<PathBuf, CniError> {
        if plugin_type.is_empty() {
            return Err(CniError::config("no plugin name provided"));
        }
        if plugin_type.contains('/')
            || plugin_type.contains('\\')
            || plugin_type == "."
            || plugin_type == ".."
        {
            return Err(CniError::config(format!(
                "invalid plugin name: {plugin_type:?}"
            )));
        }
        let dirs: Vec<&str> = cni_path.split(':').filter(|d| !d.is_empty()).collect();
        if dirs.is_empty() {
            return Err(CniError::env("CNI_PATH: no paths provided"));
        }
        for dir in &dirs {
            if !Path::new(dir).is_absolute() {
                return Err(CniError::env(format!(
                    "CNI_PATH: {dir:?} is not an absolute path"
                )));
            }
            let candidate = Path::new(dir).join(plugin_type);
            if std::fs::metadata(&candidate)
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                return Ok(candidate);
            }
        }
        Err(CniError::config(format!(
            "failed to find plugin {plugin_type:?} in CNI_PATH [{}]",
            dirs.join(" ")
        )))
    }

    /// Run `plugin_type` in-process if `path` is this executable and it has
    /// such an applet.
    fn run_in_process(
        &self,
        plugin_type: &str,
        path: &Path,
        env: &Env,
        config: &[u8],
    ) -> Option<Output> {
        let run = self.in_process?;
        if super::same_file("/proc/self/exe", path) {
            run(plugin_type, env, config, self)
        } else {
            None
        }
    }

    /// Run `plugin_type` for `command`; stdout on success, the plugin's error
    /// (or one describing how it failed) otherwise.
    pub fn run(
        &self,
        plugin_type: &str,
        command: Command,
        config: &[u8],
        env: &Env,
    ) -> Result<Vec<u8>, CniError> {
        let path = Self::find(plugin_type, env.get_or_empty("CNI_PATH"))?;
        let mut child_env = env.clone();
        child_env.set("CNI_COMMAND", command.as_str());
        if let Some(out) = self.run_in_process(plugin_type, &path, &child_env, config) {
            trace(&format!("{plugin_type} in-process"));
            return result_of(out, Vec::new());
        }
        trace(&format!("{plugin_type} exec {}", path.display()));
        let (out, stderr) = exec(&path, config, &child_env)?;
        if !stderr.is_empty() {
            let _ = std::io::stderr().write_all(&stderr);
        }
        result_of(out, stderr)
    }

    /// Delegate ADD and parse the result (a result without `cniVersion` takes
    /// `conf_version`, the config's, as libcni does).
    pub fn add(
        &self,
        plugin_type: &str,
        config: &[u8],
        conf_version: &str,
        env: &Env,
    ) -> Result<CniResult, CniError> {
        let out = self.run(plugin_type, Command::Add, config, env)?;
        CniResult::parse_any(&out, conf_version)
    }

    pub fn del(&self, plugin_type: &str, config: &[u8], env: &Env) -> Result<(), CniError> {
        self.run(plugin_type, Command::Del, config, env).map(|_| ())
    }

    pub fn check(&self, plugin_type: &str, config: &[u8], env: &Env) -> Result<(), CniError> {
        self.run(plugin_type, Command::Check, config, env)
            .map(|_| ())
    }

    pub fn status(&self, plugin_type: &str, config: &[u8], env: &Env) -> Result<(), CniError> {
        self.run(plugin_type, Command::Status, config, env)
            .map(|_| ())
    }

    pub fn gc(&self, plugin_type: &str, config: &[u8], env: &Env) -> Result<(), CniError> {
        self.run(plugin_type, Command::Gc, config, env).map(|_| ())
    }
}

/// Debug builds only: `CNIBOX_TRACE_INVOKE=1` says on stderr how each
/// delegate ran, so tests can tell the in-process path from exec.
#[cfg(debug_assertions)]
fn trace(what: &str) {
    if std::env::var_os("CNIBOX_TRACE_INVOKE").is_some() {
        eprintln!("cnibox-invoke: {what}");
    }
}

#[cfg(not(debug_assertions))]
fn trace(_what: &str) {}

/// Exec `path` with `env` and `stdin`, retrying "text file busy".
pub fn exec(path: &Path, stdin: &[u8], env: &Env) -> Result<(Output, Vec<u8>), CniError> {
    let mut attempt = 0;
    let mut child = loop {
        let spawned = std::process::Command::new(path)
            .env_clear()
            .envs(env.iter())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(c) => break c,
            Err(e)
                if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempt < TEXT_BUSY_RETRIES =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(CniError::internal(format!(
                    "failed to run {}: {e}",
                    path.display()
                )))
            }
        }
    };
    let mut child_stdin = child.stdin.take();
    let child_stderr = child.stderr.take();
    let child_stdout = child.stdout.take();
    // Feed stdin and drain stderr on their own threads so a chatty plugin
    // can never deadlock against a full pipe. Both outputs are read to the
    // end (so the plugin never blocks on a pipe) but only a bounded prefix
    // is kept: a runaway plugin cannot make us eat the node's memory.
    let (stderr_bytes, stdout_bytes, status) = std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(mut w) = child_stdin.take() {
                let _ = w.write_all(stdin);
            }
        });
        let err_reader = s.spawn(move || bounded_read(child_stderr, MAX_STDERR));
        let stdout_bytes = bounded_read(child_stdout, MAX_STDOUT + 1);
        let status = child.wait();
        (err_reader.join().unwrap_or_default(), stdout_bytes, status)
    });
    let status = status
        .map_err(|e| CniError::internal(format!("failed to wait for {}: {e}", path.display())))?;
    if stdout_bytes.len() > MAX_STDOUT {
        return Err(CniError::decode(format!(
            "{} wrote more than {MAX_STDOUT} bytes to stdout",
            path.display()
        )));
    }
    let status = match status.code() {
        Some(c) => c,
        None => 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
    };
    Ok((
        Output {
            stdout: stdout_bytes,
            status,
        },
        stderr_bytes,
    ))
}

/// What we keep of a delegated plugin's stderr (passed through to ours).
const MAX_STDERR: usize = 1 << 20;
/// A result bigger than this is not a result (stdin is bounded at 4 MiB).
const MAX_STDOUT: usize = 16 << 20;

/// Keep the first `keep` bytes of `pipe` and throw the rest away, reading
/// to end of file either way.
fn bounded_read(pipe: Option<impl Read>, keep: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut r) = pipe {
        let _ = r.by_ref().take(keep as u64).read_to_end(&mut buf);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    }
    buf
}

/// libcni's `pluginErr`: success gives stdout; a failure gives the plugin's
/// error object, or a description built from stderr or the raw stdout.
fn result_of(out: Output, stderr: Vec<u8>) -> Result<Vec<u8>, CniError> {
    if out.status == 0 {
        return Ok(out.stdout);
    }
    if out.stdout.is_empty() {
        let msg = if stderr.is_empty() {
            format!(
                "netplugin failed with no error message: exit status {}",
                out.status
            )
        } else {
            format!("netplugin failed: {:?}", String::from_utf8_lossy(&stderr))
        };
        return Err(CniError::new(0, msg));
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct ErrObj {
        code: u32,
        msg: String,
        details: String,
    }
    match json::from_slice::<ErrObj>(&out.stdout) {
        Ok(e) => Err(CniError::new(e.code, e.msg).with_details(e.details)),
        Err(err) => Err(CniError::new(
            0,
            format!(
                "netplugin failed but error parsing its diagnostic message {:?}: {err}",
                String::from_utf8_lossy(&out.stdout)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_rejects_bad_names_and_relative_paths() {
        assert_eq!(
            Invoker::find("", "/bin").unwrap_err().msg,
            "no plugin name provided"
        );
        assert_eq!(Invoker::find("../x", "/bin").unwrap_err().code, 7);
        assert_eq!(Invoker::find("sh", "").unwrap_err().code, 4);
        assert_eq!(Invoker::find("sh", "bin").unwrap_err().code, 4);
        assert!(Invoker::find("sh", "/nonexistent:/bin")
            .unwrap()
            .ends_with("sh"));
        assert_eq!(
            Invoker::find("no-such-plugin-x", "/bin").unwrap_err().code,
            7
        );
    }

    #[test]
    fn bounded_read_keeps_a_prefix_but_drains_everything() {
        let data = vec![7u8; 100_000];
        let mut pipe = std::io::Cursor::new(&data);
        assert_eq!(bounded_read(Some(&mut pipe), 10), vec![7u8; 10]);
        // Read to the end: a plugin writing more never blocks on the pipe.
        assert_eq!(pipe.position(), data.len() as u64);
        assert!(bounded_read(None::<&[u8]>, 10).is_empty());
    }

    #[test]
    fn plugin_errors_keep_their_code() {
        let out = Output {
            stdout: br#"{"code":11,"msg":"later","details":"d"}"#.to_vec(),
            status: 1,
        };
        let e = result_of(out, vec![]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (11, "later", "d")
        );
        let e = result_of(
            Output {
                stdout: vec![],
                status: 2,
            },
            b"boom".to_vec(),
        )
        .unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (0, "netplugin failed: \"boom\""));
        let e = result_of(
            Output {
                stdout: b"junk".to_vec(),
                status: 1,
            },
            vec![],
        )
        .unwrap_err();
        assert!(e.msg.starts_with("netplugin failed but error parsing"));
    }
}
