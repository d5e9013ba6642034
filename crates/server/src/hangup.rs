//! Whether a waiting long poll's client is still there.
//!
//! HTTP/1 connections are not read while their request is being answered: Sluice's own
//! loop (`crate::http1`) reads the next request only after answering this one, and
//! hyper, which serves what the loop hands over, runs with `half_close` on. hyper used
//! to read a connection during its request, to notice a client that went away: a read
//! that reserved a fresh 8 KiB buffer for every request, since the request's own bytes
//! still shared the last one. Only a long poll waits long enough for a closed connection
//! to matter: whatever it took for a client that has gone would be in flight to nobody
//! until its visibility timeout. So a waiting poll looks at its socket itself each time
//! it is about to take messages.

use std::os::fd::RawFd;

/// The socket a request came in on, when a waiting poll may look at it: HTTP/1 only (see
/// [`ClientSocket::is_open`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientSocket(Option<RawFd>);

impl ClientSocket {
    /// The socket of an HTTP/1 connection, `fd`, for requests served on it.
    pub fn http1(fd: RawFd) -> ClientSocket {
        ClientSocket(Some(fd))
    }

    /// None to look at: HTTP/2, whose streams hyper answers on tasks of their own.
    pub fn unwatched() -> ClientSocket {
        ClientSocket(None)
    }

    /// False once the client has closed its side of the connection (or reset it); true
    /// while it is open, has bytes waiting (a pipelined request), or is not looked at.
    ///
    /// Call only while handling a request that came on this socket.
    pub fn is_open(self) -> bool {
        let Some(fd) = self.0 else { return true };
        let mut byte = 0u8;
        // SAFETY: `fd` is the socket of the HTTP/1 connection this request came on
        // (`app::serve_stream`), and this runs while that request is handled. Both
        // `http1`'s loop and hyper poll an HTTP/1 request's handling inside the
        // connection's own future, which owns the socket (it is not spawned apart, as
        // HTTP/2 streams are, which is why those are never looked at), so the descriptor
        // is open and still this socket. `recv` with MSG_PEEK writes at most the one byte
        // it is given room for, and takes nothing from the socket; MSG_DONTWAIT keeps it
        // from blocking.
        let n = unsafe { libc::recv(fd, (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        match n {
            0 => false,
            n if n > 0 => true,
            _ => {
                let error = std::io::Error::last_os_error().kind();
                matches!(error, std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted)
            }
        }
    }
}
