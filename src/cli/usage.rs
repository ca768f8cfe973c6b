//! Exit codes: 2 for usage errors (as clap's own), 128 + the signal for an interrupted
//! command, 1 for every other failure.

use std::process::ExitCode;

use strata::image::PlatformError;
use strata::reference::ReferenceError;
use strata::transport::TransportError;

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
                cause.downcast_ref::<TransportError>(),
                Some(TransportError::NoDirectory(_))
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_are_2_interrupts_128_plus_the_signal_others_1() {
        let reference = strata::reference::Reference::parse("UPPER/x:y@z").unwrap_err();
        assert_eq!(
            exit_code(&anyhow::Error::from(reference).context("pulling")),
            ExitCode::from(2)
        );
        let transport = strata::transport::Transport::parse("docker://library/UPPER").unwrap_err();
        assert_eq!(
            exit_code(&anyhow::Error::from(transport)),
            ExitCode::from(2)
        );
        let usage = anyhow::Error::from(UsageError("--mirror".into()));
        assert_eq!(exit_code(&usage), ExitCode::from(2));
        let platform = strata::image::Platform::parse("linux/").unwrap_err();
        assert_eq!(
            exit_code(&anyhow::Error::from(platform).context("invalid --platform")),
            ExitCode::from(2)
        );
        let sigint = anyhow::Error::from(Interrupted {
            signal: libc::SIGINT,
        });
        assert_eq!(exit_code(&sigint), ExitCode::from(130));
        let sigterm = anyhow::Error::from(Interrupted {
            signal: libc::SIGTERM,
        });
        assert_eq!(exit_code(&sigterm), ExitCode::from(143));
        assert_eq!(sigterm.to_string(), "interrupted by SIGTERM");
        assert_eq!(
            exit_code(&anyhow::anyhow!("no such image")),
            ExitCode::FAILURE
        );
    }
}
