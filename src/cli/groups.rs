//! The `image`, `container` and `system` command groups (Docker's management commands).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use strata::store::Store;

use super::df::{self, DfArgs};
use super::prune::{self, ContainerPruneArgs, PruneArgs};
use super::rmi::{self, RmiArgs};

/// `strata image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove images (as `rmi`)
    Rm(RmiArgs),
    /// Remove untagged images (-a: every image no container uses) and unused layers
    Prune(PruneArgs),
}

/// `strata container ...`.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Remove every container that is not mounted
    Prune(ContainerPruneArgs),
}

/// `strata system ...`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage: images (shared layers counted once) and containers (writable layers)
    Df(DfArgs),
    /// Remove containers that are not mounted, then images as `image prune`
    Prune(PruneArgs),
}

/// Runs an `image` subcommand.
pub fn image(store: &Store, command: &ImageCommand) -> Result<ExitCode> {
    match command {
        ImageCommand::Rm(args) => rmi::rmi(store, args),
        ImageCommand::Prune(args) => prune::image_prune(store, args).map(|()| ExitCode::SUCCESS),
    }
}

/// Runs a `container` subcommand.
pub fn container(store: &Store, command: &ContainerCommand) -> Result<ExitCode> {
    match command {
        ContainerCommand::Prune(args) => {
            prune::container_prune(store, args).map(|()| ExitCode::SUCCESS)
        }
    }
}

/// Runs a `system` subcommand.
pub fn system(store: &Store, command: &SystemCommand) -> Result<ExitCode> {
    match command {
        SystemCommand::Df(args) => df::df(store, args).map(|()| ExitCode::SUCCESS),
        SystemCommand::Prune(args) => prune::system_prune(store, args).map(|()| ExitCode::SUCCESS),
    }
}
