//! The benchmark's receiver: answers `204 No Content` and only counts, on
//! one or more ports (each port is one host to a sender's per-host limit, the
//! way several subscriber endpoints would be). It answers at once, or after
//! a set delay ([`Sink::set_delay`]): real receivers take tens of
//! milliseconds, and whether a sender keeps its slots full while each request
//! waits is what decides its throughput against them.
//!
//! [`Sink::start_tls`] serves HTTPS with a certificate for 127.0.0.1 signed
//! by a test CA made at start (rcgen), which only whoever is handed
//! [`Sink::ca_pem`] trusts; it counts connections, i.e. TLS handshakes.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::rustls;

use crate::http_server::{self, response, Body, Reply, ServerHandle};
use crate::DevstackError;

/// One listening port.
enum Listener {
    Plain(ServerHandle),
    Tls {
        addr: SocketAddr,
        task: JoinHandle<()>,
    },
}

/// Fast counting receivers; stopped on drop.
pub struct Sink {
    listeners: Vec<Listener>,
    counts: Vec<Arc<AtomicU64>>,
    state: Arc<State>,
    /// The test CA's certificate (PEM), for a TLS sink.
    ca_pem: Option<String>,
}

/// What every listener shares.
#[derive(Default)]
struct State {
    bytes: AtomicU64,
    /// Answer delay, µs (0: at once).
    delay_us: AtomicU64,
    /// TLS connections accepted (handshakes completed).
    handshakes: AtomicU64,
    /// The first and the last answer.
    answers: Mutex<Option<(std::time::Instant, std::time::Instant)>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        for l in &self.listeners {
            if let Listener::Tls { task, .. } = l {
                task.abort();
            }
        }
    }
}

/// Reads the body (so keep-alive connections stay reusable), waits the
/// delay, counts, answers 204.
async fn answer(
    req: Request<Incoming>,
    count: Arc<AtomicU64>,
    state: Arc<State>,
) -> Response<Body> {
    let delay = state.delay_us.load(Ordering::Relaxed);
    let n = match req.into_body().collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => 0,
    };
    state
        .bytes
        .fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }
    count.fetch_add(1, Ordering::Relaxed);
    let now = std::time::Instant::now();
    let mut answers = state.answers.lock().unwrap_or_else(|p| p.into_inner());
    *answers = Some(answers.map_or((now, now), |(first, _)| (first, now)));
    response(204, "text/plain", "")
}

impl Sink {
    /// Starts `ports` plain HTTP listeners (at least one).
    pub async fn start(ports: usize) -> Result<Sink, DevstackError> {
        let state = Arc::new(State::default());
        let (mut listeners, mut counts) = (Vec::new(), Vec::new());
        for _ in 0..ports.max(1) {
            let count = Arc::new(AtomicU64::new(0));
            let (c, st) = (count.clone(), state.clone());
            let server = http_server::serve("sink", false, move |req, _info| {
                let fut = answer(req, c.clone(), st.clone());
                async move { Reply::Response(fut.await) }
            })
            .await?;
            listeners.push(Listener::Plain(server));
            counts.push(count);
        }
        Ok(Sink {
            listeners,
            counts,
            state,
            ca_pem: None,
        })
    }

    /// Starts `ports` HTTPS listeners (at least one) with a new test CA.
    pub async fn start_tls(ports: usize) -> Result<Sink, DevstackError> {
        let (ca_pem, config) = test_ca()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let state = Arc::new(State::default());
        let (mut listeners, mut counts) = (Vec::new(), Vec::new());
        for _ in 0..ports.max(1) {
            let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .map_err(|e| DevstackError::io("binding the TLS sink", e))?;
            let addr = listener
                .local_addr()
                .map_err(|e| DevstackError::io("reading the TLS sink address", e))?;
            let count = Arc::new(AtomicU64::new(0));
            let accept = tls_accept_loop(listener, acceptor.clone(), count.clone(), state.clone());
            let task = tokio::spawn(accept);
            listeners.push(Listener::Tls { addr, task });
            counts.push(count);
        }
        Ok(Sink {
            listeners,
            counts,
            state,
            ca_pem: Some(ca_pem),
        })
    }

    /// Answers every later request `delay` after its body arrived.
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.state.delay_us.store(us, Ordering::Relaxed);
    }

    /// The test CA's certificate (PEM) a TLS sink's certificate chains to.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// When the first and the last request were answered, and forgets
    /// them: the next call covers the requests after this one.
    pub fn take_answers(&self) -> Option<(std::time::Instant, std::time::Instant)> {
        let mut answers = self.state.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.take()
    }

    /// TLS handshakes completed so far (0 for a plain sink).
    pub fn handshakes(&self) -> u64 {
        self.state.handshakes.load(Ordering::Relaxed)
    }

    /// The listening addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let addr = |l: &Listener| match l {
            Listener::Plain(s) => s.addr(),
            Listener::Tls { addr, .. } => *addr,
        };
        self.listeners.iter().map(addr).collect()
    }

    /// URL of `path` on listener `index` (taken modulo the number of
    /// listeners, so callers can round-robin with a plain counter).
    pub fn url(&self, index: usize, path: &str) -> String {
        let addrs = self.addrs();
        let addr = addrs[index % addrs.len()];
        let sep = if path.starts_with('/') { "" } else { "/" };
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}{sep}{path}")
    }

    /// Requests answered so far, all listeners together.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Requests answered per listener.
    pub fn counts(&self) -> Vec<u64> {
        let load = |c: &Arc<AtomicU64>| c.load(Ordering::Relaxed);
        self.counts.iter().map(load).collect()
    }

    /// Request body bytes received, all listeners together.
    pub fn body_bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests were answered.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> Result<u64, DevstackError> {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.count();
            if count >= n {
                return Ok(count);
            }
            if Instant::now() >= deadline {
                return Err(DevstackError::Timeout {
                    what: format!("{n} requests at the sink (got {count})"),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 and `localhost` signed by
/// it: the CA's PEM and the server's rustls configuration (ring, the crypto
/// provider the product's client uses too).
fn test_ca() -> Result<(String, rustls::ServerConfig), DevstackError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let tls = |e: &dyn std::fmt::Display| {
        DevstackError::io("making the test CA", std::io::Error::other(e.to_string()))
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls(&e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "alin-webhooks bench test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let ca = ca.self_signed(&ca_key).map_err(|e| tls(&e))?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).map_err(|e| tls(&e))?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let leaf_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let leaf = leaf
        .signed_by(&leaf_key, &ca, &ca_key)
        .map_err(|e| tls(&e))?;
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key.into())
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca.pem(), config))
}

async fn tls_accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    count: Arc<AtomicU64>,
    state: Arc<State>,
) {
    // Connections live in the set, so aborting this task closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, count, state) = (acceptor.clone(), count.clone(), state.clone());
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    state.handshakes.fetch_add(1, Ordering::Relaxed);
                    let service = hyper::service::service_fn(move |req| {
                        let fut = answer(req, count.clone(), state.clone());
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service);
                    let _ = conn.await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
