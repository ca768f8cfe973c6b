//! Applying one layer tar stream to one directory, confined to it, in Docker's overlay2 format.
//!
//! [`apply_layer`] reads members with its own streaming tar reader (`reader`: headers, PAX
//! records, GNU long names and sparse maps, framed as Go's archive/tar frames them, so that
//! strata finds the members Docker, containerd and umoci find) and does all filesystem work
//! itself through confined `*at()` calls relative to a directory fd of the destination (see
//! `fsops`): no member name, link target or symlink can make it touch anything outside the
//! destination, and the final component of a name is never followed.
//!
//! Where things are: `reader`, `meta`, `pax` and `data` read a member (framing, metadata, PAX
//! values, file data); `apply` applies it, one member loop generic over the two modes
//! (`apply::overlay`, `apply::flatten`); `fsops` and `path` do the confined filesystem work;
//! `whiteout` and `overlay_xattr` name the overlay2 conventions; `copy_up` gives implicit
//! directories their lower layers' metadata; `diff` writes a layer directory back as a tar.
//!
//! Conversions and choices, in short:
//! - Names: leading `/` and `./` stripped, `//` and `.` collapsed, `..` refused; `.` is the
//!   destination itself and may only be a directory.
//! - `DIR/.wh..wh..opq` sets `trusted.overlay.opaque=y` (`user.overlay.opaque` with
//!   [`ApplyOptions::userxattr`]) on DIR; `DIR/.wh.NAME` becomes a 0/0 character device NAME
//!   owned by the whiteout's uid/gid. As in the OCI spec, whiteouts and markers hide the lower
//!   layers' content only, whatever their position in the layer, never the layer's own
//!   entries: a later member named NAME replaces the device (also when NAME is only an
//!   implicit parent), and no device is made when NAME exists (the destination starts empty,
//!   so this layer made it). Since later members may replace what a whiteout or marker applied
//!   to, all of them are applied once more at the end of the layer, against what it then
//!   holds: the DIR of a marker, if still a directory, is opaque; a NAME that is a directory of
//!   the layer is made opaque too (the lower NAME is deleted, so none of its content may show
//!   through the layer's directory); a missing NAME in a directory gets its device (back).
//!   Whiteouts and markers below a symlink or a non-directory are ignored: that replaces the
//!   lower directory whole, so there is nothing to hide, and nothing is ever created or
//!   deleted through a symlink.
//! - Regular files: 4 KiB blocks (aligned in the file) of zeros are left as holes instead of
//!   being written (Docker writes them). Reading gives the same bytes; only the disk use
//!   differs, which keeps a decompression bomb (gigabytes of zeros from a few megabytes of
//!   gzip) from filling the disk.
//! - Paths longer than PATH_MAX (4096 bytes) are resolved one component at a time (the
//!   kernel refuses them whole), with the same confinement.
//! - Symlinks from the layer resolve inside the destination, as in a container: with
//!   `var/run -> /run`, `var/run/app.pid` lands at `<dest>/run/app.pid` (and `run` is created
//!   when missing). Symlink loops and files used as directories are errors.
//! - Missing parent directories are created with mode 0755, owned by the applying process
//!   (root), with the current time, and reported in [`ApplyStats::implicit_dirs`]. The layer
//!   says nothing about them, but in an overlay mount the upper-most layer's attributes of a
//!   directory win, so those defaults would replace the lower layers' metadata of, say, `usr`
//!   in the mounted view. When storing a layer, `pull` therefore gives each implicit directory
//!   the metadata (owner, mode including setuid/setgid/sticky, times, xattrs except the
//!   overlay ones) of the same directory in the nearest lower layer of the image that has it,
//!   found with overlay lookup semantics (no symlink followed; a whiteout, a non-directory or
//!   an opaque directory on the way ends the search). That is what overlay copy-up would
//!   give, and what flattening tools (umoci, containerd) keep of the existing directory, so
//!   the mounted view equals the flattened one; except that those tools leave the time of
//!   unpacking as the mtime of a directory they had to create something in (not always for
//!   umoci), where strata keeps the lower layer's, deterministically. A directory no lower
//!   layer has keeps the defaults. The layer waits, before it is committed, until the layers
//!   below it are in the store. Layers built by Docker list their parents, so this is rare
//!   and costs nothing otherwise.
//! - A later member replaces an earlier one of the same name (a directory over a directory only
//!   updates its metadata); replaced directories are removed with their tree. A directory that
//!   replaces a non-directory is made opaque: members apply in order (the OCI spec's
//!   "changeset over existing files"), so the non-directory replaced the lower layers' path
//!   whole and nothing of it may show through the new directory, as in flatten mode and
//!   umoci (Docker only replaces the member, and the lower directory shows through).
//! - Metadata: owner (only with [`ApplyOptions::same_owner`]), then mode including
//!   setuid/setgid/sticky (after chown, which clears them), then `SCHILY.xattr.*` (after chown,
//!   which clears `security.capability`), then times. Directory modes and times are applied at
//!   the very end, deepest first, so that restrictive modes cannot block extraction and children
//!   cannot change their parents' mtimes. Xattrs in the overlay namespaces are never taken from
//!   a layer. Hardlinks take their target's metadata (their own headers are ignored, as GNU tar
//!   does, so that a link header cannot change the shared inode). Symlinks get no xattrs.
//! - An xattr the filesystem does not support is skipped, as Docker does; so is one the process
//!   may not set when `same_owner` is off (unprivileged); so are device nodes it may not create.
//! - Refused, so that strata never reads a layer differently from Go's archive/tar (Docker):
//!   malformed or duplicated PAX records, a GNU long name and a PAX path (or long link and PAX
//!   linkpath) for one member, two extension headers of a kind for one member, extension data
//!   over 1 MiB, data on header-only members (directories, links, devices, fifos), unknown
//!   member types. PAX record values may hold any byte (binary xattrs with newlines). PAX
//!   (0.0, 0.1, 1.0) and old GNU sparse files are supported and stay sparse.
//!
//! # Flatten mode
//!
//! With [`ApplyOptions::flatten`] a layer is applied on top of a directory that already holds
//! the layers below it (as `umoci unpack` and containerd do), for `strata export`; the result
//! of applying every layer bottom first is the image's merged view. [`Flattener`] drives that.
//! What changes:
//! - `DIR/.wh.NAME` removes NAME (with its tree) and `DIR/.wh..wh..opq` removes everything
//!   below DIR, except what this layer itself created: a layer's own entries win over its
//!   whiteouts and markers in any order, as in overlay mode. A whiteout of a directory this
//!   layer created therefore removes what is below it that the layer did not create (the
//!   lower directory is deleted; overlay mode makes the layer's directory opaque). Both are carried out at the end
//!   of the layer (before directory metadata), when everything the layer creates is known.
//!   "Created" means by real path (symlinks resolved), including the ancestors of what was
//!   created, the parents of whiteouts and the directories of opaque markers (overlay mode
//!   makes all of those directories of the layer, so an overlay mount shows the same). An
//!   opaque marker clears recursively: below a kept directory, what this layer did not create
//!   goes too, as an overlay mount hides it. Nothing is created for a whiteout, nothing is
//!   ever removed through a symlink (a whiteout or marker whose DIR goes through one, or is not
//!   a directory, is ignored), and no overlay xattr is set.
//! - Replacing removes what is there, which may come from a lower layer; a directory over a
//!   directory keeps the contents but takes the member's metadata, xattrs included (the lower
//!   directory's xattrs are cleared as far as the process may, as umoci does and as the upper
//!   directory of an overlay mount shows).
//! - Hardlinks may point at files of lower layers (confined like everything else).
//! - Parents resolve through symlinks of lower layers too (inside the destination), as umoci
//!   and containerd do: with `var/run -> /run` from below, `var/run/x` lands at `run/x`. (An
//!   overlay mount of a layer whose tar has `var/run/x` but not its own `var/run` shows a
//!   directory `var/run` there instead; Docker's layers carry their parent directories.)
//! - Device nodes that cannot be created (unprivileged) are an error naming the member rather
//!   than skipped: an export must not silently lack a device.
//! - Directory modes are always set (the directory may come from a lower layer).

mod apply;
mod content;
mod copy_up;
mod data;
mod error;
mod fsops;
pub mod layer_tar;
mod meta;
mod options;
pub(crate) mod overlay_xattr;
mod path;
mod pax;
mod reader;
mod whiteout;
mod writeback;

#[cfg(test)]
mod tests;

use std::io;

pub use apply::Flattener;
pub use content::{Change, ChangeKind, FileHashes, TreeListing};
pub(crate) use copy_up::copy_up;
pub use error::ArchiveError;
pub use options::{ApplyOptions, ApplyStats};

/// Applies the tar stream `reader` to the existing directory `dest`, which must be empty unless
/// [`ApplyOptions::flatten`] is set (then it holds the lower layers). Reads entries until the
/// end-of-archive marker (or a clean EOF at a header boundary, which is legal) and returns; it
/// does NOT drain trailing bytes (the caller drains and hashes the rest).
pub fn apply_layer<R: io::Read>(
    reader: R,
    dest: &std::path::Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ArchiveError> {
    if opts.flatten {
        apply::flatten::apply(reader, dest, opts, None)
    } else {
        apply::overlay::apply(reader, dest, opts)
    }
}

/// Writes a layer directory in overlay2 format (what [`apply_layer`] makes of a layer) back as a
/// layer tar stream to `out`, as Docker's overlay2 differ does: whiteout devices become
/// `.wh.NAME` files, opaque directories get a `.wh..wh..opq` member, overlay xattrs are left
/// out, multiply-linked files are written once and then as hardlinks. With `root_entry` the
/// directory itself is written first as `./`. Nothing below `dir` is followed. Returns the
/// number of members written.
///
/// Reading `trusted.*` xattrs (opaque markers in the default namespace) needs root: without
/// it they are invisible and the opaque markers are lost.
pub fn write_layer_tar<W: io::Write>(
    dir: &std::path::Path,
    out: W,
    root_entry: bool,
) -> Result<u64, ArchiveError> {
    let options = layer_tar::Options {
        root_entry,
        skip: &[],
    };
    layer_tar::write(dir, out, &options)
        .map(|stats| stats.members)
        .map_err(|e| ArchiveError::Fs {
            path: e.path,
            op: e.op.to_string(),
            source: e.source,
        })
}
