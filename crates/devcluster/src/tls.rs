//! TLS for the API endpoint. kubectl (client-go) only sends bearer tokens over TLS, so the dev
//! cluster serves HTTPS with a self-signed certificate for 127.0.0.1 generated at start; the
//! kubeconfig carries it as `certificate-authority-data`. Like kube-apiserver, it offers HTTP/2
//! and HTTP/1.1 in ALPN: client-go (kubectl, Flagger) and Serin's controller multiplex their
//! requests and watches over one HTTP/2 connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// Generating the certificate or the TLS configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

/// The server's certificate material.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
}

pub fn generate() -> Result<Tls, TlsError> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    let cert_der = ck.cert.der().to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem: ck.cert.pem(),
        cert_der,
    })
}

/// A listener yielding connections whose TLS handshake finished (handshakes run concurrently).
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
}

impl TlsListener {
    pub fn spawn(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        mut shutdown: watch::Receiver<bool>,
    ) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = mpsc::channel(64);
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((tcp, peer)) = r else {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            continue;
                        };
                        counted.fetch_add(1, Ordering::Relaxed);
                        let _ = tcp.set_nodelay(true);
                        let acceptor = acceptor.clone();
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let hs = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await;
                            if let Ok(Ok(tls)) = hs {
                                let _ = tx.send((tls, peer)).await;
                            }
                        });
                    }
                    _ = shutdown.changed() => break,
                }
            }
        });
        Self { rx, addr, accepted }
    }

    /// A counter of the TCP connections accepted so far (it keeps counting after the listener
    /// is handed to the server).
    pub fn accepted(&self) -> Arc<AtomicU64> {
        self.accepted.clone()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The acceptor stopped (shutdown): never yield another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Standard base64 (for `certificate-authority-data`).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn certificate_is_generated() {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let t = generate().unwrap();
        assert!(t.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
