//! strata: pull OCI/Docker images from a registry into a Docker-style overlay2 store.
//!
//! Data flows one way: [`reference`](mod@reference) -> [`registry`] (manifests, blobs, read
//! with [`image`]) -> [`digest`] checks -> [`compression`] -> [`archive`] (confined tar apply) -> [`store`]
//! (overlay2 layout, metadata, locks). [`pull`] drives that flow; [`export`] drives the same
//! verified stream into one flattened directory instead of the store.

pub mod archive;
pub mod bundle;
pub mod commit;
pub mod compression;
pub mod config;
pub mod container;
pub mod digest;
pub mod export;
pub mod id;
pub mod image;
pub mod mount;
pub mod pipeline;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod rootless;
pub mod sink;
pub mod source;
pub mod store;
pub mod sys;
pub mod transport;
