//! The Distribution adapter of [`ManifestSource`]: a GET of the manifest URL
//! a registry notification names, with the manifest media types in `Accept`
//! and `REGISTRY_AUTH` as `Authorization`. Bounded in time and size because
//! it runs inside the registry's notification request.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use shared::config::Sensitive;

use crate::error::IngestError;
use crate::manifest::{
    ManifestLocation, ManifestSource, RawManifest, ACCEPTED_MEDIA_TYPES, MAX_MANIFEST_BYTES,
};

/// Whole-request timeout of one manifest fetch. The registry waits for our
/// answer (its own default timeout is 1 s, often raised), so keep it short.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect timeout; a registry that does not accept a connection this fast is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Fetches manifests from a Distribution (v2 API) registry.
#[derive(Clone)]
pub struct DistributionFetcher {
    client: reqwest::Client,
    authorization: Option<HeaderValue>,
}

impl DistributionFetcher {
    /// A fetcher with its own client (timeouts set); `authorization` is the
    /// `REGISTRY_AUTH` value, sent as is.
    pub fn new(authorization: Option<&Sensitive>) -> Result<Self, IngestError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent("alin-webhooks-ingest")
            .build()
            .map_err(|e| IngestError::Config(format!("building the HTTP client: {e}")))?;
        Self::with_client(client, authorization)
    }

    /// A fetcher over a client the caller configured.
    pub fn with_client(
        client: reqwest::Client,
        authorization: Option<&Sensitive>,
    ) -> Result<Self, IngestError> {
        let authorization = authorization
            .map(|a| {
                let mut v = HeaderValue::from_str(a.0.trim()).map_err(|_| {
                    IngestError::Config("REGISTRY_AUTH is not a valid header value".to_owned())
                })?;
                // Keeps the value out of reqwest's and hyper's debug output.
                v.set_sensitive(true);
                Ok::<_, IngestError>(v)
            })
            .transpose()?;
        Ok(Self {
            client,
            authorization,
        })
    }
}

/// Status codes worth retrying: the registry may answer differently later.
fn is_retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
                // A wrong or expired REGISTRY_AUTH is fixed by the operator,
                // after which the retried event must still go through.
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
        )
}

#[async_trait]
impl ManifestSource for DistributionFetcher {
    async fn fetch(&self, location: &ManifestLocation) -> Result<RawManifest, IngestError> {
        let ManifestLocation::Url(url) = location else {
            return Err(IngestError::ManifestUnusable(format!(
                "{location} is not a Distribution URL"
            )));
        };
        let mut req = self
            .client
            .get(url.clone())
            .header(ACCEPT, ACCEPTED_MEDIA_TYPES.join(", "));
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let fail = |e: reqwest::Error| {
            // `without_url`: the error must not carry a query string into logs.
            IngestError::ManifestFetch(format!("GET {location}: {}", e.without_url()))
        };
        let mut resp = req.send().await.map_err(fail)?;
        let status = resp.status();
        if !status.is_success() {
            let why = format!("GET {location}: HTTP {status}");
            return Err(if is_retryable_status(status) {
                IngestError::ManifestFetch(why)
            } else {
                IngestError::ManifestUnusable(why)
            });
        }
        let too_large = || {
            IngestError::ManifestUnusable(format!(
                "GET {location}: manifest larger than {MAX_MANIFEST_BYTES} bytes"
            ))
        };
        let declared_len = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_len.is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
            return Err(too_large());
        }
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawManifest { media_type, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-route HTTP/1.1 server on 127.0.0.1 answering every request with
    /// `status` and `body`, recording the request heads it saw.
    async fn serve(status: u16, body: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let body = body.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = sock.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        crate::manifest::OCI_MANIFEST,
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    fn loc(base: &str) -> ManifestLocation {
        ManifestLocation::Url(
            url::Url::parse(&format!("{base}/v2/alice/app/manifests/1.0")).unwrap(),
        )
    }

    #[tokio::test]
    async fn sends_accept_and_authorization_and_reads_the_body() {
        let (base, seen) = serve(200, b"{\"layers\":[]}".to_vec()).await;
        let auth = Sensitive("Bearer reg-secret".into());
        let f = DistributionFetcher::new(Some(&auth)).unwrap();
        let raw = f.fetch(&loc(&base)).await.unwrap();
        assert_eq!(raw.body, b"{\"layers\":[]}");
        assert_eq!(
            raw.media_type.as_deref(),
            Some(crate::manifest::OCI_MANIFEST)
        );
        let head = seen.lock().unwrap()[0].to_ascii_lowercase();
        assert!(
            head.starts_with("get /v2/alice/app/manifests/1.0 "),
            "{head}"
        );
        assert!(head.contains("authorization: bearer reg-secret"), "{head}");
        for t in ACCEPTED_MEDIA_TYPES {
            assert!(head.contains(t), "{head} lacks {t}");
        }
    }

    #[tokio::test]
    async fn classifies_failures() {
        let f = DistributionFetcher::new(None).unwrap();
        let (base, _) = serve(404, b"{}".to_vec()).await;
        let e = f.fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestUnusable(_)), "{e}");
        let (base, _) = serve(503, b"{}".to_vec()).await;
        let e = f.fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestFetch(_)), "{e}");
        let (base, _) = serve(401, b"{}".to_vec()).await;
        assert!(f.fetch(&loc(&base)).await.unwrap_err().is_retryable());
        let (base, _) = serve(200, vec![b' '; MAX_MANIFEST_BYTES + 1]).await;
        let e = f.fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestUnusable(_)), "{e}");
        // Nothing listens on a freshly closed port: connection refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = f
            .fetch(&loc(&format!("http://127.0.0.1:{port}")))
            .await
            .unwrap_err();
        assert!(matches!(e, IngestError::ManifestFetch(_)), "{e}");
    }

    #[test]
    fn refuses_an_invalid_auth_value() {
        assert!(DistributionFetcher::new(Some(&Sensitive("a\nb".into()))).is_err());
    }
}
