//! Kernel receive timestamps: when a frame reached the client's socket, not
//! when the load generator got round to reading it.
//!
//! At 1000 streams the generator itself needs about as much CPU per frame as
//! the server spends sending it, so a frame can sit in its socket for
//! milliseconds before its task runs: a user-space clock read then charges
//! the generator's own queueing to the server. With `SO_TIMESTAMPNS` the
//! kernel stamps each segment as it arrives (on loopback: inside the
//! server's `send`), and `recvmsg` hands the stamp of the newest segment
//! read over with the bytes. Both ends of a latency (the publisher's answer
//! and the stream's frame) are stamped this way, for both systems alike.
//!
//! With `sockopt`'s `setsockopt`, the only `unsafe` in the bench: `recvmsg`
//! with a control buffer, which neither std nor tokio expose.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;

use crate::stream::now_us;

/// Asks the kernel to stamp every segment `fd` receives.
fn enable(fd: RawFd) -> io::Result<()> {
    crate::sockopt::set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// `recvmsg` into `buf`; returns the byte count and the kernel's stamp of
/// the newest segment read (CLOCK_REALTIME, nanoseconds), if any.
fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<i128>)> {
    // u64s keep the control buffer aligned for `cmsghdr`.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed `msghdr` is its documented empty value.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>() as _;
    // SAFETY: `msg` points at `iov` (over `buf`) and `control`, all alive
    // and exclusively borrowed for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the kernel filled `msg_control`/`msg_controllen`; the CMSG
    // macros walk exactly that buffer.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

/// CLOCK_REALTIME (ns) at the bench's epoch: turns kernel stamps into
/// [`now_us`] microseconds.
fn realtime_at_epoch_ns() -> i128 {
    static AT: OnceLock<i128> = OnceLock::new();
    *AT.get_or_init(|| {
        let mono = i128::from(now_us()) * 1_000;
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        real - mono
    })
}

/// [`now_us`] microseconds as Unix microseconds (CLOCK_REALTIME).
pub fn unix_us(bench_us: u64) -> i64 {
    i64::try_from((i128::from(bench_us) * 1_000 + realtime_at_epoch_ns()) / 1_000).unwrap_or(0)
}

/// A kernel stamp in [`now_us`] microseconds.
fn to_bench_us(stamp_ns: i128) -> u64 {
    u64::try_from((stamp_ns - realtime_at_epoch_ns()) / 1_000).unwrap_or(0)
}

/// A connection read either plainly or with kernel receive stamps.
pub enum Reader {
    Plain(TcpStream),
    Stamped(AsyncFd<std::net::TcpStream>),
}

impl Reader {
    /// `stamped`: ask for kernel receive stamps (falls back to plain reads
    /// if the socket refuses).
    pub fn new(stream: TcpStream, stamped: bool) -> io::Result<Self> {
        if !stamped || enable(stream.as_raw_fd()).is_err() {
            return Ok(Self::Plain(stream));
        }
        realtime_at_epoch_ns();
        let std = stream.into_std()?;
        // SAFETY: the `AsyncFd` owns the socket, so the descriptor stays
        // open for as long as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(std, Interest::READABLE) }?;
        Ok(Self::Stamped(fd))
    }

    /// Reads into `buf`: the byte count and when the bytes arrived, in
    /// [`now_us`] microseconds (the kernel's stamp when there is one, else
    /// the time of the read).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<(usize, u64)> {
        match self {
            Self::Plain(s) => {
                let n = s.read(buf).await?;
                Ok((n, now_us()))
            }
            Self::Stamped(fd) => loop {
                let mut guard = fd.readable().await?;
                match recv_stamped(guard.get_inner().as_raw_fd(), buf) {
                    Ok((n, stamp)) => {
                        // A short read drained the socket: skip the EAGAIN
                        // round the next call would otherwise make.
                        if n < buf.len() {
                            guard.clear_ready();
                        }
                        let at = stamp.map(to_bench_us).unwrap_or_else(now_us);
                        return Ok((n, at));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                    Err(e) => return Err(e),
                }
            },
        }
    }

    /// Writes all of `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(s) => tokio::io::AsyncWriteExt::write_all(s, bytes).await,
            Self::Stamped(fd) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    // Requests are small: the socket takes them at once.
                    match io::Write::write(&mut fd.get_ref(), rest) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            tokio::time::sleep(std::time::Duration::from_micros(100)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kernel_stamps_are_taken_at_arrival_not_at_reading() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let mut reader = Reader::new(client, true).expect("reader");
        assert!(matches!(reader, Reader::Stamped(_)));
        // The kernel turns stamping on for the whole stack a moment after the
        // first socket asks (a deferred static key): segments before that
        // carry no stamp, and the reader falls back to its own clock. The
        // bench opens its streams long before it times anything.
        let mut buf = [0u8; 64];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            tokio::io::AsyncWriteExt::write_all(&mut server, b"warm")
                .await
                .expect("write");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let (n, at) = reader.read(&mut buf).await.expect("read");
            assert_eq!(&buf[..n], b"warm");
            if now_us() - at >= 10_000 || std::time::Instant::now() > deadline {
                break;
            }
        }
        let sent = now_us();
        tokio::io::AsyncWriteExt::write_all(&mut server, b"frame")
            .await
            .expect("write");
        // Read 30 ms later: the stamp still says when the bytes arrived.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let (n, at) = reader.read(&mut buf).await.expect("read");
        let read_at = now_us();
        assert_eq!(&buf[..n], b"frame");
        assert!(at + 1_000 >= sent, "stamped {at} before sending at {sent}");
        assert!(
            read_at - at >= 25_000,
            "stamped {at}, read {read_at}: not the arrival"
        );
    }
}
