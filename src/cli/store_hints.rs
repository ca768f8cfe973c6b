//! What to do about a store whose filesystem overlay2 cannot use, in terms of strata's
//! options and commands.

use strata::store::StoreError;

/// The hint for an unsupported store filesystem in `e`'s chain, to append to its message.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .find_map(|cause| match cause.downcast_ref::<StoreError>() {
            Some(StoreError::UnsupportedFilesystem { .. }) => Some(
                "; put the store on another filesystem (ext4, xfs with ftype=1, btrfs, a volume \
             when in a container) with --root, or use `strata export`, which needs no store"
                    .to_string(),
            ),
            _ => None,
        })
}
