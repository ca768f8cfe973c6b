//! Where a layer's content listing is kept: `overlay2/<chain hex>/content.gz`, in the layer's
//! directory, so that it is written in staging and appears and goes with the layer. The record
//! holds the listing's digest ([`LayerRecord::content_digest`]); the listing only serves to
//! name what changed (see [`crate::archive::TreeListing`]).
//!
//! [`LayerRecord::content_digest`]: crate::store::LayerRecord::content_digest

use std::fs;
use std::io;

use crate::archive::TreeListing;
use crate::id::ChainId;
use crate::store::{Staging, Store, StoreError, fsutil, io_err};

/// The listing's file name in a layer directory.
const LISTING: &str = "content.gz";

impl Staging {
    /// Saves the content listing of the layer being unpacked (before it is committed).
    pub fn put_listing(&self, listing: &TreeListing) -> Result<(), StoreError> {
        let path = self.path().join(LISTING);
        let bytes = listing.encode().map_err(io_err("compressing", &path))?;
        fsutil::write_atomic(&path, &bytes, 0o600)
    }
}

impl Store {
    /// The content listing saved with a layer; none when there is none or it cannot be read
    /// (the digest in the record still says whether the layer changed).
    pub fn layer_listing(&self, chain: &ChainId) -> Result<Option<TreeListing>, StoreError> {
        let path = self.layer_dir(chain).join(LISTING);
        match fs::read(&path) {
            Ok(bytes) => Ok(TreeListing::decode(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }
}
