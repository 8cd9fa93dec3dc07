//! The AWS Lambda Runtime API emulation, so a `lambda_runtime` binary runs
//! as a local process as in Lambda: `invoke()` queues an event FIFO, the
//! function takes it with `GET /next` and completes it with `POST
//! …/response` or `…/error`, one at a time like one execution environment. A
//! [`LocalFunction`] is a binary spawned with Lambda's environment against
//! its own [`RuntimeApi`]; what event sources invoke is an [`Invoker`].

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use time::macros::format_description;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

use crate::http_server::{self, json_response, Body, Reply, ServerHandle};
use crate::paths::{self, lock, ACCOUNT_ID, REGION};
use crate::DevstackError;

pub use crate::paths::workspace_binary;

/// How an invocation ended, as Lambda's Invoke API would report it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The response body as JSON (a JSON string when it was not JSON).
    Ok(Value),
    /// The error document (`{"errorType":…,"errorMessage":…}`) of an error,
    /// timeout or failed init.
    FunctionError(Value),
}

#[derive(Clone, Debug)]
pub struct Invocation {
    /// The `Lambda-Runtime-Aws-Request-Id` the function saw.
    pub request_id: String,
    pub outcome: Outcome,
    /// From the function taking the event to its answer (Lambda's billed duration).
    pub duration: Duration,
    /// Time queued before the function took the event (includes a cold init).
    pub queued: Duration,
    /// When the function took the event (or the invocation started).
    pub started_at: Instant,
    /// The function missed its deadline; the outcome is `Sandbox.Timedout`.
    pub timed_out: bool,
}

impl Invocation {
    pub fn ok(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Ok(v) => Some(v),
            Outcome::FunctionError(_) => None,
        }
    }

    pub fn error(&self) -> Option<&Value> {
        self.ok().is_none().then_some(match &self.outcome {
            Outcome::Ok(v) | Outcome::FunctionError(v) => v,
        })
    }

    pub fn is_ok(&self) -> bool {
        self.ok().is_some()
    }
}

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
    /// Handed out, not answered yet. A timed-out one stays, so its late
    /// answer is accepted (the runtime carries on to `/next`) and dropped.
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: watch::Sender<Option<Value>>,
}

/// A running Runtime API endpoint on 127.0.0.1; stopped on drop.
pub struct RuntimeApi {
    server: ServerHandle,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Pending>,
    /// How long an invocation waits for the function to poll `/next`; a cold
    /// debug binary may take seconds.
    dispatch_timeout: Duration,
}

impl RuntimeApi {
    pub async fn start(function_name: &str) -> Result<RuntimeApi, DevstackError> {
        let (queue, queue_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            queue: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::default(),
            first_poll: Mutex::default(),
            init_error: watch::channel(None).0,
        });
        let st = shared.clone();
        let server = http_server::serve("Runtime API", false, None, move |req, _| {
            handle(st.clone(), req)
        });
        Ok(RuntimeApi {
            server: server.await?,
            shared,
            queue,
            dispatch_timeout: Duration::from_secs(30),
        })
    }

    /// The socket address; `AWS_LAMBDA_RUNTIME_API` is its `ip:port` form.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn set_dispatch_timeout(&mut self, timeout: Duration) {
        self.dispatch_timeout = timeout;
    }

    /// When the function first polled `/next` (the end of its init phase).
    pub fn first_poll_at(&self) -> Option<Instant> {
        *lock(&self.shared.first_poll)
    }

    pub async fn wait_for_first_poll(&self, timeout: Duration) -> Result<Instant, DevstackError> {
        paths::wait_until(
            timeout,
            || "the function's first /next poll".into(),
            || self.first_poll_at(),
        )
        .await
    }

    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.borrow().clone()
    }

    /// Queues `event`, waits for the function to take and answer it, and
    /// reports the outcome. The function's deadline is the moment it takes
    /// the event + `timeout`; answering later yields a `Sandbox.Timedout`
    /// function error. `NotPolled` when the function does not take the event
    /// within the dispatch timeout.
    pub async fn invoke(
        &self,
        event: Value,
        timeout: Duration,
    ) -> Result<Invocation, DevstackError> {
        let request_id = paths::uuid_v4();
        let (dispatched, dispatched_rx) = oneshot::channel();
        let (done, mut done_rx) = oneshot::channel();
        let (enqueued_at, event) = (Instant::now(), Bytes::from(event.to_string()));
        let pending = Pending {
            request_id: request_id.clone(),
            event,
            timeout,
            dispatched,
            done,
        };
        self.queue
            .send(pending)
            .map_err(|_| DevstackError::RuntimeApiStopped)?;
        let finished = |started_at: Instant, outcome, timed_out| Invocation {
            request_id: request_id.clone(),
            outcome,
            duration: started_at.elapsed(),
            queued: started_at.saturating_duration_since(enqueued_at),
            started_at,
            timed_out,
        };

        let mut init_error = self.shared.init_error.subscribe();
        let dispatched_at = tokio::select! {
            biased;
            taken = dispatched_rx => taken.map_err(|_| DevstackError::RuntimeApiStopped)?,
            failed = init_error.wait_for(Option::is_some) => {
                let doc = failed.map(|v| v.clone()).ok().flatten().unwrap_or(Value::Null);
                return Ok(finished(Instant::now(), Outcome::FunctionError(doc), false));
            }
            // Dropping done_rx closes the channel, so `/next` skips the event.
            _ = tokio::time::sleep(self.dispatch_timeout) => {
                return Err(DevstackError::NotPolled { waited: self.dispatch_timeout });
            }
        };
        let deadline = tokio::time::Instant::from_std(dispatched_at + timeout);
        match tokio::time::timeout_at(deadline, &mut done_rx).await {
            Ok(Ok(outcome)) => Ok(finished(dispatched_at, outcome, false)),
            Ok(Err(_)) => Err(DevstackError::RuntimeApiStopped),
            // The answer raced the deadline and won by a hair: keep it.
            Err(_) => Ok(match done_rx.try_recv() {
                Ok(outcome) => finished(dispatched_at, outcome, false),
                Err(_) => {
                    let message =
                        format!("Task timed out after {:.2} seconds", timeout.as_secs_f64());
                    let doc = json!({"errorType": "Sandbox.Timedout", "errorMessage": message});
                    finished(dispatched_at, Outcome::FunctionError(doc), true)
                }
            }),
        }
    }
}

async fn handle(shared: Arc<Shared>, req: hyper::Request<hyper::body::Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let header = parts.headers.get("lambda-runtime-function-error-type");
    let error_type = header.and_then(|v| v.to_str().ok()).unwrap_or("Unhandled");
    // A broken body reads as empty, which the waiting invoke() then reports.
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = || String::from_utf8_lossy(&body).into_owned();
    let error_doc = || {
        let doc = serde_json::from_slice(&body);
        doc.unwrap_or_else(|_| json!({"errorType": error_type, "errorMessage": text()}))
    };
    let segments: Vec<&str> = path
        .strip_prefix("/2018-06-01/runtime/")
        .unwrap_or("")
        .split('/')
        .collect();
    Reply::Response(match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next(&shared).await,
        // Not-JSON is kept as a string so a test can still see it.
        (&Method::POST, ["invocation", id, "response"]) => {
            let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(text()));
            complete(&shared, id, Outcome::Ok(value))
        }
        (&Method::POST, ["invocation", id, "error"]) => {
            complete(&shared, id, Outcome::FunctionError(error_doc()))
        }
        (&Method::POST, ["init", "error"]) => {
            shared.init_error.send_replace(Some(error_doc()));
            accepted()
        }
        _ => error(
            404,
            "NotFound",
            format!("no such Runtime API route: {path}"),
        ),
    })
}

/// `GET /next`: long-polls the queue and hands out the next live invocation.
async fn next(shared: &Shared) -> Response<Body> {
    lock(&shared.first_poll).get_or_insert_with(Instant::now);
    // The lock serialises a stray second poller instead of splitting the FIFO.
    let mut queue = shared.queue.lock().await;
    // None: the RuntimeApi was dropped; the 500 makes the runtime loop exit.
    while let Some(pending) = queue.recv().await {
        let deadline_ms = paths::epoch_millis(SystemTime::now() + pending.timeout);
        if pending.dispatched.send(Instant::now()).is_err() {
            continue; // The caller gave up waiting (NotPolled).
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
        return resp.unwrap_or_else(|e| error(500, "ServiceException", e.to_string()));
    }
    error(
        500,
        "ServiceException",
        "devstack Runtime API stopped".into(),
    )
}

/// Delivers the function's answer to the waiting `invoke()` (gone if it
/// timed out or was cancelled).
fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Response<Body> {
    match lock(&shared.in_flight).remove(id) {
        Some(done) => {
            let _ = done.send(outcome);
            accepted()
        }
        None => error(400, "InvalidRequestID", format!("unknown request id {id}")),
    }
}

fn error(status: u16, error_type: &str, message: String) -> Response<Body> {
    json_response(
        status,
        &json!({"errorType": error_type, "errorMessage": message}),
    )
}

fn accepted() -> Response<Body> {
    json_response(202, &json!({"status": "OK"}))
}

/// Something that can be invoked with an event, like a Lambda function: the
/// seam between event sources (Function URL, SQS event source mapping) and
/// what they invoke, a [`LocalFunction`] process, or a plain async closure
/// ([`invoker_fn`]) so a test can exercise an event source without a binary.
/// `Err` means the invocation could not be made at all (process gone, …); a
/// failing function is an `Outcome::FunctionError`.
pub trait Invoker: Send + Sync + 'static {
    fn invoke_event(
        &self,
        event: Value,
    ) -> impl Future<Output = Result<Invocation, DevstackError>> + Send;
}

impl<T: Invoker> Invoker for Arc<T> {
    fn invoke_event(
        &self,
        event: Value,
    ) -> impl Future<Output = Result<Invocation, DevstackError>> + Send {
        (**self).invoke_event(event)
    }
}

/// An async closure as an [`Invoker`]: each invocation calls `f(event)` and
/// reports its [`Outcome`] with a fresh request id and the measured duration.
pub fn invoker_fn<F, Fut>(f: F) -> impl Invoker
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    struct FnInvoker<F>(F);
    impl<F, Fut> Invoker for FnInvoker<F>
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
            let (started_at, request_id) = (Instant::now(), paths::uuid_v4());
            let outcome = (self.0)(event).await;
            let (duration, queued) = (started_at.elapsed(), Duration::ZERO);
            Ok(Invocation {
                outcome,
                request_id,
                duration,
                queued,
                started_at,
                timed_out: false,
            })
        }
    }
    FnInvoker(f)
}

/// A function binary running against its own Runtime API; the process is
/// killed on drop.
pub struct LocalFunction {
    // Drop order: kill the process before its Runtime API goes away.
    child: Mutex<Child>,
    pub api: RuntimeApi,
    pub pid: u32,
    /// The instant just before the spawn; with [`RuntimeApi::first_poll_at`]
    /// it gives the cold-start (init) time.
    pub spawned_at: Instant,
    log_path: PathBuf,
    /// The timeout when invoked as an [`Invoker`]: 30 s by default, as our
    /// functions are configured longer than Lambda's 3 s and debug builds are slow.
    timeout: Duration,
}

impl LocalFunction {
    /// Starts a Runtime API named after the binary's file stem and `binary`
    /// against it. The developer's own `AWS_*` variables are removed so their
    /// credentials never reach a local function; `env` wins over the Lambda
    /// defaults. stdout and stderr are appended to `log_path`.
    pub async fn start(
        binary: &Path,
        env: &[(String, String)],
        log_path: &Path,
    ) -> Result<LocalFunction, DevstackError> {
        if !binary.is_file() {
            return Err(DevstackError::BinaryNotFound(binary.to_path_buf()));
        }
        let name = binary
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("function");
        let api = RuntimeApi::start(name).await?;
        let failed = |e| DevstackError::io(format!("opening log {}", log_path.display()), e);
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(failed)?;
        let stamp = paths::epoch_millis(SystemTime::now());
        writeln!(
            log,
            "=== devstack: starting {} (epoch ms {stamp}) ===",
            binary.display()
        )
        .map_err(failed)?;
        let log_err = log.try_clone().map_err(failed)?;
        let mut cmd = Command::new(binary);
        // Lambda sets none of these; a developer's shell often does (a CA
        // bundle in SSL_CERT_FILE would have every cold start parse it).
        // What `env` names explicitly is set again below.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("AWS_")
                || k.starts_with("_X_AMZN")
                || k == "SSL_CERT_FILE"
                || k == "SSL_CERT_DIR"
            {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(lambda_env(name, &api))
            .envs(env.iter().cloned())
            .stdin(Stdio::null());
        cmd.stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| DevstackError::io(format!("spawning {}", binary.display()), e))?;
        Ok(LocalFunction {
            // None only once the child has been reaped, which cannot have happened yet.
            pid: child.id().unwrap_or(0),
            child: Mutex::new(child),
            api,
            spawned_at,
            log_path: log_path.to_path_buf(),
            timeout: Duration::from_secs(30),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> LocalFunction {
        self.timeout = timeout;
        self
    }

    pub fn try_exit_status(&self) -> Result<Option<ExitStatus>, DevstackError> {
        let status = lock(&self.child).try_wait();
        status.map_err(|e| DevstackError::io(format!("checking process {}", self.pid), e))
    }

    pub fn peak_rss_kib(&self) -> Option<u64> {
        paths::peak_rss_kib(self.pid)
    }

    /// [`RuntimeApi::invoke`], except that a process exiting meanwhile fails
    /// the invocation at once with [`DevstackError::ProcessExited`] and its
    /// log tail instead of waiting out the timeout.
    pub async fn invoke(
        &self,
        event: Value,
        timeout: Duration,
    ) -> Result<Invocation, DevstackError> {
        let invocation = self.api.invoke(event, timeout);
        tokio::pin!(invocation);
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                biased;
                result = &mut invocation => return result,
                _ = ticker.tick() => if let Some(status) = self.try_exit_status()? {
                    let log_tail = paths::log_tail(&self.log_path, 40);
                    return Err(DevstackError::ProcessExited { status: status.to_string(), log_tail });
                }
            }
        }
    }

    /// Reads the peak RSS, kills the process with SIGKILL (Lambda gives
    /// environments no graceful signal either) and waits for it.
    /// Returns the peak RSS in KiB, if readable, and how the process ended.
    pub async fn stop(self) -> Result<(Option<u64>, ExitStatus), DevstackError> {
        let peak_rss_kib = self.peak_rss_kib();
        let mut child = self.child.into_inner().unwrap_or_else(|e| e.into_inner());
        // kill() on an already ended child is a no-op that still reaps it.
        let _ = child.start_kill();
        let status = child
            .wait()
            .await
            .map_err(|e| DevstackError::io("waiting for the function process", e))?;
        Ok((peak_rss_kib, status))
    }
}

impl Invoker for LocalFunction {
    async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
        self.invoke(event, self.timeout).await
    }
}

/// The variables Lambda sets for a function: those `lambda_runtime` needs,
/// plus region and dummy credentials that an explicit `env` overrides.
fn lambda_env(name: &str, api: &RuntimeApi) -> Vec<(&'static str, String)> {
    let date = time::OffsetDateTime::now_utc().format(&format_description!("[year]/[month]/[day]"));
    let stream = format!(
        "{}/[$LATEST]{}",
        date.unwrap_or_default(),
        paths::random_hex(16)
    );
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.addr().to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_DEFAULT_REGION", REGION.into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]
}
