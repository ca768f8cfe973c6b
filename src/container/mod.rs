//! Containers as objects: a [`Container`] is a store with one of its container records, and
//! carries the operations on it.
//!
//! - [`lifecycle`]: create on an image (and mount), open by name or id, list, mount, unmount,
//!   remove.
//! - [`view`]: what a container looks like now ([`ContainerView`], as `ps`/`inspect` show it).
//! - [`diff`]: what the container changed, as `docker diff` lists it.
//! - [`bundle`]: an OCI runtime bundle for the container, and running a runtime on it.
//! - [`command`]: the container's command looked up in its rootfs before it runs (Docker's
//!   exit codes 126 and 127).
//! - [`supervise`]: a foreground run: signals proxied, stop timeout, time limit.
//! - [`state`]: created, running or exited, recorded across processes and checked with the
//!   runtime.
//! - [`control`]: `stop` and `kill` of a container another process runs.
//! - [`error`]: what can go wrong, [`ContainerError`].
//!
//! The records and directories themselves are kept by the store ([`crate::store::ContainerRecord`],
//! [`crate::store::ContainerDirs`]); this module adds the mounts and the runtime.

pub mod bundle;
pub mod command;
pub mod control;
pub mod diff;
pub mod error;
pub mod lifecycle;
pub mod state;
pub mod supervise;
pub mod view;

pub use error::ContainerError;
pub use lifecycle::Container;
pub use state::{RunState, Status};
pub use supervise::{RunOutcome, RunSignals, Supervision};
pub use view::ContainerView;
