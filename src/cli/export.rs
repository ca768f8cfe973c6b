//! `export`: an image's root filesystem as a plain directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;

use strata::export::{self, ExportOutcome};
use strata::image::Platform;
use strata::pull::{self, PullPolicy};
use strata::reference::Reference;
use strata::store::{ImageRecord, Store};
use strata::transport::Transport;

use super::args::{Global, PullArg, PullFlags};
use super::interrupt;
use super::{progress, units};

/// The long help of `export`.
pub const LONG_ABOUT: &str = "\
Write an image's root filesystem into a new directory, flattened: the layers are applied bottom \
first, whiteouts by deletion and opaque directories by clearing. The result equals the image's \
merged view (without a container's init files).

From the registry (or a --mirror) every layer is streamed and verified (blob digest and size, \
diff_id) as by pull, without storing anything; no store and no mount are used, so no root is \
needed for images without device nodes (an image with device nodes fails clearly when not run \
as root). Unprivileged, every file is owned by the caller and xattrs the caller may not set \
(trusted.*, security.capability) are left out.

With --pull missing (the default) or never, an image already in the store (--root) is exported \
from its stored layers without network; that needs root (opaque directories are marked by \
trusted.* xattrs), so as another user the store is not looked at and --pull never fails.

DIR must not exist, or be an empty directory (which is replaced). The layers go into \
.<DIR name>.strata-export-<pid>-<n> next to it, renamed to DIR only when everything is done; on \
failure nothing is left. Progress goes to stderr, DIR (absolute) to stdout.";

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where the layers come from: the store when the image is there (never, missing), else
    /// the registry (missing, always); the registry's are not stored
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullArg,
    /// Image reference, e.g. alpine, alpine:3.20, host:5000/repo@sha256:...
    image: String,
    /// Directory to create (must not exist, or be empty)
    dir: PathBuf,
    #[command(flatten)]
    flags: PullFlags,
}

/// `strata export IMAGE DIR`: progress on stderr, the directory on stdout. The store is only
/// opened when it exists and may be used (root, `--pull` not `always`): a non-root user may
/// have none.
pub fn export(g: &Global, args: &ExportArgs) -> Result<()> {
    let transport = Transport::parse(&args.image)?;
    let reference = transport.name()?;
    let policy = PullPolicy::from(args.pull);
    let options = g.pull_options(&args.flags)?;
    let stored = if policy == PullPolicy::Always {
        None
    } else {
        stored_image(g, &reference, policy, &options.platform)?
    };
    let outcome = match stored {
        Some((store, image)) => {
            let outcome = interrupt::run_cancellable(|cancel| {
                export::export_stored(&store, &reference, &image, &args.dir, &options, cancel)
            })??;
            if !g.quiet {
                eprintln!("Exported from the store (image {})", image.id);
            }
            outcome
        }
        None => {
            let source = Arc::new(transport.open(&g.client(&args.flags)?)?);
            let observer = progress::observer(g.quiet);
            let outcome = interrupt::block_on(export::export_from(
                source,
                &reference,
                &options,
                &args.dir,
                observer.clone(),
            ));
            observer.finish();
            if outcome.is_err() {
                // A layer thread may have written on after the export's guard removed its
                // staging directory.
                export::remove_own_staging(&args.dir);
            }
            let outcome = outcome??;
            if !g.quiet {
                eprintln!("Digest: {}", outcome.digest);
            }
            outcome
        }
    };
    report(g, &reference, &outcome);
    Ok(())
}

/// The stored image for `reference` when the store may be used and has it whole; `--pull
/// never` without it is an error.
fn stored_image(
    g: &Global,
    reference: &Reference,
    policy: PullPolicy,
    platform: &Platform,
) -> Result<Option<(Store, ImageRecord)>> {
    let root = g.root_dir()?;
    let never = policy == PullPolicy::Never;
    if !rustix::process::geteuid().is_root() {
        if never {
            bail!(
                "exporting {reference} from the store needs root (opaque directories are marked \
                 by trusted.* xattrs); use --pull missing or always to export from the registry"
            );
        }
        return Ok(None);
    }
    let image = if is_store(&root) {
        let store =
            Store::open(&root).with_context(|| format!("opening store {}", root.display()))?;
        pull::present_image(&store, reference, platform)?.map(|image| (store, image))
    } else {
        None
    };
    if image.is_none() && never {
        bail!(
            "image {reference} is not in the store {} and --pull is \"never\"",
            root.display()
        );
    }
    Ok(image)
}

/// Whether `root` holds a store already (export never creates one).
fn is_store(root: &Path) -> bool {
    root.join("overlay2").is_dir() && root.join("layers").is_dir()
}

fn report(g: &Global, reference: &Reference, outcome: &ExportOutcome) {
    if !g.quiet {
        eprintln!(
            "Status: Exported {reference} ({}, {}) to {}",
            units::count(outcome.layers as u64, "layer", "layers"),
            units::count(outcome.entries, "entry", "entries"),
            outcome.target.display()
        );
    }
    println!("{}", outcome.target.display());
}
