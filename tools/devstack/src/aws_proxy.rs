//! A counting, fault-injecting HTTP proxy between the functions and moto.
//! Every AWS call goes through it, so tests and the benchmark count calls per
//! operation exactly (for in-process handlers and binaries alike) and can make
//! a share of calls fail: throttled, answered 500, or dropped mid-connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::http_server::{self, Reply, ServerHandle};
use crate::DevstackError;

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 400 `ThrottlingException` (the SDK retries it as throttling).
    Throttle,
    /// 500 `InternalServerError`.
    ServerError,
    /// Close the connection with a reset, answering nothing.
    Drop,
}

/// Inject `kind` on every `every`-th call whose operation starts with
/// `operation_prefix` (e.g. `dynamodb:`, `sqs:SendMessageBatch`, or `""`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub operation_prefix: String,
    pub kind: FaultKind,
    pub every: u64,
}

#[derive(Default)]
struct State {
    counts: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<Vec<(Fault, Arc<AtomicU64>)>>,
    injected: AtomicU64,
}

/// A running proxy; stopped on drop.
pub struct AwsProxy {
    server: ServerHandle,
    state: Arc<State>,
}

impl AwsProxy {
    /// Starts a proxy forwarding to `upstream` (e.g. moto's `http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Result<AwsProxy, DevstackError> {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let state = Arc::new(State::default());
        let st = state.clone();
        let server = http_server::serve("aws proxy", true, move |req, _info| {
            let st = st.clone();
            let upstream = upstream.clone();
            async move { handle(req, &upstream, &st).await }
        })
        .await?;
        Ok(AwsProxy { server, state })
    }

    /// The endpoint to give the SDK (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Calls so far per operation, e.g. `dynamodb:BatchGetItem`.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.state
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Calls so far of one operation.
    pub fn count(&self, operation: &str) -> u64 {
        self.counts().get(operation).copied().unwrap_or(0)
    }

    /// Calls so far whose operation starts with `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> u64 {
        self.counts()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Forgets the counts.
    pub fn reset_counts(&self) {
        self.state
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self
            .state
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = faults
            .into_iter()
            .map(|f| (f, Arc::new(AtomicU64::new(0))))
            .collect();
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::Relaxed)
    }
}

fn pick_fault(st: &State, op: &str) -> Option<FaultKind> {
    let faults = st.faults.lock().unwrap_or_else(PoisonError::into_inner);
    for (f, seen) in faults.iter() {
        if op.starts_with(&f.operation_prefix) {
            let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
            if f.every > 0 && n % f.every == 0 {
                return Some(f.kind);
            }
        }
    }
    None
}

async fn handle(req: Request<hyper::body::Incoming>, upstream: &str, st: &State) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Reply::Reset,
    };
    let probe = Request::from_parts(parts, ());
    let op = operation(&probe, &body);
    *st.counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(op.clone())
        .or_default() += 1;
    if let Some(kind) = pick_fault(st, &op) {
        st.injected.fetch_add(1, Ordering::Relaxed);
        return match kind {
            FaultKind::Drop => Reply::Reset,
            FaultKind::Throttle => Reply::Response(http_server::response(
                400,
                "application/x-amz-json-1.0",
                r#"{"__type":"ThrottlingException","message":"injected by devstack aws_proxy"}"#,
            )),
            FaultKind::ServerError => Reply::Response(http_server::response(
                500,
                "application/x-amz-json-1.0",
                r#"{"__type":"InternalServerError","message":"injected by devstack aws_proxy"}"#,
            )),
        };
    }
    match forward(probe, body, upstream).await {
        Ok(resp) => Reply::Response(resp),
        Err(e) => Reply::Response(http_server::response(
            502,
            "text/plain",
            format!("aws proxy: upstream failed: {e}"),
        )),
    }
}

/// `dynamodb:BatchGetItem` from `X-Amz-Target: DynamoDB_20120810.BatchGetItem`;
/// `query:<Action>` for query-protocol calls.
fn operation(req: &Request<()>, body: &[u8]) -> String {
    if let Some(target) = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        let (service, op) = target.split_once('.').unwrap_or(("unknown", target));
        let service = if service.starts_with("DynamoDB") {
            "dynamodb"
        } else if service.starts_with("AmazonSQS") {
            "sqs"
        } else if service.contains("EC2ContainerRegistry") {
            "ecr"
        } else {
            service
        };
        return format!("{service}:{op}");
    }
    let text = String::from_utf8_lossy(body);
    let action = text
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("unknown");
    format!("query:{action}")
}

async fn forward(
    probe: Request<()>,
    body: Bytes,
    upstream: &str,
) -> Result<hyper::Response<http_server::Body>, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let (parts, ()) = probe.into_parts();
    let req = Request::from_parts(parts, Full::new(body));
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(hyper::Response::from_parts(parts, Full::new(bytes)))
}
