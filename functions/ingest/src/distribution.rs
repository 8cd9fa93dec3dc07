//! The Distribution adapter of [`ManifestSource`]: a GET of
//! `{REGISTRY_URL}/v2/{repository}/manifests/{digest}`, with the manifest
//! media types in `Accept` and `REGISTRY_AUTH` as `Authorization`.
//!
//! The event's `target.url` is never fetched: it only has to name the same
//! origin as `REGISTRY_URL`, else the event is refused without a request (a
//! forged envelope, or one Distribution built from a pusher's `Host` header,
//! must not receive the registry credentials or reach anything else). The
//! client ignores environment proxies, follows no redirect (the credentials
//! would go with it), and is bounded in time, in bytes per manifest and, with
//! the invocation's [`ByteBudget`], in bytes held at once.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use shared::config::Sensitive;

use crate::bounded::origin as shown;
use crate::error::IngestError;
use crate::manifest::{
    BudgetPermit, ByteBudget, ManifestLocation, ManifestSource, RawManifest, ACCEPTED_MEDIA_TYPES,
    MAX_MANIFEST_BYTES,
};

/// Timeout of one manifest fetch's answer head, and again of reading its
/// body (the wait for room in the byte budget between the two is not the
/// registry's time). The registry waits for our answer (its own default
/// timeout is 1 s, often raised), so keep it short.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect timeout; a registry that does not accept a connection this fast is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Fetches manifests from the one Distribution (v2 API) registry configured.
#[derive(Clone)]
pub struct DistributionFetcher {
    /// Made on the first fetch: an invocation with no Distribution envelope
    /// does not pay for it at cold start.
    client: std::sync::OnceLock<reqwest::Client>,
    /// `REGISTRY_URL` (an origin); `None` refuses every Distribution event.
    registry: Option<url::Url>,
    authorization: Option<HeaderValue>,
}

impl DistributionFetcher {
    /// A fetcher with its own client for the registry at `registry`
    /// (`REGISTRY_URL`, an origin); `authorization` is the `REGISTRY_AUTH`
    /// value, sent as is, only there.
    pub fn new(
        registry: Option<&url::Url>,
        authorization: Option<&Sensitive>,
    ) -> Result<Self, IngestError> {
        Self::with_client(None, registry, authorization)
    }

    /// A fetcher over a client the caller configured (`None`: its own).
    pub fn with_client(
        client: Option<reqwest::Client>,
        registry: Option<&url::Url>,
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
            client: client.map_or_else(std::sync::OnceLock::new, std::sync::OnceLock::from),
            registry: registry.cloned(),
            authorization,
        })
    }

    /// The client, made on first use (the process's one TLS configuration).
    fn client(&self) -> Result<&reqwest::Client, IngestError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let tls =
            shared::net::tls::client_config().map_err(|e| IngestError::Config(e.to_string()))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent("alin-webhooks-ingest")
            // A proxy from the environment would see the credentials and
            // decide where they go; a redirect would carry them elsewhere.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IngestError::Config(format!("building the HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The URL to GET for `location`, or why the event is refused.
    pub fn manifest_url(&self, location: &ManifestLocation) -> Result<url::Url, IngestError> {
        let ManifestLocation::Distribution {
            origin,
            repository,
            digest,
        } = location
        else {
            return Err(IngestError::ManifestUnusable(format!(
                "{location} is not a Distribution manifest"
            )));
        };
        let Some(registry) = &self.registry else {
            return Err(IngestError::Refused(
                "REGISTRY_URL is not set, so Distribution events are not accepted".into(),
            ));
        };
        if origin.origin() != registry.origin() {
            return Err(IngestError::Refused(format!(
                "target.url names {}, not REGISTRY_URL's origin {}",
                shown(origin),
                shown(registry)
            )));
        }
        // The repository passed the name grammar and the digest its own, so
        // neither can add a segment, a query or another host.
        registry
            .join(&format!("/v2/{repository}/manifests/{digest}"))
            .map_err(|e| IngestError::Refused(format!("building the manifest URL: {e}")))
    }

    async fn get(
        &self,
        location: &ManifestLocation,
        budget: Option<&ByteBudget>,
    ) -> Result<(RawManifest, Option<BudgetPermit>), IngestError> {
        let url = self.manifest_url(location)?;
        let mut req = self
            .client()?
            .get(url)
            .header(ACCEPT, ACCEPTED_MEDIA_TYPES.join(", "));
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let fail = |e: reqwest::Error| {
            // `without_url`: the error must not carry a query string into logs.
            IngestError::ManifestFetch(format!("GET {location}: {}", e.without_url()))
        };
        let timed_out =
            |what: &str| IngestError::ManifestFetch(format!("GET {location}: {what} timed out"));
        let mut resp = tokio::time::timeout(FETCH_TIMEOUT, req.send())
            .await
            .map_err(|_| timed_out("answer"))?
            .map_err(fail)?;
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
            .map(|t| crate::bounded::bounded(t).into_owned());
        // Reserve before reading: the declared length, else the most a
        // manifest may be. A body longer than it declared is refused.
        let expected = declared_len.map_or(MAX_MANIFEST_BYTES, |n| n as usize);
        let permit = match budget {
            Some(b) => Some(b.reserve(expected).await),
            None => None,
        };
        let read = async {
            let mut body = Vec::with_capacity(expected.min(64 * 1024));
            while let Some(chunk) = resp.chunk().await.map_err(fail)? {
                if body.len() + chunk.len() > expected {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        let body = tokio::time::timeout(FETCH_TIMEOUT, read)
            .await
            .map_err(|_| timed_out("body"))??;
        Ok((RawManifest { media_type, body }, permit))
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
        self.get(location, None).await.map(|(raw, _)| raw)
    }

    async fn fetch_within(
        &self,
        location: &ManifestLocation,
        budget: &ByteBudget,
    ) -> Result<(RawManifest, BudgetPermit), IngestError> {
        let (raw, permit) = self.get(location, Some(budget)).await?;
        let permit = match permit {
            Some(p) => p,
            None => budget.reserve(raw.body.len()).await,
        };
        Ok((raw, permit))
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

    const DIGEST: &str = "sha256:4efb9572a88a346a86b79761a7ea7f41fd9b93f49deecf6bd9c7e9161d808ab7";

    fn loc(base: &str) -> ManifestLocation {
        ManifestLocation::Distribution {
            origin: url::Url::parse(base).unwrap(),
            repository: "alice/app".into(),
            digest: shared::domain::Digest::parse(DIGEST).unwrap(),
        }
    }

    fn fetcher(base: &str, auth: Option<&Sensitive>) -> DistributionFetcher {
        DistributionFetcher::new(Some(&url::Url::parse(base).unwrap()), auth).unwrap()
    }

    #[tokio::test]
    async fn sends_accept_and_authorization_and_reads_the_body() {
        let (base, seen) = serve(200, b"{\"layers\":[]}".to_vec()).await;
        let auth = Sensitive("Bearer reg-secret".into());
        let f = fetcher(&base, Some(&auth));
        let raw = f.fetch(&loc(&base)).await.unwrap();
        assert_eq!(raw.body, b"{\"layers\":[]}");
        assert_eq!(
            raw.media_type.as_deref(),
            Some(crate::manifest::OCI_MANIFEST)
        );
        let head = seen.lock().unwrap()[0].to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("get /v2/alice/app/manifests/{DIGEST} ")),
            "{head}"
        );
        assert!(head.contains("authorization: bearer reg-secret"), "{head}");
        for t in ACCEPTED_MEDIA_TYPES {
            assert!(head.contains(t), "{head} lacks {t}");
        }
    }

    #[tokio::test]
    async fn classifies_failures() {
        let (base, _) = serve(404, b"{}".to_vec()).await;
        let e = fetcher(&base, None).fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestUnusable(_)), "{e}");
        let (base, _) = serve(503, b"{}".to_vec()).await;
        let e = fetcher(&base, None).fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestFetch(_)), "{e}");
        let (base, _) = serve(401, b"{}".to_vec()).await;
        assert!(fetcher(&base, None)
            .fetch(&loc(&base))
            .await
            .unwrap_err()
            .is_retryable());
        // A redirect is not followed (it would take the credentials along).
        let (base, seen) = serve(302, b"{}".to_vec()).await;
        let e = fetcher(&base, None).fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestUnusable(_)), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 1);
        let (base, _) = serve(200, vec![b' '; MAX_MANIFEST_BYTES + 1]).await;
        let e = fetcher(&base, None).fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestUnusable(_)), "{e}");
        // Nothing listens on a freshly closed port: connection refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let base = format!("http://127.0.0.1:{port}");
        let e = fetcher(&base, None).fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::ManifestFetch(_)), "{e}");
    }

    #[tokio::test]
    async fn refuses_other_origins_and_an_unset_registry_without_a_request() {
        let (base, seen) = serve(200, b"{}".to_vec()).await;
        let auth = Sensitive("Bearer reg-secret".into());
        // The event names our stub, but REGISTRY_URL is another origin.
        let f = fetcher("https://registry.example.com", Some(&auth));
        let e = f.fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::Refused(_)), "{e}");
        assert!(e.to_string().contains("REGISTRY_URL"), "{e}");
        let unset = DistributionFetcher::new(None, Some(&auth)).unwrap();
        let e = unset.fetch(&loc(&base)).await.unwrap_err();
        assert!(matches!(e, IngestError::Refused(_)), "{e}");
        assert!(seen.lock().unwrap().is_empty(), "a request was made");
        // Same origin spelled differently (case, default port) is the same.
        let f = fetcher(&base.to_uppercase().replace("HTTP://", "http://"), None);
        assert!(f.manifest_url(&loc(&base)).is_ok());
    }

    #[test]
    fn refuses_an_invalid_auth_value() {
        assert!(DistributionFetcher::new(None, Some(&Sensitive("a\nb".into()))).is_err());
    }
}
