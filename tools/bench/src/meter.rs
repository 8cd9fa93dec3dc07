//! A timing proxy in front of devstack's counting `AwsProxy`: every AWS call
//! a function makes passes through it, and it keeps when each call started
//! and ended and what it carried (items read or written, messages), so the
//! benchmark can say how much of an invocation was spent waiting on AWS and
//! turn call counts into billed units. The counts reported are the
//! `AwsProxy`'s; this only adds time and units.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One AWS call as seen by the meter.
#[derive(Clone, Debug)]
pub struct Call {
    /// `dynamodb:UpdateItem`, `sqs:SendMessageBatch`, …
    pub op: String,
    pub start: Instant,
    pub end: Instant,
    /// HTTP status moto (through the counting proxy) answered.
    pub status: u16,
    /// DynamoDB items read (each key of a BatchGetItem, a GetItem).
    pub items_read: u64,
    /// Whether those reads were strongly consistent (1 RRU per ≤4 KB item).
    pub consistent: bool,
    /// DynamoDB items written (TransactWriteItems items counted once here).
    pub items_written: u64,
    /// Whether the write was transactional (2 WRU per ≤1 KB item).
    pub transactional: bool,
    /// SQS messages carried (entries sent, changed or deleted; messages received).
    pub messages: u64,
    /// SQS batch entries the service reported failed.
    pub failed_entries: u64,
}

impl Call {
    /// Read request units, items assumed ≤ 4 KB (checked in the report).
    pub fn rru(&self) -> f64 {
        let per = if self.consistent { 1.0 } else { 0.5 };
        self.items_read as f64 * per
    }

    /// Write request units, items assumed ≤ 1 KB (checked in the report).
    pub fn wru(&self) -> f64 {
        let per = if self.transactional { 2.0 } else { 1.0 };
        self.items_written as f64 * per
    }
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// A running timing proxy; stopped on drop.
pub struct Meter {
    addr: SocketAddr,
    calls: Calls,
    task: JoinHandle<()>,
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Meter {
    /// Listens on 127.0.0.1 and forwards every request to `upstream`
    /// (`http://127.0.0.1:PORT`), Host header and body untouched.
    pub async fn start(upstream: &str) -> std::io::Result<Meter> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let calls: Calls = Arc::default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(std::io::Error::other)?;
        let upstream = upstream.trim_end_matches('/').to_owned();
        let c = calls.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (calls, client, upstream) = (c.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (calls, client, upstream) =
                            (calls.clone(), client.clone(), upstream.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                forward(req, &client, &upstream, &calls).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Meter { addr, calls, task })
    }

    /// The endpoint to give the SDK.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes (and forgets) the calls recorded so far.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn plain(status: u16, text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    resp
}

async fn forward(
    req: Request<Incoming>,
    client: &reqwest::Client,
    upstream: &str,
    calls: &Calls,
) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(400, format!("meter: reading the body: {e}")),
    };
    let op = operation(&parts.headers, &body);
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut headers = parts.headers.clone();
    for h in [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ] {
        headers.remove(h);
    }
    let sent = client
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .headers(headers)
        .body(body.clone())
        .send()
        .await;
    let (status, resp_headers, resp_body) = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            match resp.bytes().await {
                Ok(b) => (status, headers, b),
                Err(e) => return plain(502, format!("meter: upstream body: {e}")),
            }
        }
        Err(e) => return plain(502, format!("meter: upstream: {e}")),
    };
    let end = Instant::now();
    let mut call = Call {
        op,
        start,
        end,
        status,
        items_read: 0,
        consistent: false,
        items_written: 0,
        transactional: false,
        messages: 0,
        failed_entries: 0,
    };
    units(&mut call, &body, &resp_body);
    calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(call);

    let mut resp = Response::new(Full::new(resp_body));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    for (name, value) in &resp_headers {
        if name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
            || name == http::header::CONNECTION
        {
            continue;
        }
        resp.headers_mut().append(name.clone(), value.clone());
    }
    resp
}

/// `dynamodb:BatchGetItem` from `X-Amz-Target: DynamoDB_20120810.BatchGetItem`,
/// the same naming as devstack's `AwsProxy`.
fn operation(headers: &http::HeaderMap, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (service, op) = target.split_once('.').unwrap_or(("unknown", target));
        let service = if service.starts_with("DynamoDB") {
            "dynamodb"
        } else if service.starts_with("AmazonSQS") {
            "sqs"
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

fn len_of(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(0, |a| a.len() as u64)
}

/// What a call carried, from its JSON request (and response for receives
/// and batch failures).
fn units(call: &mut Call, req: &[u8], resp: &[u8]) {
    let Ok(req) = serde_json::from_slice::<Value>(req) else {
        return;
    };
    let resp: Value = serde_json::from_slice(resp).unwrap_or(Value::Null);
    match call.op.as_str() {
        "dynamodb:BatchGetItem" => {
            if let Some(items) = req.get("RequestItems").and_then(Value::as_object) {
                for ka in items.values() {
                    call.items_read += len_of(ka, "Keys");
                    call.consistent |= ka.get("ConsistentRead") == Some(&Value::Bool(true));
                }
            }
        }
        "dynamodb:GetItem" => {
            call.items_read = 1;
            call.consistent = req.get("ConsistentRead") == Some(&Value::Bool(true));
        }
        "dynamodb:UpdateItem" | "dynamodb:PutItem" | "dynamodb:DeleteItem" => {
            call.items_written = 1;
        }
        "dynamodb:TransactWriteItems" => {
            call.items_written = len_of(&req, "TransactItems");
            call.transactional = true;
        }
        "sqs:SendMessageBatch" | "sqs:ChangeMessageVisibilityBatch" | "sqs:DeleteMessageBatch" => {
            call.messages = len_of(&req, "Entries");
            call.failed_entries = len_of(&resp, "Failed");
        }
        "sqs:SendMessage" | "sqs:ChangeMessageVisibility" | "sqs:DeleteMessage" => {
            call.messages = 1;
        }
        "sqs:ReceiveMessage" => {
            call.messages = len_of(&resp, "Messages");
        }
        _ => {}
    }
}

/// Wall time within `[from, to]` during which at least one call was in
/// flight (the union of the calls' intervals, clipped).
pub fn busy_time(calls: &[Call], from: Instant, to: Instant) -> Duration {
    let mut spans: Vec<(Instant, Instant)> = calls
        .iter()
        .filter_map(|c| {
            let s = c.start.max(from);
            let e = c.end.min(to);
            (s < e).then_some((s, e))
        })
        .collect();
    spans.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (s, e) in spans {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce - cs;
    }
    total
}

/// Per operation: calls and mean latency (ms) as seen by the meter.
pub fn op_latency(calls: &[Call]) -> BTreeMap<String, (u64, f64)> {
    let mut out: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for c in calls {
        let e = out.entry(c.op.clone()).or_default();
        e.0 += 1;
        e.1 += (c.end - c.start).as_secs_f64() * 1000.0;
    }
    for v in out.values_mut() {
        v.1 /= v.0.max(1) as f64;
    }
    out
}

/// Sums over a set of calls.
#[derive(Clone, Debug, Default)]
pub struct Units {
    pub rru: f64,
    pub wru: f64,
    pub items_read: u64,
    pub items_written: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub failed_entries: u64,
    /// Calls answered with a non-2xx status.
    pub errors: u64,
}

pub fn units_of(calls: &[Call]) -> Units {
    let mut u = Units::default();
    for c in calls {
        u.rru += c.rru();
        u.wru += c.wru();
        u.items_read += c.items_read;
        u.items_written += c.items_written;
        match c.op.as_str() {
            "sqs:SendMessageBatch" | "sqs:SendMessage" => u.messages_sent += c.messages,
            "sqs:ReceiveMessage" => u.messages_received += c.messages,
            _ => {}
        }
        u.failed_entries += c.failed_entries;
        if !(200..300).contains(&c.status) {
            u.errors += 1;
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(from_ms: u64, to_ms: u64, base: Instant) -> Call {
        Call {
            op: "x".into(),
            start: base + Duration::from_millis(from_ms),
            end: base + Duration::from_millis(to_ms),
            status: 200,
            items_read: 0,
            consistent: false,
            items_written: 0,
            transactional: false,
            messages: 0,
            failed_entries: 0,
        }
    }

    #[test]
    fn busy_time_is_the_union_of_intervals() {
        let b = Instant::now();
        let calls = [
            call(0, 10, b),
            call(5, 20, b),
            call(30, 40, b),
            call(35, 36, b),
        ];
        let all = busy_time(&calls, b, b + Duration::from_millis(100));
        assert_eq!(all, Duration::from_millis(30));
        let clipped = busy_time(
            &calls,
            b + Duration::from_millis(15),
            b + Duration::from_millis(32),
        );
        assert_eq!(clipped, Duration::from_millis(7));
    }

    #[test]
    fn units_from_bodies() {
        let b = Instant::now();
        let mut c = call(0, 1, b);
        c.op = "dynamodb:BatchGetItem".into();
        units(
            &mut c,
            br#"{"RequestItems":{"t":{"Keys":[{},{},{}],"ConsistentRead":true}}}"#,
            b"{}",
        );
        assert_eq!((c.items_read, c.rru()), (3, 3.0));
        let mut c = call(0, 1, b);
        c.op = "sqs:ChangeMessageVisibilityBatch".into();
        units(
            &mut c,
            br#"{"Entries":[{},{}]}"#,
            br#"{"Successful":[{}],"Failed":[{}]}"#,
        );
        assert_eq!((c.messages, c.failed_entries), (2, 1));
    }
}
