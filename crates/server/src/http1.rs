//! A connection's requests: HTTP/1.1 keep-alive requests served by a loop of Sluice's
//! own (read a request's head and its `Content-Length` body, answer it with
//! [`http::handle`], write the response in one write, repeat); anything the loop does
//! not take on (HTTP/2's preface, HTTP/1.0, `Transfer-Encoding`, `Expect`, `Upgrade`,
//! HEAD, a head it cannot parse, a body past the limit) hands the connection, with the
//! bytes already read, to hyper, which serves the rest of it.
//!
//! Why: against a fixed answer on this machine's loopback, a bare tokio task with such a
//! loop answered 161–163k requests/s at 5.5 µs of its threads' CPU a request, hyper's
//! HTTP/1 connection 120–125k at 8.9 µs. In Sluice the loop took an answer with no
//! service work behind it (the HTTP floor) from 109–113k to 117–124k requests/s, its
//! HTTP workers from 9.3–10.1 to 7.7–8.0 µs a request, and SendMessage's from 12.3 to
//! 11.4 µs a message (bench/README "Sluice's own HTTP/1.1 loop").

use crate::drain::Finish;
use crate::hangup::ClientSocket;
use crate::head::{HeaderPlace, Headers, RequestBody, RequestHead};
use crate::http::{self, ListenerState, Reply, MAX_BODY_BYTES};
use axum::body::Body;
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Headers a request may carry on the loop; a request with more goes to hyper (which
/// takes 100).
const MAX_HEADERS: usize = 64;
/// The longest head the loop reads before handing the connection to hyper, which
/// answers a head past its own limit (about 400 KB) with an error.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// What the read buffer grows by: a SendMessage of 1 KiB in one read.
const READ_CHUNK: usize = 8 * 1024;

type Serving<S> = Pin<Box<dyn Future<Output = Outcome<S>> + Send>>;

/// A connection's future: the loop, then hyper if the loop hands the connection over.
pub struct Connection<S> {
    stage: Stage<S>,
    fd: RawFd,
    listener: ListenerState,
    /// Set once the drain asks the connection to finish: the loop closes when idle,
    /// hyper is asked to finish.
    finishing: Arc<AtomicBool>,
}

enum Stage<S> {
    Loop(Serving<S>),
    Hyper(Pin<Box<dyn Finish<Output = ()> + Send>>),
    Done,
}

/// How the loop ended.
enum Outcome<S> {
    Closed,
    /// For hyper: the stream, and what was read from it and not yet served.
    HandOver(S, BytesMut),
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Serves `stream`, whose socket is `fd`, with the listener's state.
    pub fn new(stream: S, fd: RawFd, listener: ListenerState) -> Self {
        let finishing = Arc::new(AtomicBool::new(false));
        let serving = Box::pin(serve(stream, fd, listener.clone(), finishing.clone()));
        Connection { stage: Stage::Loop(serving), fd, listener, finishing }
    }
}

impl<S> Finish for Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn finish(mut self: Pin<&mut Self>) {
        self.finishing.store(true, Ordering::Release);
        if let Stage::Hyper(connection) = &mut self.stage {
            connection.as_mut().finish();
        }
    }
}

impl<S> Future for Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.stage {
                Stage::Loop(serving) => match serving.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Outcome::Closed) => self.stage = Stage::Done,
                    Poll::Ready(Outcome::HandOver(stream, read)) => {
                        let mut connection =
                            hyper_connection(Prefixed { read, stream }, self.fd, self.listener.clone());
                        if self.finishing.load(Ordering::Acquire) {
                            connection.as_mut().finish();
                        }
                        self.stage = Stage::Hyper(connection);
                    }
                },
                Stage::Hyper(connection) => {
                    return connection.as_mut().poll(cx);
                }
                Stage::Done => return Poll::Ready(()),
            }
        }
    }
}

/// The loop: requests until the client closes, a write fails, the drain finds it idle,
/// or a request it hands to hyper.
async fn serve<S>(mut stream: S, fd: RawFd, listener: ListenerState, finishing: Arc<AtomicBool>) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut read = BytesMut::new();
    let mut out = Vec::new();
    let mut places = Vec::new();
    loop {
        // The next request's head, read whole.
        let head = loop {
            match parse_head(&read, &mut places) {
                Head::Complete(head) => break head,
                Head::Unsupported => return Outcome::HandOver(stream, read),
                Head::Partial if read.len() >= MAX_HEAD_BYTES => return Outcome::HandOver(stream, read),
                Head::Partial => {}
            }
            read.reserve(READ_CHUNK);
            let idle = read.is_empty();
            let n = tokio::select! {
                biased;
                // Between requests only: one begun is read and answered first.
                () = asked_to_finish(&finishing), if idle => return Outcome::Closed,
                n = stream.read_buf(&mut read) => n,
            };
            match n {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        };
        if head.content_length > MAX_BODY_BYTES {
            return Outcome::HandOver(stream, read);
        }
        while read.len() < head.length + head.content_length {
            read.reserve(head.length + head.content_length - read.len());
            match stream.read_buf(&mut read).await {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        }
        let head_bytes = read.split_to(head.length).freeze();
        let body = RequestBody::Whole(read.split_to(head.content_length).freeze());
        let Some(request) = head.request_head(&places, head_bytes) else { return Outcome::Closed };
        let reply = http::handle(listener.clone(), ClientSocket::http1(fd), request, body).await;
        out.clear();
        if write_response(reply, &mut out, &mut stream).await.is_err() || head.close {
            return Outcome::Closed;
        }
        if finishing.load(Ordering::Acquire) && read.is_empty() {
            return Outcome::Closed;
        }
    }
}

/// Resolves once the drain has asked the connection to finish: the connection's future
/// is polled right after the flag is set (`drain::Watched`).
fn asked_to_finish(finishing: &AtomicBool) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |_| if finishing.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending })
}

/// Where a request's head holds its parts, as offsets into its bytes.
struct ParsedHead {
    method: hyper::Method,
    path: (usize, usize),
    /// Bytes of the head, through its blank line.
    length: usize,
    content_length: usize,
    /// `Connection: close`: the connection ends after the response.
    close: bool,
}

impl ParsedHead {
    /// The request's head, on the head's own bytes (the path and the headers are slices
    /// of them, not copies). `None` only for a path httparse took and `http` refuses,
    /// which their rules rule out.
    fn request_head(&self, headers: &[HeaderPlace], head: bytes::Bytes) -> Option<RequestHead> {
        let uri = hyper::Uri::from_maybe_shared(head.slice(self.path.0..self.path.1)).ok()?;
        Some(RequestHead { method: self.method.clone(), uri, headers: Headers::Raw { head, places: headers.into() } })
    }
}

enum Head {
    Complete(ParsedHead),
    Partial,
    /// Not one for the loop: hyper takes the connection.
    Unsupported,
}

/// Parses the head at the start of `bytes`, noting where its headers are in `places`.
fn parse_head(bytes: &[u8], places: &mut Vec<HeaderPlace>) -> Head {
    if bytes.is_empty() {
        return Head::Partial;
    }
    // Left uninitialised: httparse writes the ones it parses. Zeroing 2 KiB a parse, and
    // parsing the empty buffer each request starts from, were 250 of 34,800 instructions
    // a SendMessage (`bench/callgrind.sh`).
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match parsed.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Head::Partial,
        // HTTP/2's preface, too many headers, or a malformed head: hyper answers each.
        Err(_) => return Head::Unsupported,
    };
    let (Some(method), Some(path), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Head::Unsupported;
    };
    let Ok(method) = hyper::Method::from_bytes(method.as_bytes()) else { return Head::Unsupported };
    if method == hyper::Method::HEAD || method == hyper::Method::CONNECT {
        return Head::Unsupported;
    }
    let offset = |part: &[u8]| part.as_ptr() as usize - bytes.as_ptr() as usize;
    let mut head = ParsedHead {
        method,
        path: (offset(path.as_bytes()), offset(path.as_bytes()) + path.len()),
        length,
        content_length: 0,
        close: false,
    };
    let mut content_length = None;
    places.clear();
    for header in parsed.headers.iter() {
        let (name, value) = (header.name.as_bytes(), header.value);
        places.push((offset(name), offset(name) + name.len(), offset(value), offset(value) + value.len()));
        if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Head::Unsupported;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Digits only, as hyper reads it (`parse` would also take a leading `+`).
            let digits = value.trim_ascii();
            let length = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(digits).ok()?.parse::<usize>().ok())
                .flatten();
            match (length, content_length) {
                (Some(length), None) => content_length = Some(length),
                // Unreadable, or two of them: hyper refuses the request.
                _ => return Head::Unsupported,
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Head::Unsupported;
                }
            }
        }
    }
    head.content_length = content_length.unwrap_or(0);
    Head::Complete(head)
}

/// Writes `reply` to `stream` through `out`: the head, then a body of known length in
/// the same write, or a streamed body chunk by chunk.
async fn write_response<S: AsyncWrite + Unpin>(reply: Reply, out: &mut Vec<u8>, stream: &mut S) -> std::io::Result<()> {
    let response = match reply {
        // The fields `Reply::into_response` gives hyper, in the order the arm below
        // writes a built response's.
        Reply::Json { body, content_type, id } => {
            use std::io::Write as _;
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            for (name, value) in
                [(hyper::header::CONTENT_TYPE.as_str(), content_type), (http::REQUEST_ID.as_str(), id.as_str())]
            {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"date: ");
            http_date(out);
            // Writing into a Vec does not fail.
            let _ = write!(out, "\r\ncontent-length: {}\r\n\r\n", body.len());
            out.extend_from_slice(&body);
            return stream.write_all(out).await;
        }
        Reply::Built(response) => response,
    };
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == hyper::header::CONTENT_LENGTH || name == hyper::header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(hyper::header::DATE) {
        out.extend_from_slice(b"date: ");
        http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    match body.size_hint().exact() {
        Some(length) => {
            use std::io::Write as _;
            // Writing into a Vec does not fail.
            let _ = write!(out, "content-length: {length}\r\n\r\n");
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(std::io::Error::other)?;
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            stream.write_all(out).await
        }
        None => {
            // A stream (Kinesis's SubscribeToShard over HTTP/1.1): chunked.
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            stream.write_all(out).await?;
            stream.flush().await?;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(std::io::Error::other)?;
                let Ok(data) = frame.into_data() else { continue };
                if data.is_empty() {
                    continue;
                }
                out.clear();
                use std::io::Write as _;
                let _ = write!(out, "{:x}\r\n", data.len());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
                stream.write_all(out).await?;
                stream.flush().await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
            stream.flush().await
        }
    }
}

/// Today's `Date` header value, formatted once a second per thread.
fn http_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let second = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

pin_project_lite::pin_project! {
    struct HyperConnection<C> {
        #[pin]
        connection: C,
    }
}

impl<C: hyper_util::server::graceful::GracefulConnection> Future for HyperConnection<C> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().connection.poll(cx).map(drop)
    }
}

/// hyper's connection, asked to finish by its graceful shutdown.
impl<C: hyper_util::server::graceful::GracefulConnection> Finish for HyperConnection<C> {
    fn finish(self: Pin<&mut Self>) {
        self.project().connection.graceful_shutdown();
    }
}

/// The rest of the connection served by hyper: HTTP/1.1 or HTTP/2 (by its preface).
fn hyper_connection<S>(
    stream: Prefixed<S>,
    fd: RawFd,
    listener: ListenerState,
) -> Pin<Box<dyn Finish<Output = ()> + Send>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // `map`, not an async block holding `handle`'s future: hyper keeps one allocation of
    // this future's size per connection, and a block would hold it twice.
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        use futures_util::FutureExt;
        let client = match request.version() {
            hyper::Version::HTTP_2 => ClientSocket::unwatched(),
            _ => ClientSocket::http1(fd),
        };
        let (parts, body) = request.into_parts();
        let head = RequestHead { method: parts.method, uri: parts.uri, headers: Headers::Map(parts.headers) };
        let body = RequestBody::Streaming(Body::new(body));
        http::handle(listener.clone(), client, head, body)
            .map(|reply| Ok::<_, std::convert::Infallible>(reply.into_response()))
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // hyper otherwise reads a connection while its request is answered, to notice the
    // client close: each such read reserved a fresh 8 KiB buffer, as the request's bytes
    // still shared the last one (`bench/callgrind.sh 20000 sqs-send`: 47,116 → 45,501
    // instructions a message). A client that half-closes after its request is answered
    // now, and a waiting long poll checks for its client's close itself (`crate::hangup`).
    builder.http1().half_close(true);
    let connection = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
    Box::pin(HyperConnection { connection: connection.into_owned() })
}

/// A stream whose first bytes were already read: those, then the stream's own.
struct Prefixed<S> {
    read: BytesMut,
    stream: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
