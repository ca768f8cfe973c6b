//! How to apply a layer ([`ApplyOptions`]) and what it held ([`ApplyStats`]).

use std::path::PathBuf;

use super::content::FileHashes;

/// How to apply a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// The namespace of the overlay xattrs (opaque directories) written and looked up: false
    /// => the `trusted.` one (needs root), true => the `user.` one (rootless, for overlay
    /// mounts with `userxattr`).
    pub userxattr: bool,
    /// chown entries to their tar uid/gid (true when running as root; when false, skip chown
    /// silently).
    pub same_owner: bool,
    /// Flatten mode: apply on top of the lower layers' result, deleting what whiteouts and
    /// opaque markers hide instead of recording them (see the `archive` module
    /// documentation). False (overlay mode) expects an empty destination.
    pub flatten: bool,
    /// Start writing large files to disk as soon as they are written, for a caller that syncs
    /// the layer before using it (the sync then has little left to wait for). Without a sync to
    /// come, it would only spend CPU the kernel's flusher spends later anyway.
    pub writeback: bool,
    /// Overlay mode: hash each regular file's bytes while writing it
    /// ([`ApplyStats::file_hashes`]), for the layer's content digest. Costs a sha256 pass over
    /// the layer's file data (~0.4 CPU-s per 700 MiB with SHA-NI), hence opt-in.
    pub hash_files: bool,
}

impl Default for ApplyOptions {
    /// The `trusted.` overlay xattrs, and chown when running as root.
    fn default() -> Self {
        Self {
            userxattr: false,
            same_owner: rustix::process::geteuid().is_root(),
            flatten: false,
            writeback: true,
            hash_files: false,
        }
    }
}

/// What a layer held.
#[derive(Debug, Default, Clone)]
pub struct ApplyStats {
    /// Members applied (every member: files, directories, links, devices, whiteouts).
    pub entries: u64,
    /// Regular-file content bytes (logical sizes; hardlinks count nothing).
    pub bytes: u64,
    /// Overlay mode: the directories the layer did not list but needed as parents (of members,
    /// whiteouts, opaque markers, or symlink targets), which it therefore created with
    /// default metadata, and which are still such at the end of the layer: not named by a
    /// directory member, not removed or replaced by a later member. Relative to the
    /// destination, normalised, with symlinks resolved (the path where the directory is),
    /// sorted (parents before children). Always empty in flatten mode.
    pub implicit_dirs: Vec<PathBuf>,
    /// With [`ApplyOptions::hash_files`], in overlay mode: the sha256 of each regular file's
    /// bytes, taken while writing them, by inode (for the layer's content digest, see
    /// [`crate::archive::TreeListing`]). Else empty.
    pub file_hashes: FileHashes,
}
