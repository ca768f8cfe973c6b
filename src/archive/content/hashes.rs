//! The sha256 of each regular file the applier wrote, by inode.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest as _, Sha256};

/// The content hash of each regular file written while applying a layer, keyed by inode
/// number (a later file that reuses the inode of a replaced one replaces its entry).
#[derive(Clone, Default)]
pub struct FileHashes {
    by_inode: HashMap<u64, [u8; 32]>,
}

impl FileHashes {
    /// Records the hash of the file with inode `ino`.
    pub(crate) fn insert(&mut self, ino: u64, hash: [u8; 32]) {
        self.by_inode.insert(ino, hash);
    }

    /// The hash recorded for inode `ino`.
    pub(crate) fn get(&self, ino: u64) -> Option<&[u8; 32]> {
        self.by_inode.get(&ino)
    }

    /// How many files were hashed.
    pub fn len(&self) -> usize {
        self.by_inode.len()
    }

    /// Whether no file was hashed.
    pub fn is_empty(&self) -> bool {
        self.by_inode.is_empty()
    }
}

impl fmt::Debug for FileHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHashes({} files)", self.len())
    }
}

/// Feeds `n` zero bytes to `sha` (the holes of a sparse file read as zeros).
pub(crate) fn hash_zeros(sha: &mut Sha256, mut n: u64) {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    while n > 0 {
        let take = usize::try_from(n).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
        sha.update(&ZEROS[..take]);
        n -= take as u64;
    }
}
