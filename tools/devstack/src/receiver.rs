//! Programmable local HTTP receivers standing in for webhook endpoints: a
//! [`Receiver`] answers every request as its [`Behaviour`] says (status,
//! delay, connection reset, or a per-request script) and records it exactly
//! as received, or, started with [`Options::counting`] for a benchmark, only
//! counts, on many ports and over HTTPS if asked; and
//! [`verify_standardwebhooks`], the independent check of what arrived.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use tokio_rustls::{rustls, TlsAcceptor};

use crate::http_server::{self, response, Reply, ServerHandle};
use crate::paths::{lock, wait_until};
use crate::DevstackError;

#[derive(Clone)]
pub enum Behaviour {
    /// Answer with this status, extra headers (e.g. `Retry-After`) and body.
    Respond {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    Delay(Duration, Box<Behaviour>),
    /// Close the connection with a TCP reset, answering nothing.
    Reset,
    Script(Arc<dyn Fn(&RecordedRequest) -> Behaviour + Send + Sync>),
}

impl Behaviour {
    pub fn status(status: u16) -> Behaviour {
        Behaviour::Respond {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn ok() -> Behaviour {
        Behaviour::status(200)
    }

    /// Adds a response header (to `Respond` only, like [`Behaviour::with_body`];
    /// an invalid name or value is left out).
    pub fn with_header(mut self, name: &str, value: &str) -> Behaviour {
        let name = HeaderName::from_bytes(name.as_bytes());
        if let (Behaviour::Respond { headers, .. }, Ok(n), Ok(v)) =
            (&mut self, name, HeaderValue::from_str(value))
        {
            headers.append(n, v);
        }
        self
    }

    pub fn with_body(mut self, new_body: impl Into<Bytes>) -> Behaviour {
        if let Behaviour::Respond { body, .. } = &mut self {
            *body = new_body.into();
        }
        self
    }

    pub fn delay(delay: Duration, then: Behaviour) -> Behaviour {
        Behaviour::Delay(delay, Box::new(then))
    }

    pub fn redirect(location: impl Into<String>) -> Behaviour {
        Behaviour::status(302).with_header("location", &location.into())
    }

    /// Decides per request with `f(index)`, the index of the request among
    /// those for the same path, e.g. "503 twice then 200".
    pub fn script(f: impl Fn(usize) -> Behaviour + Send + Sync + 'static) -> Behaviour {
        Behaviour::Script(Arc::new(move |req| f(req.index_for_path)))
    }

    /// The behaviours in order, the last one repeating.
    pub fn sequence(steps: Vec<Behaviour>) -> Behaviour {
        Behaviour::script(move |i| {
            steps
                .get(i)
                .or(steps.last())
                .cloned()
                .unwrap_or_else(Behaviour::ok)
        })
    }
}

#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target as sent (path and query, e.g. `/hook?x=1`).
    pub target: String,
    pub path: String,
    /// Headers in arrival order, as close to the wire as hyper allows (names
    /// lowercased, repeats grouped under the first); values lossily UTF-8.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub received_at: Instant,
    /// The 0-based index of this request among those for the same path.
    pub index_for_path: usize,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).first().copied()
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let named = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        named.map(|(_, v)| v.as_str()).collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How a [`Receiver`] listens and what it keeps; the default, what
/// [`Receiver::start`] takes, is one plain HTTP port recording every request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Listeners, one port each (at least one), so a sender's per-host
    /// limit applies to each.
    pub ports: usize,
    /// HTTPS with a test CA made at start ([`Receiver::ca_pem`]).
    pub tls: bool,
    /// Only count, cheaply enough for a benchmark: no request is kept (one
    /// is built only for a [`Behaviour::Script`]), and no connection gets
    /// the duplicated descriptor a reset needs, so [`Behaviour::Reset`]
    /// just closes it.
    pub count_only: bool,
}

impl Options {
    /// `ports` plain HTTP listeners that only count: a benchmark's sink.
    pub fn counting(ports: usize) -> Options {
        Options {
            ports,
            tls: false,
            count_only: true,
        }
    }
}

/// What every listener shares.
struct State {
    count_only: bool,
    behaviour: Mutex<Behaviour>,
    /// The recorded requests, and how many arrived per path.
    log: Mutex<(Vec<RecordedRequest>, HashMap<String, usize>)>,
    /// Requests arrived, per listener.
    counts: Vec<AtomicUsize>,
    /// Request body bytes received.
    bytes: AtomicU64,
    /// The first and the last answer.
    answers: Mutex<Option<(Instant, Instant)>>,
}

/// A programmable HTTP receiver on 127.0.0.1, on one or more ports; stopped
/// on drop.
pub struct Receiver {
    servers: Vec<ServerHandle>,
    state: Arc<State>,
    /// The test CA of a TLS receiver.
    ca_pem: Option<String>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Result<Receiver, DevstackError> {
        Receiver::start_with(Options::default(), behaviour).await
    }

    pub async fn start_with(
        options: Options,
        behaviour: Behaviour,
    ) -> Result<Receiver, DevstackError> {
        let (ca_pem, config) = options.tls.then(test_ca).transpose()?.unzip();
        let acceptor = config.map(|c| TlsAcceptor::from(Arc::new(c)));
        let ports = options.ports.max(1);
        let state = Arc::new(State {
            count_only: options.count_only,
            behaviour: Mutex::new(behaviour),
            log: Mutex::default(),
            counts: (0..ports).map(|_| AtomicUsize::new(0)).collect(),
            bytes: AtomicU64::new(0),
            answers: Mutex::default(),
        });
        let mut servers = Vec::new();
        for port in 0..ports {
            let (st, tls) = (state.clone(), acceptor.clone());
            let handler = move |req, _| handle(st.clone(), port, req);
            servers.push(http_server::serve("receiver", !options.count_only, tls, handler).await?);
        }
        Ok(Receiver {
            servers,
            state,
            ca_pem,
        })
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.servers[0].addr
    }

    /// `http://127.0.0.1:PORT` (`https` with TLS) of the first listener
    /// followed by `path` (a leading `/` is added when missing).
    pub fn url(&self, path: &str) -> String {
        self.url_at(0, path)
    }

    /// [`Receiver::url`] on listener `index` (taken modulo the number of
    /// listeners, so callers can round-robin with a plain counter).
    pub fn url_at(&self, index: usize, path: &str) -> String {
        let addr = self.servers[index % self.servers.len()].addr;
        let scheme = self.ca_pem.as_ref().map_or("http", |_| "https");
        format!(
            "{scheme}://{addr}/{}",
            path.strip_prefix('/').unwrap_or(path)
        )
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The requests recorded so far (none when only counting).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.log).0.clone()
    }

    /// Requests arrived so far, all listeners together (`counts`: per listener).
    pub fn count(&self) -> usize {
        self.counts().iter().sum()
    }

    pub fn counts(&self) -> Vec<usize> {
        let counts = self.state.counts.iter();
        counts.map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Request body bytes received, all listeners together.
    pub fn body_bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    /// TLS handshakes completed so far (0 without TLS).
    pub fn handshakes(&self) -> u64 {
        self.servers
            .iter()
            .map(|s| s.handshakes.load(Ordering::Relaxed))
            .sum()
    }

    /// When the first and the last request were answered, and forgets
    /// them: the next call covers the requests after this one.
    pub fn take_answers(&self) -> Option<(Instant, Instant)> {
        lock(&self.state.answers).take()
    }

    /// Waits until at least `n` requests arrived and returns those recorded.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, DevstackError> {
        let what = || format!("{n} requests at the receiver (got {})", self.count());
        wait_until(timeout, what, || {
            (self.count() >= n).then(|| self.requests())
        })
        .await
    }
}

async fn handle(
    state: Arc<State>,
    port: usize,
    req: hyper::Request<hyper::body::Incoming>,
) -> Reply {
    let received_at = Instant::now();
    let (parts, body) = req.into_parts();
    // Read whole, so keep-alive connections stay reusable.
    let Ok(body) = body.collect().await.map(|collected| collected.to_bytes()) else {
        // The client went away mid-body: there is nobody left to answer.
        return Reply::Reset;
    };
    state.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    let recorded = || {
        let path = parts.uri.path().to_owned();
        let target = parts
            .uri
            .path_and_query()
            .map_or(&*path, |pq| pq.as_str())
            .to_owned();
        let header = |(n, v): (&HeaderName, &HeaderValue)| {
            (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into())
        };
        let headers = parts.headers.iter().map(header).collect();
        let mut log = lock(&state.log);
        let seen = log.1.entry(path.clone()).or_insert(0);
        let method = parts.method.as_str().to_owned();
        let recorded = RecordedRequest {
            method,
            target,
            headers,
            body: body.clone(),
            received_at,
            index_for_path: *seen,
            path,
        };
        *seen += 1;
        if !state.count_only {
            log.0.push(recorded.clone());
        }
        recorded
    };
    // Recorded on arrival, before the behaviour runs, and counted after, so
    // `wait_for` finds what it counted.
    let mut request = (!state.count_only).then(&recorded);
    state.counts[port].fetch_add(1, Ordering::Relaxed);

    let mut behaviour = lock(&state.behaviour).clone();
    loop {
        behaviour = match behaviour {
            Behaviour::Script(script) => script(request.get_or_insert_with(&recorded)),
            Behaviour::Delay(delay, then) => {
                // A zero delay answers at once, without a trip through the timer.
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                *then
            }
            Behaviour::Reset => return Reply::Reset,
            Behaviour::Respond {
                status,
                headers,
                body,
            } => {
                let now = Instant::now();
                let mut answers = lock(&state.answers);
                *answers = Some(answers.map_or((now, now), |(first, _)| (first, now)));
                let typed = headers.contains_key(http::header::CONTENT_TYPE);
                let mut resp = response(status, if typed { "" } else { "text/plain" }, body);
                // Only the content type is set yet, and only when `headers` has none.
                resp.headers_mut().extend(headers);
                return Reply::Response(resp);
            }
        };
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

/// `Ok` when the PyPI `standardwebhooks` library (`scripts/verify_signature.py`
/// under the project venv) verifies `body` with `headers` under `secret`
/// (`whsec_…`), so our signer is never checked only by our own code; the
/// library's reason otherwise.
pub fn verify_standardwebhooks(
    secret: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), DevstackError> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let script = crate::paths::in_repo("scripts/verify_signature.py");
    let headers: serde_json::Map<_, _> = headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let input = serde_json::json!({ "secret": secret, "headers": headers, "body": body });
    let run = |what: &str| {
        let what = format!("{what} {} (run scripts/tools.sh)", script.display());
        move |e| DevstackError::io(what, e)
    };
    let mut child = Command::new(crate::paths::venv_python());
    let child = child
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = child.spawn().map_err(run("running"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(run("writing to"))?;
    }
    let out = child.wait_with_output().map_err(run("waiting for"))?;
    let failed = || {
        format!(
            "signature not verified: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        )
    };
    out.status
        .success()
        .then_some(())
        .ok_or_else(|| DevstackError::Setup(failed()))
}
