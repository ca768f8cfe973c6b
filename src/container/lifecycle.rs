//! Container lifecycle: create on an image, open, mount and unmount the merged rootfs, remove.

use std::path::PathBuf;

use super::error::ContainerError;
use crate::bundle;
use crate::mount::{self, LegacyPaths, MountError, OverlaySpec};
use crate::store::{ContainerDirs, ContainerRecord, ImageRecord, LeaseKind, Store, StoreError};

/// How long a `strata run` may take to see its stopped container's end and clean up.
const SUPERVISOR_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A container of a store: its record, and the operations on it.
#[derive(Debug, Clone)]
pub struct Container {
    store: Store,
    record: ContainerRecord,
}

impl Container {
    /// Creates a container on `image` (pulled as `image_ref`) and mounts it; on mount failure
    /// the container is removed again. `name` defaults to the first 12 characters of the id.
    ///
    /// ```no_run
    /// use std::path::Path;
    ///
    /// use strata::container::Container;
    /// use strata::image::Platform;
    /// use strata::pull::present_image;
    /// use strata::reference::Reference;
    /// use strata::store::Store;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::open(Path::new("/var/lib/strata"))?;
    /// let reference = Reference::parse("alpine")?;
    /// let image = present_image(&store, &reference, &Platform::host())?.ok_or("alpine is not pulled")?;
    /// let container = Container::create(&store, &image, &reference.to_string(), Some("web"))?;
    /// println!("{}", container.dirs()?.merged.display());
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(
        store: &Store,
        image: &ImageRecord,
        image_ref: &str,
        name: Option<&str>,
    ) -> Result<Self, ContainerError> {
        mount::check_privileges()?;
        let record = store.create_container(image, image_ref, name)?;
        let container = Container::from_record(store, record);
        if let Err(e) = container.mount() {
            let _ = store.remove_container(&container.record);
            return Err(e);
        }
        Ok(container)
    }

    /// Opens a container by name, full id or id prefix (at least 4 characters).
    pub fn open(store: &Store, name_or_id: &str) -> Result<Self, ContainerError> {
        let record = store.container(name_or_id)?;
        Ok(Container::from_record(store, record))
    }

    /// All containers of `store`, oldest first.
    pub fn list(store: &Store) -> Result<Vec<Self>, ContainerError> {
        Ok(store
            .containers()?
            .into_iter()
            .map(|record| Container::from_record(store, record))
            .collect())
    }

    /// The container `record` describes in `store`.
    pub fn from_record(store: &Store, record: ContainerRecord) -> Self {
        Container {
            store: store.clone(),
            record,
        }
    }

    /// The store the container lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the store knows about the container.
    pub fn record(&self) -> &ContainerRecord {
        &self.record
    }

    /// The 64-hex id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The directories of its overlay mount.
    pub fn dirs(&self) -> Result<ContainerDirs, ContainerError> {
        Ok(self.store.container_dirs(&self.record)?)
    }

    /// `<root>/containers/<id>/`: per-container files such as the runtime bundle; removed with
    /// the container.
    pub fn state_dir(&self) -> PathBuf {
        self.store.container_state_dir(&self.record.id)
    }

    /// Mounts the merged dir (nothing to do when it is mounted already); returns it.
    pub fn mount(&self) -> Result<PathBuf, ContainerError> {
        let dirs = self.dirs()?;
        if mount::is_mounted(&dirs.merged)? {
            return Ok(dirs.merged);
        }
        mount::check_privileges()?;
        // Layers a crash may have torn are discarded, never mounted.
        self.store.recover(false)?;
        // Nothing may remove a layer between this check and the mount.
        let _lease = self.store.lease(LeaseKind::Shared)?;
        if let Some(layer) = dirs.lower.iter().find(|l| !l.is_dir()) {
            return Err(ContainerError::LayerMissing {
                name: self.record.name.clone(),
                image: self.record.image_ref.clone(),
                layer: layer.clone(),
            });
        }
        let method = mount::mount_overlay(&self.overlay_spec(&dirs))?;
        tracing::info!(
            "mounted {} with {} layers ({method:?})",
            dirs.merged.display(),
            dirs.lower.len()
        );
        Ok(dirs.merged)
    }

    fn overlay_spec(&self, dirs: &ContainerDirs) -> OverlaySpec {
        OverlaySpec {
            lower: dirs.lower.clone(),
            upper: Some((dirs.upper.clone(), dirs.work.clone())),
            target: dirs.merged.clone(),
            userxattr: crate::rootless::is_rootless(),
            legacy: Some(LegacyPaths {
                base: self.store.overlay_dir(),
                lower: dirs.lower_links.clone(),
                upper: format!("{}/diff", self.record.id),
                work: format!("{}/work", self.record.id),
            }),
        }
    }

    /// Unmounts the merged dir (lazily with `detach`); `Ok(false)` when it was not mounted.
    pub fn unmount(&self, detach: bool) -> Result<bool, ContainerError> {
        let dirs = self.dirs()?;
        if !mount::is_mounted(&dirs.merged)? {
            return Ok(false);
        }
        mount::unmount(&dirs.merged, detach)?;
        Ok(true)
    }

    /// Removes the container; a running one only with `force` (which kills it first), a
    /// mounted one only with `force` or once it ran and exited (unmounted first, lazily when
    /// busy).
    pub fn remove(self, force: bool) -> Result<(), ContainerError> {
        let state = self.run_state()?;
        if state.is_running() {
            if !force {
                return Err(ContainerError::Running {
                    name: self.record.name,
                });
            }
            self.stop(std::time::Duration::ZERO)?;
            // Its `strata run` sees the end, records the exit code and, with `--rm`, removes
            // the container: let it, rather than race its runtime for the container's state.
            if state.supervisor_pid != std::process::id()
                && crate::sys::process::wait_gone(state.supervisor_pid, SUPERVISOR_GRACE)
                && matches!(
                    self.store.container(self.id()),
                    Err(StoreError::NoSuchContainer(_))
                )
            {
                return Ok(());
            }
        }
        if !state.runtime.as_os_str().is_empty() {
            // What a killed runtime left in its own state dir.
            let _ = bundle::runtime::delete_container(&state.runtime.to_string_lossy(), self.id());
        }
        // A container that ran and exited goes as in Docker, mounted or not.
        let exited = state.is_exited();
        let dirs = self.dirs()?;
        if mount::is_mounted(&dirs.merged)? {
            if !force && !exited {
                return Err(ContainerError::Mounted {
                    name: self.record.name,
                    merged: dirs.merged,
                });
            }
            match mount::unmount(&dirs.merged, false) {
                Err(MountError::Busy { .. }) => mount::unmount(&dirs.merged, true)?,
                other => other?,
            }
        }
        self.store.remove_container(&self.record)?;
        Ok(())
    }
}
