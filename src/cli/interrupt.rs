//! SIGINT and SIGTERM during a command that downloads: the command's future is dropped, its
//! guards remove what it had begun (staging directories), and it fails with [`Interrupted`]
//! (exit 130 or 143). kill -9 stays the store recovery's job.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

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
