//! Per-thread process attributes.

use std::io;

/// Gives the calling thread its own copy of the filesystem attributes it shares with the
/// process (`unshare(CLONE_FS)`: working directory, root, umask), so that a `chdir` in it is
/// seen by no other thread. They die with the thread.
pub fn unshare_fs() -> io::Result<()> {
    // SAFETY: the unsafety of unshare is CLONE_FILES, which would leave fds owned by other
    // threads invalid in this one; CLONE_FS separates only cwd, root and umask.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chdir_after_unsharing_stays_in_the_thread() {
        let before = std::env::current_dir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let inside = std::thread::spawn(move || {
            unshare_fs().unwrap();
            std::env::set_current_dir(&dir).unwrap();
            std::env::current_dir().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inside, tmp.path().canonicalize().unwrap());
        assert_eq!(std::env::current_dir().unwrap(), before);
    }
}
