//! The pause process: it owns strata's user and mount namespaces and keeps them alive between
//! commands, as rootless podman's pause process does. Every rootless command joins it.
//!
//! It is strata itself, started with [`PAUSE_ARG`]. Protocol over its stdin/stdout pipes:
//! it unshares and writes `u`; the parent writes the id maps with newuidmap/newgidmap and
//! writes `m`; it answers `r` and then sleeps forever (killed to end the namespace).

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::error::{RootlessError, io_err};
use super::ids::{IdMaps, IdRange, map_args};

/// The first argument that makes strata the pause process.
pub const PAUSE_ARG: &str = "__strata-rootless-pause";

/// The pause process's life: unshare, wait for the maps, then sleep forever. Called first
/// thing in `main` (unshare needs a single-threaded process); returns only on failure.
pub fn serve() -> RootlessError {
    let failed = |what: &str, e: std::io::Error| RootlessError::Io {
        what: what.to_string(),
        source: e,
    };
    if let Err(e) = crate::sys::namespace::unshare_user_and_mount() {
        return failed("unshare(CLONE_NEWUSER | CLONE_NEWNS)", e);
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(b"u").and_then(|()| out.flush()) {
        return failed("telling strata the namespace exists", e);
    }
    let mut byte = [0u8; 1];
    match std::io::stdin().lock().read_exact(&mut byte) {
        Ok(()) if byte == *b"m" => {}
        Ok(()) => {
            return RootlessError::Pause {
                reason: "unexpected message".into(),
            };
        }
        Err(e) => return failed("waiting for the id maps", e),
    }
    if let Err(e) = out.write_all(b"r").and_then(|()| out.flush()) {
        return failed("telling strata the namespace is ready", e);
    }
    loop {
        std::thread::park();
    }
}

/// Starts a pause process whose namespace gets `maps`; returns its pid once its
/// namespace has the maps. The caller records the pid.
pub(crate) fn start(maps: &IdMaps) -> Result<u32, RootlessError> {
    let exe = std::env::current_exe().map_err(io_err("finding strata's own executable"))?;
    let mut child = Command::new(&exe)
        .arg(PAUSE_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .current_dir("/")
        // Its own process group: a Ctrl-C for the command must not end the namespace.
        .process_group(0)
        .spawn()
        .map_err(io_err(format!("starting {}", exe.display())))?;
    match handshake(&mut child, maps) {
        Ok(()) => Ok(child.id()),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

fn handshake(child: &mut Child, maps: &IdMaps) -> Result<(), RootlessError> {
    let pid = child.id();
    expect(child, b'u')?;
    write_map("newuidmap", pid, &maps.uids)?;
    write_map("newgidmap", pid, &maps.gids)?;
    let stdin = child.stdin.as_mut().ok_or_else(|| RootlessError::Pause {
        reason: "no stdin pipe".into(),
    })?;
    stdin
        .write_all(b"m")
        .and_then(|()| stdin.flush())
        .map_err(io_err("telling the pause process the maps are written"))?;
    expect(child, b'r')
}

fn expect(child: &mut Child, want: u8) -> Result<(), RootlessError> {
    let stdout = child.stdout.as_mut().ok_or_else(|| RootlessError::Pause {
        reason: "no stdout pipe".into(),
    })?;
    let mut byte = [0u8; 1];
    match stdout.read_exact(&mut byte) {
        Ok(()) if byte[0] == want => Ok(()),
        Ok(()) => Err(RootlessError::Pause {
            reason: format!("unexpected answer {:?}", byte[0] as char),
        }),
        // It exited: most often unshare was refused (user namespaces disabled).
        Err(_) => Err(RootlessError::Pause {
            reason: format!(
                "it exited ({}); are unprivileged user namespaces enabled \
                 (sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces)?",
                child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string())
            ),
        }),
    }
}

fn write_map(tool: &'static str, pid: u32, map: &[IdRange]) -> Result<(), RootlessError> {
    let mut args = vec![pid.to_string()];
    args.extend(map_args(map));
    let out = Command::new(tool)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| RootlessError::MapToolMissing { tool, source })?;
    if !out.status.success() {
        return Err(RootlessError::MapToolFailed {
            tool,
            args: args.join(" "),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), which tells a live pause
/// process from another that got its pid later.
pub(crate) fn start_time(proc: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process() {
        let me = std::process::id();
        let t = start_time(Path::new("/proc"), me);
        assert!(t.is_some_and(|t| t > 0));
        assert_eq!(start_time(Path::new("/nonexistent"), me), None);
    }
}
