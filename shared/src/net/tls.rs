//! The process's one TLS client configuration: rustls with ring as its only
//! crypto provider, trusting the Mozilla roots compiled into the binary
//! (`webpki-roots`, no file read at cold start) plus, as the one escape hatch
//! for private receivers, every certificate of the PEM bundle named by
//! `SSL_CERT_FILE` when it is set. Built once per process on first use and
//! shared by the webhook client, ingest's registry client and the AWS SDK's
//! HTTP client ([`super::sdk_http`]).

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

/// The variable naming an extra PEM bundle of trusted certificates.
pub const CA_BUNDLE_ENV: &str = "SSL_CERT_FILE";

/// Why the TLS configuration could not be built. Permanent: the cold start
/// fails with it (a bundle that was asked for and cannot be used must not be
/// silently ignored).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    #[error("{CA_BUNDLE_ENV} {path}: {reason}")]
    CaBundle { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

static CONFIG: OnceLock<Result<Arc<ClientConfig>, TlsError>> = OnceLock::new();

/// The process's TLS configuration (built on the first call, from
/// `SSL_CERT_FILE` as it is then).
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    CONFIG
        .get_or_init(|| {
            let extra = std::env::var_os(CA_BUNDLE_ENV).filter(|p| !p.is_empty());
            let pem = match &extra {
                Some(path) => Some(std::fs::read(path).map_err(|e| TlsError::CaBundle {
                    path: path.to_string_lossy().into_owned(),
                    reason: e.to_string(),
                })?),
                None => None,
            };
            build(pem.as_deref()).map_err(|e| match (e, &extra) {
                (TlsError::Config(reason), Some(path)) => TlsError::CaBundle {
                    path: path.to_string_lossy().into_owned(),
                    reason,
                },
                (e, _) => e,
            })
        })
        .clone()
}

/// A configuration trusting the compiled-in roots and the certificates of
/// `extra_pem` (a PEM bundle; it must hold at least one certificate).
pub fn build(extra_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, TlsError> {
    // The compiled-in anchors are copied, not parsed: this is what keeps the
    // cold start cheap.
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_pem {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Config(format!("not a PEM bundle: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError::Config("no certificate in the bundle".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| TlsError::Config(format!("unusable certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn compiled_in_roots_need_no_bundle() {
        assert!(build(None).is_ok());
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let e = build(Some(b"just text\n")).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("no certificate")));
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(build(Some(garbage)).is_err());
    }

    /// A TLS server on 127.0.0.1 with a certificate for `localhost` issued
    /// by the test CA (testdata/ca.pem), answering every request 204.
    pub(crate) async fn private_ca_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let certs = CertificateDer::pem_slice_iter(include_bytes!("testdata/server.pem"))
            .collect::<Result<Vec<_>, _>>()
            .expect("test certificate");
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_slice(include_bytes!("testdata/server.key"))
                .expect("test key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
                    let _ = tls.write_all(answer).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_bundle_adds_a_private_ca_for_the_webhook_client() {
        let url = format!("https://localhost:{}/", private_ca_server().await.port());
        let client = |config: Arc<ClientConfig>| {
            reqwest::Client::builder()
                .use_preconfigured_tls(ClientConfig::clone(&config))
                .no_proxy()
                .build()
                .expect("client")
        };
        let trusted = build(Some(include_bytes!("testdata/ca.pem"))).expect("config");
        let answer = client(trusted).get(&url).send().await.expect("trusted");
        assert_eq!(answer.status(), 204);
        let refused = client(build(None).expect("config")).get(&url).send().await;
        assert!(
            refused.is_err(),
            "a private CA is not among the built-in roots"
        );
    }
}
