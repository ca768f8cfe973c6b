//! Where a rootless user's store and state live.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use super::error::RootlessError;

/// The rootless store: `$XDG_DATA_HOME/strata`, else `~/.local/share/strata`; `None` when
/// neither variable is set.
pub fn data_root() -> Option<PathBuf> {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(data).join("strata"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| Path::new(&home).join(".local/share/strata"))
}

/// The directory of the rootless state (the namespace's pid file and lock):
/// `$XDG_RUNTIME_DIR/strata`, else `/tmp/strata-run-<uid>`; created 0700, and refused unless
/// owned by `uid` (another user could have made it first in `/tmp`).
pub fn state_dir(uid: u32) -> Result<PathBuf, RootlessError> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("strata"),
        None => PathBuf::from(format!("/tmp/strata-run-{uid}")),
    };
    checked_dir(dir, uid)
}

/// Creates `dir` (0700) if needed; refuses it unless it is a directory of `uid` that no one
/// else may write to.
fn checked_dir(dir: PathBuf, uid: u32) -> Result<PathBuf, RootlessError> {
    let state_err = |reason: String| RootlessError::StateDir {
        path: dir.clone(),
        reason,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        Ok(()) => {}
        Err(e) => return Err(state_err(format!("cannot create it: {e}"))),
    }
    let md = std::fs::symlink_metadata(&dir).map_err(|e| state_err(e.to_string()))?;
    if !md.is_dir() || md.uid() != uid || md.mode() & 0o022 != 0 {
        return Err(state_err(format!(
            "not a directory owned by uid {uid} and writable only by it"
        )));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_must_be_the_users_own() {
        let tmp = tempfile::tempdir().unwrap();
        let me = rustix::process::geteuid().as_raw();
        let dir = tmp.path().join("run/strata");
        assert_eq!(checked_dir(dir.clone(), me).unwrap(), dir);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let err = checked_dir(dir.clone(), me + 1).unwrap_err().to_string();
        assert!(err.contains("not a directory owned by uid"), "{err}");
        std::fs::write(tmp.path().join("file"), b"").unwrap();
        assert!(checked_dir(tmp.path().join("file"), me).is_err());
    }
}
