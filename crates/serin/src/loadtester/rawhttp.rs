//! A minimal HTTP/1.1 client connection for the load generator's fast path.
//!
//! The request bytes are built once and written as they are; the response is parsed with
//! `httparse` and its body (Content-Length, chunked, or delimited by the connection closing) is
//! counted and discarded without being copied anywhere. One request at a time, no pipelining.
//! The times of the last request write and of the first response byte are recorded for hey's
//! "Details".

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INITIAL_BUFFER: usize = 16 * 1024;
const MAX_HEAD: usize = 1024 * 1024;
const MAX_HEADERS: usize = 100;

/// Errors of one exchange.
#[derive(Debug, thiserror::Error)]
pub enum RawHttpError {
    /// The connection ended before any byte of the response arrived (the request may be
    /// retried on a new connection if it is idempotent).
    #[error("server closed the connection before responding")]
    ClosedBeforeResponse,
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The response is not valid HTTP/1.x.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    /// The connection ended in the middle of the response.
    #[error("unexpected EOF")]
    UnexpectedEof,
}

/// What a response was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseInfo {
    /// Status code.
    pub status: u16,
    /// Body bytes received (after de-chunking).
    pub body_len: u64,
    /// `Location` header, if any.
    pub location: Option<String>,
    /// Whether the connection cannot be reused.
    pub close: bool,
}

/// Socket event times of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeTimes {
    /// The request was completely handed to the socket.
    pub written: Instant,
    /// The first response byte was read.
    pub first_byte: Instant,
    /// The response body was complete.
    pub done: Instant,
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl RawConn {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }

    /// Reads more bytes into the buffer; 0 at EOF.
    async fn fill(&mut self) -> Result<usize, std::io::Error> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = (self.buf.len() * 2).min(MAX_HEAD + INITIAL_BUFFER);
                if grown == self.buf.len() {
                    return Err(std::io::Error::other("response head too large"));
                }
                self.buf.resize(grown, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Sends `request` (complete bytes) and reads the whole response. `head` tells that the
    /// request was HEAD (no body follows).
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head: bool,
    ) -> Result<(ResponseInfo, ExchangeTimes), RawHttpError> {
        // Bytes left over from a previous response cannot belong to this one.
        self.start = 0;
        self.end = 0;
        self.stream.write_all(request).await?;
        let written = Instant::now();
        let mut first_byte = None;
        loop {
            // Parse what we have; read more if the head is incomplete.
            if self.end > self.start {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(head_len)) => {
                        let status = resp.code.unwrap_or(0);
                        let version = resp.version.unwrap_or(1);
                        let mut location = None;
                        let mut length = None;
                        let mut chunked = false;
                        let mut conn_close = version == 0;
                        for h in resp.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let text = std::str::from_utf8(h.value).unwrap_or("").trim();
                                length = Some(text.parse::<u64>().map_err(|_| {
                                    RawHttpError::Malformed(format!("content-length {text:?}"))
                                })?);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                chunked = h
                                    .value
                                    .split(|b| *b == b',')
                                    .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                for token in h.value.split(|b| *b == b',') {
                                    let token = token.trim_ascii();
                                    if token.eq_ignore_ascii_case(b"close") {
                                        conn_close = true;
                                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                                        && version == 0
                                    {
                                        conn_close = false;
                                    }
                                }
                            } else if h.name.eq_ignore_ascii_case("location") {
                                location = std::str::from_utf8(h.value).ok().map(str::to_owned);
                            }
                        }
                        self.start += head_len;
                        if (100..200).contains(&status) && status != 101 {
                            // Interim response: the real one follows.
                            continue;
                        }
                        let framing = if head
                            || status == 204
                            || status == 304
                            || (100..200).contains(&status)
                        {
                            Framing::None
                        } else if chunked {
                            Framing::Chunked
                        } else if let Some(n) = length {
                            Framing::Length(n)
                        } else {
                            Framing::UntilClose
                        };
                        let body_len = match framing {
                            Framing::None => 0,
                            Framing::Length(n) => self.skip(n).await?,
                            Framing::Chunked => self.skip_chunked().await?,
                            Framing::UntilClose => {
                                conn_close = true;
                                self.skip_to_eof().await?
                            }
                        };
                        let times = ExchangeTimes {
                            written,
                            first_byte: first_byte.unwrap_or(written),
                            done: Instant::now(),
                        };
                        return Ok((
                            ResponseInfo {
                                status,
                                body_len,
                                location,
                                close: conn_close,
                            },
                            times,
                        ));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(RawHttpError::Malformed(e.to_string())),
                }
            }
            let n = self.fill().await.map_err(|e| {
                if first_byte.is_none() && is_reset(&e) {
                    RawHttpError::ClosedBeforeResponse
                } else {
                    RawHttpError::Io(e)
                }
            })?;
            if n == 0 {
                return Err(if first_byte.is_none() {
                    RawHttpError::ClosedBeforeResponse
                } else {
                    RawHttpError::UnexpectedEof
                });
            }
            if first_byte.is_none() {
                first_byte = Some(Instant::now());
            }
        }
    }

    async fn skip(&mut self, mut remaining: u64) -> Result<u64, RawHttpError> {
        let total = remaining;
        loop {
            let have = (self.end - self.start) as u64;
            let take = have.min(remaining);
            self.start += take as usize;
            remaining -= take;
            if remaining == 0 {
                return Ok(total);
            }
            if self.fill().await? == 0 {
                return Err(RawHttpError::UnexpectedEof);
            }
        }
    }

    async fn line(&mut self) -> Result<(usize, usize), RawHttpError> {
        loop {
            if let Some(pos) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let line = (self.start, self.start + pos);
                self.start += pos + 2;
                return Ok(line);
            }
            if self.end - self.start > 64 * 1024 {
                return Err(RawHttpError::Malformed("chunk line too long".into()));
            }
            if self.fill().await? == 0 {
                return Err(RawHttpError::UnexpectedEof);
            }
        }
    }

    async fn skip_chunked(&mut self) -> Result<u64, RawHttpError> {
        let mut total = 0u64;
        loop {
            let (a, b) = self.line().await?;
            let text = std::str::from_utf8(&self.buf[a..b])
                .map_err(|_| RawHttpError::Malformed("chunk size".into()))?;
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| RawHttpError::Malformed(format!("chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    let (a, b) = self.line().await?;
                    if a == b {
                        return Ok(total);
                    }
                }
            }
            self.skip(size).await?;
            total += size;
            let (a, b) = self.line().await?;
            if a != b {
                return Err(RawHttpError::Malformed("missing CRLF after chunk".into()));
            }
        }
    }

    async fn skip_to_eof(&mut self) -> Result<u64, RawHttpError> {
        let mut total = (self.end - self.start) as u64;
        self.start = self.end;
        loop {
            let n = self.fill().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            self.start = self.end;
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A server that answers each request (read once) with the next canned chunks, written
    /// separately to exercise split reads.
    async fn serve(responses: Vec<Vec<&'static [u8]>>) -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for parts in responses {
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req).await.unwrap();
                for p in parts {
                    s.write_all(p).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        });
        TcpStream::connect(addr).await.unwrap()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[tokio::test]
    async fn content_length_chunked_and_interim_responses() {
        let stream = serve(vec![
            vec![b"HTTP/1.1 200 OK\r\nContent-", b"Length: 5\r\n\r\nhel", b"lo"],
            vec![b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\nwiki\r\n", b"5\r\npedia\r\n0\r\nT: v\r\n\r\n"],
            vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n"],
            vec![b"HTTP/1.1 204 No Content\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"],
        ])
        .await;
        let mut conn = RawConn::new(stream);
        let (r, t) = conn.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.body_len, r.close), (200, 5, false));
        assert!(t.written <= t.first_byte && t.first_byte <= t.done);
        let (r, _) = conn.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.body_len), (201, 9));
        let (r, _) = conn.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.location.as_deref()), (302, Some("/next")));
        let (r, _) = conn.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.body_len), (204, 0));
        let (r, _) = conn.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.body_len, r.close), (200, 2, true));
    }

    #[tokio::test]
    async fn close_delimited_bodies_and_eofs() {
        let stream = serve(vec![vec![b"HTTP/1.0 200 OK\r\n\r\nall of ", b"this"]]).await;
        let mut conn = RawConn::new(stream);
        let (r, _) = conn.exchange(GET, false).await.unwrap();
        assert_eq!((r.status, r.body_len, r.close), (200, 11, true));
        // The server is gone now: nothing was received for the next request.
        assert!(matches!(
            conn.exchange(GET, false).await,
            Err(RawHttpError::ClosedBeforeResponse | RawHttpError::Io(_))
        ));

        let stream = serve(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ]])
        .await;
        let mut conn = RawConn::new(stream);
        assert!(matches!(
            conn.exchange(GET, false).await,
            Err(RawHttpError::UnexpectedEof)
        ));

        let stream = serve(vec![vec![b"NOT HTTP AT ALL\r\n\r\n"]]).await;
        let mut conn = RawConn::new(stream);
        assert!(matches!(
            conn.exchange(GET, false).await,
            Err(RawHttpError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn head_responses_have_no_body() {
        let stream = serve(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        ]])
        .await;
        let mut conn = RawConn::new(stream);
        let (r, _) = conn
            .exchange(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", true)
            .await
            .unwrap();
        assert_eq!((r.status, r.body_len), (200, 0));
    }
}
