//! The local AWS side of every measurement: the template's table and queues
//! created per measurement under their own prefix (the one provisioning call,
//! [`Stack::create`]), devstack's `AwsProxy` per function role (calls per
//! operation and per-call timings), seeding straight to moto so it is never
//! counted, and starting a function binary through the Runtime API emulation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use devstack::aws_proxy::{AwsProxy, Call};
use devstack::moto::Moto;
use devstack::runtime_api::{workspace_binary, LocalFunction};
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use serde_json::{json, Value};
use shared::adapters::DynamoStore;
use shared::domain::{validate_webhook_url, RepositoryName};
use shared::ports::WebhookStore as _;
use shared::webhook::WebhookSecret;

use crate::Res;

/// The template's resources for one measurement.
pub struct Stack {
    pub table: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub registry_queue_arn: String,
    pub registry_queue_url: String,
    /// The template's DeliverBatchSize default.
    pub deliver_batch_size: usize,
    /// The template's DeliverBatchingWindowSeconds default.
    pub deliver_window_secs: u64,
}

impl Stack {
    pub async fn create(moto: &Moto, prefix: &str) -> Res<Stack> {
        let prefix = format!("{prefix}-{:06x}-", rand::random::<u32>() & 0xff_ffff);
        let outputs = moto
            .provision(&prefix, &[])
            .await
            .map_err(|e| format!("creating the stack: {e}"))?;
        let param = |name: &str| {
            outputs["Parameters"][name]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
        };
        let out = |key: &str| {
            outputs
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("stack output {key} missing"))
        };
        Ok(Stack {
            table: out("WebhooksTable")?,
            queue_url: out("DeliveryQueueUrl")?,
            queue_arn: out("DeliveryQueueArn")?,
            registry_queue_arn: out("RegistryEventsQueueArn")
                .unwrap_or_else(|_| "arn:aws:sqs:us-east-1:123456789012:registry-events".into()),
            registry_queue_url: out("RegistryEventsQueueUrl")?,
            deliver_batch_size: param("DeliverBatchSize").unwrap_or(1000) as usize,
            deliver_window_secs: param("DeliverBatchingWindowSeconds").unwrap_or(5),
        })
    }
}

/// devstack's AWS proxy in front of `upstream` (moto, or a stub).
pub async fn proxy(upstream: &str) -> Res<AwsProxy> {
    AwsProxy::start(upstream)
        .await
        .map_err(|e| format!("aws proxy: {e}"))
}

/// Calls per operation and the DynamoDB units they bill: each key of a
/// BatchGetItem or GetItem is a strongly consistent read of an item ≤ 4 KB
/// (1 RRU), each written item ≤ 1 KB is 1 WRU (2 in a transaction).
pub fn tally(calls: &[Call]) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let (mut rru, mut wru, mut failed, mut errors) = (0, 0, 0, 0);
    for c in calls {
        *counts.entry(&c.op).or_default() += 1;
        times
            .entry(&c.op)
            .or_default()
            .push(crate::stats::ms(c.end - c.start));
        match c.op.as_str() {
            "dynamodb:BatchGetItem" | "dynamodb:GetItem" => rru += c.items,
            "dynamodb:TransactWriteItems" => wru += 2 * c.items,
            "dynamodb:UpdateItem" | "dynamodb:PutItem" | "dynamodb:DeleteItem" => wru += c.items,
            _ => {}
        }
        failed += c.failed_entries;
        errors += u64::from(!(200..300).contains(&c.status));
    }
    let p50: BTreeMap<&str, f64> = times
        .iter()
        .map(|(k, v)| (*k, crate::stats::median(v)))
        .collect();
    json!({ "calls": counts, "call_ms_p50": p50, "rru": rru, "wru": wru, "failed_entries": failed, "errors": errors })
}

/// The environment of a function binary using `stack` through `endpoint`.
pub fn function_env(
    moto: &Moto,
    stack: &Stack,
    endpoint: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = moto.function_env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    let base = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("WEBHOOKS_TABLE", &stack.table),
        ("DELIVERY_QUEUE_URL", &stack.queue_url),
        ("RUST_LOG", "info"),
    ];
    for (k, v) in base.iter().chain(extra) {
        env.retain(|(key, _)| key != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    env
}

/// Sets a webhook for every repository (`url_of(index)`) straight in moto;
/// returns the secrets, by index.
pub async fn seed(
    store: &DynamoStore,
    repos: &[RepositoryName],
    url_of: impl Fn(usize) -> String,
) -> Res<Vec<WebhookSecret>> {
    let now = shared::domain::time::rfc3339(time::OffsetDateTime::now_utc());
    let work: Vec<(usize, &RepositoryName, String)> = repos
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r, url_of(i)))
        .collect();
    let mut secrets: Vec<(usize, WebhookSecret)> = stream::iter(work)
        .map(|(i, repo, url)| {
            let now = now.clone();
            async move {
                let url = validate_webhook_url(&url, true).map_err(|e| format!("{url}: {e}"))?;
                let rec = store
                    .put_url(repo, &url, &now)
                    .await
                    .map_err(|e| format!("put_url {repo}: {e}"))?;
                let secret = rec.webhook.map(|w| w.secret);
                Ok::<_, String>((i, secret.ok_or(format!("put_url {repo}: no webhook"))?))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    secrets.sort_by_key(|(i, _)| *i);
    Ok(secrets.into_iter().map(|(_, s)| s).collect())
}

/// Starts a function binary through the Runtime API emulation and waits for
/// its first poll, with its log in `logs/<log_name>.log` (truncated first).
pub async fn start_function(
    name: &str,
    env: &[(String, String)],
    logs: &Path,
    log_name: &str,
    timeout: Duration,
) -> Res<(LocalFunction, PathBuf)> {
    let log = logs.join(format!("{log_name}.log"));
    let _ = std::fs::remove_file(&log);
    let f = LocalFunction::start(&workspace_binary(name), env, &log)
        .await
        .map_err(|e| format!("starting {name}: {e}"))?
        .with_timeout(timeout);
    f.api()
        .wait_for_first_poll(Duration::from_secs(30))
        .await
        .map_err(|e| format!("{name} did not start: {e}; log:\n{}", tail(&log, 20)))?;
    Ok((f, log))
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last EMF metrics line a function printed (its per-invocation counts).
pub fn last_emf(log: &Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""))
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

/// A registry's manifest endpoint: `GET <path>` answers the body stored for
/// it with its content type (404 otherwise), one request per connection.
pub struct ManifestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Requests served, and the bytes of their bodies.
    pub requests: Arc<AtomicU64>,
    pub bytes: Arc<AtomicU64>,
}

impl ManifestServer {
    pub async fn start(routes: HashMap<String, (&'static str, Vec<u8>)>) -> Res<ManifestServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding the registry: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let routes = Arc::new(routes);
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (req_count, byte_count) = (requests.clone(), bytes.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (routes, req_count, byte_count) =
                    (routes.clone(), req_count.clone(), byte_count.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("");
                    req_count.fetch_add(1, Ordering::Relaxed);
                    let (status, ct, body) = match routes.get(path) {
                        Some((ct, body)) => ("200 OK", *ct, &body[..]),
                        None => ("404 Not Found", "application/json", &b"{}"[..]),
                    };
                    byte_count.fetch_add(body.len() as u64, Ordering::Relaxed);
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.write_all(body).await;
                });
            }
        });
        Ok(ManifestServer {
            base: format!("http://{addr}"),
            requests,
            bytes,
        })
    }
}
