//! A bounded in-process pipe that moves a reader's bytes to another thread, so that one layer's
//! decompression and hashing run on one core while its files are created on the other (a pull
//! of a single big layer, and export, which applies layers one at a time).
//!
//! Buffers go back to the producer once read: no allocation per chunk, and at most
//! [`CHUNKS`] + 1 chunks of [`CHUNK`] bytes in flight.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

/// Bytes per chunk.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Chunks queued between the two threads.
pub(crate) const CHUNKS: usize = 8;

/// The sending half, for the producing thread.
pub(crate) struct PipeWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    gone: bool,
}

/// The receiving half: reads what the producer sent, then EOF once it is done.
pub(crate) struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

/// A new pipe: the writer for the producing thread, the reader for the consuming one.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(CHUNKS);
    let (recycle, recycled) = sync_channel(CHUNKS + 2);
    (
        PipeWriter {
            tx,
            recycled,
            gone: false,
        },
        PipeReader {
            rx,
            recycle,
            chunk: Vec::new(),
            pos: 0,
        },
    )
}

impl PipeWriter {
    /// Reads `src` to its end, sending what it reads while the reader is there. Once the
    /// reader has gone, the rest is still read (whoever wraps `src` may need all of it, e.g. to
    /// hash it) unless `stop` is set. A read error is sent on as well as returned.
    pub(crate) fn pump(mut self, src: &mut impl Read, stop: &AtomicBool) -> io::Result<()> {
        loop {
            let mut buf = match self.recycled.try_recv() {
                Ok(buf) => buf,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(CHUNK),
            };
            buf.resize(CHUNK, 0);
            let n = match read_some(src, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    if !self.gone {
                        let _ = self.tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    }
                    return Err(e);
                }
            };
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if !self.gone && self.tx.send(Ok(buf)).is_err() {
                self.gone = true;
            }
            if self.gone && stop.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }
}

/// Fills most of `buf` (decoders return little per call), stopping at EOF.
fn read_some(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() / 2 {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.chunk.len() {
            let done = std::mem::take(&mut self.chunk);
            if done.capacity() > 0 {
                let _ = self.recycle.try_send(done);
            }
            self.pos = 0;
            match self.rx.recv() {
                Ok(Ok(chunk)) => self.chunk = chunk,
                Ok(Err(e)) => return Err(e),
                // The producer is done (or gone: it reports that itself).
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn moves_every_byte_in_order() {
        let src = data(3 * CHUNK + 12345);
        let (w, mut r) = pipe();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let mut input = &src[..];
            let producer = s.spawn(move || w.pump(&mut input, &stop));
            let mut got = Vec::new();
            // Small reads, as a tar reader does for headers.
            let mut buf = [0u8; 700];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            producer.join().unwrap().unwrap();
            assert_eq!(got, src);
        });
    }

    #[test]
    fn a_reader_that_stops_early_still_lets_the_source_be_read_to_its_end() {
        let src = data(20 * CHUNK);
        let (w, mut r) = pipe();
        let stop = AtomicBool::new(false);
        let mut input = &src[..];
        std::thread::scope(|s| {
            let producer = s.spawn(|| w.pump(&mut input, &stop));
            let mut buf = [0u8; 10];
            r.read_exact(&mut buf).unwrap();
            drop(r);
            producer.join().unwrap().unwrap();
        });
        assert!(input.is_empty(), "the source was not read to its end");

        // With `stop`, the producer gives up instead.
        let (w, r) = pipe();
        let stop = AtomicBool::new(true);
        let mut input = &src[..];
        drop(r);
        w.pump(&mut input, &stop).unwrap();
        assert!(!input.is_empty());
    }

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "corrupt deflate",
                ));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn read_errors_reach_both_ends() {
        let (w, mut r) = pipe();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let producer = s.spawn(|| w.pump(&mut Failing(CHUNK + 5), &stop));
            let mut got = Vec::new();
            let err = r.read_to_end(&mut got).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains("corrupt deflate"));
            assert!(got.iter().all(|&b| b == 1));
            let err = producer.join().unwrap().unwrap_err();
            assert_eq!(err.to_string(), "corrupt deflate");
        });
    }
}
