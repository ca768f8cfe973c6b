//! Running an OCI runtime (`runc`, `crun`, ...) on a bundle and reporting the container's exit
//! code.
//!
//! `<runtime> run` keeps the container in the foreground: it forwards signals it receives to
//! the container process and deletes the container when it exits. The runtime's own failures
//! (a bad config, a missing binary in the image) also come back as a non-zero exit code (runc
//! uses 1 and prints the reason on stderr), indistinguishable from the container exiting 1.
//!
//! crun 1.8 refuses a hybrid cgroup v1/v2 layout unless it runs in a private mount namespace
//! with `/sys/fs/cgroup/unified` unmounted; nothing here arranges that.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::BundleError;

/// Directories searched after `PATH`: runtimes live in `sbin`, which a non-root `PATH` often
/// lacks.
pub const FALLBACK_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds the runtime binary: a name containing `/` is used as a path; a bare name is looked up
/// on `PATH`, then in [`FALLBACK_DIRS`]. Not found => [`BundleError::RuntimeNotFound`].
pub fn find_runtime(runtime: &str) -> Result<PathBuf, BundleError> {
    let not_found = || BundleError::RuntimeNotFound {
        runtime: runtime.to_string(),
    };
    if runtime.is_empty() {
        return Err(not_found());
    }
    if runtime.contains('/') {
        let path = PathBuf::from(runtime);
        return if is_executable_file(&path) {
            Ok(path)
        } else {
            Err(not_found())
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .filter(|d| d.is_absolute())
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(runtime))
        .find(|p| is_executable_file(p))
        .ok_or_else(not_found)
}

/// Checks a container id against runc's rule: letters, digits, `_`, `+`, `-` and `.`, and not
/// `.` or `..`.
pub fn validate_container_id(id: &str) -> Result<(), BundleError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BundleError::InvalidContainerId { id: id.to_string() })
    }
}

/// A shell-style exit code: the exit status, or 128 + signal number for a signal death.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Runs `<runtime> run --bundle <bundle_dir> <container_id>` with stdin, stdout and stderr
/// inherited, waits, and returns the container's exit code (128 + signo for signal deaths).
pub fn run_runtime(
    runtime: &str,
    bundle_dir: &Path,
    container_id: &str,
) -> Result<i32, BundleError> {
    run_runtime_with(
        runtime,
        bundle_dir,
        container_id,
        Stdio::inherit(),
        Stdio::inherit(),
        Stdio::inherit(),
    )
}

/// [`run_runtime`] with the runtime's (and so the container's) stdio given by the caller.
pub fn run_runtime_with(
    runtime: &str,
    bundle_dir: &Path,
    container_id: &str,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<i32, BundleError> {
    validate_container_id(container_id)?;
    let exe = find_runtime(runtime)?;
    let bundle = std::path::absolute(bundle_dir).map_err(|source| BundleError::Io {
        action: "resolve the bundle path",
        path: bundle_dir.to_path_buf(),
        source,
    })?;
    let status = runtime_command(&exe)
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg(container_id)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|source| BundleError::Io {
            action: "run the OCI runtime",
            path: exe.clone(),
            source,
        })?;
    Ok(exit_code(status))
}

/// Runs `<runtime> delete --force <container_id>` quietly and returns its exit code (non-zero
/// when no such container exists). For cleaning up after an interrupted [`run_runtime`].
pub fn delete_container(runtime: &str, container_id: &str) -> Result<i32, BundleError> {
    validate_container_id(container_id)?;
    let exe = find_runtime(runtime)?;
    Ok(exit_code(quiet(
        &exe,
        &["delete", "--force", container_id],
    )?))
}

/// `runtime` with the global arguments every call takes (a rootless strata's state dir).
fn runtime_command(runtime: &Path) -> Command {
    let mut command = Command::new(runtime);
    command.args(super::rootless::runtime_args());
    command
}

/// Runs `<runtime> ARGS...` with no stdio: its exit status.
fn quiet(runtime: &Path, args: &[&str]) -> Result<ExitStatus, BundleError> {
    runtime_command(runtime)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| BundleError::Io {
            action: "run the OCI runtime",
            path: runtime.to_path_buf(),
            source,
        })
}

/// How [`spawn_run`] starts the runtime.
#[derive(Debug)]
pub struct SpawnOptions {
    /// The runtime's log (`--log FILE --log-format json`), where its own errors are found
    /// again ([`runtime_error`]).
    pub log: PathBuf,
    /// Start the runtime in a process group of its own, so that a terminal's Ctrl-C reaches it
    /// only through whoever forwards signals to it (not twice).
    pub own_process_group: bool,
}

/// Starts `<runtime> --log LOG --log-format json run --bundle <bundle_dir> <container_id>`
/// with this process' stdio, and returns it without waiting.
pub fn spawn_run(
    runtime: &Path,
    bundle_dir: &Path,
    container_id: &str,
    opts: &SpawnOptions,
) -> Result<Child, BundleError> {
    validate_container_id(container_id)?;
    let bundle = std::path::absolute(bundle_dir).map_err(|source| BundleError::Io {
        action: "resolve the bundle path",
        path: bundle_dir.to_path_buf(),
        source,
    })?;
    let mut command = runtime_command(runtime);
    command
        .arg("--log")
        .arg(&opts.log)
        .args(["--log-format", "json", "run", "--bundle"])
        .arg(&bundle)
        .arg(container_id);
    if opts.own_process_group {
        command.process_group(0);
    }
    command.spawn().map_err(|source| BundleError::Io {
        action: "run the OCI runtime",
        path: runtime.to_path_buf(),
        source,
    })
}

/// Sends `signal` to the container's init process (`<runtime> kill <id> <signal>`); false
/// when the runtime refused (no such container, or it has stopped).
pub fn kill_container(
    runtime: &Path,
    container_id: &str,
    signal: i32,
) -> Result<bool, BundleError> {
    validate_container_id(container_id)?;
    Ok(quiet(runtime, &["kill", container_id, &signal.to_string()])?.success())
}

/// What `<runtime> state <id>` says of a container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RuntimeState {
    /// `creating`, `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The init process' pid on the host (0 once stopped).
    #[serde(default)]
    pub pid: u32,
}

impl RuntimeState {
    /// Whether the container's processes may still run.
    pub fn is_alive(&self) -> bool {
        self.status != "stopped"
    }
}

/// `<runtime> state <id>`; `None` when the runtime knows no such container.
pub fn container_state(
    runtime: &Path,
    container_id: &str,
) -> Result<Option<RuntimeState>, BundleError> {
    validate_container_id(container_id)?;
    let out = runtime_command(runtime)
        .args(["state", container_id])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|source| BundleError::Io {
            action: "run the OCI runtime",
            path: runtime.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(serde_json::from_slice(&out.stdout).ok())
}

/// The runtime's own error in its JSON log (the last `"level":"error"` message), if it
/// failed rather than the container's process.
pub fn runtime_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["level"] == "error")
        .find_map(|entry| entry["msg"].as_str().map(str::to_string))
}

/// Why the runtime could not execute the container's command, from its error message, as
/// Docker tells them apart: 127 for a command not found, 126 for one that cannot be executed;
/// `None` for other failures.
pub fn exec_failure_code(message: &str) -> Option<i32> {
    if !message.contains("exec") {
        return None;
    }
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        Some(127)
    } else if ["permission denied", "is a directory", "exec format error"]
        .iter()
        .any(|m| message.contains(m))
    {
        Some(126)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_runtimes() {
        // `sh` is on every PATH; a path is used as is.
        let sh = find_runtime("sh").unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        assert_eq!(find_runtime("/bin/sh").unwrap(), PathBuf::from("/bin/sh"));
        let tmp = tempfile::tempdir().unwrap();
        let not_exec = tmp.path().join("runc");
        std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
        let not_exec = not_exec.to_str().unwrap();
        let dir = tmp.path().to_str().unwrap();
        for missing in [
            "strata-no-such-runtime",
            "/nonexistent/runc",
            "",
            not_exec,
            dir,
        ] {
            let err = find_runtime(missing).unwrap_err();
            assert!(
                matches!(&err, BundleError::RuntimeNotFound { runtime } if runtime == missing),
                "{err:?}"
            );
            assert!(err.to_string().contains("apt-get install"), "{err}");
        }
        let err =
            run_runtime("strata-no-such-runtime", Path::new("/nonexistent"), "id").unwrap_err();
        assert!(
            matches!(err, BundleError::RuntimeNotFound { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn runtime_errors_and_exec_failures() {
        let log = concat!(
            "{\"level\":\"warning\",\"msg\":\"cgroup\",\"time\":\"t\"}\n",
            "not json\n",
            "{\"level\":\"error\",\"msg\":\"runc run failed: unable to start container process: exec: \\\"nosuch\\\": executable file not found in $PATH\",\"time\":\"t\"}\n",
        );
        let message = runtime_error(log).unwrap();
        assert!(message.ends_with("not found in $PATH"), "{message}");
        assert_eq!(exec_failure_code(&message), Some(127));
        assert_eq!(runtime_error("{\"level\":\"warning\",\"msg\":\"x\"}"), None);
        let denied = "unable to start container process: exec: \"/etc/passwd\": permission denied";
        assert_eq!(exec_failure_code(denied), Some(126));
        assert_eq!(
            exec_failure_code("exec: \"/etc\": is a directory"),
            Some(126)
        );
        assert_eq!(
            exec_failure_code("unable to apply cgroup configuration"),
            None
        );
    }

    #[test]
    fn container_ids() {
        for ok in ["abc", "a.b-c_d+e", "0123456789abcdef", "..."] {
            validate_container_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä", "a:b"] {
            assert!(
                matches!(
                    validate_container_id(bad),
                    Err(BundleError::InvalidContainerId { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn exit_codes_like_a_shell() {
        let run = |script: &str| {
            exit_code(
                Command::new("/bin/sh")
                    .args(["-c", script])
                    .status()
                    .unwrap(),
            )
        };
        assert_eq!(run("exit 0"), 0);
        assert_eq!(run("exit 7"), 7);
        assert_eq!(run("kill -KILL $$"), 137);
        assert_eq!(run("kill -TERM $$"), 143);
    }
}
