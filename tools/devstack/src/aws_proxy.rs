//! The one AWS proxy between the functions and moto: counts calls per
//! operation, times each call and counts the items it carried, injects faults
//! (throttled, 500, dropped), and for the benchmark paces UpdateItem like
//! DynamoDB ([`AwsProxy::set_write_behind`], applied after the run by
//! [`AwsProxy::settle`]; why: ARCHITECTURE.md, "Local and test infrastructure").

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::de::IgnoredAny;

use crate::http_server::{self, Reply, ServerHandle};
use crate::paths::lock;
use crate::DevstackError;

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

#[derive(Debug, Clone)]
pub struct Call {
    /// `dynamodb:UpdateItem`, `sqs:SendMessageBatch`, … (as in [`AwsProxy::counts`]).
    pub op: String,
    /// From the request received to upstream's answer read whole (or the fault injected).
    pub start: Instant,
    pub end: Instant,
    /// The status answered (0 for a dropped connection).
    pub status: u16,
    /// Items or messages carried (keys of a BatchGetItem, entries of an SQS
    /// batch, messages received, 1 for a single-item call, else 0): what
    /// billing units are counted from.
    pub items: u64,
    /// SQS batch entries the service reported failed.
    pub failed_entries: u64,
}

#[derive(Default)]
struct State {
    /// Counted when the request arrives, so a call cut short still counts.
    counts: Mutex<BTreeMap<String, u64>>,
    calls: Mutex<Vec<Call>>,
    injected: AtomicU64,
    /// Each rule with the number of calls it has matched.
    faults: Mutex<Vec<(Fault, u64)>>,
    /// Latency of a write answered ahead of moto, when pacing.
    write_behind: Mutex<Option<Duration>>,
    /// Writes answered ahead of moto, not applied yet.
    held: Mutex<Vec<Request<Full<Bytes>>>>,
}

pub struct AwsProxy {
    server: ServerHandle,
    state: Arc<State>,
    upstream: Arc<str>,
}

impl AwsProxy {
    /// Starts a proxy forwarding to `upstream` (e.g. moto's `http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Result<AwsProxy, DevstackError> {
        let upstream: Arc<str> = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .into();
        let (state, up) = (Arc::new(State::default()), upstream.clone());
        let st = state.clone();
        let server = http_server::serve("aws proxy", true, None, move |req, _| {
            handle(req, up.clone(), st.clone())
        });
        Ok(AwsProxy {
            server: server.await?,
            state,
            upstream,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Calls so far per operation, e.g. `dynamodb:BatchGetItem`.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        lock(&self.state.counts).clone()
    }

    pub fn count(&self, operation: &str) -> u64 {
        *lock(&self.state.counts).get(operation).unwrap_or(&0)
    }

    pub fn count_prefix(&self, prefix: &str) -> u64 {
        let counts = lock(&self.state.counts);
        counts
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    pub fn reset_counts(&self) {
        lock(&self.state.counts).clear();
        self.take_calls();
    }

    /// Takes (and forgets) the calls recorded so far, in the order they ended.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *lock(&self.state.calls))
    }

    pub fn set_faults(&self, faults: Vec<Fault>) {
        *lock(&self.state.faults) = faults.into_iter().map(|f| (f, 0)).collect();
    }

    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::Relaxed)
    }

    /// Answers UpdateItem calls that ask for nothing back after `latency`
    /// and holds them for [`AwsProxy::settle`] (`None`: forward them).
    pub fn set_write_behind(&self, latency: Option<Duration>) {
        *lock(&self.state.write_behind) = latency;
    }

    /// Applies the writes held so far to moto, in the order they were
    /// answered, and returns how many moto refused (0 when the model held:
    /// the caller was told only what moto then agreed to).
    pub async fn settle(&self) -> u64 {
        let held = std::mem::take(&mut *lock(&self.state.held));
        let mut refused = 0;
        for req in held {
            let reply = forward(req, &self.upstream).await;
            refused += u64::from(!matches!(reply, Ok((p, _)) if p.status.is_success()));
        }
        refused
    }
}

async fn handle(req: Request<hyper::body::Incoming>, upstream: Arc<str>, st: Arc<State>) -> Reply {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Reply::Reset;
    };
    let op = operation(&parts.headers);
    *lock(&st.counts).entry(op.clone()).or_default() += 1;
    let record = |status: u16, resp: &[u8]| {
        let (items, failed_entries) = carried(&op, &body, resp);
        let (op, end) = (op.clone(), Instant::now());
        lock(&st.calls).push(Call {
            op,
            start,
            end,
            status,
            items,
            failed_entries,
        });
    };
    const AMZ_JSON: &str = "application/x-amz-json-1.0";
    // Each matching rule counts the call, up to the first that fires.
    let fault = lock(&st.faults)
        .iter_mut()
        .filter(|(f, _)| op.starts_with(&f.operation_prefix))
        .find_map(|(f, seen)| {
            *seen += 1;
            (f.every > 0 && *seen % f.every == 0).then_some(f.kind)
        });
    st.injected
        .fetch_add(u64::from(fault.is_some()), Ordering::Relaxed);
    let error = match fault {
        Some(FaultKind::Drop) => {
            record(0, b"");
            return Reply::Reset;
        }
        Some(FaultKind::Throttle) => (400, "ThrottlingException"),
        Some(FaultKind::ServerError) => (500, "InternalServerError"),
        None => {
            let req = Request::from_parts(parts, Full::new(body.clone()));
            // Paced: an UpdateItem asking for no values back, while pacing is on.
            let latency = *lock(&st.write_behind);
            let paced = latency.filter(|_| op == "dynamodb:UpdateItem").filter(|_| {
                let req: Counted = serde_json::from_slice(&body).unwrap_or_default();
                matches!(req.return_values.as_deref(), None | Some("NONE"))
            });
            if let Some(latency) = paced {
                lock(&st.held).push(req);
                tokio::time::sleep(latency).await;
                record(200, b"{}");
                return Reply::Response(http_server::response(200, AMZ_JSON, "{}"));
            }
            return Reply::Response(match forward(req, &upstream).await {
                Ok((parts, bytes)) => {
                    record(parts.status.as_u16(), &bytes);
                    hyper::Response::from_parts(parts, Full::new(bytes))
                }
                Err(e) => {
                    record(502, b"");
                    let message = format!("aws proxy: upstream failed: {e}");
                    http_server::response(502, "text/plain", message)
                }
            });
        }
    };
    record(error.0, b"");
    let body = format!(
        r#"{{"__type":"{}","message":"injected by devstack aws_proxy"}}"#,
        error.1
    );
    Reply::Response(http_server::response(error.0, AMZ_JSON, body))
}

/// `dynamodb:BatchGetItem` from `X-Amz-Target: DynamoDB_20120810.BatchGetItem`
/// (the JSON protocol every SDK client here speaks), `unknown` without one.
fn operation(headers: &http::HeaderMap) -> String {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let (service, op) = target
        .and_then(|t| t.split_once('.'))
        .unwrap_or(("", "unknown"));
    let known = [
        ("DynamoDB", "dynamodb"),
        ("AmazonSQS", "sqs"),
        ("AmazonEC2ContainerRegistry", "ecr"),
    ];
    match known.iter().find(|(prefix, _)| service.starts_with(prefix)) {
        Some((_, short)) => format!("{short}:{op}"),
        None if service.is_empty() => op.to_owned(),
        None => format!("{service}:{op}"),
    }
}

type Answer = (http::response::Parts, Bytes);

async fn forward(
    req: Request<Full<Bytes>>,
    upstream: &str,
) -> Result<Answer, Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (parts, body) = sender.send_request(req).await?.into_parts();
    Ok((parts, body.collect().await?.to_bytes()))
}

/// (items or messages carried, SQS batch entries failed) of one call, from
/// its JSON request and response; zeros for what does not parse.
fn carried(op: &str, req: &[u8], resp: &[u8]) -> (u64, u64) {
    // Only the bodies a count needs are read, into types that skip all
    // else: the proxy runs on the cores of the function it measures, and a
    // BatchGetItem answer is a megabyte.
    let parse = |body: &[u8]| serde_json::from_slice::<Counted>(body).unwrap_or_default();
    const BATCH: [&str; 3] = [
        "sqs:SendMessageBatch",
        "sqs:ChangeMessageVisibilityBatch",
        "sqs:DeleteMessageBatch",
    ];
    let items = match op {
        "dynamodb:BatchGetItem" => parse(req)
            .request_items
            .values()
            .map(|t| t.keys.len())
            .sum(),
        "dynamodb:TransactWriteItems" => parse(req).transact_items.len(),
        "sqs:ReceiveMessage" => parse(resp).messages.len(),
        _ if BATCH.contains(&op) => parse(req).entries.len(),
        "dynamodb:GetItem" | "dynamodb:UpdateItem" | "dynamodb:PutItem" | "dynamodb:DeleteItem" => {
            1
        }
        "sqs:SendMessage" | "sqs:ChangeMessageVisibility" | "sqs:DeleteMessage" => 1,
        _ => 0,
    };
    let failed = if BATCH.contains(&op) {
        parse(resp).failed.len()
    } else {
        0
    };
    (items as u64, failed as u64)
}

/// What the proxy counts in a request or answer body; every other field is
/// skipped unread.
#[derive(Default, serde::Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Counted {
    request_items: HashMap<String, Keys>,
    transact_items: Vec<IgnoredAny>,
    entries: Vec<IgnoredAny>,
    messages: Vec<IgnoredAny>,
    failed: Vec<IgnoredAny>,
    return_values: Option<String>,
}

#[derive(Default, serde::Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Keys {
    keys: Vec<IgnoredAny>,
}

/// Wall time within `[from, to]` during which at least one of `calls` was in
/// flight (the union of their intervals, clipped): how long an invocation
/// waited on AWS, however many calls overlapped.
pub fn busy_time<'a>(
    calls: impl IntoIterator<Item = &'a Call>,
    from: Instant,
    to: Instant,
) -> Duration {
    let spans = calls
        .into_iter()
        .map(|c| (c.start.max(from), c.end.min(to)));
    let mut spans: Vec<(Instant, Instant)> = spans.filter(|(s, e)| s < e).collect();
    spans.sort();
    let (mut total, mut reached) = (Duration::ZERO, from);
    for (s, e) in spans {
        total += e.saturating_duration_since(s.max(reached));
        reached = reached.max(e);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(base: Instant, from_ms: u64, to_ms: u64) -> Call {
        let (start, end) = (
            base + Duration::from_millis(from_ms),
            base + Duration::from_millis(to_ms),
        );
        Call {
            op: "x".into(),
            start,
            end,
            status: 200,
            items: 0,
            failed_entries: 0,
        }
    }

    #[test]
    fn busy_time_is_the_union_of_intervals_clipped() {
        let b = Instant::now();
        let calls = [
            call(b, 0, 10),
            call(b, 5, 20),
            call(b, 30, 40),
            call(b, 35, 36),
        ];
        let ms = Duration::from_millis;
        assert_eq!(busy_time(&calls, b, b + ms(100)), ms(30));
        assert_eq!(busy_time(&calls, b + ms(15), b + ms(32)), ms(7));
        assert_eq!(busy_time(&calls[..0], b, b + ms(100)), Duration::ZERO);
    }

    #[test]
    fn items_and_failed_entries_from_bodies() {
        let batch_get = br#"{"RequestItems":{"t":{"Keys":[{},{},{}],"ConsistentRead":true}}}"#;
        assert_eq!(carried("dynamodb:BatchGetItem", batch_get, b"{}"), (3, 0));
        let entries = br#"{"Entries":[{},{}]}"#;
        let answer = br#"{"Successful":[{}],"Failed":[{}]}"#;
        assert_eq!(
            carried("sqs:ChangeMessageVisibilityBatch", entries, answer),
            (2, 1)
        );
        assert_eq!(
            carried("sqs:ReceiveMessage", b"{}", br#"{"Messages":[{},{}]}"#),
            (2, 0)
        );
        assert_eq!(carried("dynamodb:UpdateItem", b"{}", b"{}"), (1, 0));
        assert_eq!(carried("dynamodb:Scan", b"not json", b""), (0, 0));
    }
}
