//! Early writeback of written files, started on a thread of its own.
//!
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)` lets a file's pages go to disk while the rest of the
//! layer is unpacked, so the layer's `syncfs` has little left to wait for. But the call itself
//! blocks while the device queue is full or a journal commit runs (0.3 s seen on ext4 during
//! another layer's `syncfs`), and the thread that creates the files must not wait for that.
//! Files are handed to a helper thread instead; when it lags behind, files are skipped (the
//! hint is optional: `syncfs` writes them anyway).

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use super::fsops;

/// Files waiting for the helper (each holds an open descriptor).
const QUEUE: usize = 64;

/// Starts the writeback of files handed to it, off the caller's thread.
#[derive(Debug, Default)]
pub(crate) struct Writeback {
    helper: Option<Helper>,
    /// The helper thread could not be started: hints are skipped.
    failed: bool,
}

#[derive(Debug)]
struct Helper {
    tx: SyncSender<File>,
    /// Set once the layer is unpacked: what is still queued is only closed.
    closing: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Writeback {
    /// Starts writing `file`'s dirty pages to disk soon, without waiting for it here.
    pub(crate) fn submit(&mut self, file: File) {
        if self.helper.is_none() && !self.failed {
            self.helper = Helper::spawn();
            self.failed = self.helper.is_none();
        }
        if let Some(helper) = &self.helper {
            match helper.tx.try_send(file) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => self.failed = true,
            }
        }
    }
}

impl Helper {
    fn spawn() -> Option<Helper> {
        let (tx, rx) = sync_channel::<File>(QUEUE);
        let closing = Arc::new(AtomicBool::new(false));
        let stop = closing.clone();
        let thread = std::thread::Builder::new()
            .name("strata-writeback".into())
            .spawn(move || {
                for file in rx {
                    if !stop.load(Ordering::Acquire) {
                        fsops::start_writeback(&file);
                    }
                }
            })
            .ok()?;
        Some(Helper {
            tx,
            closing,
            thread,
        })
    }
}

impl Drop for Writeback {
    /// Closes the files still queued, without starting their writeback (the `syncfs` that
    /// follows, or the removal of a failed layer, need not wait for that), so no descriptor
    /// outlives the layer's unpacking.
    fn drop(&mut self) {
        if let Some(helper) = self.helper.take() {
            helper.closing.store(true, Ordering::Release);
            drop(helper.tx);
            let _ = helper.thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    /// Descriptors of this process open on files below `dir`.
    fn open_below(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    #[test]
    fn queued_files_are_closed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut wb = Writeback::default();
        for i in 0..QUEUE * 2 {
            let mut f = File::create(dir.path().join(i.to_string())).unwrap();
            f.write_all(&[7u8; 8192]).unwrap();
            wb.submit(f);
        }
        assert!(wb.helper.is_some(), "the helper thread started");
        drop(wb);
        assert_eq!(
            open_below(dir.path()),
            0,
            "no descriptor outlives the writeback"
        );
        for i in 0..QUEUE * 2 {
            assert_eq!(
                std::fs::read(dir.path().join(i.to_string())).unwrap(),
                [7u8; 8192]
            );
        }
    }
}
