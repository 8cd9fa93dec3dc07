//! An emulation of the AWS Lambda Runtime API
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>), so a
//! Lambda binary built with `lambda_runtime` runs as a local process exactly
//! as it does in an execution environment. It owns the invocation queue:
//! `invoke()` enqueues an event FIFO, the function takes it with
//! `GET /next`, and its `POST …/response` or `…/error` completes the
//! `invoke()`. Like one execution environment it serves one invocation at a
//! time: the next event is handed out only when the function polls again.
//!
//! The function process and the two together ([`LocalFunction`]) live in
//! [`process`].

pub mod process;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::http_server::{self, json_response, Body, ConnInfo, Reply, ServerHandle};
use crate::paths::{self, lock, ACCOUNT_ID, REGION};
use crate::DevstackError;

pub use crate::paths::workspace_binary;
pub use process::{FunctionProcess, LocalFunction, ProcessReport};

const PREFIX: &str = "/2018-06-01/runtime/";

/// How long an invocation may wait for the function to poll `/next` before
/// `invoke()` gives up, unless changed with [`RuntimeApi::set_dispatch_timeout`].
/// Generous because a cold debug binary may take seconds to initialise.
pub const DEFAULT_DISPATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// How an invocation ended, as Lambda's Invoke API would report it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function posted a response: its body parsed as JSON, or kept as a
    /// JSON string when it was not JSON.
    Ok(Value),
    /// The function posted an error (or timed out, or failed to initialise):
    /// the error document, normally `{"errorType":…,"errorMessage":…}`.
    FunctionError(Value),
}

/// The result of one invocation.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The `Lambda-Runtime-Aws-Request-Id` the function saw.
    pub request_id: String,
    /// What the function answered.
    pub outcome: Outcome,
    /// From handing the event to the function (its `/next` returning) to its
    /// answer arriving: what Lambda would bill as the duration.
    pub duration: Duration,
    /// Time spent queued before the function took the event (includes the
    /// init phase on a cold start).
    pub queued: Duration,
    /// When the function took the event (or the invocation started).
    pub started_at: Instant,
    /// True when the function did not answer before the deadline; the outcome
    /// is then a `Sandbox.Timedout` function error, as Lambda reports it.
    pub timed_out: bool,
}

impl Invocation {
    /// The response value when the function succeeded.
    pub fn ok(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Ok(v) => Some(v),
            Outcome::FunctionError(_) => None,
        }
    }

    /// The error document when the function failed.
    pub fn error(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Ok(_) => None,
            Outcome::FunctionError(v) => Some(v),
        }
    }

    /// True when the function succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
}

/// An invocation waiting in the queue for the function's `/next`.
struct Pending {
    request_id: String,
    event: Bytes,
    timeout: Duration,
    /// Tells `invoke()` when the function took the event; a failed send means
    /// the caller gave up waiting, so the event is skipped.
    dispatched: oneshot::Sender<Instant>,
    done: oneshot::Sender<Outcome>,
}

struct Shared {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    /// Invocations handed out and not answered yet. A timed-out one stays
    /// here, so its late answer is accepted (and the runtime carries on to
    /// `/next`) and dropped.
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<Value>>,
}

/// A running Runtime API endpoint on 127.0.0.1; stopped on drop.
pub struct RuntimeApi {
    server: ServerHandle,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Pending>,
    dispatch_timeout: Duration,
}

impl RuntimeApi {
    /// Starts an endpoint whose invoked-function ARN names `function_name`.
    pub async fn start(function_name: &str) -> Result<RuntimeApi, DevstackError> {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            queue: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: watch::channel(None).0,
            init_error: watch::channel(None).0,
        });
        let handler_shared = shared.clone();
        let server = http_server::serve("Runtime API", false, move |req, info| {
            handle(handler_shared.clone(), req, info)
        })
        .await?;
        Ok(RuntimeApi {
            server,
            shared,
            queue: queue_tx,
            dispatch_timeout: DEFAULT_DISPATCH_TIMEOUT,
        })
    }

    /// The socket address; `AWS_LAMBDA_RUNTIME_API` is its `ip:port` form.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes how long an invocation waits for the function to take it.
    pub fn set_dispatch_timeout(&mut self, timeout: Duration) {
        self.dispatch_timeout = timeout;
    }

    /// When the function first polled `/next` (the end of its init phase),
    /// if it has.
    pub fn first_poll_at(&self) -> Option<Instant> {
        *self.shared.first_poll.borrow()
    }

    /// Waits until the function first polls `/next`.
    pub async fn wait_for_first_poll(&self, timeout: Duration) -> Result<Instant, DevstackError> {
        let mut rx = self.shared.first_poll.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        let polled = waited.map_err(|_| DevstackError::Timeout {
            what: "the function's first /next poll".into(),
            after: timeout,
        })?;
        polled
            .ok()
            .and_then(|at| *at)
            .ok_or(DevstackError::RuntimeApiStopped)
    }

    /// The document the function posted to `/init/error`, if it did.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.borrow().clone()
    }

    /// Queues `event`, waits for the function to take and answer it, and
    /// reports the outcome. The function gets `Lambda-Runtime-Deadline-Ms` =
    /// the moment it takes the event + `timeout`; answering later yields a
    /// `Sandbox.Timedout` function error. Fails with `NotPolled` when the
    /// function does not take the event within the dispatch timeout.
    pub async fn invoke(
        &self,
        event: Value,
        timeout: Duration,
    ) -> Result<Invocation, DevstackError> {
        let request_id = paths::uuid_v4();
        let (dispatched_tx, dispatched_rx) = oneshot::channel();
        let (done_tx, mut done_rx) = oneshot::channel();
        let enqueued_at = Instant::now();
        self.queue
            .send(Pending {
                request_id: request_id.clone(),
                event: Bytes::from(event.to_string()),
                timeout,
                dispatched: dispatched_tx,
                done: done_tx,
            })
            .map_err(|_| DevstackError::RuntimeApiStopped)?;

        let mut init_error = self.shared.init_error.subscribe();
        let dispatched_at = tokio::select! {
            biased;
            taken = dispatched_rx => taken.map_err(|_| DevstackError::RuntimeApiStopped)?,
            failed = init_error.wait_for(Option::is_some) => {
                let doc = failed.map(|v| v.clone()).ok().flatten().unwrap_or(Value::Null);
                return Ok(Invocation {
                    request_id,
                    outcome: Outcome::FunctionError(doc),
                    duration: Duration::ZERO,
                    queued: enqueued_at.elapsed(),
                    started_at: Instant::now(),
                    timed_out: false,
                });
            }
            _ = tokio::time::sleep(self.dispatch_timeout) => {
                // Dropping done_rx here closes the channel, so `/next` skips
                // the event instead of handing a stale one to the function.
                return Err(DevstackError::NotPolled { waited: self.dispatch_timeout });
            }
        };
        let queued = dispatched_at.saturating_duration_since(enqueued_at);

        let deadline = tokio::time::Instant::from_std(dispatched_at + timeout);
        let finished = |request_id, outcome, timed_out| Invocation {
            request_id,
            outcome,
            duration: dispatched_at.elapsed(),
            queued,
            started_at: dispatched_at,
            timed_out,
        };
        match tokio::time::timeout_at(deadline, &mut done_rx).await {
            Ok(Ok(outcome)) => Ok(finished(request_id, outcome, false)),
            Ok(Err(_)) => Err(DevstackError::RuntimeApiStopped),
            Err(_) => {
                if let Ok(outcome) = done_rx.try_recv() {
                    // The answer raced the deadline and won by a hair: keep it.
                    return Ok(finished(request_id, outcome, false));
                }
                let timed_out = Outcome::FunctionError(json!({
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": format!(
                        "Task timed out after {:.2} seconds",
                        timeout.as_secs_f64()
                    ),
                }));
                Ok(finished(request_id, timed_out, true))
            }
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>, _info: ConnInfo) -> Reply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let header = parts.headers.get("lambda-runtime-function-error-type");
    let error_type = header.and_then(|v| v.to_str().ok()).unwrap_or("Unhandled");
    // Only POSTs carry a body; a broken one reads as empty, which the
    // waiting invoke() then reports.
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = path.strip_prefix(PREFIX).unwrap_or("").split('/').collect();
    let resp = match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next(&shared).await,
        (&Method::POST, ["invocation", id, "response"]) => {
            // JSON for every handler we run; anything else is kept as a
            // string so a test can still see what came back.
            let value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            complete(&shared, id, Outcome::Ok(value))
        }
        (&Method::POST, ["invocation", id, "error"]) => complete(
            &shared,
            id,
            Outcome::FunctionError(error_doc(&body, error_type)),
        ),
        (&Method::POST, ["init", "error"]) => {
            shared
                .init_error
                .send_replace(Some(error_doc(&body, error_type)));
            accepted()
        }
        _ => json_response(
            404,
            &json!({"errorType": "NotFound", "errorMessage": format!("no such Runtime API route: {path}")}),
        ),
    };
    Reply::Response(resp)
}

/// `GET /next`: long-polls the queue and hands out the next live invocation.
async fn next(shared: &Shared) -> Response<Body> {
    if shared.first_poll.borrow().is_none() {
        shared.first_poll.send_replace(Some(Instant::now()));
    }
    // Only the function's single runtime loop polls; the lock serialises any
    // stray second poller instead of splitting the FIFO between them.
    let mut queue = shared.queue.lock().await;
    // None: the RuntimeApi was dropped; the 500 makes the runtime loop exit.
    while let Some(pending) = queue.recv().await {
        let deadline_ms = paths::epoch_millis(SystemTime::now() + pending.timeout);
        if pending.dispatched.send(Instant::now()).is_err() {
            // The caller gave up waiting (NotPolled): skip the stale event.
            continue;
        }
        let id = pending.request_id;
        lock(&shared.in_flight).insert(id.clone(), pending.done);
        let resp = Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("lambda-runtime-aws-request-id", &id)
            .header("lambda-runtime-deadline-ms", deadline_ms)
            .header("lambda-runtime-invoked-function-arn", &shared.function_arn)
            .header("lambda-runtime-trace-id", paths::trace_header())
            .body(Full::new(pending.event));
        return resp
            .unwrap_or_else(|e| json_response(500, &json!({"errorMessage": e.to_string()})));
    }
    json_response(
        500,
        &json!({"errorType": "ServiceException", "errorMessage": "devstack Runtime API stopped"}),
    )
}

/// Delivers the function's answer to the waiting `invoke()`.
fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Response<Body> {
    let waiter = lock(&shared.in_flight).remove(id);
    match waiter {
        Some(done) => {
            // A dropped receiver: invoke() timed out or was cancelled; drop the answer.
            let _ = done.send(outcome);
            accepted()
        }
        None => json_response(
            400,
            &json!({"errorType": "InvalidRequestID", "errorMessage": format!("unknown request id {id}")}),
        ),
    }
}

/// An error body is normally `{"errorType","errorMessage"}`; a non-JSON one
/// is wrapped in that shape using the error-type header.
fn error_doc(body: &[u8], error_type: &str) -> Value {
    serde_json::from_slice(body).unwrap_or_else(
        |_| json!({"errorType": error_type, "errorMessage": String::from_utf8_lossy(body)}),
    )
}

fn accepted() -> Response<Body> {
    json_response(202, &json!({"status": "OK"}))
}
