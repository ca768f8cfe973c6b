//! Exit codes: 2 for usage errors (as clap's own), 128 + the signal for an interrupted
//! command, 1 for every other failure.

use std::process::ExitCode;

use strata::image::PlatformError;
use strata::reference::ReferenceError;

use super::interrupt::Interrupted;

/// A command line that asks for something impossible (a bad option value), beyond what clap
/// checks itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for a failed command: 2 for a usage error (a [`UsageError`], a malformed
/// reference or platform anywhere in the chain), 128 + the signal when [`Interrupted`], else 1.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if let Some(interrupted) = e.downcast_ref::<Interrupted>() {
        return interrupted.exit_code();
    }
    let usage = e.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<ReferenceError>()
            || matches!(
                cause.downcast_ref::<PlatformError>(),
                Some(PlatformError::Invalid { .. })
            )
    });
    if usage {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}
