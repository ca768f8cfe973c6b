//! An OCI runtime bundle for a container, and running a runtime on it.

use std::path::{Path, PathBuf};

use super::error::ContainerError;
use super::lifecycle::Container;
use crate::bundle::{self, RunOptions};
use crate::image::parse_config;

impl Container {
    /// Writes `<dir>/config.json` for the container, creating `dir`: mounts the container if
    /// needed, then builds the runtime spec from its image's config and `opts`. Returns the
    /// path of `config.json`.
    pub fn write_bundle(&self, dir: &Path, opts: &RunOptions) -> Result<PathBuf, ContainerError> {
        let (spec, _) = self.spec(opts)?;
        self.write_spec(dir, &spec)
    }

    /// Mounts the container if needed and builds its runtime spec; returns it with the merged
    /// dir.
    fn spec(&self, opts: &RunOptions) -> Result<(bundle::Spec, PathBuf), ContainerError> {
        let merged = self.mount()?;
        let config = parse_config(&self.store().image_config(&self.record().image_id)?)?;
        let mut spec = bundle::build_spec(&config, &merged, self.id(), opts)?;
        bundle::rootless::adjust(&mut spec);
        Ok((spec, merged))
    }

    fn write_spec(&self, dir: &Path, spec: &bundle::Spec) -> Result<PathBuf, ContainerError> {
        std::fs::create_dir_all(dir).map_err(|source| ContainerError::BundleDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(bundle::write_bundle(dir, spec)?)
    }

    /// Writes the bundle into the container's [state dir](Container::state_dir), where
    /// [`Container::run_bundle`] and [`Container::run_supervised`] run it; returns that
    /// directory. The command is looked up in the rootfs first
    /// ([`super::command::check_command`]): one that is missing or not executable is an
    /// error here, as Docker reports it.
    pub fn write_state_bundle(&self, opts: &RunOptions) -> Result<PathBuf, ContainerError> {
        let dir = self.state_dir();
        let (spec, merged) = self.spec(opts)?;
        super::command::check_command(&merged, &spec)?;
        self.write_spec(&dir, &spec)?;
        Ok(dir)
    }

    /// Runs `<runtime> run` on the bundle [`Container::write_state_bundle`] wrote, with this
    /// process' stdio and the container id as the runtime's container id; returns its exit
    /// code (128 + the signal when it was killed).
    pub fn run_bundle(&self, runtime: &str) -> Result<i32, ContainerError> {
        Ok(bundle::run_runtime(runtime, &self.state_dir(), self.id())?)
    }
}
