//! The local AWS side of every measurement: the template's table and queues
//! per measurement ([`Stack::create`]) with devstack's `AwsProxy` counting
//! the functions' calls (one more per function role: [`Stack::new_proxy`]),
//! seeding and draining straight at moto (never counted), and function
//! binaries on the Runtime API emulation, alone or as a [`Pool`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use devstack::aws_proxy::{AwsProxy, Call};
use devstack::moto::Moto;
use devstack::paths::lock;
use devstack::receiver::Behaviour;
use devstack::registry::StubRegistry;
use devstack::runtime_api::{workspace_binary, Invocation, LocalFunction};
use devstack::{DevstackError, Invoker};
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use serde_json::{json, Value};
use shared::adapters::DynamoStore;
use shared::domain::{validate_webhook_url, DeliveryJob, RepositoryName};
use shared::ports::WebhookStore as _;
use shared::webhook::WebhookSecret;
use tokio::sync::Semaphore;

use crate::stats::ms;
use crate::Context as _;
use crate::{Ctx, Res};

/// The bearer token the benchmark's ingest takes (its HTTP door is closed
/// without one).
pub const BENCH_INGEST_TOKEN: &str = "bench-ingest-token-0123456789abcdef";

/// The template's resources for one measurement, with the template's
/// DeliverBatchSize and DeliverBatchingWindowSeconds defaults; a proxy to
/// moto counting the functions' calls; the table and the queues reached
/// straight at moto (seeding and draining, nothing counted).
pub struct Stack {
    pub table: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub registry_queue_arn: String,
    pub registry_queue_url: String,
    pub deliver_batch_size: usize,
    pub deliver_window_secs: u64,
    pub proxy: AwsProxy,
    pub store: DynamoStore,
    pub sqs: aws_sdk_sqs::Client,
    /// moto's credentials and region, for the function processes.
    moto_env: Vec<(String, String)>,
    moto_endpoint: String,
}

impl Stack {
    pub async fn create(moto: &Moto, prefix: &str) -> Res<Stack> {
        let prefix = format!("{prefix}-{:06x}-", rand::random::<u32>() & 0xff_ffff);
        let outputs = moto
            .provision(&prefix, &[])
            .await
            .ctx("creating the stack")?;
        let param = |name: &str| outputs["Parameters"][name].as_str()?.parse::<u64>().ok();
        let out = |key: &str| outputs.get(key).and_then(Value::as_str).map(str::to_owned);
        let out = |key: &str| out(key).ok_or(format!("stack output {key} missing"));
        let table = out("WebhooksTable")?;
        let sdk = moto.sdk_config().await;
        Ok(Stack {
            queue_url: out("DeliveryQueueUrl")?,
            queue_arn: out("DeliveryQueueArn")?,
            registry_queue_arn: out("RegistryEventsQueueArn")?,
            registry_queue_url: out("RegistryEventsQueueUrl")?,
            deliver_batch_size: param("DeliverBatchSize").unwrap_or(1000) as usize,
            deliver_window_secs: param("DeliverBatchingWindowSeconds").unwrap_or(5),
            proxy: AwsProxy::start(moto.endpoint()).await.ctx("aws proxy")?,
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            table,
            moto_env: moto.function_env(),
            moto_endpoint: moto.endpoint().to_owned(),
        })
    }

    /// Another proxy to this stack's moto.
    pub async fn new_proxy(&self) -> Res<AwsProxy> {
        AwsProxy::start(&self.moto_endpoint).await.ctx("aws proxy")
    }

    /// The environment of a function binary using this stack through
    /// `endpoint` (later entries win when the process is spawned).
    pub fn env(&self, endpoint: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let base = [
            ("AWS_ENDPOINT_URL", endpoint),
            ("WEBHOOKS_TABLE", &self.table),
            ("DELIVERY_QUEUE_URL", &self.queue_url),
            ("RUST_LOG", "info"),
        ];
        let ours = base
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()));
        self.moto_env.iter().cloned().chain(ours).collect()
    }

    /// One ReceiveMessage of up to 10 messages from the delivery queue
    /// (attributes included), straight at moto; every body must be a job.
    pub async fn receive_jobs(&self) -> Res<Vec<(DeliveryJob, Message)>> {
        let receive = self.sqs.receive_message().queue_url(&self.queue_url);
        let receive = receive.message_system_attribute_names(MessageSystemAttributeName::All);
        let out = receive
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .send()
            .await;
        let messages = out.ctx("ReceiveMessage")?.messages.unwrap_or_default();
        let job = |m: Message| {
            let job = DeliveryJob::parse(m.body().unwrap_or_default()).ctx("a queued non-job")?;
            Ok((job, m))
        };
        messages.into_iter().map(job).collect()
    }

    /// Sets a webhook for every repository (`url_of(index)`) straight in
    /// moto; returns the secrets, by index.
    pub async fn seed(
        &self,
        repos: &[RepositoryName],
        url_of: impl Fn(usize) -> String,
    ) -> Res<Vec<WebhookSecret>> {
        let now = shared::domain::time::rfc3339(time::OffsetDateTime::now_utc());
        // In order: the secrets come back by index.
        let stream = stream::iter(repos.iter().enumerate()).map(|(i, repo)| {
            let (url, now) = (url_of(i), now.clone());
            async move {
                let url = validate_webhook_url(&url, true).map_err(|e| format!("{url}: {e}"))?;
                let rec = self.store.put_url(repo, &url, &now).await;
                let webhook = rec.map_err(|e| format!("put_url {repo}: {e}"))?.webhook;
                webhook
                    .map(|w| w.secret)
                    .ok_or(format!("put_url {repo}: no webhook"))
            }
        });
        stream.buffered(16).try_collect().await
    }
}

/// Calls per operation and the DynamoDB units they bill: each key of a
/// BatchGetItem or GetItem is a strongly consistent read of an item ≤ 4 KB
/// (1 RRU), each written item ≤ 1 KB is 1 WRU (2 in a transaction).
pub fn tally(calls: &[Call]) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut rru, mut wru, mut failed, mut errors) = (0, 0, 0, 0);
    for c in calls {
        *counts.entry(&c.op).or_default() += 1;
        match c.op.as_str() {
            "dynamodb:BatchGetItem" | "dynamodb:GetItem" => rru += c.items,
            "dynamodb:TransactWriteItems" => wru += 2 * c.items,
            "dynamodb:UpdateItem" | "dynamodb:PutItem" | "dynamodb:DeleteItem" => wru += c.items,
            _ => {}
        }
        failed += c.failed_entries;
        errors += u64::from(!(200..300).contains(&c.status));
    }
    let p50 = per_op(calls, crate::stats::median);
    json!({ "calls": counts, "call_ms_p50": p50, "rru": rru, "wru": wru, "failed_entries": failed, "errors": errors })
}

/// `f` of each operation's call times (ms).
pub fn per_op(calls: &[Call], f: impl Fn(&[f64]) -> f64) -> BTreeMap<&str, f64> {
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for c in calls {
        times.entry(&c.op).or_default().push(ms(c.end - c.start));
    }
    times.into_iter().map(|(op, t)| (op, f(&t))).collect()
}

/// The calls in a [`tally`] whose operation starts with `prefix`.
pub fn count(aws: &Value, prefix: &str) -> f64 {
    let calls = aws["calls"].as_object().into_iter().flatten();
    let calls = calls.filter(|(op, _)| op.starts_with(prefix));
    calls.filter_map(|(_, n)| n.as_u64()).sum::<u64>() as f64
}

/// Starts a function binary through the Runtime API emulation and waits for
/// its first poll, with its log in `logs/<label>.log` (truncated first).
pub async fn start_function(
    ctx: &Ctx,
    name: &str,
    label: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Res<(LocalFunction, PathBuf)> {
    let log = ctx.logs.join(format!("{label}.log"));
    let _ = std::fs::remove_file(&log);
    let f = LocalFunction::start(&workspace_binary(name), env, &log)
        .await
        .map_err(|e| format!("starting {name}: {e}"))?;
    if let Err(e) = f.api.wait_for_first_poll(Duration::from_secs(30)).await {
        return Err(format!(
            "{name} did not start: {e}; log:\n{}",
            devstack::paths::log_tail(&log, 20)
        ));
    }
    Ok((f.with_timeout(timeout), log))
}

/// The last EMF metrics line a function printed (its per-invocation counts).
pub fn last_emf(log: &Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut emf = text
        .lines()
        .rev()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""));
    emf.find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

/// Serves `manifest` as `media_type` from `registry` under its digest in
/// `repo`, one request per connection (ingest's peak memory depends on it:
/// over kept-alive connections it measured ~60% higher); returns the digest.
pub fn serve_manifest(
    registry: &StubRegistry,
    repo: &str,
    media_type: &str,
    manifest: Vec<u8>,
) -> String {
    let digest = devstack::registry::sha256(&manifest);
    let served = Behaviour::ok()
        .with_header("content-type", media_type)
        .with_header("connection", "close");
    registry.answer(
        &StubRegistry::path(repo, &digest),
        served.with_body(manifest),
    );
    digest
}

/// A push event POSTed to the ingest Function URL at `url` with the token.
pub fn post_push(http: &reqwest::Client, url: &str, push: &Value) -> reqwest::RequestBuilder {
    let post = http.post(format!("{url}/")).bearer_auth(BENCH_INGEST_TOKEN);
    post.header("content-type", "application/json")
        .body(push.to_string())
}

pub fn http_client() -> Res<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub records: usize,
    pub duration: Duration,
}

/// Several execution environments of one function behind one invoker: an
/// invocation takes whichever is free, as Lambda's concurrency does.
pub struct Pool {
    fns: Vec<LocalFunction>,
    free: Mutex<Vec<usize>>,
    permits: Semaphore,
    samples: Mutex<Vec<Sample>>,
}

impl Pool {
    /// Each function is invoked with its own timeout ([`start_function`]'s).
    pub fn new(fns: Vec<LocalFunction>) -> Pool {
        let (free, permits) = (
            Mutex::new((0..fns.len()).collect()),
            Semaphore::new(fns.len()),
        );
        Pool {
            fns,
            free,
            permits,
            samples: Mutex::default(),
        }
    }

    pub async fn start(
        ctx: &Ctx,
        name: &str,
        label: &str,
        n: usize,
        env: &[(String, String)],
        timeout: Duration,
    ) -> Res<Arc<Pool>> {
        let mut fns = Vec::with_capacity(n);
        for k in 0..n {
            let label = format!("{label}-{k}");
            fns.push(start_function(ctx, name, &label, env, timeout).await?.0);
        }
        Ok(Arc::new(Pool::new(fns)))
    }

    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).clone()
    }

    /// Each invocation's duration so far, ms.
    pub fn durations_ms(&self) -> Vec<f64> {
        lock(&self.samples).iter().map(|s| ms(s.duration)).collect()
    }
}

impl Invoker for Pool {
    async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
        let records = event["Records"].as_array().map_or(1, Vec::len);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DevstackError::RuntimeApiStopped)?;
        let idx = lock(&self.free)
            .pop()
            .ok_or_else(|| DevstackError::Setup("pool: no free function".into()))?;
        let result = self.fns[idx].invoke_event(event).await;
        lock(&self.free).push(idx);
        if let Ok(inv) = &result {
            lock(&self.samples).push(Sample {
                records,
                duration: inv.duration,
            });
        }
        result
    }
}
