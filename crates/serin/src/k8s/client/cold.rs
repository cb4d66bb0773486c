//! One request alone while no connection to the API server is open.
//!
//! hyper's pool learns that a connection speaks HTTP/2 only once ALPN has said so. A burst of
//! requests on a client with no open connection (start-up, or every watch and request in flight
//! starting again after the API server went away) therefore dials one connection per request,
//! and all of them stay open: each with its TLS state, ping timer and buffers (32 requests, 32
//! HTTP/2 connections). client-go dials once. [`Gate`] lets the first request of such a burst
//! through alone and holds the others until its answer has begun, or for [`PATIENCE`] at most;
//! by then the pool holds the connection, and over HTTP/2 they all share it. Over HTTP/1.1 they
//! then go on at once as before, each taking an idle connection or opening one.
//!
//! Connections are counted where they are made ([`Counting`]): one is open from the end of its
//! TLS handshake until hyper drops it (closed by either side, failed, or idle too long).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};

/// How long the requests behind a cold client's first one wait for its answer to begin: long
/// enough for a TLS and HTTP/2 handshake, short enough that a slow first answer (a large list)
/// holds nobody for long. Waiting on, they would only share the same connection.
pub const PATIENCE: Duration = Duration::from_secs(1);

/// How many connections to the API server are open; shared by a [`Counting`] connector and
/// the [`Gate`] above its pool.
#[derive(Clone, Debug, Default)]
pub struct Connections(Arc<AtomicUsize>);

impl Connections {
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A connector whose connections are counted in [`Connections`].
#[derive(Clone)]
pub struct Counting<C> {
    inner: C,
    connections: Connections,
}

impl<C> Counting<C> {
    pub fn new(inner: C, connections: Connections) -> Self {
        Self { inner, connections }
    }
}

impl<C> tower::Service<Uri> for Counting<C>
where
    C: tower::Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = Counted<C::Response>;
    type Error = C::Error;
    type Future = BoxFuture<'static, Result<Self::Response, C::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let connections = self.connections.clone();
        Box::pin(async move {
            let io = connecting.await?;
            connections.0.fetch_add(1, Ordering::AcqRel);
            Ok(Counted {
                io,
                _open: Open(connections),
            })
        })
    }
}

/// A connection counted as open until it is dropped.
pub struct Counted<T> {
    io: T,
    _open: Open,
}

struct Open(Connections);

impl Drop for Open {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Counted<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// A service that lets one request through alone while no connection is open (see the
/// module's documentation).
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    connections: Connections,
    alone: Arc<tokio::sync::Mutex<()>>,
}

impl<S> Gate<S> {
    pub fn new(inner: S, connections: Connections) -> Self {
        Self {
            inner,
            connections,
            alone: Arc::default(),
        }
    }
}

impl<S, R> tower::Service<R> for Gate<S>
where
    S: tower::Service<R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        if self.connections.open() > 0 {
            return Box::pin(self.inner.call(request));
        }
        // The service made ready answers this request; a clone takes its place for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let alone = self.alone.clone();
        Box::pin(async move {
            // The first request holds the lock until its answer begins; the others wait for
            // it, then go on together.
            let _first = match alone.clone().try_lock_owned() {
                Ok(first) => Some(first),
                Err(_) => {
                    let _ = tokio::time::timeout(PATIENCE, alone.lock()).await;
                    None
                }
            };
            inner.call(request).await
        })
    }
}
