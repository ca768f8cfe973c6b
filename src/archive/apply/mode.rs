//! Where overlay mode and flatten mode differ: the [`ApplyMode`] the shared applier is generic over.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;

use rustix::fs::Timespec;

use crate::archive::error::ArchiveError;
use crate::archive::fsops::{RealPath, Root};

/// A directory member's mode and times, applied at the end of the layer.
pub(crate) struct DirMeta {
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Its real path (symlinks resolved), when the root tracks them (flatten mode).
    pub real: Option<RealPath>,
}

/// The hooks where applying a layer as an overlay layer (into an empty directory, whiteouts and
/// opaque markers recorded for overlayfs) and flattening it (onto the lower layers, deleting
/// what they hide) differ. The applier is generic over it rather than holding a `dyn ApplyMode`:
/// `parent` and `created` run for every member, and in overlay mode they do nothing, which
/// static dispatch compiles away.
pub(crate) trait ApplyMode {
    /// The destination holds the lower layers (flatten) instead of starting empty (overlay):
    /// an existing directory, the root included, may be theirs, so a directory member clears
    /// its xattrs and always sets its mode, and a hardlink may point into them.
    const ON_LOWER_LAYERS: bool;
    /// A device node the process may not create is an error naming the member (an export must
    /// not silently lack a device) rather than skipped when unprivileged, as Docker does.
    const DEVICES_REQUIRED: bool;
    /// Whether regular files' bytes may be hashed while written ([`ApplyStats::file_hashes`],
    /// when [`ApplyOptions::hash_files`] asks for it).
    ///
    /// [`ApplyOptions::hash_files`]: crate::archive::ApplyOptions::hash_files
    ///
    /// [`ApplyStats::file_hashes`]: crate::archive::ApplyStats::file_hashes
    const HASHES_FILES: bool;

    /// The parent directory `fd` of a member was resolved, at `real` when the root tracks
    /// real paths; runs before anything is created in it.
    fn parent(
        &mut self,
        fd: BorrowedFd<'_>,
        real: Option<&[u8]>,
        shown: &str,
    ) -> Result<(), ArchiveError>;

    /// The layer created `name` in the directory at `real` (when the root tracks real paths).
    fn created(&mut self, real: Option<&[u8]>, name: &[u8]);

    /// The directory member `name` in `dir` has just replaced a non-directory of the layer.
    fn dir_replaced(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        shown: &str,
    ) -> Result<(), ArchiveError>;

    /// `PARENT/.wh.NAME`, a member owned by `owner` (uid, gid).
    fn whiteout(
        &mut self,
        root: &mut Root,
        parent: &[u8],
        name: &[u8],
        owner: (u32, u32),
        shown: &str,
    ) -> Result<(), ArchiveError>;

    /// `DIR/.wh..wh..opq`.
    fn opaque(&mut self, root: &mut Root, dir: &[u8], shown: &str) -> Result<(), ArchiveError>;

    /// After the last member, before the directory members (`dirs`, by normalised path) get
    /// their modes and times.
    fn end_of_layer(
        &mut self,
        root: &mut Root,
        dirs: &HashMap<Vec<u8>, DirMeta>,
    ) -> Result<(), ArchiveError>;

    /// The mode to give the directory at `real` now, for a member that says `mode`.
    fn dir_mode(&mut self, real: Option<&[u8]>, mode: u32) -> u32;
}
