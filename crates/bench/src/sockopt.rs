//! `IP_BIND_ADDRESS_NO_PORT`: a socket bound to a source address picks its
//! port when it connects, not when it binds.
//!
//! A plain `bind(addr, 0)` must find a port free of every other socket on
//! it, and after a scenario of 10,000 streams tens of thousands of ports sit
//! in TIME_WAIT: `perf trace` on the load generator (2026-12-04) showed one
//! `bind` taking 2.0–3.3 ms in the replay scenario that follows the idle
//! one, most of the 3.6–4.3 ms it reported for each system's replay (the
//! servers' own part, SYN → last byte on the wire, was 0.5–0.9 ms for
//! Herald). With this option the kernel chooses the port at `connect` by the
//! whole address pair, as for an unbound socket, and may reuse a TIME_WAIT
//! one on the loopback (`tcp_tw_reuse`).
//!
//! Besides `stamp`, the only `unsafe` in the bench: one `setsockopt`, which
//! neither std, tokio nor socket2 expose.

#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;

/// Defers the choice of `socket`'s local port to its `connect`.
pub fn bind_address_no_port(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
