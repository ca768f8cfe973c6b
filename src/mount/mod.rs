//! Overlay mounts for container root filesystems: the new mount API first, `mount(2)` after.
//!
//! [`mount_overlay`] tries, in order:
//! 1. `fsopen("overlay")` with every layer passed as an `O_PATH` fd (`FSCONFIG_SET_FD` on
//!    `lowerdir+`, `upperdir`, `workdir`; Linux 6.13+): no length limit on paths or layer count
//!    other than overlayfs' own 500 lowers.
//! 2. The same with path strings (`lowerdir+` is Linux 6.8+), when the kernel rejects fds.
//!    `fsconfig` copies at most 255 bytes per string, so a longer path skips this step.
//! 3. `mount(2)` with a `lowerdir=a:b:...` option string, when there is no new mount API, no
//!    `lowerdir+`, or the overlay still uses the legacy fs context (Linux < 6.5). `mount(2)`
//!    copies one page of options and a longer string is cut silently (fewer layers mounted), so
//!    the length is checked first: absolute paths if they fit, else Docker's relative
//!    `l/<short>` form from [`LegacyPaths`], else [`MountError::OptionsTooLong`].
//!
//! Failures carry the kernel's own message, read from the fs context fd. All system calls go
//! through [`MountSyscalls`], so the decisions above are unit-tested with a fake.

mod info;
mod overlay;
mod sys;

#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

pub use info::{is_mounted, is_mounted_with};
pub use overlay::{mount_overlay_with, unmount_with};
pub use sys::{LinuxMount, MountRoot, MountSyscalls};

/// Overlayfs' limit on lower layers (`OVL_MAX_STACK`); the kernel refuses the 501st.
pub const MAX_LOWER_LAYERS: usize = 500;

/// One overlay mount request. Paths are absolute.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    /// Lower layer dirs (the `diff` dirs), nearest (top) first. 1..=500 of them.
    pub lower: Vec<PathBuf>,
    /// Writable upper dir and its work dir. `None` mounts a read-only overlay of the lowers,
    /// which overlayfs allows only with at least 2 lowers: a single lower without an upper is
    /// refused with [`MountError::InvalidSpec`] (a bind mount would show whiteouts as files).
    /// Add an empty directory as a second lower to mount a one-layer image read-only.
    pub upper: Option<(PathBuf /*upper*/, PathBuf /*work*/)>,
    /// Where to mount.
    pub target: PathBuf,
    /// Use "userxattr" (rootless / user.overlay.* xattrs).
    pub userxattr: bool,
    /// For the legacy mount(2) fallback: the overlay2 dir (`<root>/overlay2`) to chdir into and
    /// the lower dirs as relative `l/<short>` paths (nearest first), Docker's technique to fit
    /// the one-page option limit. Used only when the absolute form is too long; the chdir
    /// happens in a short-lived thread with its own cwd (`unshare(CLONE_FS)`), never in the
    /// calling process.
    pub legacy: Option<LegacyPaths>,
}

/// Paths relative to [`LegacyPaths::base`] for the `mount(2)` fallback.
#[derive(Debug, Clone)]
pub struct LegacyPaths {
    /// The directory the relative paths start from (`<root>/overlay2`).
    pub base: PathBuf,
    /// One entry per [`OverlaySpec::lower`], same order (`l/<short>`).
    pub lower: Vec<String>,
    /// The upper dir (`<id>/diff`); ignored without [`OverlaySpec::upper`].
    pub upper: String,
    /// The work dir (`<id>/work`); ignored without [`OverlaySpec::upper`].
    pub work: String,
}

/// How [`mount_overlay`] mounted, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMethod {
    /// `fsopen`/`fsconfig`/`fsmount`/`move_mount`.
    NewApi,
    /// `mount(2)` with an option string.
    Legacy,
}

/// Errors from mounting, unmounting and mount queries.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The request itself is unusable (no layers, relative paths, one lower without upper...).
    #[error("overlay at {target}: {reason}")]
    InvalidSpec {
        /// The requested mount point.
        target: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// More lower layers than overlayfs supports; refused before any system call.
    #[error("too many lower layers: {count}, overlayfs allows at most {max}")]
    TooManyLayers {
        /// Layers requested.
        count: usize,
        /// [`MAX_LOWER_LAYERS`].
        max: usize,
    },
    /// Only `mount(2)` is usable and even the shortest option string exceeds its one page.
    #[error(
        "overlay options for {layers} layers take {bytes} bytes, more than mount(2) accepts \
         (one page, NUL included); a kernel with overlay `lowerdir+` (Linux 6.8+) has no such limit"
    )]
    OptionsTooLong {
        /// Lower layers requested.
        layers: usize,
        /// Length of the shortest option string that could be built.
        bytes: usize,
    },
    /// A mount system call failed; `kernel_log` holds the fs context's messages, if any.
    #[error("overlay at {target}: {}", overlay_detail(.op, .source, .kernel_log))]
    Overlay {
        /// The requested mount point.
        target: PathBuf,
        /// The step that failed, e.g. `fsconfig lowerdir+ (layer 3: /x)`.
        op: String,
        /// The errno.
        source: io::Error,
        /// Messages the kernel logged to the fs context, severity and `overlay: ` prefix removed.
        kernel_log: Vec<String>,
    },
    /// The mount calls succeeded but no overlay is mounted at the target.
    #[error("overlay at {target}: mounting reported success but no overlay is mounted there")]
    NotVerified {
        /// The requested mount point.
        target: PathBuf,
    },
    /// `umount2` returned EBUSY.
    #[error(
        "cannot unmount {target}: the mount point is in use (a process has its working \
         directory or an open file below it); stop those or unmount with detach"
    )]
    Busy {
        /// The mount point.
        target: PathBuf,
    },
    /// Nothing is mounted at the path (EINVAL), or the path does not exist (ENOENT).
    #[error("{target} is not a mount point")]
    NotMounted {
        /// The path given.
        target: PathBuf,
    },
    /// `umount2` failed otherwise.
    #[error("cannot unmount {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// The process may not mount.
    #[error("{reason}")]
    NotPermitted {
        /// Why, and what to do instead.
        reason: String,
    },
    /// Reading `/proc` failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The error.
        source: io::Error,
    },
}

fn overlay_detail(op: &str, source: &io::Error, log: &[String]) -> String {
    if log.is_empty() && op.starts_with("fsconfig") {
        format!("{op}: {source} (the kernel logged no reason here; see dmesg)")
    } else if log.is_empty() {
        format!("{op}: {source}")
    } else {
        format!("{} ({op}: {source})", log.join("; "))
    }
}

/// Mounts an overlay as described in the module docs; on success it is verified in mountinfo.
pub fn mount_overlay(spec: &OverlaySpec) -> Result<MountMethod, MountError> {
    mount_overlay_with(&LinuxMount::default(), spec)
}

/// `umount2(target)`, with `MNT_DETACH` if `detach`. EBUSY gives [`MountError::Busy`], EINVAL
/// and ENOENT give [`MountError::NotMounted`], so callers decide whether that matters.
pub fn unmount(target: &Path, detach: bool) -> Result<(), MountError> {
    unmount_with(&LinuxMount::default(), target, detach)
}

/// CAP_SYS_ADMIN, the capability `mount` needs.
const CAP_SYS_ADMIN: u32 = 21;

/// Checks that the process can mount: CAP_SYS_ADMIN in its effective set (`CapEff` in
/// `/proc/self/status`, bit 21).
pub fn check_privileges() -> Result<(), MountError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|source| MountError::Io {
        what: "reading /proc/self/status".into(),
        source,
    })?;
    privileges_from_status(&status)
}

fn privileges_from_status(status: &str) -> Result<(), MountError> {
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    match cap_eff {
        Some(caps) if caps & (1 << CAP_SYS_ADMIN) != 0 => Ok(()),
        Some(_) => Err(MountError::NotPermitted {
            reason: "mounting an overlay needs root (CAP_SYS_ADMIN), which this process lacks"
                .into(),
        }),
        None => Err(MountError::Io {
            what: "reading CapEff from /proc/self/status".into(),
            source: io::Error::new(io::ErrorKind::InvalidData, "no parsable CapEff line"),
        }),
    }
}
