//! The controller's Kubernetes client: kube's own middleware (base URI, authentication, extra
//! headers, retries of server errors, connection timeouts, TLS from the kubeconfig) over a
//! connection pool that speaks HTTP/2 where the API server offers it (kube-apiserver does) and
//! closes connections once they have been idle for [`POOL_IDLE_TIMEOUT`].
//!
//! **HTTP/2.** kube's client offers only HTTP/1.1, so a burst of reconciles (start-up, a new
//! revision on many Canaries) opened one connection per request in flight, each with its TLS
//! state and read buffers: at 1,000 Canaries about 100 sockets and 4 MB during start-up
//! (docs/performance.md, issue 18's sixth and ninth passes). Like client-go, this client offers
//! HTTP/2 in ALPN, and the pool multiplexes every request and watch over one connection. The
//! requests in flight (at most the controller's `ApiRequestLayer` limit, plus the watches) stay
//! under the 100 streams HTTP/2 servers allow on a connection at least (kube-apiserver allows
//! 250 or more); beyond a server's limit hyper holds a request until a stream ends. Also as
//! client-go does, the connection is pinged when it is quiet ([`HTTP2_PING_INTERVAL`]), so
//! watches on a connection that died silently are started again within a minute, and its
//! sockets do not wait for acknowledgements before sending (`TCP_NODELAY`).
//!
//! **HTTP/1.1** (an API server or a proxy that does not offer HTTP/2). kube's default client
//! keeps an idle connection for 90 s, with a read buffer that grows to the largest answer it
//! carried; steady analysis keeps a few connections busy, and those are reused (the pool hands
//! out the most recently used one first), so a short idle timeout closes only what a burst left
//! behind. Connections are also given back sooner: an answer is read to its end before the
//! request's future resolves ([`ReadAhead`]), not when the reconcile that asked for it next
//! runs. A reconcile waits for a worker between the two (`controller/workers.rs`), and until then
//! its connection (with HTTP/2, its stream's flow-control window) could serve nobody else.
//! Watches stream, so their answers are handed on as they come.
//!
//! **One dial at a time.** While no connection is open, the first request goes alone and the
//! others wait for its answer to begin ([`cold`]), so that a burst at start-up or after the API
//! server went away dials one connection, as client-go does, not one per request.
//!
//! This is the construction kube documents for a custom client (`kube::client::ConfigExt`),
//! with the layers in the order kube's `ClientBuilder::try_from` stacks them. Left out of that
//! builder: its `tracing` span per request (Serin logs its own API errors) and the expiry of
//! an exec plugin's client certificate as `Client::valid_until` (a hint Serin does not read;
//! the certificate itself is used). With a proxy in the kubeconfig the client is kube's own
//! (HTTP/1.1).

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use cold::{Connections, Counting, Gate};

mod cold;

/// How long an unused connection to the API server stays open.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an HTTP/2 connection to the API server is pinged, and how long the answer may take
/// before the connection counts as dead (client-go's defaults: `ReadIdleTimeout` 30 s,
/// `PingTimeout` 15 s), so that watches on a connection that died silently are started again.
pub const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(30);
/// See [`HTTP2_PING_INTERVAL`].
pub const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(15);
/// How much the API server may send on one HTTP/2 connection before the controller has read it
/// (Go's HTTP/2 transport: 1 GiB). Each stream keeps hyper's own window (2 MiB), so what is
/// buffered stays bounded per stream, and a watch read slowly never stalls the other requests on
/// the connection, as a connection window of a few streams' worth (hyper's 5 MiB) could.
pub const HTTP2_CONNECTION_WINDOW: u32 = 1 << 30;

/// The service under a [`kube::Client`], as kube's own builder boxes it.
pub type Service = tower::util::BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// A client builder for `config` (add layers, then `build()`).
pub fn builder(config: &kube::Config) -> Result<ClientBuilder<Service>, kube::Error> {
    with_idle_timeout(config, POOL_IDLE_TIMEOUT)
}

fn with_idle_timeout(
    config: &kube::Config,
    idle: Duration,
) -> Result<ClientBuilder<Service>, kube::Error> {
    counted(config, idle).map(|(builder, _)| builder)
}

/// [`with_idle_timeout`], also returning the count of open connections (never counted with a
/// proxy).
fn counted(
    config: &kube::Config,
    idle: Duration,
) -> Result<(ClientBuilder<Service>, Connections), kube::Error> {
    let connections = Connections::default();
    if config.proxy_url.is_some() {
        return Ok((ClientBuilder::try_from(config.clone())?, connections));
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // As Go's net package does for client-go: without it, Nagle's algorithm holds an HTTP/2
    // frame written after another until the server acknowledges the first (up to 40 ms on Linux).
    http.set_nodelay(true);
    let mut connector = TimeoutConnector::new(https_connector(config, http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let connector = Counting::new(connector, connections.clone());
    let pool: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(HTTP2_PING_INTERVAL)
            .http2_keep_alive_timeout(HTTP2_PING_TIMEOUT)
            .http2_initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
            .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(ReadAhead(Gate::new(
            pool.map_err(BoxError::from).map_response(
                |response: Response<hyper::body::Incoming>| {
                    response.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>)
                },
            ),
            connections.clone(),
        )))
        .boxed();
    Ok((
        ClientBuilder::new(service, config.default_namespace.clone()),
        connections,
    ))
}

/// kube's HTTPS connector (`ConfigExt::rustls_https_connector_with_connector`: the kubeconfig's
/// TLS settings and `tls-server-name`), offering HTTP/2 as well as HTTP/1.1 in ALPN.
fn https_connector(
    config: &kube::Config,
    http: HttpConnector,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, kube::Error> {
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    if let Some(name) = config.tls_server_name.as_ref() {
        let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        builder =
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    Ok(builder.enable_http1().enable_http2().wrap_connector(http))
}

/// Whether the answer to `request` streams (a watch, a followed log) rather than ends.
fn streams<B>(request: &Request<B>) -> bool {
    request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1" | "follow=true" | "follow=1"))
    })
}

/// A service whose answers are read to the end before they are handed on, except the ones
/// that stream (see the module's documentation). A body that fails half-way fails the request.
#[derive(Clone)]
struct ReadAhead<S>(S);

impl<S, B> tower::Service<Request<B>> for ReadAhead<S>
where
    S: tower::Service<Request<B>, Response = Response<Box<DynBody>>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let streams = streams(&request);
        let answer = self.0.call(request);
        Box::pin(async move {
            let answer = answer.await?;
            if streams {
                return Ok(answer);
            }
            let (parts, body) = answer.into_parts();
            let body = body.collect().await?.to_bytes();
            let body = Full::new(body).map_err(|never| -> BoxError { match never {} });
            Ok(Response::from_parts(parts, Box::new(body) as Box<DynBody>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;
    use http_body::Body as _;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use tokio::net::TcpListener;

    /// A plain-HTTP API server that answers every GET with one ConfigMap and counts the
    /// connections it accepted and the ones still open.
    async fn server() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (a, o) = (accepted.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    let service = service_fn(|_request| async {
                        let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"default"}}"#;
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(bytes::Bytes::from(body)))
                                .expect("response"),
                        )
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, accepted, open)
    }

    #[test]
    fn watches_and_followed_logs_stream() {
        let request = |uri: &str| Request::get(uri).body(()).expect("request");
        for uri in [
            "/api/v1/namespaces/a/configmaps?watch=true&resourceVersion=1",
            "/apis/apps/v1/deployments?allowWatchBookmarks=true&watch=1",
            "/api/v1/namespaces/a/pods/p/log?follow=true",
        ] {
            assert!(streams(&request(uri)), "{uri}");
        }
        for uri in [
            "/api/v1/namespaces/a/configmaps/watch",
            "/api/v1/namespaces/a/configmaps?limit=100",
            "/api/v1/namespaces/a/configmaps?watch=false",
            "/api/v1/namespaces/a/configmaps?labelSelector=watch%3Dtrue",
        ] {
            assert!(!streams(&request(uri)), "{uri}");
        }
    }

    /// An answer whose body comes in two parts, the second one 50 ms after the first.
    #[derive(Clone)]
    struct Slow;

    impl tower::Service<Request<()>> for Slow {
        type Response = Response<Box<DynBody>>;
        type Error = BoxError;
        type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            Box::pin(async {
                let parts = futures::stream::iter([b"first ".as_slice(), b"second".as_slice()])
                    .then(|part| async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, BoxError>(http_body::Frame::data(bytes::Bytes::from(part)))
                    });
                let body = http_body_util::StreamBody::new(parts.boxed());
                Ok(Response::new(Box::new(body) as Box<DynBody>))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_read_to_the_end_before_they_are_handed_on_unless_they_stream() {
        let read = ReadAhead(Slow)
            .oneshot(
                Request::get("/api/v1/configmaps")
                    .body(())
                    .expect("request"),
            )
            .await
            .expect("answer");
        // The body is all there: no part of it is still to come from the connection.
        assert_eq!(read.body().size_hint().exact(), Some(12));
        let body = read.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, "first second");

        let watch = ReadAhead(Slow)
            .oneshot(
                Request::get("/api/v1/configmaps?watch=true")
                    .body(())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(watch.body().size_hint().exact(), None);
    }

    /// The dev cluster offers HTTP/2 as kube-apiserver does: a burst of requests beside a watch
    /// are streams of one connection. A burst on a client with no connection open (start-up,
    /// or after its connection closed) dials once too, not once per request.
    #[tokio::test]
    async fn a_burst_to_an_api_server_offering_http2_shares_one_connection() {
        let dev = devcluster::DevCluster::start().await.expect("dev cluster");
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&dev.kubeconfig()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        let idle = Duration::from_millis(300);
        let (builder, connections) = counted(&config, idle).expect("client");
        let client = builder.build();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let burst = || {
            let api = api.clone();
            async move {
                let burst = (0..32).map(|_| api.get_opt("a"));
                for answer in futures::future::join_all(burst).await {
                    answer.expect("answer");
                }
            }
        };
        let before = dev.connections_accepted();
        burst().await;
        assert_eq!(
            dev.connections_accepted() - before,
            1,
            "a cold burst dials once"
        );
        assert_eq!(connections.open(), 1);

        let closed = async {
            while connections.open() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(idle * 10, closed)
            .await
            .expect("the idle connection was closed");
        burst().await;
        assert_eq!(
            dev.connections_accepted() - before,
            2,
            "after the connection closed, a burst dials once again"
        );

        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("a".into());
        api.create(&Default::default(), &cm).await.expect("create");
        let answer = client
            .send(
                Request::get("/api/v1/namespaces/default/configmaps/a")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(answer.version(), http::Version::HTTP_2);

        let watch = api
            .watch(&Default::default(), "0")
            .await
            .expect("watch")
            .boxed();
        burst().await;
        assert_eq!(dev.connections_accepted() - before, 2, "one connection");
        assert_eq!(connections.open(), 1);
        drop(watch);
        dev.shutdown().await;
    }

    #[tokio::test]
    async fn connections_left_idle_by_a_burst_are_closed_and_busy_ones_are_reused() {
        let (addr, accepted, open) = server().await;
        let url: http::Uri = format!("http://{addr}").parse().expect("url");
        let idle = Duration::from_millis(300);
        let client = with_idle_timeout(&kube::Config::new(url), idle)
            .expect("client")
            .build();
        let api: Api<ConfigMap> = Api::namespaced(client, "default");

        // A burst over HTTP/1.1: eight requests at once open a connection each, but for the
        // first one's, which another may take back once its answer has come.
        let burst = (0..8).map(|_| api.get("a"));
        for answer in futures::future::join_all(burst).await {
            answer.expect("answer");
        }
        let opened = accepted.load(Ordering::SeqCst);
        assert!((7..=8).contains(&opened), "{opened} connections");

        // Steady use, one request every 50 ms for over three idle timeouts, goes over one
        // kept connection and opens none ...
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            api.get("a").await.expect("answer");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), opened, "no new connection");
        // ... while the ones the burst left idle were closed.
        let closed = async {
            while open.load(Ordering::SeqCst) > 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(idle * 4, closed)
            .await
            .expect("the idle connections were closed");
        assert_eq!(open.load(Ordering::SeqCst), 1, "the busy one stays open");
    }
}
