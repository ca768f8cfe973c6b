//! OCI runtime bundles: a runtime-spec `config.json` built from an image config with
//! `docker run`-style overrides ([`build_spec`], [`write_bundle`]), and running an OCI runtime
//! on it ([`run_runtime`]).
//!
//! - [`spec`]: the spec itself, with Docker's defaults (capabilities, mounts, namespaces,
//!   masked paths, seccomp profile); a fresh network namespace with loopback only.
//! - [`mounts`] (`-v`, `--mount`, `--tmpfs`) with targets made by [`mountpoint`], confined to
//!   the rootfs; [`network`] (`--network none|host`); [`caps`] (`--cap-add/--cap-drop`);
//!   [`seccomp`] (the default profile and `--security-opt seccomp=`); [`privileged`]
//!   (`--privileged`'s host devices); [`env_file`] (`--env-file`).
//! - [`user`]: `/etc/passwd` and `/etc/group` of the image, read confined to the rootfs.
//! - [`runtime`]: finding and running `runc` / `crun`.
//!
//! `root.path` in `config.json` is the absolute mounted rootfs; no `rootfs` symlink is created
//! in the bundle directory.
//!
//! For a container of the store, [`Container::write_bundle`](crate::container::Container::write_bundle)
//! mounts it and composes these from its image's config.

pub mod caps;
pub mod env_file;
pub mod mountpoint;
pub mod mounts;
pub mod network;
pub mod privileged;
pub mod rootless;
pub mod runtime;
pub mod seccomp;
pub mod security_opt;
pub mod spec;
pub mod user;

#[cfg(test)]
mod runc_tests;

use std::path::{Path, PathBuf};

use crate::sys;
use crate::sys::atomic::{Durability, WriteStep};

pub use mounts::{MountRequest, MountSource};
pub use network::Network;
pub use oci_spec::runtime::Spec;
pub use runtime::{delete_container, find_runtime, run_runtime, run_runtime_with};
pub use seccomp::SeccompChoice;
pub use spec::build_spec;

/// `docker run`-style overrides of the image config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replaces the image's Cmd when non-empty (`docker run IMAGE ARGS...`).
    pub args: Vec<String>,
    /// `--entrypoint`: replaces the image's Entrypoint (`""` clears it); the image's Cmd is then
    /// dropped, so only `args` follow it.
    pub entrypoint: Option<String>,
    /// `-e KEY=VAL`, replacing image Env entries by key or appended; a bare `-e KEY` takes KEY
    /// from the host environment when set there, and otherwise unsets it.
    pub env: Vec<String>,
    /// `-w`: the working directory (absolute).
    pub workdir: Option<String>,
    /// `-u user[:group]` or `uid[:gid]`, replacing the image's User.
    pub user: Option<String>,
    /// The container's hostname; default: the first 12 characters of the container id.
    pub hostname: Option<String>,
    /// Allocate a terminal (`process.terminal`, adds `TERM=xterm`); off by default, stdio
    /// passes through. runc then needs a controlling terminal (it opens `/dev/tty`; without
    /// one `runc run` fails with "open /dev/tty: no such device or address").
    pub tty: bool,
    /// Mount the root filesystem read-only (`root.readonly`); mounts stay as they are.
    pub read_only: bool,
    /// `-v`, `--mount`, `--tmpfs`, in order.
    pub mounts: Vec<MountRequest>,
    /// `--network`.
    pub network: Network,
    /// `--cap-add` names (with or without `CAP_`, or `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop` names (with or without `CAP_`, or `ALL`).
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability, no seccomp filter, no masked or read-only paths,
    /// writable `/sys`, the host's devices.
    pub privileged: bool,
    /// `--security-opt seccomp=...`.
    pub seccomp: SeccompChoice,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
}

/// Errors from building, writing and running bundles.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Neither the image nor the options give a command.
    #[error(
        "no command specified: the image has no Entrypoint or Cmd; give a command after the image name"
    )]
    NoCommand,
    /// A user name not found in the image's `/etc/passwd`.
    #[error("unable to find user {name:?}: no matching entry in {}/etc/passwd", rootfs.display())]
    UnknownUser {
        /// The name asked for.
        name: String,
        /// The container's root filesystem.
        rootfs: PathBuf,
    },
    /// A group name not found in the image's `/etc/group`.
    #[error("unable to find group {name:?}: no matching entry in {}/etc/group", rootfs.display())]
    UnknownGroup {
        /// The name asked for.
        name: String,
        /// The container's root filesystem.
        rootfs: PathBuf,
    },
    /// A malformed `user[:group]`.
    #[error("invalid user {spec:?}: {reason}")]
    InvalidUser {
        /// The user string.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A relative `-w` directory.
    #[error("invalid working directory {dir:?}: it must be an absolute path")]
    InvalidWorkdir {
        /// The directory given.
        dir: String,
    },
    /// A container id the runtime would refuse.
    #[error("invalid container id {id:?}: use only letters, digits, '_', '+', '-' and '.'")]
    InvalidContainerId {
        /// The id given.
        id: String,
    },
    /// A file inside the rootfs (e.g. `/etc/passwd`) could not be read.
    #[error("cannot read {path} in the container root {}: {source}", rootfs.display())]
    ReadInRoot {
        /// The path inside the container.
        path: String,
        /// The container's root filesystem.
        rootfs: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A host filesystem or process operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "run the OCI runtime", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A flag value that `docker run` would refuse too.
    #[error("invalid {flag} {value:?}: {reason}")]
    InvalidFlag {
        /// The flag (`--volume`, `--mount`, ...).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A bind mount's host path is missing (`--mount`) or could not be created (`-v`).
    #[error("bind source path {}: {source}", path.display())]
    BindSource {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A mount point could not be resolved or created inside the container root.
    #[error("cannot create the mount point {target} inside the container root: {source}")]
    MountPoint {
        /// The target given.
        target: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A seccomp profile could not be read or understood.
    #[error("seccomp profile {}: {reason}", path.display())]
    SeccompProfile {
        /// The profile file (`<default>` for the built-in one).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// oci-spec refused a value while building the spec.
    #[error("cannot build the runtime config: {0}")]
    Spec(String),
    /// The spec could not be serialised.
    #[error("cannot serialise the runtime config: {0}")]
    Json(#[from] serde_json::Error),
    /// The OCI runtime binary was not found.
    #[error(
        "OCI runtime {runtime:?} not found (searched PATH and the sbin directories); install one, e.g. `apt-get install -y runc`, or give its full path"
    )]
    RuntimeNotFound {
        /// The name or path given.
        runtime: String,
    },
}

/// Capability sets are hash sets in oci-spec; sort them so `config.json` is stable.
fn sort_capabilities(value: &mut serde_json::Value) {
    let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    for set in caps.values_mut() {
        if let Some(list) = set.as_array_mut() {
            list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
}

/// Writes `<dir>/config.json` atomically (temporary file, fsync, rename, fsync of `dir`) with
/// mode 0600 (it may carry secrets from `-e`), creating `dir` if needed. Returns the path of
/// `config.json`.
pub fn write_bundle(dir: &Path, spec: &Spec) -> Result<PathBuf, BundleError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let mut value = serde_json::to_value(spec)?;
    sort_capabilities(&mut value);
    let mut bytes = serde_json::to_vec_pretty(&value)?;
    bytes.push(b'\n');

    let target = dir.join("config.json");
    // Synced: a container's bundle must not come back empty or torn after a crash.
    sys::atomic::write_file(&target, &bytes, 0o600, Durability::Sync).map_err(|e| {
        let action = match e.step {
            WriteStep::Create => "create",
            WriteStep::Write => "write",
            WriteStep::Chmod => "chmod",
            WriteStep::Sync | WriteStep::SyncDir => "sync",
            WriteStep::Rename => "rename into place",
        };
        io(action, &e.path)(e.source)
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_config_json_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundles/c1");
        let mut spec = Spec::default();
        spec.set_hostname(Some("h".into()));
        let path = write_bundle(&dir, &spec).unwrap();
        assert_eq!(path, dir.join("config.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
        assert!(text.contains("\"ociVersion\""));
        // Sorted capabilities: byte-identical output for equal specs.
        let again = write_bundle(&dir, &spec).unwrap();
        assert_eq!(std::fs::read_to_string(again).unwrap(), text);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["config.json"],
            "no temporary files or rootfs link left"
        );
        // An unwritable location is an Io error naming the path.
        std::fs::write(tmp.path().join("file"), "").unwrap();
        let err = write_bundle(&tmp.path().join("file/sub"), &spec).unwrap_err();
        assert!(matches!(err, BundleError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("file/sub"), "{err}");
    }
}
