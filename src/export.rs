//! Exporting an image as a plain directory: the [pipeline](crate::pipeline) of a pull (blob
//! sha256 and size, decompression, diff_id) from the registry into a
//! [`FlattenSink`](crate::sink::FlattenSink), which applies the layers bottom first into one
//! directory in [flatten mode](crate::archive#flatten-mode). No store, no mount and, for images
//! without device nodes, no root ([`export`]).
//!
//! An image already in the store can be exported from there without network
//! ([`export_stored`]): each stored layer directory is written back as a layer tar stream
//! ([`archive::write_layer_tar`]) and flattened the same way; a cancel flag, checked on every
//! read of that stream, stops it (Ctrl-C in the CLI).
//!
//! The layers are applied into a staging directory next to the target,
//! `<parent>/.<name>.strata-export-<pid>-<n>`, renamed to the target only when every layer is
//! verified; on any error the staging directory is removed, so the target is either the
//! complete image or untouched. The target must not exist or be an empty directory (which is
//! then replaced). Staging directories of export processes that no longer run (killed) are
//! removed by the next export to the same target.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::archive::{self, ArchiveError, Flattener};
use crate::digest::Digest;
use crate::id::{ChainId, ImageId};
use crate::pipeline::{self, Observer, PullError};
use crate::pull::PullOptions;
use crate::reference::Reference;
use crate::registry::RegistryClient;
use crate::sink::FlattenSink;
use crate::source::{ImageSource, RegistrySource};
use crate::store::{ImageRecord, LeaseKind, Store, StoreError};

/// What an export produced.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// The reference exported.
    pub reference: Reference,
    /// The digest the reference resolved to (an index's digest for multi-platform images).
    pub digest: Digest,
    /// The image id (the config's digest).
    pub image_id: ImageId,
    /// The directory now holding the image's root filesystem.
    pub target: PathBuf,
    /// Number of layers applied.
    pub layers: usize,
    /// Tar members applied over all layers.
    pub entries: u64,
    /// Regular-file bytes written over all layers.
    pub bytes: u64,
}

/// Why an export failed. Nothing is left behind: the target is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The target cannot be used (it exists and is not an empty directory, names no
    /// directory, its parent is missing, ...). Checked before anything is fetched.
    #[error("export target {}: {reason}", target.display())]
    Target {
        /// The target given.
        target: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Resolving the image or fetching, verifying or applying a layer failed (the error
    /// names the image and the layer).
    #[error(transparent)]
    Pull(Box<PullError>),
    /// A stored layer could not be read or applied.
    #[error("{image}: stored layer {layer}: {source}")]
    Stored {
        /// The image.
        image: String,
        /// The layer's chain id (its directory in the store).
        layer: ChainId,
        /// What failed.
        source: ArchiveError,
    },
    /// Finishing the flattened tree (restoring directory modes) failed.
    #[error("{image}: finishing the exported tree: {source}")]
    Finish {
        /// The image.
        image: String,
        /// What failed.
        source: ArchiveError,
    },
    /// The export from the store was cancelled (its cancel flag was set); the staging
    /// directory is removed.
    #[error("{image}: export cancelled")]
    Cancelled {
        /// The image.
        image: String,
    },
    /// A filesystem operation on the staging directory or the target failed.
    #[error("{image}: {op} {}: {source}", path.display())]
    Io {
        /// The image.
        image: String,
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl From<PullError> for ExportError {
    fn from(e: PullError) -> Self {
        Self::Pull(Box::new(e))
    }
}

/// Where an export goes: the checked target and its staging directory.
struct Plan {
    target: PathBuf,
    staging: PathBuf,
    /// The target is an existing empty directory (replaced by the rename).
    replace_empty: bool,
}

/// Exports `reference` as a plain directory tree at `target` (see the module documentation).
/// `options.platform` picks the manifest of a multi-platform image, `options.apply` how
/// members are written (`same_owner` off when unprivileged: owners are then the caller's;
/// flatten mode is always on) and `options.sync` whether the tree is synced before it is
/// renamed into place. Emits the same [`PullEvent`](crate::pipeline::PullEvent)s as a pull
/// (layers are applied one after the other, bottom first, each while it downloads: a flattened
/// tree takes them in no other order).
pub async fn export(
    client: &RegistryClient,
    reference: &Reference,
    options: &PullOptions,
    target: &Path,
    observer: Arc<dyn Observer>,
) -> Result<ExportOutcome, ExportError> {
    let source = Arc::new(RegistrySource::new(client.clone(), reference.clone()));
    export_from(source, reference, options, target, observer).await
}

/// [`export`] of the image `source` holds, named `reference` in events and errors.
pub async fn export_from<S: ImageSource>(
    source: Arc<S>,
    reference: &Reference,
    options: &PullOptions,
    target: &Path,
    observer: Arc<dyn Observer>,
) -> Result<ExportOutcome, ExportError> {
    let plan = plan(target)?;
    let image = reference.to_string();
    let resolved = pipeline::resolve(source.as_ref(), &image, &options.platform).await?;
    let guard = create_staging(&plan, &image)?;
    observer.event(resolved.event(reference));

    let sink = Arc::new(FlattenSink::new(Flattener::new(
        &plan.staging,
        &options.apply,
    )));
    let done = pipeline::run_layers(
        &source,
        &sink,
        &image,
        resolved.layer_jobs(),
        options.max_concurrent_downloads,
        &observer,
    )
    .await?;
    let (entries, bytes) = done
        .layers
        .iter()
        .fold((0, 0), |(e, b), s| (e + s.entries, b + s.bytes));
    let flattener = Arc::into_inner(sink)
        .map(FlattenSink::into_flattener)
        .ok_or_else(|| ExportError::Io {
            image: image.clone(),
            op: "finishing",
            path: plan.staging.clone(),
            source: io::Error::other("a layer task still holds the flattened tree"),
        })?;
    let (staging, target, name) = (plan.staging.clone(), plan.target.clone(), image.clone());
    let (replace_empty, sync) = (plan.replace_empty, options.sync);
    tokio::task::spawn_blocking(move || {
        commit(flattener, &staging, &target, replace_empty, sync, &name)
    })
    .await
    .map_err(|e| ExportError::Io {
        image: image.clone(),
        op: "finishing",
        path: plan.staging.clone(),
        source: io::Error::other(e.to_string()),
    })??;
    guard.disarm();
    Ok(ExportOutcome {
        reference: reference.clone(),
        digest: resolved.top_digest,
        image_id: resolved.id,
        target: plan.target,
        layers: resolved.layers.len(),
        entries,
        bytes,
    })
}

/// Creates the staging directory (after removing those of killed exports to the same target),
/// removed again by the returned guard unless it is disarmed.
fn create_staging(plan: &Plan, image: &str) -> Result<StagingGuard, ExportError> {
    sweep_stale_staging(plan);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&plan.staging)
        .map_err(|source| ExportError::Io {
            image: image.to_string(),
            op: "creating staging directory",
            path: plan.staging.clone(),
            source,
        })?;
    Ok(StagingGuard(Some(plan.staging.clone())))
}

/// Removes the staging directory when dropped armed: on errors, and when the export future is
/// dropped half-way. (A killed process leaves it to [`sweep_stale_staging`].)
struct StagingGuard(Option<PathBuf>);

impl StagingGuard {
    /// The staging directory became the target: nothing to remove.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: the export's own error is what matters.
            let _ = remove_tree(&path);
        }
    }
}

/// Exports the stored `image` (found for `reference`) as a plain directory tree at `target`,
/// from the layer directories of `store`, bottom first, without network. The layers were
/// verified when they were pulled; they are not hashed again. Opaque directories are marked by
/// `trusted.*` xattrs, which only root can read: run it as root. `options.apply` says how
/// members are written and `options.sync` whether the tree is synced before it is renamed into
/// place. Blocking; setting `cancel` (from another thread: a signal catcher's) stops it at the
/// next read of a layer stream with [`ExportError::Cancelled`], the staging directory removed.
pub fn export_stored(
    store: &Store,
    reference: &Reference,
    image: &ImageRecord,
    target: &Path,
    options: &PullOptions,
    cancel: &AtomicBool,
) -> Result<ExportOutcome, ExportError> {
    let plan = plan(target)?;
    let name = reference.to_string();
    // Shared: no rmi or prune removes a layer while it is read; the image may be gone already.
    let store_err = |source| {
        ExportError::Pull(Box::new(PullError::Store {
            image: name.clone(),
            source,
        }))
    };
    let _lease = store.lease(LeaseKind::Shared).map_err(store_err)?;
    if image
        .layers
        .iter()
        .any(|l| !matches!(store.layer(&l.chain_id), Ok(Some(_))))
    {
        return Err(store_err(StoreError::ImageRemoved(name.clone())));
    }
    let guard = create_staging(&plan, &name)?;
    let mut flattener = Flattener::new(&plan.staging, &options.apply);
    let (mut entries, mut bytes) = (0, 0);
    let cancelled = || ExportError::Cancelled {
        image: name.clone(),
    };
    for (i, layer) in image.layers.iter().enumerate() {
        let diff = store.layer_dir(&layer.chain_id).join("diff");
        let applied = apply_stored(&mut flattener, &diff, i == 0, cancel);
        if cancel.load(Ordering::SeqCst) {
            return Err(cancelled());
        }
        let stats = applied.map_err(|source| ExportError::Stored {
            image: name.clone(),
            layer: layer.chain_id.clone(),
            source,
        })?;
        entries += stats.entries;
        bytes += stats.bytes;
    }
    if cancel.load(Ordering::SeqCst) {
        return Err(cancelled());
    }
    commit(
        flattener,
        &plan.staging,
        &plan.target,
        plan.replace_empty,
        options.sync,
        &name,
    )?;
    guard.disarm();
    Ok(ExportOutcome {
        reference: reference.clone(),
        digest: image.manifest_digest.clone(),
        image_id: image.id.clone(),
        target: plan.target,
        layers: image.layers.len(),
        entries,
        bytes,
    })
}

/// Applies one stored layer directory: a thread writes it as a tar stream into a pipe that the
/// flattener reads, through a reader that fails once `cancel` is set.
fn apply_stored(
    flattener: &mut Flattener,
    diff: &Path,
    root_entry: bool,
    cancel: &AtomicBool,
) -> Result<archive::ApplyStats, ArchiveError> {
    let pipe_err = |source| ArchiveError::Dest {
        path: diff.to_path_buf(),
        source,
    };
    let (reader, writer) = io::pipe().map_err(pipe_err)?;
    let mut reader = Cancellable {
        inner: reader,
        cancel,
    };
    let writing = {
        let diff = diff.to_path_buf();
        std::thread::spawn(move || archive::write_layer_tar(&diff, writer, root_entry))
    };
    let applied = flattener.apply_layer(&mut reader).and_then(|stats| {
        io::copy(&mut reader, &mut io::sink())
            .map(|_| stats)
            .map_err(|source| ArchiveError::Io {
                entry: None,
                source,
            })
    });
    // Unblocks the writer if the applier stopped early.
    drop(reader);
    let written = writing.join().unwrap_or_else(|_| {
        Err(ArchiveError::Io {
            entry: None,
            source: io::Error::other("the layer writer thread panicked"),
        })
    });
    // A writer's error explains the applier's (a stream cut short), unless it is only the
    // broken pipe the applier's stopping caused.
    match (written, applied) {
        (Ok(_), applied) => applied,
        (Err(ArchiveError::Fs { source, .. }), Err(e))
            if source.kind() == io::ErrorKind::BrokenPipe =>
        {
            Err(e)
        }
        (Err(e), _) => Err(e),
    }
}

/// A layer stream that fails with an error once its cancel flag is set, so that the flattener
/// stops at its next read (within a large file too) and the writer thread on a broken pipe.
struct Cancellable<'a, R> {
    inner: R,
    cancel: &'a AtomicBool,
}

impl<R: io::Read> io::Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(io::Error::other("export cancelled"));
        }
        self.inner.read(buf)
    }
}

/// Checks the target: it must not exist, or be an empty directory; its parent must be a
/// directory. Names the staging directory next to it.
fn plan(target: &Path) -> Result<Plan, ExportError> {
    let bad = |reason: String| ExportError::Target {
        target: target.to_path_buf(),
        reason,
    };
    let absolute = std::path::absolute(target).map_err(|e| bad(e.to_string()))?;
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Err(bad("does not name a directory to create".into()));
    };
    match fs::metadata(parent) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Err(bad(format!("{} is not a directory", parent.display()))),
        Err(e) => return Err(bad(format!("{}: {e}", parent.display()))),
    }
    let replace_empty = match fs::symlink_metadata(&absolute) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(bad(e.to_string())),
        Ok(md) if md.is_dir() => {
            let mut entries = fs::read_dir(&absolute).map_err(|e| bad(e.to_string()))?;
            if entries.next().is_some() {
                return Err(bad(
                    "exists and is not empty (export needs a new or empty directory)".into(),
                ));
            }
            true
        }
        Ok(md) if md.is_symlink() => {
            return Err(bad(
                "is a symlink (export needs a new or empty directory)".into()
            ));
        }
        Ok(_) => {
            return Err(bad(
                "exists and is not a directory (export needs a new or empty directory)".into(),
            ));
        }
    };
    // The pid tells later exports whether it is stale; the counter keeps exports of one
    // process apart.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let staging = parent.join(format!(
        ".{}.strata-export-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(Plan {
        target: absolute,
        staging,
        replace_empty,
    })
}

/// Removes the staging directories this process made for `target`: after an interrupted
/// export, whose guard may have run while a layer thread still wrote. Best effort.
pub fn remove_own_staging(target: &Path) {
    if let Ok(target) = std::path::absolute(target)
        && let (Some(parent), Some(name)) = (target.parent(), target.file_name())
    {
        sweep_staging(parent, name, |pid| pid == std::process::id());
    }
}

/// Removes staging directories for the same target left by export processes that are gone.
/// Best effort.
fn sweep_stale_staging(plan: &Plan) {
    let (Some(parent), Some(name)) = (plan.staging.parent(), plan.target.file_name()) else {
        return;
    };
    sweep_staging(parent, name, |pid| {
        pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
    });
}

/// Removes the staging directories in `parent` for the target `name` whose pid `remove` picks.
fn sweep_staging(parent: &Path, name: &std::ffi::OsStr, remove: impl Fn(u32) -> bool) {
    let prefix = format!(".{}.strata-export-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        if remove(pid) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// Restores directory modes, syncs the staging directory's filesystem (when `sync`) and renames
/// it to the target.
fn commit(
    flattener: Flattener,
    staging: &Path,
    target: &Path,
    replace_empty: bool,
    sync: bool,
    image: &str,
) -> Result<(), ExportError> {
    let io_err = |op, path: &Path| {
        let (image, path) = (image.to_string(), path.to_path_buf());
        move |source| ExportError::Io {
            image,
            op,
            path,
            source,
        }
    };
    flattener.finish().map_err(|source| ExportError::Finish {
        image: image.to_string(),
        source,
    })?;
    if sync {
        let dir = fs::File::open(staging).map_err(io_err("opening", staging))?;
        rustix::fs::syncfs(dir.as_fd()).map_err(|e| io_err("syncing", staging)(e.into()))?;
    }
    if !replace_empty && target.exists() {
        return Err(ExportError::Target {
            target: target.to_path_buf(),
            reason: "appeared while exporting".into(),
        });
    }
    // rename(2) replaces an empty directory and fails on a non-empty one.
    fs::rename(staging, target).map_err(|e| {
        if e.kind() == io::ErrorKind::DirectoryNotEmpty {
            ExportError::Target {
                target: target.to_path_buf(),
                reason: "was filled while exporting".into(),
            }
        } else {
            io_err("renaming the export to", target)(e)
        }
    })
}

/// Removes a tree (not following symlinks); directories an unprivileged process may not
/// change (restored modes such as 0555) are made owner-writable first.
fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() != io::ErrorKind::PermissionDenied => return Err(e),
        Err(_) => {}
    }
    let mut todo = vec![path.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let md = fs::symlink_metadata(&dir)?;
        if !md.is_dir() {
            continue;
        }
        fs::set_permissions(
            &dir,
            fs::Permissions::from_mode(md.permissions().mode() | 0o700),
        )?;
        for entry in fs::read_dir(&dir)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            }
        }
    }
    fs::remove_dir_all(path)
}
