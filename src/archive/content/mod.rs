//! A layer's content digest: what `strata check --content` compares a layer directory with, to
//! find files changed, added or removed since it was unpacked.
//!
//! The digest is the sha256 of the layer's [`TreeListing`]: one line per path of the layer
//! directory, sorted by path bytes, with the type, mode (including setuid/setgid/sticky),
//! owner, then for a regular file its size and the sha256 of its bytes, for a symlink its
//! target, for a device its numbers, and every xattr the process can see (`trusted.*` needs
//! root). Whiteouts (0/0 character devices) and opaque markers (`trusted.overlay.opaque` or
//! `user.overlay.opaque`) are part of the layer and are listed as they are stored. Times and
//! link counts are not: overlayfs and the applier may set them differently for the same
//! content (implicit directories take their lower layers' times).
//!
//! Pulling costs no second pass over the data: with [`ApplyOptions::hash_files`] the applier
//! hashes each regular file's bytes while it writes them ([`FileHashes`], by inode, so that
//! hardlinks and replaced members come out right), and the listing is then made from the
//! committed tree's metadata alone ([`TreeListing::of_dir`] with those hashes). It is still a
//! sha256 pass over all file data, which is why it is opt-in. Checking walks the directory
//! again and reads every file.
//!
//! [`ApplyOptions::hash_files`]: crate::archive::ApplyOptions::hash_files

mod hashes;
mod listing;
mod walk;

pub use hashes::FileHashes;
pub(crate) use hashes::hash_zeros;
pub use listing::{Change, ChangeKind, TreeListing};
