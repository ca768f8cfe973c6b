//! `strata commit [-m MSG] [-c CHANGE ...] [--author A] CONTAINER [REPO[:TAG]]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use clap::Args;

use strata::commit::{self, CommitOptions};
use strata::container::Container;
use strata::reference::Reference;

use super::args::Global;
use super::interrupt;

/// `commit` arguments.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Commit message (the new history entry's comment)
    #[arg(short, long)]
    message: Option<String>,
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply a Dockerfile instruction to the image config: ENV, CMD, ENTRYPOINT, WORKDIR,
    /// USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL (repeatable)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// Container name or id
    container: String,
    /// Tag the new image with this reference (default: no tag, a dangling image)
    reference: Option<String>,
}

/// Sets the flag when dropped: the future holding it was dropped by an interrupt.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Commits the container's writable layer as a new image; prints `sha256:<id>` as Docker.
pub fn commit(g: &Global, args: &CommitArgs) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            "`strata commit` needs root: the writable layer holds files of any owner and \
             overlay's trusted.* xattrs, which only root can read"
        );
    }
    let tag = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let store = g.store()?;
    let container = Container::open(&store, &args.container)?;
    let cancel = Arc::new(AtomicBool::new(false));
    let options = CommitOptions {
        message: args.message.clone(),
        author: args.author.clone(),
        changes: args.change.clone(),
        tag,
        sync: true,
        cancel: Some(cancel.clone()),
    };
    let outcome = interrupt::block_on(async move {
        let _cancel = CancelOnDrop(cancel);
        tokio::task::spawn_blocking(move || commit::commit(&container, &options)).await
    })???;
    println!("{}", outcome.image.id);
    Ok(())
}
