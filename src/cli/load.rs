//! `strata load [-i FILE]`: the images of a `docker save`, `podman save` or OCI archive, each
//! pulled from the archive into the store, as `docker load`. An uncompressed file is read in
//! place; stdin and compressed files are first copied once, decompressed, into an unnamed
//! temporary file in the store's `staging/` (their index comes after the layers).

use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use strata::source::{SpooledArchive, is_compressed, spool_archive};
use strata::store::Store;
use strata::transport::archive_images;

use super::args::{Global, PullFlags};
use super::images;
use super::usage::UsageError;

/// `load` arguments.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive (`-`: stdin, also the default when stdin is not a terminal):
    /// docker-archive (`docker save`, `podman save`, legacy or OCI form) or oci-archive,
    /// uncompressed or gzip-, zstd- or xz-compressed
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    #[command(flatten)]
    flags: PullFlags,
}

/// An archive ready to be read in place.
struct Archive {
    /// The path to read it at.
    path: PathBuf,
    /// What it is, for errors.
    what: String,
    /// The temporary copy behind `path`, kept open while loading (errors name it as the
    /// archive, not by its descriptor); `None`: read in place.
    _copy: Option<SpooledArchive>,
}

/// Loads every image of the archive; prints `Loaded image: NAME` per name, as Docker.
pub fn load(g: &Global, args: &LoadArgs) -> Result<()> {
    let store = g.store()?;
    let archive = open(&store, args.input.as_deref())?;
    // The library's errors name the archive (a spooled copy by its own name).
    let images = archive_images(&archive.path)?;
    if images.is_empty() {
        bail!("{}: the archive holds no image", archive.what);
    }
    let options = g.pull_options(&args.flags)?;
    let client = g.client(&args.flags)?;
    for transport in images {
        let reference = transport.name()?;
        let source = transport.open(&client)?;
        images::pull_with_progress(g.quiet, source, &store, &reference, &options)?;
        println!("Loaded image: {}", reference.familiar());
    }
    Ok(())
}

/// The archive `input` names (`None` or `-`: stdin), copied to the store's staging directory
/// if it cannot be read in place.
fn open(store: &Store, input: Option<&Path>) -> Result<Archive> {
    let from_stdin = match input {
        Some(path) => path == Path::new("-"),
        None if std::io::stdin().is_terminal() => {
            return Err(UsageError(
                "no archive: give -i FILE or pipe an archive into strata load".into(),
            )
            .into());
        }
        None => true,
    };
    let what = match input {
        Some(path) if !from_stdin => path.display().to_string(),
        _ => "stdin".to_string(),
    };
    let copy = if from_stdin {
        spool_archive(std::io::stdin(), Path::new("stdin"), &store.staging_dir())
            .context("copying the archive from stdin")?
    } else {
        let path = input.unwrap_or(Path::new("-"));
        if !is_compressed(path)? {
            return Ok(Archive {
                path: path.to_path_buf(),
                what: path.display().to_string(),
                _copy: None,
            });
        }
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        spool_archive(file, path, &store.staging_dir())
            .with_context(|| format!("decompressing {}", path.display()))?
    };
    // The copy has no name; it is read through its descriptor.
    Ok(Archive {
        path: copy.path().to_path_buf(),
        what,
        _copy: Some(copy),
    })
}
