//! The library without the command line: pulls an image into a store, creates and mounts a
//! container on it, writes an OCI runtime bundle for it and prints the paths.
//!
//! As root (mounting needs CAP_SYS_ADMIN):
//!
//! ```text
//! cargo run --example pull_mount_bundle -- alpine:3.20 /tmp/store /tmp/bundle
//! runc run --bundle /tmp/bundle demo
//! strata --root /tmp/store rm -f <container>
//! ```

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use strata::bundle::RunOptions;
use strata::container::Container;
use strata::pull::{self, PullOptions, Silent};
use strata::reference::Reference;
use strata::registry::{RegistryClient, RegistryConfig};
use strata::store::Store;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(image), Some(root), Some(bundle_dir)) = (args.next(), args.next(), args.next())
    else {
        return Err("usage: pull_mount_bundle REFERENCE STORE_DIR BUNDLE_DIR".into());
    };

    let reference = Reference::parse(&image)?;
    let store = Store::open(Path::new(&root))?;
    // Credentials from Docker's config.json, CAs from the certs.d dirs, no mirrors.
    let client = RegistryClient::new(RegistryConfig::default())?;
    let outcome = tokio::runtime::Runtime::new()?.block_on(pull::pull(
        &client,
        &store,
        &reference,
        &PullOptions::default(),
        Arc::new(Silent),
    ))?;

    let container = Container::create(&store, &outcome.image, &reference.to_string(), None)?;
    let config = container.write_bundle(Path::new(&bundle_dir), &RunOptions::default())?;

    println!("image      {} ({})", outcome.reference, outcome.image.id);
    println!("container  {}", container.name());
    println!("rootfs     {}", container.dirs()?.merged.display());
    println!("bundle     {}", config.display());
    Ok(())
}
