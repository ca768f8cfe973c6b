//! A blocking `Read` over chunks sent from the async download task, so the
//! unpack thread streams the body without ever holding a whole layer.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Chunks in flight between download and unpack: enough to keep both busy, bounded for memory.
pub(crate) const CHANNEL_CHUNKS: usize = 16;

/// Reads the chunks of a channel in order; a sent error ends the stream with that error.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunks_in_order_then_error() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"hel"))).unwrap();
        tx.try_send(Ok(Bytes::new())).unwrap();
        tx.try_send(Ok(Bytes::from_static(b"lo"))).unwrap();
        tx.try_send(Err(io::Error::other("cut"))).unwrap();
        let mut r = ChannelReader::new(rx);
        let mut out = [0u8; 5];
        r.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"hello");
        assert_eq!(r.read(&mut out).unwrap_err().to_string(), "cut");
    }

    #[test]
    fn closed_channel_is_eof() {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(1);
        drop(tx);
        assert_eq!(ChannelReader::new(rx).read(&mut [0u8; 4]).unwrap(), 0);
    }
}
