//! Image mounts (podman's `image mount`, `ctr images mount`): an image's layers mounted
//! read-only, with no container and no writable layer, for scanners that want its rootfs.
//!
//! An overlay of the layers alone (no upper dir: overlayfs refuses every write with `EROFS`);
//! a one-layer image gets an empty directory as its second lower, since overlayfs needs two
//! lowers without an upper (a bind mount would show whiteouts as device files). The mount
//! goes to `<root>/image-mounts/<id hex>/merged`, or to a directory given, which is recorded in
//! `<root>/image-mounts/<id hex>/target`. While it is mounted, `rmi` and the prunes keep the
//! image (it counts as a user, as a container does).

use std::fs;
use std::path::{Path, PathBuf};

use super::{ImageRecord, LeaseKind, Store, StoreError, fsutil, io_err, layout};
use crate::id::ImageId;
use crate::mount::{self, LegacyPaths, MountError, OverlaySpec};

/// Errors of image mounts.
#[derive(Debug, thiserror::Error)]
pub enum ImageMountError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Mounting or unmounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A layer of the image is missing.
    #[error("image {image}: layer {} is missing: pull it again", layer.display())]
    LayerMissing {
        /// The image id.
        image: ImageId,
        /// The missing layer directory.
        layer: PathBuf,
    },
    /// The image is mounted at another directory already.
    #[error("image {image} is mounted at {} already (strata umount --image first)", target.display())]
    MountedElsewhere {
        /// The image id.
        image: ImageId,
        /// Where it is mounted.
        target: PathBuf,
    },
}

impl Store {
    /// `<root>/image-mounts`.
    fn image_mounts_dir(&self) -> PathBuf {
        self.root.join("image-mounts")
    }

    /// `<root>/image-mounts/<id hex>`: the mount's record and its default mount point.
    fn image_mount_dir(&self, id: &ImageId) -> PathBuf {
        self.image_mounts_dir().join(id.hex())
    }

    /// Where the image is mounted (the recorded directory, else the default one), mounted or
    /// not.
    fn image_mount_point(&self, id: &ImageId) -> Result<PathBuf, StoreError> {
        let record = self.image_mount_dir(id).join("target");
        match fs::read(&record) {
            Ok(bytes) => Ok(PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(self.image_mount_dir(id).join("merged"))
            }
            Err(e) => Err(io_err("reading", &record)(e)),
        }
    }

    /// The directory the image is mounted at, if it is mounted.
    pub fn image_mounted_at(&self, id: &ImageId) -> Result<Option<PathBuf>, StoreError> {
        if !self.image_mount_dir(id).is_dir() {
            return Ok(None);
        }
        let target = self.image_mount_point(id)?;
        let mounted = mount::is_mounted(&target).map_err(|e| StoreError::Io {
            what: "reading the mount table for",
            path: target.clone(),
            source: std::io::Error::other(e),
        })?;
        Ok(mounted.then_some(target))
    }

    /// Mounts `image` read-only at `target` (default `<root>/image-mounts/<id hex>/merged`,
    /// created when missing) and returns the mount point; nothing to do when it is mounted
    /// there already.
    pub fn mount_image(
        &self,
        image: &ImageRecord,
        target: Option<&Path>,
    ) -> Result<PathBuf, ImageMountError> {
        if let Some(current) = self.image_mounted_at(&image.id)? {
            if target.is_none_or(|t| same_dir(t, &current)) {
                return Ok(current);
            }
            return Err(ImageMountError::MountedElsewhere {
                image: image.id.clone(),
                target: current,
            });
        }
        mount::check_privileges()?;
        self.recover(false)?;
        // Nothing may remove a layer between this check and the mount.
        let _lease = self.lease(LeaseKind::Shared)?;
        let mut lower = Vec::new();
        let mut links = Vec::new();
        for layer in image.layers.iter().rev() {
            let diff = self.layer_dir(&layer.chain_id).join("diff");
            if !matches!(self.layer(&layer.chain_id), Ok(Some(_))) || !diff.is_dir() {
                return Err(ImageMountError::LayerMissing {
                    image: image.id.clone(),
                    layer: diff,
                });
            }
            lower.push(diff);
            links.push(format!("l/{}", layout::short_link(&layer.chain_id)));
        }
        let dir = self.image_mount_dir(&image.id);
        fsutil::mkdir_mode(&self.image_mounts_dir(), 0o700)?;
        fsutil::mkdir_mode(&dir, 0o700)?;
        if lower.len() < 2 {
            let empty = dir.join("empty");
            fsutil::mkdir_mode(&empty, 0o755)?;
            links.push(format!("../image-mounts/{}/empty", image.id.hex()));
            lower.push(empty);
        }
        let target = match target {
            Some(t) => {
                if !t.exists() {
                    fs::create_dir(t).map_err(io_err("creating", t))?;
                }
                let absolute = fs::canonicalize(t).map_err(io_err("resolving", t))?;
                fsutil::write_atomic(
                    &dir.join("target"),
                    absolute.as_os_str().as_encoded_bytes(),
                    0o600,
                )?;
                absolute
            }
            None => {
                let merged = dir.join("merged");
                fsutil::mkdir_mode(&merged, 0o755)?;
                fsutil::remove_file(&dir.join("target"))?;
                merged
            }
        };
        let spec = OverlaySpec {
            lower,
            upper: None,
            target: target.clone(),
            userxattr: false,
            legacy: Some(LegacyPaths {
                base: self.overlay_dir(),
                lower: links,
                upper: String::new(),
                work: String::new(),
            }),
        };
        let method = mount::mount_overlay(&spec)?;
        tracing::info!(
            "mounted image {} read-only at {} ({method:?})",
            image.id,
            target.display()
        );
        Ok(target)
    }

    /// Unmounts `image` and forgets its mount; `Ok(false)` when it was not mounted.
    pub fn unmount_image(&self, image: &ImageId) -> Result<bool, ImageMountError> {
        let dir = self.image_mount_dir(image);
        if !dir.is_dir() {
            return Ok(false);
        }
        let mounted = match self.image_mounted_at(image)? {
            Some(target) => {
                mount::unmount(&target, false)?;
                true
            }
            None => false,
        };
        fsutil::remove_tree(&dir)?;
        Ok(mounted)
    }
}

/// Whether two paths name the same directory (after resolving them).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
