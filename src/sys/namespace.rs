//! Entering new namespaces (`unshare`); joining existing ones is rustix's safe `setns`.

use std::io;

/// Moves the calling process into a new user namespace and a new mount namespace owned by it
/// (`unshare(CLONE_NEWUSER | CLONE_NEWNS)`). The kernel refuses it (EINVAL) unless the
/// process is single-threaded.
pub fn unshare_user_and_mount() -> io::Result<()> {
    use rustix::thread::UnshareFlags;
    // SAFETY: the unsafety of unshare is CLONE_FILES (fds owned by other threads); these flags
    // give the process new user and mount namespaces and touch no file descriptor.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }?;
    Ok(())
}
