//! `strata load -i FILE`: the images of a `docker save`, `podman save` or OCI archive, each
//! pulled from the archive (read in place) into the store, as `docker load`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;

use strata::pull;
use strata::transport::archive_images;

use super::args::{Global, PullFlags};
use super::interrupt;
use super::progress;

/// `load` arguments.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive: docker-archive (`docker save`, `podman save`, legacy or OCI form) or
    /// oci-archive, uncompressed; read in place (stdin and compressed archives are not
    /// supported yet)
    #[arg(short, long, value_name = "FILE")]
    input: PathBuf,
    #[command(flatten)]
    flags: PullFlags,
}

/// Loads every image of the archive; prints `Loaded image: NAME` per name, as Docker.
pub fn load(g: &Global, args: &LoadArgs) -> Result<()> {
    let images = archive_images(&args.input)?;
    if images.is_empty() {
        bail!("{}: the archive holds no image", args.input.display());
    }
    let store = g.store()?;
    let options = g.pull_options(&args.flags)?;
    let client = g.client(&args.flags)?;
    for transport in images {
        let reference = transport.name()?;
        let source = Arc::new(transport.open(&client)?);
        let observer = progress::observer(g.quiet);
        let outcome = interrupt::block_on(pull::pull_from(
            source,
            &store,
            &reference,
            &options,
            observer.clone(),
        ));
        observer.finish();
        outcome??;
        println!("Loaded image: {}", reference.familiar());
    }
    Ok(())
}
