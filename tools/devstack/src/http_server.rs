//! The one "serve this handler on 127.0.0.1:0" helper every emulation here
//! runs on (Runtime API, Function URL, receivers, the AWS proxy):
//! hyper's HTTP/1.1 connections, plain or TLS, shutdown on drop, and the one
//! thing a framework would not give us: closing a connection with a TCP reset.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::DevstackError;

/// The response body type every handler produces.
pub(crate) type Body = Full<Bytes>;

/// What a handler wants done with a request: a response, or the connection
/// aborted with a TCP RST and nothing answered, the way a crashing server or
/// a middlebox dropping the flow looks to a client.
pub(crate) enum Reply {
    Response(Response<Body>),
    Reset,
}

/// The two ends of the connection a request arrived on.
#[derive(Clone, Copy)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// A running server and the TLS handshakes it completed; dropping it stops
/// accepting and closes every open connection (they live in a `JoinSet`
/// owned by the accept task).
pub(crate) struct ServerHandle {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    pub handshakes: Arc<AtomicU64>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds 127.0.0.1 on a free port and serves `handler` in a background
/// task, over TLS when `tls` is given. `resettable` must be true for
/// handlers that may return [`Reply::Reset`]; it costs a duplicated
/// descriptor per connection, which counting receivers avoid.
pub(crate) async fn serve<F, Fut>(
    what: &str,
    resettable: bool,
    tls: Option<TlsAcceptor>,
    handler: F,
) -> Result<ServerHandle, DevstackError>
where
    F: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let failed = |e| DevstackError::io(format!("binding the {what} server"), e);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let (handler, handshakes) = (Arc::new(handler), Arc::new(AtomicU64::new(0)));
    let counter = handshakes.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let (tls, counter) = (tls.clone(), counter.clone());
                        connections.spawn(connection(stream, peer, resettable, tls, counter, handler.clone()));
                    }
                    Err(e) => {
                        // Usually EMFILE under a benchmark; back off instead of spinning.
                        tracing::warn!(error = %e, "devstack server: accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                // Reap finished connections so the set does not grow without bound.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(ServerHandle {
        addr,
        task,
        handshakes,
    })
}

/// The stream a connection is served over, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connection<F, Fut>(
    stream: TcpStream,
    peer: SocketAddr,
    resettable: bool,
    tls: Option<TlsAcceptor>,
    handshakes: Arc<AtomicU64>,
    handler: Arc<F>,
) where
    F: Fn(Request<Incoming>, ConnInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let Ok(local) = stream.local_addr() else {
        return;
    };
    // Benchmarks send many small requests; Nagle would add 40 ms stalls.
    let _ = stream.set_nodelay(true);
    // A second descriptor for the same socket, so a reset can be forced after
    // hyper has taken ownership of the stream (SO_LINGER=0 then close => RST).
    let (stream, twin) = match resettable {
        true => match split_twin(stream) {
            Ok((stream, twin)) => (stream, Some(twin)),
            Err(_) => return,
        },
        false => (stream, None),
    };
    let stream: Box<dyn Io> = match tls {
        None => Box::new(stream),
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => (handshakes.fetch_add(1, Ordering::Relaxed), Box::new(stream)).1,
            Err(e) => {
                return tracing::debug!(error = %e, %peer, "devstack server: TLS handshake failed")
            }
        },
    };
    let info = ConnInfo { peer, local };
    let reset = Arc::new(Notify::new());
    let on_reset = reset.clone();
    let service = hyper::service::service_fn(move |req| {
        let (reply, reset) = (handler(req, info), on_reset.clone());
        async move {
            match reply.await {
                Reply::Response(resp) => Ok::<_, Infallible>(resp),
                Reply::Reset => {
                    reset.notify_one();
                    // Never answer: the connection task drops us on the notification.
                    std::future::pending().await
                }
            }
        }
    });
    let mut conn = hyper::server::conn::http1::Builder::new();
    tokio::select! {
        result = conn.timer(TokioTimer::new()).serve_connection(TokioIo::new(stream), service) => if let Err(e) = result {
            tracing::debug!(error = %e, %peer, "devstack server: connection ended with error");
        },
        _ = reset.notified() => match twin.map(|twin| twin.set_zero_linger()) {
            // Both descriptors close here; the last close sends the RST.
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "devstack server: cannot set SO_LINGER=0"),
            None => tracing::warn!("devstack server: reset on a non-resettable server; closing"),
        },
    }
}

/// Duplicates the socket descriptor; both halves stay registered with tokio.
fn split_twin(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let std_stream = stream.into_std()?;
    let twin = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, TcpStream::from_std(twin)?))
}

/// A response with a status, content type (none when empty) and body.
pub(crate) fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let (false, Ok(value)) = (
        content_type.is_empty(),
        http::HeaderValue::from_str(content_type),
    ) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    resp
}

pub(crate) fn json_response(status: u16, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}
