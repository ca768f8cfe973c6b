//! `strata tag SOURCE TARGET`.

use anyhow::{Result, bail};
use clap::Args;

use strata::pull::store_key;
use strata::reference::Reference;
use strata::store::{LeaseKind, Store};

/// `tag` arguments.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image: reference, image id or id prefix
    source: String,
    /// The new reference, REPOSITORY[:TAG]
    target: String,
}

/// Points TARGET at SOURCE's image (prints nothing, as Docker).
pub fn tag(store: &Store, args: &TagArgs) -> Result<()> {
    let target = Reference::parse(&args.target)?;
    if target.digest.is_some() {
        bail!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        );
    }
    let key = format!("{}:{}", target.repo_name(), target.tag_or_default());
    store.recover(false)?;
    // Shared: an rmi cannot remove the image between its lookup and the new tag.
    let _lease = store.lease(LeaseKind::Shared)?;
    let source = Reference::parse(&args.source).ok().map(|r| store_key(&r));
    let image = store.resolve_image(source.as_deref(), &args.source)?;
    store.tag(&key, &image.id)?;
    Ok(())
}
