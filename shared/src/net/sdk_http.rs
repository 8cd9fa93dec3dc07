//! The AWS SDK's HTTP client in the functions: hyper's pooled client over
//! hyper-rustls with the process's TLS configuration ([`super::tls`]), plain
//! HTTP allowed for local endpoints (moto through `AWS_ENDPOINT_URL`). It
//! replaces the SDK's default HTTPS client, which would link a second crypto
//! back end (aws-lc-rs) and read the system root store at cold start.
//!
//! Failures are classified as the SDK's own client does, so its retry rules
//! see the same kinds: connection and I/O errors are `io` (retried), a read
//! timeout is `timeout`, a request that cannot be sent is `user`.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

/// Idle keep-alive connections are dropped after this (below the 60 s AWS
/// endpoints keep them).
const POOL_IDLE: Duration = Duration::from_secs(50);

type Timeouts = (Option<Duration>, Option<Duration>);

/// The SDK client for `SdkConfig::http_client`. One connector (one pool) per
/// distinct pair of connect/read timeouts, made on first use.
pub fn client(tls: Arc<ClientConfig>) -> SharedHttpClient {
    let made: Mutex<Vec<(Timeouts, SharedHttpConnector)>> = Mutex::default();
    http_client_fn(move |settings: &HttpConnectorSettings, _| {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut made = made.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = made.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let connector = SharedHttpConnector::new(Connector::new(&tls, key));
        made.push((key, connector.clone()));
        connector
    })
}

#[derive(Debug, Clone)]
struct Connector {
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(tls: &Arc<ClientConfig>, (connect_timeout, read_timeout): Timeouts) -> Connector {
        let mut tcp = TcpConnector::new();
        // TLS is the wrapping connector's job; this one connects.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(ClientConfig::clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(https);
        Connector {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let (client, read_timeout) = (self.client.clone(), self.read_timeout);
        HttpConnectorFuture::new(async move {
            let sent = client.request(request);
            let answered = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, sent)
                    .await
                    .map_err(|e| ConnectorError::timeout(e.into()))?,
                None => sent.await,
            };
            let response = answered.map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's kind for a failed request (as its default client decides).
fn classify(e: hyper_util::client::legacy::Error) -> ConnectorError {
    if e.is_connect() {
        return ConnectorError::io(e.into());
    }
    let hyper = find_source::<hyper::Error>(&e);
    match hyper {
        Some(h) if h.is_timeout() => ConnectorError::timeout(e.into()),
        Some(h) if h.is_user() => ConnectorError::user(e.into()),
        Some(h) if h.is_closed() || h.is_canceled() => ConnectorError::io(e.into()),
        Some(h) if h.is_incomplete_message() => {
            ConnectorError::other(e.into(), Some(ErrorKind::TransientError))
        }
        _ if find_source::<std::io::Error>(&e).is_some() => ConnectorError::io(e.into()),
        _ => ConnectorError::other(e.into(), None),
    }
}

/// The first error of type `E` in `e`'s chain of sources, `e` included.
pub fn find_source<'a, E: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tls;

    fn get(url: &str) -> HttpRequest {
        let mut request = HttpRequest::new(SdkBody::empty());
        request.set_uri(url).expect("uri");
        request
    }

    /// The SDK's connector speaks TLS with the shared configuration (a
    /// private CA from the bundle is trusted, the built-in roots alone
    /// refuse it) and plain HTTP to local endpoints.
    #[tokio::test]
    async fn https_with_the_shared_roots_and_plain_http() {
        let port = tls::tests::private_ca_server().await.port();
        let url = format!("https://localhost:{port}/");
        let trusted = tls::build(Some(include_bytes!("testdata/ca.pem"))).expect("config");
        let answer = Connector::new(&trusted, (None, Some(Duration::from_secs(5))))
            .call(get(&url))
            .await
            .expect("trusted");
        assert_eq!(answer.status().as_u16(), 204);
        let untrusted = tls::build(None).expect("config");
        let refused = Connector::new(&untrusted, (None, None))
            .call(get(&url))
            .await;
        assert!(refused.is_err());

        let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let plain_url = format!("http://{}/", plain.local_addr().expect("addr"));
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            if let Ok((mut tcp, _)) = plain.accept().await {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let answer = Connector::new(&untrusted, (None, None))
            .call(get(&plain_url))
            .await
            .expect("plain http");
        assert_eq!(answer.status().as_u16(), 200);
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", closed.local_addr().expect("addr"));
        drop(closed);
        let config = tls::build(None).expect("config");
        let e = Connector::new(&config, (Some(Duration::from_secs(2)), None))
            .call(get(&url))
            .await
            .expect_err("nothing listens");
        assert!(e.is_io(), "{e:?}");
    }
}
