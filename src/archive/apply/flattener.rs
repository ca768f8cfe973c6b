//! [`Flattener`]: an image's layers flattened, bottom first, into one directory.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode};
use rustix::io::Errno;

use super::applier::open_root;
use super::flatten::{self, DeferredModes};
use crate::archive::error::{ArchiveError, fs_err, lossy};
use crate::archive::options::{ApplyOptions, ApplyStats};
use crate::archive::path;

/// Flattens an image's layers, applied bottom first, into one directory: the image's merged
/// view as a plain directory tree (see "Flatten mode" in the `archive` module documentation).
///
/// Directories whose mode lacks owner read, write or search permission (`/proc` is 0555) stay
/// owner-accessible until [`Flattener::finish`], so that later layers can still change what is
/// below them when the process has no `CAP_DAC_OVERRIDE` (unprivileged export).
#[derive(Debug)]
pub struct Flattener {
    dest: PathBuf,
    opts: ApplyOptions,
    deferred: DeferredModes,
}

impl Flattener {
    /// Flattens into the existing directory `dest` (normally empty at first) with `opts`
    /// (whose `flatten` is forced on).
    pub fn new(dest: &Path, opts: &ApplyOptions) -> Self {
        Self {
            dest: dest.to_path_buf(),
            opts: ApplyOptions {
                flatten: true,
                ..opts.clone()
            },
            deferred: Default::default(),
        }
    }

    /// The directory flattened into.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Applies the next layer's tar stream (as [`crate::archive::apply_layer`] does: trailing
    /// bytes are not drained).
    pub fn apply_layer<R: io::Read>(&mut self, reader: R) -> Result<ApplyStats, ArchiveError> {
        flatten::apply(reader, &self.dest, &self.opts, Some(&mut self.deferred))
    }

    /// Gives the directories kept owner-accessible their modes; call after the last layer.
    pub fn finish(self) -> Result<(), ArchiveError> {
        restore_modes(&self.dest, &self.deferred)
    }
}

/// Gives the directories recorded in `deferred` (by real path) their modes, deepest first;
/// those gone or replaced since are skipped.
fn restore_modes(dest: &Path, deferred: &DeferredModes) -> Result<(), ArchiveError> {
    let root = open_root(dest)?;
    let mut dirs: Vec<(&Vec<u8>, &u32)> = deferred.iter().collect();
    dirs.sort_unstable_by_key(|(p, _)| std::cmp::Reverse(path::depth(p)));
    for (p, &mode) in dirs {
        let shown = if p.is_empty() {
            ".".to_string()
        } else {
            lossy(p)
        };
        let fd = match root.existing_dir_nofollow(p) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
            Err(e) => return Err(fs_err(&shown, "opening directory", e)),
        };
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| fs_err(&shown, format!("chmod to {mode:o}"), e))?;
    }
    Ok(())
}
