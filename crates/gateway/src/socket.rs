//! A stream's socket on the lean path: the only way to write to it.
//!
//! [`Writer`] owns the socket's write half and the bytes accepted for it but
//! not yet written. There is one per stream and it is never shared: whoever
//! holds it may write, and the hub can write for a stream only while the
//! stream's task has handed it over (parked it in its sink, see
//! `hub::sink`). Dropping it sends FIN, so nothing can be written after the
//! end either.

use std::io;

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedWriteHalf;

/// Slices per vectored write (Linux takes up to 1024).
const MAX_IOV: usize = 512;

#[derive(Debug)]
pub struct Writer {
    half: OwnedWriteHalf,
    /// Accepted for the socket, not written yet, in order.
    pending: Vec<Bytes>,
}

impl Writer {
    pub fn new(half: OwnedWriteHalf) -> Self {
        Self {
            half,
            pending: Vec::new(),
        }
    }

    /// Whether bytes wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Appends `bytes` after everything pending.
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.pending.push(bytes);
        }
    }

    /// Writes as much as the socket takes without waiting: `Ok(true)` when
    /// nothing is left. The rest stays pending, exactly.
    pub fn try_flush(&mut self) -> io::Result<bool> {
        while !self.pending.is_empty() {
            let result = if self.pending.len() == 1 {
                self.half.try_write(&self.pending[0])
            } else {
                let slices: Vec<io::IoSlice<'_>> = self
                    .pending
                    .iter()
                    .take(MAX_IOV)
                    .map(|b| io::IoSlice::new(b))
                    .collect();
                self.half.try_write_vectored(&slices)
            };
            let written = match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        Ok(true)
    }

    /// Writes everything pending, waiting for the socket as long as it takes
    /// (a consumer that stopped reading waits here until it is cut off).
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.try_flush()? {
            self.half.writable().await?;
        }
        Ok(())
    }

    fn consume(&mut self, mut written: usize) {
        let mut done = 0;
        for b in &mut self.pending {
            if written >= b.len() {
                written -= b.len();
                done += 1;
            } else {
                b.advance(written);
                break;
            }
        }
        self.pending.drain(..done);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A socket that stops taking bytes mid-frame keeps exactly the rest, in
    /// order, and a later write finishes it: the peer reads every frame once.
    #[tokio::test]
    async fn partial_writes_keep_exactly_the_unwritten_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // Far more than the socket buffers hold, in odd sizes.
        let frames: Vec<Bytes> = (0..40_000u32)
            .map(|i| {
                Bytes::from(format!(
                    "id: {i}\ndata: {}\n\n",
                    "x".repeat((i % 97) as usize * 13)
                ))
            })
            .collect();
        let expected: Vec<u8> = frames.concat();
        let (_read, write) = client.into_split();
        let mut writer = Writer::new(write);
        for f in frames {
            writer.push(f);
        }
        assert!(!writer.try_flush().unwrap(), "the socket filled up");
        assert!(writer.has_pending());
        let total = expected.len();
        let reader = tokio::spawn(async move {
            let mut got = Vec::with_capacity(total);
            let mut buf = vec![0u8; 64 * 1024];
            while got.len() < total {
                let n = server.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        writer.flush().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .unwrap()
            .unwrap();
        assert!(!writer.has_pending());
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
    }
}
