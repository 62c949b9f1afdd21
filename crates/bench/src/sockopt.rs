//! Socket options neither std, tokio nor socket2 0.6 expose: the bench's one
//! `setsockopt` (with `stamp`'s `recvmsg`, its only `unsafe`).
//!
//! # `IP_BIND_ADDRESS_NO_PORT`
//!
//! A socket bound to a source address picks its port when it connects, not
//! when it binds. A plain `bind(addr, 0)` must find a port free of every
//! other socket on it, and after a scenario of 10,000 streams tens of
//! thousands of ports sit in TIME_WAIT: `perf trace` on the load generator
//! (2026-12-04) showed one `bind` taking 2.0–3.3 ms in the replay scenario
//! that follows the idle one, most of the 3.6–4.3 ms it reported for each
//! system's replay (the servers' own part, SYN → last byte on the wire, was
//! 0.5–0.9 ms for Herald). With this option the kernel chooses the port at
//! `connect` by the whole address pair, as for an unbound socket, and may
//! reuse a TIME_WAIT one on the loopback (`tcp_tw_reuse`).

#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, RawFd};

/// Sets the int-valued option `level`/`name` of socket `fd` to `value`.
pub fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` lives across the call and is an int, the size given;
    // the kernel refuses a descriptor that is not a socket.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Defers the choice of `socket`'s local port to its `connect`.
pub fn bind_address_no_port(socket: &impl AsRawFd) -> io::Result<()> {
    set_int(
        socket.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        1,
    )
}
