//! SIGINT and SIGTERM during a command that downloads: the command's future is dropped, its
//! guards remove what it had begun (staging directories), and it fails with [`Interrupted`]
//! (exit 130 or 143). A blocking command ([`run_cancellable`]) gets a cancel flag instead,
//! which it checks as it goes. kill -9 stays the store recovery's job.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::{Context, Result};

use super::async_runtime::runtime;

/// A command stopped by a signal.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}", name(*.signal))]
pub struct Interrupted {
    /// The signal number.
    pub signal: i32,
}

impl Interrupted {
    /// The shell's code for a process ended by the signal: 128 + its number.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(u8::try_from(128 + self.signal).unwrap_or(1))
    }
}

/// The signal's name as shells show it.
fn name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".to_string(),
        libc::SIGTERM => "SIGTERM".to_string(),
        n => format!("signal {n}"),
    }
}

/// Runs `future` to completion on a new runtime unless SIGINT or SIGTERM comes first: then the
/// future is dropped and the runtime shut down, which waits for the blocking tasks still
/// writing (their guards remove their staging directories), and the result is
/// [`Interrupted`]. A second signal during that wait has its default effect.
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = runtime()?;
    let notify = Arc::new(tokio::sync::Notify::new());
    let caught = Arc::new(AtomicI32::new(0));
    let catcher = {
        let (notify, caught) = (notify.clone(), caught.clone());
        strata::sys::signals::catch(&[libc::SIGINT, libc::SIGTERM], move |signal| {
            caught.store(signal, Ordering::SeqCst);
            notify.notify_one();
        })
        .context("installing the signal handlers")?
    };
    let output = runtime.block_on(async {
        tokio::select! {
            output = future => Some(output),
            () = notify.notified() => None,
        }
    });
    // From here a second Ctrl-C ends the process at once (the store's recovery cleans up).
    drop(catcher);
    drop(runtime);
    output.ok_or_else(|| {
        Interrupted {
            signal: caught.load(Ordering::SeqCst),
        }
        .into()
    })
}

/// Runs the blocking `work` on this thread with a cancel flag that SIGINT or SIGTERM sets;
/// `work` checks it as it goes and stops with an error, having removed what it had begun. A
/// failure after a signal is [`Interrupted`]; work that completed anyway (the signal came too
/// late to stop it) keeps its result.
pub fn run_cancellable<T, E>(
    work: impl FnOnce(&AtomicBool) -> Result<T, E>,
) -> Result<Result<T, E>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let caught = Arc::new(AtomicI32::new(0));
    let catcher = {
        let (cancel, caught) = (cancel.clone(), caught.clone());
        strata::sys::signals::catch(&[libc::SIGINT, libc::SIGTERM], move |signal| {
            caught.store(signal, Ordering::SeqCst);
            cancel.store(true, Ordering::SeqCst);
        })
        .context("installing the signal handlers")?
    };
    let output = work(&cancel);
    drop(catcher);
    match caught.load(Ordering::SeqCst) {
        0 => Ok(output),
        _ if output.is_ok() => Ok(output),
        signal => Err(Interrupted { signal }.into()),
    }
}
