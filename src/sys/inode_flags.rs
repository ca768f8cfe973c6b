//! Inode flags (`FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`, what `chattr` sets).

use std::os::fd::AsFd;

use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
use rustix::io::Result;

/// Whether the directory `fd` has `FS_TOPDIR_FL`, which makes ext2/3/4 spread its
/// subdirectories over block groups. Filesystems without inode flags give an error.
pub fn has_topdir(fd: impl AsFd) -> Result<bool> {
    Ok(ioctl_getflags(fd)?.contains(IFlags::TOPDIR))
}

/// Sets `FS_TOPDIR_FL` on the directory `fd` (see [`has_topdir`]), keeping its other flags;
/// nothing to do when it is set already. Filesystems without the flag give an error.
pub fn set_topdir(fd: impl AsFd) -> Result<()> {
    let fd = fd.as_fd();
    let flags = ioctl_getflags(fd)?;
    if !flags.contains(IFlags::TOPDIR) {
        ioctl_setflags(fd, flags | IFlags::TOPDIR)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    #[test]
    fn topdir_is_set_and_kept_where_the_filesystem_has_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = File::open(tmp.path()).unwrap();
        match set_topdir(&dir) {
            Ok(()) => {
                assert!(has_topdir(&dir).unwrap());
                // Setting it again is a no-op.
                set_topdir(&dir).unwrap();
                assert!(has_topdir(&dir).unwrap());
            }
            // tmpfs and others have no such flag.
            Err(e) => assert!(
                has_topdir(&dir).is_err() || !has_topdir(&dir).unwrap(),
                "{e}"
            ),
        }
    }
}
