//! The local AWS side of every measurement: one moto server, the template's
//! table and queues created per measurement under their own prefix, and per
//! function role a chain `function → Meter (time, units) → AwsProxy (counts)
//! → moto`. Seeding goes straight to moto so it is never counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devstack::aws_proxy::AwsProxy;
use devstack::moto::Moto;
use devstack::runtime_api::{workspace_binary, LocalFunction};
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use serde_json::{Map, Value};
use shared::adapters::DynamoStore;
use shared::domain::{validate_webhook_url, RepositoryName};
use shared::ports::WebhookStore as _;
use shared::webhook::WebhookSecret;

use crate::meter::{Call, Meter};
use crate::Res;

/// The template's resources for one measurement.
pub struct Stack {
    pub table: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub registry_queue_arn: String,
    /// The template's DeliverBatchSize default.
    pub deliver_batch_size: usize,
    /// The template's DeliverBatchingWindowSeconds default.
    pub deliver_window_secs: u64,
}

fn out(outputs: &Map<String, Value>, key: &str) -> Res<String> {
    outputs
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("stack output {key} missing"))
}

impl Stack {
    pub async fn create(moto: &Moto, root: &Path, prefix: &str) -> Res<Stack> {
        let prefix = format!("{prefix}-{:06x}-", rand::random::<u32>() & 0xff_ffff);
        let outputs = moto
            .create_stack(&root.join("template.yaml"), &prefix)
            .await
            .map_err(|e| format!("creating the stack: {e}"))?;
        let param = |name: &str| -> Option<u64> {
            outputs
                .get("Parameters")
                .and_then(|p| p.get(name))
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok())
        };
        let deliver_batch_size = param("DeliverBatchSize").unwrap_or(1000) as usize;
        let deliver_window_secs = param("DeliverBatchingWindowSeconds").unwrap_or(5);
        Ok(Stack {
            table: out(&outputs, "WebhooksTable")?,
            queue_url: out(&outputs, "DeliveryQueueUrl")?,
            queue_arn: out(&outputs, "DeliveryQueueArn")?,
            registry_queue_arn: out(&outputs, "RegistryEventsQueueArn").unwrap_or_else(|_| {
                "arn:aws:sqs:us-east-1:123456789012:registry-events".to_owned()
            }),
            deliver_batch_size,
            deliver_window_secs,
        })
    }
}

/// `function → Meter → AwsProxy → moto` for one role (or, for a
/// diagnostic, `function → Meter → another endpoint`).
pub struct Chain {
    pub meter: Meter,
    pub proxy: Option<AwsProxy>,
}

impl Chain {
    pub async fn start(moto: &Moto) -> Res<Chain> {
        let proxy = AwsProxy::start(moto.endpoint())
            .await
            .map_err(|e| format!("aws proxy: {e}"))?;
        let meter = Meter::start(&proxy.endpoint())
            .await
            .map_err(|e| format!("meter: {e}"))?;
        Ok(Chain {
            meter,
            proxy: Some(proxy),
        })
    }

    /// A meter in front of `endpoint`, without devstack's counting proxy.
    pub async fn to(endpoint: &str) -> Res<Chain> {
        let meter = Meter::start(endpoint)
            .await
            .map_err(|e| format!("meter: {e}"))?;
        Ok(Chain { meter, proxy: None })
    }

    pub fn endpoint(&self) -> String {
        self.meter.endpoint()
    }

    /// Forgets counts and recorded calls.
    pub fn reset(&self) {
        if let Some(p) = &self.proxy {
            p.reset_counts();
        }
        self.meter.take();
    }

    /// Calls per operation: devstack's AwsProxy's counts, or (without one)
    /// the meter's `calls`.
    pub fn counts(&self, calls: &[Call]) -> BTreeMap<String, u64> {
        match &self.proxy {
            Some(p) => p.counts(),
            None => {
                let mut m = BTreeMap::new();
                for c in calls {
                    *m.entry(c.op.clone()).or_insert(0) += 1;
                }
                m
            }
        }
    }
}

/// An SDK configuration for `endpoint` with moto's test credentials.
pub async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .load()
        .await
}

/// The environment of a function binary using `stack` through `endpoint`.
pub fn function_env(
    moto: &Moto,
    stack: &Stack,
    endpoint: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = moto.function_env();
    for (k, v) in env.iter_mut() {
        if k == "AWS_ENDPOINT_URL" {
            *v = endpoint.to_owned();
        }
    }
    env.push(("WEBHOOKS_TABLE".into(), stack.table.clone()));
    env.push(("DELIVERY_QUEUE_URL".into(), stack.queue_url.clone()));
    env.push(("RUST_LOG".into(), "info".into()));
    for (k, v) in extra {
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
    let work: Vec<(usize, RepositoryName, String)> = repos
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.clone(), url_of(i)))
        .collect();
    let mut secrets: Vec<(usize, WebhookSecret)> = stream::iter(work)
        .map(|(i, repo, url)| {
            let now = now.clone();
            async move {
                let url = validate_webhook_url(&url, true).map_err(|e| format!("{url}: {e}"))?;
                let rec = store
                    .put_url(&repo, &url, &now)
                    .await
                    .map_err(|e| format!("put_url {repo}: {e}"))?;
                let secret = rec
                    .webhook
                    .map(|w| w.secret)
                    .ok_or_else(|| format!("put_url {repo}: no webhook in the answer"))?;
                Ok::<_, String>((i, secret))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    secrets.sort_by_key(|(i, _)| *i);
    Ok(secrets.into_iter().map(|(_, s)| s).collect())
}

/// Starts a release binary through the Runtime API emulation and waits for
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

/// The last EMF metrics line deliver printed (its `Figures`), if any.
pub fn last_emf(log: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""))
        .find_map(|l| serde_json::from_str(l).ok())
}
