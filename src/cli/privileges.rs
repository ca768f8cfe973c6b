//! Commands that mount need root, or a rootless strata in its user namespace (entered before
//! any command that uses the store): they say so before anything else (no download first).

use anyhow::{Result, bail};

/// Fails unless the process runs as root (on the host, or in a rootless strata's user
/// namespace): `command` mounts an overlay, which needs CAP_SYS_ADMIN. Checked first, so that
/// no image is downloaded in vain.
pub fn require_root(command: &str) -> Result<()> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    bail!(
        "`strata {command}` needs root: mounting an overlay needs CAP_SYS_ADMIN (run it with \
         sudo, or as a user with subordinate ids, rootless); without privileges use `strata \
         export` to unpack an image into a plain directory instead"
    )
}
