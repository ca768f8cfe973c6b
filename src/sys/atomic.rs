//! Atomic file replacement: readers see the old file or the new one, never part of one.
//!
//! The bytes go to a temporary file in the target's directory (a rename is only atomic within
//! one filesystem), which gets its mode and, if asked, an fsync, and is then renamed over the
//! target. On failure before the rename the temporary file is removed.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether an atomic write also makes the new file survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No fsync: atomic for readers, but after a crash the target may hold the old content or
    /// none. For callers that sync the filesystem themselves (or knowingly do not).
    NoSync,
    /// fsync the file before the rename and the directory after it, so that once the write
    /// returns, the new content is on disk under the target's name.
    Sync,
}

/// The step of an atomic write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Creating the temporary file.
    Create,
    /// Writing the bytes to it.
    Write,
    /// Setting its mode.
    Chmod,
    /// Its fsync ([`Durability::Sync`]).
    Sync,
    /// Renaming it over the target.
    Rename,
    /// The directory's fsync after the rename ([`Durability::Sync`]): the new file is in
    /// place, but its name may not survive a crash.
    SyncDir,
}

impl WriteStep {
    /// The step as a gerund for messages ("creating", "renaming into", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WriteStep::Create => "creating",
            WriteStep::Write => "writing",
            WriteStep::Chmod => "chmod",
            WriteStep::Sync => "syncing",
            WriteStep::Rename => "renaming into",
            WriteStep::SyncDir => "syncing",
        }
    }
}

/// A failed atomic write.
#[derive(Debug, thiserror::Error)]
#[error("{} {}: {source}", step.as_str(), path.display())]
pub struct AtomicWriteError {
    /// What failed.
    pub step: WriteStep,
    /// The path it failed on: the temporary file, the target for [`WriteStep::Rename`], the
    /// directory for [`WriteStep::SyncDir`].
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// Replaces `path` with a file holding `bytes`, with mode `mode` exactly (umask-free), as
/// described in the module documentation. A symlink at `path` is replaced, not followed.
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<(), AtomicWriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(temp_name(&name));
    let fail = |step, path: &Path| {
        let path = path.to_path_buf();
        move |source| AtomicWriteError { step, path, source }
    };
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(fail(WriteStep::Create, &tmp))?;
        f.write_all(bytes).map_err(fail(WriteStep::Write, &tmp))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(fail(WriteStep::Chmod, &tmp))?;
        if durability == Durability::Sync {
            f.sync_all().map_err(fail(WriteStep::Sync, &tmp))?;
        }
        fs::rename(&tmp, path).map_err(fail(WriteStep::Rename, path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if durability == Durability::Sync {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail(WriteStep::SyncDir, dir))?;
    }
    Ok(())
}

/// A temporary name for `name`: hidden, unique within the process (a counter) and, with the
/// pid and a random part, across processes sharing the directory (even in other pid
/// namespaces).
fn temp_name(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        ".{name}.tmp-{}-{n}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Whether `name` is a temporary file of [`write_file`] left by a process that is gone (killed
/// between writing and renaming it); the caller makes sure no writer of that directory runs.
pub fn is_stale_temp(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix('.')
        .and_then(|n| n.rsplit_once(".tmp-"))
        .map(|(_, rest)| rest)
    else {
        return false;
    };
    let mut parts = rest.split('-');
    let (Some(pid), Some(n), Some(random), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    n.parse::<u64>().is_ok()
        && random.len() == 8
        && u32::from_str_radix(random, 16).is_ok()
        && pid != std::process::id()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_are_those_of_processes_that_are_gone() {
        let ours = temp_name("repositories.json");
        assert!(!is_stale_temp(&ours), "{ours}");
        assert!(is_stale_temp(".repositories.json.tmp-999999999-9-81f847f4"));
        assert!(!is_stale_temp("repositories.json"));
        assert!(!is_stale_temp(".x.tmp-999999999-9-81f8"));
        assert!(!is_stale_temp(".x.tmp-abc-9-81f847f4"));
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_content_and_exact_mode_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        for durability in [Durability::NoSync, Durability::Sync] {
            let path = tmp.path().join("f.json");
            write_file(&path, b"one", 0o640, durability).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"one");
            // Replacing keeps nothing of the old file, mode included.
            write_file(&path, b"two", 0o604, durability).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"two");
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o604);
            assert_eq!(names(tmp.path()), ["f.json"]);
        }
    }

    #[test]
    fn replaces_a_symlink_instead_of_following_it() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, "keep").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        write_file(&link, b"new", 0o600, Durability::NoSync).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
    }

    #[test]
    fn a_failed_write_leaves_no_temp_and_names_the_step() {
        let tmp = tempfile::tempdir().unwrap();
        // The rename fails: the target is a non-empty directory.
        let target = tmp.path().join("dir");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), "x").unwrap();
        let err = write_file(&target, b"data", 0o600, Durability::Sync).unwrap_err();
        assert_eq!(err.step, WriteStep::Rename);
        assert_eq!(err.path, target);
        assert!(err.to_string().starts_with("renaming into "), "{err}");
        assert_eq!(names(tmp.path()), ["dir"]);
        // The creation fails: the directory does not exist.
        let missing = tmp.path().join("missing/f");
        let err = write_file(&missing, b"data", 0o600, Durability::NoSync).unwrap_err();
        assert_eq!(err.step, WriteStep::Create);
        assert!(err.path.starts_with(tmp.path().join("missing")), "{err}");
    }

    #[test]
    fn a_name_too_long_for_its_temp_fails_at_creation_leaving_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        // 250 bytes fit in a name; with the temporary name's prefix and suffix they do not.
        let path = tmp.path().join("n".repeat(250));
        let err = write_file(&path, b"x", 0o600, Durability::NoSync).unwrap_err();
        assert_eq!(err.step, WriteStep::Create);
        assert!(names(tmp.path()).is_empty());
    }
}
