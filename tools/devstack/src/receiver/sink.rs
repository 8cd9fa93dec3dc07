//! The benchmark's receiver: answers `204` and only counts, on one or more
//! ports (one host each to a sender's per-host limit), at once or after a
//! set delay ([`Sink::set_delay`]); [`Sink::start_tls`] serves HTTPS with a
//! test CA made at start (rcgen) and counts TLS handshakes.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use tokio_rustls::{rustls, TlsAcceptor};

use crate::http_server::{self, response, Reply, ServerHandle};
use crate::paths::{lock, wait_until};
use crate::DevstackError;

/// Fast counting receivers (with their requests answered, per listener, and
/// a TLS sink's CA certificate); stopped on drop.
pub struct Sink {
    servers: Vec<ServerHandle>,
    counts: Vec<Arc<AtomicU64>>,
    state: Arc<State>,
    ca_pem: Option<String>,
}

/// What every listener shares: body bytes received, the answer delay in µs
/// (0: at once), the first and the last answer.
#[derive(Default)]
struct State {
    bytes: AtomicU64,
    delay_us: AtomicU64,
    answers: Mutex<Option<(Instant, Instant)>>,
}

/// Reads the body (so keep-alive connections stay reusable), waits the
/// delay, counts, answers 204.
async fn answer(req: Request<Incoming>, count: Arc<AtomicU64>, state: Arc<State>) -> Reply {
    let delay = state.delay_us.load(Ordering::Relaxed);
    let n = req
        .into_body()
        .collect()
        .await
        .map_or(0, |b| b.to_bytes().len());
    state.bytes.fetch_add(n as u64, Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }
    count.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let mut answers = lock(&state.answers);
    *answers = Some(answers.map_or((now, now), |(first, _)| (first, now)));
    Reply::Response(response(204, "text/plain", ""))
}

impl Sink {
    /// Starts `ports` plain HTTP listeners (at least one; `start_tls`: HTTPS
    /// with a new test CA).
    pub async fn start(ports: usize) -> Result<Sink, DevstackError> {
        Self::start_with(ports, None).await
    }

    pub async fn start_tls(ports: usize) -> Result<Sink, DevstackError> {
        Self::start_with(ports, Some(test_ca()?)).await
    }

    async fn start_with(
        ports: usize,
        tls: Option<(String, rustls::ServerConfig)>,
    ) -> Result<Sink, DevstackError> {
        let (ca_pem, config) = tls.unzip();
        let acceptor = config.map(|c| TlsAcceptor::from(Arc::new(c)));
        let state = Arc::new(State::default());
        let (mut servers, mut counts) = (Vec::new(), Vec::new());
        for _ in 0..ports.max(1) {
            let count = Arc::new(AtomicU64::new(0));
            let (c, st) = (count.clone(), state.clone());
            let handler = move |req, _| answer(req, c.clone(), st.clone());
            servers.push(http_server::serve("sink", false, acceptor.clone(), handler).await?);
            counts.push(count);
        }
        Ok(Sink {
            servers,
            counts,
            state,
            ca_pem,
        })
    }

    /// Answers every later request `delay` after its body arrived.
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.state.delay_us.store(us, Ordering::Relaxed);
    }

    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// When the first and the last request were answered, and forgets
    /// them: the next call covers the requests after this one.
    pub fn take_answers(&self) -> Option<(Instant, Instant)> {
        lock(&self.state.answers).take()
    }

    /// TLS handshakes completed so far (0 for a plain sink).
    pub fn handshakes(&self) -> u64 {
        self.servers
            .iter()
            .map(|s| s.handshakes.load(Ordering::Relaxed))
            .sum()
    }

    /// URL of `path` on listener `index` (taken modulo the number of
    /// listeners, so callers can round-robin with a plain counter).
    pub fn url(&self, index: usize, path: &str) -> String {
        let addr = self.servers[index % self.servers.len()].addr;
        let scheme = self.ca_pem.as_ref().map_or("http", |_| "https");
        format!(
            "{scheme}://{addr}/{}",
            path.strip_prefix('/').unwrap_or(path)
        )
    }

    /// Requests answered so far, all listeners together (`counts`: per listener).
    pub fn count(&self) -> u64 {
        self.counts().iter().sum()
    }

    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Request body bytes received, all listeners together.
    pub fn body_bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests were answered.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> Result<u64, DevstackError> {
        let what = || format!("{n} requests at the sink (got {})", self.count());
        wait_until(timeout, what, || Some(self.count()).filter(|c| *c >= n)).await
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
