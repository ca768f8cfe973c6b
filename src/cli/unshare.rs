//! Rootless commands in strata's user namespace: entering it before a command that uses the
//! store, `strata unshare [CMD...]` (as `podman unshare`), and the pause process's entry.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use strata::rootless::{self, Mode};

/// `strata unshare`'s arguments.
#[derive(Debug, Args)]
pub struct UnshareArgs {
    /// The command to run (default: $SHELL, else /bin/sh) and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// Runs the pause process when strata was started as one (see `strata::rootless::pause`).
pub fn pause_if_asked() -> Option<ExitCode> {
    if std::env::args_os().nth(1).as_deref() != Some(rootless::pause::PAUSE_ARG.as_ref()) {
        return None;
    }
    // stderr is /dev/null: the parent reports a pause process that exits.
    let _failed = rootless::pause::serve();
    Some(ExitCode::FAILURE)
}

/// Enters strata's user and mount namespaces before a command that uses the store, when the
/// process is rootless (its files have the image's owners, its mounts live there).
pub fn enter() -> Result<()> {
    rootless::enter().context("entering strata's rootless user namespace")?;
    Ok(())
}

/// `strata unshare [CMD...]`: runs CMD in the user and mount namespaces of the rootless
/// store, where its mounts are visible and its files have their image owners.
pub fn unshare(args: &UnshareArgs) -> Result<ExitCode> {
    let Mode::Rootless {
        uid,
        gid,
        inside: true,
    } = rootless::mode()
    else {
        bail!(
            "`strata unshare` is for rootless use: as root, strata's mounts are in the host's \
             mount namespace already"
        );
    };
    let (program, rest) = match args.command.split_first() {
        Some((program, rest)) => (program.clone(), rest.to_vec()),
        None => (
            std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into()),
            Vec::new(),
        ),
    };
    let e = std::process::Command::new(&program)
        .args(rest)
        .env(rootless::ROOTLESS_UID_ENV, uid.to_string())
        .env(rootless::ROOTLESS_GID_ENV, gid.to_string())
        .exec();
    Err(e).with_context(|| format!("running {}", program.to_string_lossy()))
}
