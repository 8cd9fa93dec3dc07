//! Programmable local HTTP receivers standing in for webhook endpoints: a
//! [`Receiver`] records every request exactly as received and answers it as
//! its [`Behaviour`] says (status, delay, connection reset, or a per-request
//! script); a [`Sink`] just counts, for benchmarks; and
//! [`verify_standardwebhooks`], the independent check of what arrived.

pub mod sink;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;

use crate::http_server::{self, response, Reply, ServerHandle};
use crate::paths::{lock, wait_until};
use crate::DevstackError;

pub use sink::Sink;

#[derive(Clone)]
pub enum Behaviour {
    /// Answer with this status, extra headers (e.g. `Retry-After`) and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
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
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn ok() -> Behaviour {
        Behaviour::status(200)
    }

    /// Adds a response header (to `Respond` only, like [`Behaviour::with_body`]).
    pub fn with_header(mut self, name: &str, value: &str) -> Behaviour {
        if let Behaviour::Respond { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
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

struct State {
    behaviour: Mutex<Behaviour>,
    log: Mutex<(Vec<RecordedRequest>, HashMap<String, usize>)>,
}

/// A recording, programmable HTTP receiver on 127.0.0.1; stopped on drop.
pub struct Receiver {
    server: ServerHandle,
    state: Arc<State>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Result<Receiver, DevstackError> {
        let state = Arc::new(State {
            behaviour: Mutex::new(behaviour),
            log: Mutex::default(),
        });
        let st = state.clone();
        let server = http_server::serve("receiver", true, None, move |req, _| {
            handle(st.clone(), req)
        });
        Ok(Receiver {
            server: server.await?,
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path` (a leading `/` is added
    /// when missing).
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}/{}",
            self.server.addr,
            path.strip_prefix('/').unwrap_or(path)
        )
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.state.behaviour) = behaviour;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.log).0.clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.state.log).0.len()
    }

    /// Waits until at least `n` requests were recorded and returns them all.
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

async fn handle(state: Arc<State>, req: hyper::Request<hyper::body::Incoming>) -> Reply {
    let received_at = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|collected| collected.to_bytes()) else {
        // The client went away mid-body: there is nobody left to answer.
        return Reply::Reset;
    };
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
    let recorded = {
        let mut log = lock(&state.log);
        let seen = log.1.entry(path.clone()).or_insert(0);
        let method = parts.method.as_str().to_owned();
        let recorded = RecordedRequest {
            method,
            target,
            headers,
            body,
            received_at,
            index_for_path: *seen,
            path,
        };
        *seen += 1;
        log.0.push(recorded.clone());
        recorded
    };

    let mut behaviour = lock(&state.behaviour).clone();
    loop {
        behaviour = match behaviour {
            Behaviour::Script(script) => script(&recorded),
            Behaviour::Delay(delay, then) => {
                tokio::time::sleep(delay).await;
                *then
            }
            Behaviour::Reset => return Reply::Reset,
            Behaviour::Respond {
                status,
                headers,
                body,
            } => {
                let typed = headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
                let mut resp = response(status, if typed { "" } else { "text/plain" }, body);
                for (name, value) in headers {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        resp.headers_mut().append(n, v);
                    }
                }
                return Reply::Response(resp);
            }
        };
    }
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
