//! Programmable local HTTP receivers standing in for webhook endpoints: a
//! [`Receiver`] records every request exactly as received and answers it as
//! its [`Behaviour`] says (status, delay, connection reset, redirect, or a
//! per-request script); a [`Sink`] just counts, for benchmarks.

pub mod behaviour;
pub mod sink;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use tokio::sync::watch;

use crate::http_server::{self, response, ConnInfo, Reply, ServerHandle};
use crate::DevstackError;

pub use behaviour::{Behaviour, Script};
pub use sink::Sink;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The request target as sent (path and query, e.g. `/hook?x=1`).
    pub target: String,
    /// The path part of the target.
    pub path: String,
    /// Headers in arrival order. hyper lowercases names and groups repeated
    /// headers under the first occurrence of their name; that is as close to
    /// the wire as it allows. Non-UTF-8 values are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Bytes,
    /// When the request head arrived.
    pub received_at: Instant,
    /// The 0-based index of this request among those for the same path.
    pub index_for_path: usize,
    /// The client's address.
    pub peer: SocketAddr,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct State {
    behaviour: RwLock<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
    per_path: Mutex<HashMap<String, usize>>,
    count: watch::Sender<usize>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these; the data stays usable if it did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A recording, programmable HTTP receiver on 127.0.0.1; stopped on drop.
pub struct Receiver {
    server: ServerHandle,
    state: Arc<State>,
}

impl Receiver {
    /// Starts a receiver that treats every request as `behaviour` says.
    pub async fn start(behaviour: Behaviour) -> Result<Receiver, DevstackError> {
        let state = Arc::new(State {
            behaviour: RwLock::new(behaviour),
            requests: Mutex::new(Vec::new()),
            per_path: Mutex::new(HashMap::new()),
            count: watch::channel(0).0,
        });
        let handler_state = state.clone();
        let server = http_server::serve("receiver", true, move |req, info| {
            handle(handler_state.clone(), req, info)
        })
        .await?;
        Ok(Receiver { server, state })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT` followed by `path` (a leading `/` is added
    /// when missing).
    pub fn url(&self, path: &str) -> String {
        let sep = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{sep}{path}", self.server.addr())
    }

    /// Replaces the behaviour for requests arriving from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self
            .state
            .behaviour
            .write()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// The requests recorded for `path`.
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        lock(&self.state.requests)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Number of requests recorded so far.
    pub fn count(&self) -> usize {
        *self.state.count.borrow()
    }

    /// Waits until at least `n` requests were recorded and returns them all.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, DevstackError> {
        let mut rx = self.state.count.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n))
            .await
            .map(|waited| waited.is_ok());
        match reached {
            Ok(true) => Ok(self.requests()),
            // The sender lives in `state`, which we hold, so it cannot close.
            Ok(false) => Err(DevstackError::Task("receiver state closed".into())),
            Err(_) => Err(DevstackError::Timeout {
                what: format!("{n} requests at the receiver (got {})", self.count()),
                after: timeout,
            }),
        }
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>, info: ConnInfo) -> Reply {
    let received_at = Instant::now();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away mid-body: there is nobody left to answer.
        Err(_) => return Reply::Reset,
    };
    let path = parts.uri.path().to_owned();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.to_string());
    let index_for_path = {
        let mut per_path = lock(&state.per_path);
        let next = per_path.entry(path.clone()).or_insert(0);
        let index = *next;
        *next += 1;
        index
    };
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    lock(&state.requests).push(RecordedRequest {
        method: parts.method.as_str().to_owned(),
        target,
        path,
        headers,
        body,
        received_at,
        index_for_path,
        peer: info.peer,
    });
    state.count.send_modify(|count| *count += 1);

    let mut behaviour = state
        .behaviour
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    loop {
        behaviour = match behaviour {
            Behaviour::Script(script) => script(index_for_path),
            Behaviour::Delay(delay, then) => {
                tokio::time::sleep(delay).await;
                *then
            }
            Behaviour::Reset => return Reply::Reset,
            Behaviour::Redirect(location) => {
                let mut resp = response(302, "text/plain", "");
                match HeaderValue::from_str(&location) {
                    Ok(value) => {
                        resp.headers_mut().insert(http::header::LOCATION, value);
                    }
                    Err(_) => *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR,
                }
                return Reply::Response(resp);
            }
            Behaviour::Respond {
                status,
                headers,
                body,
            } => {
                let mut resp = response(status, "text/plain", body);
                for (name, value) in headers {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        resp.headers_mut().append(name, value);
                    }
                }
                return Reply::Response(resp);
            }
        };
    }
}
