//! A minimal HTTP/1.1 client for plain-TCP keep-alive connections: one write per request
//! and as few reads as the response needs. On two cores the generator's own cost decides
//! how much of the machine is left for the server, and a general client (hyper) spends
//! several more system calls per request.

use bytes::Bytes;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Plain {
    stream: TcpStream,
    request: Vec<u8>,
    /// Bytes read and not yet consumed.
    input: Vec<u8>,
}

/// A response: status, the `x-amzn-query-error` header if any, and the body.
pub struct Response {
    pub status: u16,
    pub query_error: Option<String>,
    pub body: Bytes,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Plain {
    pub fn new(stream: TcpStream) -> Plain {
        Plain { stream, request: Vec::with_capacity(4096), input: Vec::with_capacity(16 * 1024) }
    }

    /// POSTs `body` to `/` with `headers` (Content-Length is added) and reads the response.
    pub async fn post(&mut self, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Response> {
        self.request.clear();
        self.request.extend_from_slice(b"POST / HTTP/1.1\r\n");
        for (k, v) in headers {
            self.request.extend_from_slice(k.as_bytes());
            self.request.extend_from_slice(b": ");
            self.request.extend_from_slice(v.as_bytes());
            self.request.extend_from_slice(b"\r\n");
        }
        self.request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> io::Result<()> {
        // Into the spare capacity: zeroing 16 KiB per read was 5% of the generator's time.
        self.input.reserve(16 * 1024);
        let n = self.stream.read_buf(&mut self.input).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        Ok(())
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let (header_len, status, query_error, length, chunked) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.input).map_err(|_| invalid("malformed HTTP response"))? {
                httparse::Status::Complete(n) => {
                    let find = |name: &str| {
                        response
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let length = find("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                    let chunked = find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                    break (n, response.code.unwrap_or(0), find("x-amzn-query-error"), length, chunked);
                }
                httparse::Status::Partial => self.fill().await?,
            }
        };
        let body = if chunked {
            self.read_chunked(header_len).await?
        } else {
            let length = length.unwrap_or(0);
            while self.input.len() < header_len + length {
                self.fill().await?;
            }
            let body = Bytes::copy_from_slice(&self.input[header_len..header_len + length]);
            self.input.drain(..header_len + length);
            body
        };
        Ok(Response { status, query_error, body })
    }

    /// A chunked body, from `start` in the input buffer.
    async fn read_chunked(&mut self, start: usize) -> io::Result<Bytes> {
        let mut body = Vec::new();
        let mut at = start;
        loop {
            let line_end = loop {
                if let Some(i) = self.input[at..].windows(2).position(|w| w == b"\r\n") {
                    break at + i;
                }
                self.fill().await?;
            };
            let size_text = String::from_utf8_lossy(&self.input[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid("bad chunk size"))?;
            let data_start = line_end + 2;
            while self.input.len() < data_start + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.input[data_start..data_start + size]);
            at = data_start + size + 2;
            if size == 0 {
                break;
            }
        }
        self.input.drain(..at);
        Ok(Bytes::from(body))
    }
}
