//! TLS of the HTTP clients Serin builds (webhooks, metric providers, notifiers, the loadtester,
//! the demo): rustls with its ring crypto provider, named explicitly in each client's TLS
//! configuration ([`http_client`]) rather than read from a process-wide default.
//!
//! kube-rs builds its own TLS configuration from rustls' process default; ring being the only
//! provider compiled in, rustls installs it on first use. The binaries install it once at
//! start-up anyway ([`install_default`]), so that the choice is made in one place before any
//! client exists.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// How a client checks the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Against the operating system's trust store and the server's name.
    Platform,
    /// Not at all (a hook's `disableTLS`, a provider's `insecureSkipVerify`, `hey`): the
    /// connection is encrypted but the server is not authenticated.
    AcceptAny,
}

/// The HTTP versions a client offers in the TLS handshake (ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/2 or HTTP/1.1, as the server prefers.
    Http2OrHttp1,
    /// HTTP/1.1 only (for a client built with `http1_only`).
    Http1,
}

/// The TLS configuration could not be built (e.g. the platform's trust store is unusable).
#[derive(Debug, thiserror::Error)]
#[error("setting up TLS: {0}")]
pub struct TlsError(#[from] rustls::Error);

/// Serin's crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Makes [`provider`] the process default, for clients that read it (kube-rs). Called once by
/// each binary's `main`; a second call changes nothing.
pub fn install_default() {
    // An error only says that a default is installed already.
    let _ = ring::default_provider().install_default();
}

/// A TLS client configuration with [`provider`].
pub fn client_config(verification: Verification, alpn: Alpn) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        Verification::Platform => Arc::new(rustls_platform_verifier::Verifier::new(provider)?),
        Verification::AcceptAny => Arc::new(AcceptAnyCertificate(provider)),
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = match alpn {
        Alpn::Http2OrHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// A reqwest client builder whose TLS is [`client_config`]. reqwest's own TLS settings
/// (`tls_danger_accept_invalid_certs`, extra root certificates, ...) do not apply to it:
/// `verification` says how certificates are checked.
pub fn http_client(
    verification: Verification,
    alpn: Alpn,
) -> Result<reqwest::ClientBuilder, TlsError> {
    let builder =
        reqwest::Client::builder().tls_backend_preconfigured(client_config(verification, alpn)?);
    Ok(match alpn {
        Alpn::Http2OrHttp1 => builder,
        Alpn::Http1 => builder.http1_only(),
    })
}

/// Accepts any server certificate; the handshake signatures are still checked, so the server
/// holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn configs_name_ring_and_offer_the_http_versions_asked_for() {
        let ring_suites: Vec<_> = ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        for verification in [Verification::Platform, Verification::AcceptAny] {
            let config = client_config(verification, Alpn::Http2OrHttp1).unwrap();
            let suites: Vec<_> = config
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect();
            assert_eq!(suites, ring_suites);
            assert_eq!(
                config.alpn_protocols,
                [b"h2".to_vec(), b"http/1.1".to_vec()]
            );
        }
        let http1 = client_config(Verification::Platform, Alpn::Http1).unwrap();
        assert_eq!(http1.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
