//! Whether a registry asks for a client certificate, learnt from a handshake that sends
//! nothing. A TLS 1.3 server refuses a client without a certificate only after the client's
//! Finished, when the client has already written its request: the server then closes on unread
//! data, the kernel answers with a reset, and the reset can discard the alert before the client
//! reads it, so the request fails with a bare "connection closed". The probe writes no request,
//! so nothing races the answer; it only notes whether the server sent a CertificateRequest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How long the probe may take: connect and handshake.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the server at `host:port` asks for a client certificate (false when the probe
/// cannot tell: no connection, no handshake).
pub(super) async fn asks_for_client_cert(host: &str, port: u16) -> bool {
    let asked = Arc::new(Asked(AtomicBool::new(false)));
    let probe = async {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
            .with_client_cert_resolver(asked.clone());
        let name = ServerName::try_from(host.to_string()).ok()?;
        let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        // The outcome does not matter: the resolver has been asked, or not, by now.
        let _ = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        Some(())
    };
    let _ = tokio::time::timeout(PROBE_TIMEOUT, probe).await;
    asked.0.load(Ordering::Acquire)
}

/// Notes that the server asked for a client certificate, and offers none.
#[derive(Debug)]
struct Asked(AtomicBool);

impl ResolvesClientCert for Asked {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, Ordering::Release);
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any server certificate: the probe sends no data and trusts nothing it learns
/// beyond whether a certificate was asked for.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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
