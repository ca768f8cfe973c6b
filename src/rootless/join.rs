//! Joining strata's user and mount namespaces, starting the pause process first when none
//! runs.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use super::error::{RootlessError, io_err};
use super::ids::IdMaps;
use super::mode::{Mode, mode, set_joined};
use super::paths::state_dir;
use super::pause;

/// The pid file of the pause process in the state directory: `PID STARTTIME`.
pub const PID_FILE: &str = "pause.pid";

/// Enters strata's user and mount namespaces when this process is rootless and not in them
/// yet (starting the pause process that keeps them when none runs); nothing as root. Must be
/// called while the process is single-threaded (setns into a user namespace requires it).
pub fn enter() -> Result<Mode, RootlessError> {
    let Mode::Rootless {
        uid,
        gid,
        inside: false,
    } = mode()
    else {
        return Ok(mode());
    };
    // The maps first: a user without subordinate ids is told so before anything is made.
    let maps = IdMaps::for_user(uid, gid)?;
    let dir = state_dir(uid)?;
    // One process at a time looks for, and starts, the pause process.
    let lock_path = dir.join("pause.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(format!("opening {}", lock_path.display())))?;
    lock.lock()
        .map_err(io_err(format!("locking {}", lock_path.display())))?;
    let pid = match running_pause(&dir) {
        Some(pid) => pid,
        None => {
            let pid = pause::start(&maps)?;
            record(&dir, pid)?;
            tracing::info!("started the pause process {pid} keeping strata's user namespace");
            pid
        }
    };
    join(pid)?;
    drop(lock);
    set_joined(uid, gid);
    Ok(mode())
}

/// The pid of the pause process recorded in `dir`, if it still runs.
pub fn running_pause(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join(PID_FILE)).ok()?;
    let mut fields = text.split_whitespace();
    let pid: u32 = fields.next()?.parse().ok()?;
    let started: u64 = fields.next()?.parse().ok()?;
    (pause::start_time(Path::new("/proc"), pid) == Some(started)).then_some(pid)
}

/// The state directory of the rootless user running this process.
pub fn current_state_dir() -> Result<Option<PathBuf>, RootlessError> {
    match mode() {
        Mode::Root => Ok(None),
        Mode::Rootless { uid, .. } => state_dir(uid).map(Some),
    }
}

fn record(dir: &Path, pid: u32) -> Result<(), RootlessError> {
    let started =
        pause::start_time(Path::new("/proc"), pid).ok_or_else(|| RootlessError::Pause {
            reason: format!("process {pid} is gone"),
        })?;
    let tmp = dir.join(format!("{PID_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{pid} {started}")?;
        std::fs::rename(&tmp, dir.join(PID_FILE))
    };
    write().map_err(io_err(format!("writing {}", dir.join(PID_FILE).display())))
}

fn join(pid: u32) -> Result<(), RootlessError> {
    let ns = |name: &str| {
        let path = format!("/proc/{pid}/ns/{name}");
        File::open(&path).map_err(io_err(format!("opening {path}")))
    };
    let (user, mnt) = (ns("user")?, ns("mnt")?);
    // Joining a mount namespace moves the working directory to its root: come back to it.
    let cwd = std::env::current_dir().ok();
    move_into_link_name_space(user.as_fd(), Some(LinkNameSpaceType::User))
        .map_err(|e| io_err(format!("joining the user namespace of process {pid}"))(e.into()))?;
    move_into_link_name_space(mnt.as_fd(), Some(LinkNameSpaceType::Mount))
        .map_err(|e| io_err(format!("joining the mount namespace of process {pid}"))(e.into()))?;
    if let Some(cwd) = cwd {
        std::env::set_current_dir(&cwd)
            .map_err(io_err(format!("returning to {}", cwd.display())))?;
    }
    Ok(())
}
