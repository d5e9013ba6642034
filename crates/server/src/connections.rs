//! A cap on open connections (`--max-connections`): past it the listener stops accepting,
//! so further clients wait in the kernel's backlog instead of costing memory here.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection that frees its slot when dropped.
pub struct Counted<S> {
    stream: S,
    slot: OwnedSemaphorePermit,
}

impl<S> Counted<S> {
    pub fn new(stream: S, slot: OwnedSemaphorePermit) -> Counted<S> {
        Counted { stream, slot }
    }

    /// The stream and its slot, to be counted again as another stream (the same socket
    /// moved to another runtime).
    pub fn into_parts(self) -> (S, OwnedSemaphorePermit) {
        (self.stream, self.slot)
    }
}

impl<S: std::os::fd::AsRawFd> std::os::fd::AsRawFd for Counted<S> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Waits for a free slot, then accepts one connection.
pub async fn accept(listener: &TcpListener, slots: &Arc<Semaphore>) -> (Counted<TcpStream>, std::net::SocketAddr) {
    let slot = slots.clone().acquire_owned().await.expect("the connection semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                return (Counted::new(stream, slot), addr);
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, as axum's own listener does.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The listen backlog asked for; Linux caps it at `net.core.somaxconn` (4096 by default
/// since 5.4). tokio's and std's `bind` ask for 128, which clients connecting faster than
/// the accept loop takes them (10,000 long pollers opening at once) overflowed, and each
/// SYN dropped was retried a second later: 1,500 connections one after another took
/// 6-8 s here, some 1 s each, against 0.05 s to a listener with a backlog of 1,024. The
/// backlog is also where clients wait past `--max-connections`.
const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as `bind` sets).
pub fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The HTTP listener, capped.
pub struct CappedListener {
    pub listener: TcpListener,
    pub slots: Arc<Semaphore>,
}
