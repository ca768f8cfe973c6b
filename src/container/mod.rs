//! Containers as objects: a [`Container`] is a store with one of its container records, and
//! carries the operations on it.
//!
//! - [`lifecycle`]: create on an image (and mount), open by name or id, list, mount, unmount,
//!   remove.
//! - [`view`]: what a container looks like now ([`ContainerView`], as `ps`/`inspect` show it).
//! - [`diff`]: what the container changed, as `docker diff` lists it.
//! - [`bundle`]: an OCI runtime bundle for the container, and running a runtime on it.
//! - [`error`]: what can go wrong, [`ContainerError`].
//!
//! The records and directories themselves are kept by the store ([`crate::store::ContainerRecord`],
//! [`crate::store::ContainerDirs`]); this module adds the mounts and the runtime.

pub mod bundle;
pub mod diff;
pub mod error;
pub mod lifecycle;
pub mod view;

pub use error::ContainerError;
pub use lifecycle::Container;
pub use view::ContainerView;
