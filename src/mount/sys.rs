//! The raw mount system calls, behind a trait so the logic above them is testable without root.

use std::ffi::{CStr, OsStr};
use std::io;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Mode, OFlags, StatxAttributes, StatxFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

/// The system calls overlay mounting needs. `Fd` is an fs context, mount or directory handle.
pub trait MountSyscalls {
    /// A file descriptor (or a fake's stand-in).
    type Fd;
    /// `fsopen(fs_type, FSOPEN_CLOEXEC)`.
    fn fsopen(&self, fs_type: &str) -> io::Result<Self::Fd>;
    /// `open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)`.
    fn open_dir(&self, path: &Path) -> io::Result<Self::Fd>;
    /// `fsconfig(fs, FSCONFIG_SET_FD, key, NULL, fd)`.
    fn fsconfig_set_fd(&self, fs: &Self::Fd, key: &str, fd: &Self::Fd) -> io::Result<()>;
    /// `fsconfig(fs, FSCONFIG_SET_STRING, key, value, 0)`.
    fn fsconfig_set_string(&self, fs: &Self::Fd, key: &str, value: &OsStr) -> io::Result<()>;
    /// `fsconfig(fs, FSCONFIG_SET_FLAG, key, NULL, 0)`.
    fn fsconfig_set_flag(&self, fs: &Self::Fd, key: &str) -> io::Result<()>;
    /// `fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0)`.
    fn fsconfig_create(&self, fs: &Self::Fd) -> io::Result<()>;
    /// `fsmount(fs, FSMOUNT_CLOEXEC, 0)`.
    fn fsmount(&self, fs: &Self::Fd) -> io::Result<Self::Fd>;
    /// `move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`.
    fn move_mount(&self, mnt: &Self::Fd, target: &Path) -> io::Result<()>;
    /// Drains the messages the kernel logged to an fs context (raw, e.g. `e overlay: ...`).
    fn read_fs_log(&self, fs: &Self::Fd) -> Vec<String>;
    /// `mount("overlay", target, "overlay", 0, options)`, from `cwd` if given (relative paths).
    fn mount_legacy(&self, target: &Path, options: &CStr, cwd: Option<&Path>) -> io::Result<()>;
    /// `umount2(target, detach ? MNT_DETACH : 0)`.
    fn umount(&self, target: &Path, detach: bool) -> io::Result<()>;
    /// The text of `/proc/self/mountinfo`.
    fn mountinfo(&self) -> io::Result<String>;
    /// What has its root exactly at `target` (symlinks followed): `statx`'s
    /// `STATX_ATTR_MOUNT_ROOT`, then `statfs` for the kind. Unlike mountinfo, its cost does not
    /// grow with the number of mounts. `ErrorKind::Unsupported` where the kernel does not say
    /// (before Linux 5.8).
    fn mount_root(&self, target: &Path) -> io::Result<MountRoot>;
    /// The longest option string `mount(2)` takes whole: one page minus the NUL.
    fn max_options_len(&self) -> usize;
}

/// What is mounted at a path (see [`MountSyscalls::mount_root`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountRoot {
    /// The path is no mount's root.
    NotMounted,
    /// An overlayfs mount.
    Overlay,
    /// A mount of another filesystem.
    Other,
}

/// `OVERLAYFS_SUPER_MAGIC`, the `f_type` that `statfs` gives for overlayfs.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// The real system calls, through rustix.
#[derive(Debug, Clone)]
pub struct LinuxMount {
    /// false makes `fsopen` fail with ENOSYS, to exercise the `mount(2)` path on new kernels.
    pub(crate) new_api: bool,
    /// false makes `FSCONFIG_SET_FD` fail with EINVAL, as on Linux 6.8-6.12.
    pub(crate) fd_layers: bool,
}

impl Default for LinuxMount {
    fn default() -> Self {
        Self {
            new_api: true,
            fd_layers: true,
        }
    }
}

impl MountSyscalls for LinuxMount {
    type Fd = rustix::fd::OwnedFd;

    fn fsopen(&self, fs_type: &str) -> io::Result<Self::Fd> {
        if !self.new_api {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        Ok(rustix::mount::fsopen(fs_type, FsOpenFlags::FSOPEN_CLOEXEC)?)
    }

    fn open_dir(&self, path: &Path) -> io::Result<Self::Fd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(rustix::fs::open(path, flags, Mode::empty())?)
    }

    fn fsconfig_set_fd(&self, fs: &Self::Fd, key: &str, fd: &Self::Fd) -> io::Result<()> {
        if !self.fd_layers {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(rustix::mount::fsconfig_set_fd(fs, key, fd)?)
    }

    fn fsconfig_set_string(&self, fs: &Self::Fd, key: &str, value: &OsStr) -> io::Result<()> {
        Ok(rustix::mount::fsconfig_set_string(fs, key, value)?)
    }

    fn fsconfig_set_flag(&self, fs: &Self::Fd, key: &str) -> io::Result<()> {
        Ok(rustix::mount::fsconfig_set_flag(fs, key)?)
    }

    fn fsconfig_create(&self, fs: &Self::Fd) -> io::Result<()> {
        Ok(rustix::mount::fsconfig_create(fs)?)
    }

    fn fsmount(&self, fs: &Self::Fd) -> io::Result<Self::Fd> {
        let flags = FsMountFlags::FSMOUNT_CLOEXEC;
        Ok(rustix::mount::fsmount(fs, flags, MountAttrFlags::empty())?)
    }

    fn move_mount(&self, mnt: &Self::Fd, target: &Path) -> io::Result<()> {
        let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH;
        Ok(rustix::mount::move_mount(mnt, "", CWD, target, flags)?)
    }

    fn read_fs_log(&self, fs: &Self::Fd) -> Vec<String> {
        // One message per read(); ENODATA once the log is empty. Bounded in case of a flood.
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        for _ in 0..64 {
            match rustix::io::read(fs, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            }
        }
        out
    }

    fn mount_legacy(&self, target: &Path, options: &CStr, cwd: Option<&Path>) -> io::Result<()> {
        let mount = || {
            rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), options)
                .map_err(io::Error::from)
        };
        let Some(cwd) = cwd else { return mount() };
        // The relative paths need a cwd, but the process's cwd is shared by all threads. A
        // scoped thread that unshares its fs struct can chdir without anyone noticing, and the
        // private cwd dies with it.
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::sys::thread::unshare_fs()?;
                rustix::process::chdir(cwd)?;
                mount()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("mount thread panicked")))
        })
    }

    fn umount(&self, target: &Path, detach: bool) -> io::Result<()> {
        let flags = if detach {
            UnmountFlags::DETACH
        } else {
            UnmountFlags::empty()
        };
        Ok(rustix::mount::unmount(target, flags)?)
    }

    fn mountinfo(&self) -> io::Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
    }

    fn mount_root(&self, target: &Path) -> io::Result<MountRoot> {
        let st = rustix::fs::statx(CWD, target, AtFlags::empty(), StatxFlags::empty())?;
        if !st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
            return Err(io::ErrorKind::Unsupported.into());
        }
        if !st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT) {
            return Ok(MountRoot::NotMounted);
        }
        // f_type's integer type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let fs_type = rustix::fs::statfs(target)?.f_type as i64;
        Ok(if fs_type == OVERLAYFS_MAGIC {
            MountRoot::Overlay
        } else {
            MountRoot::Other
        })
    }

    fn max_options_len(&self) -> usize {
        crate::sys::page::page_size().unwrap_or(4096).max(4096) - 1
    }
}
