//! What the reliability tests share (a module of the `it` binary):
//! the function binaries as Lambda runs them (devstack
//! `LocalFunction`), native pushes over the ingest Function URL with a
//! registry's retry-on-5xx, webhooks in the stack's table, queue depths, the
//! DLQ, and the deliver EMF lines.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alin_tests::{repo_root, Stack};
use aws_sdk_sqs::types::QueueAttributeName;
use devstack::function_url::FunctionUrl;
use devstack::runtime_api::{workspace_binary, LocalFunction};
use serde_json::{json, Value};
use shared::domain::job::derive_webhook_id;
use shared::domain::{
    validate_webhook_url, DeliveryJob, RepoRecord, RepositoryName, WebhookConfig,
};
use shared::ports::WebhookStore;

pub const INGEST_TOKEN: &str = "rel-ingest-token-9f2c";

/// A function binary, which must have been built (`cargo build -p ingest
/// -p deliver -p settings`; scripts/test.sh builds every binary first).
pub fn binary(name: &str) -> PathBuf {
    let b = workspace_binary(name);
    assert!(
        b.is_file(),
        "{} is missing: run `cargo build -p {name}` first",
        b.display()
    );
    b
}

/// Where a function's log goes for this test.
pub fn log_path(test: &str, function: &str, stack: &Stack) -> PathBuf {
    repo_root()
        .join(".devstack")
        .join("logs")
        .join(format!("{test}-{function}-{}.log", stack.table))
}

/// Starts `function` against `stack` with `extra` environment.
pub async fn start(
    stack: &Stack,
    test: &str,
    function: &str,
    instance: usize,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> (LocalFunction, PathBuf) {
    let mut env = stack.function_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let log = log_path(test, &format!("{function}{instance}"), stack);
    let f = LocalFunction::start(&binary(function), &env, &log)
        .await
        .unwrap_or_else(|e| panic!("{function} starts: {e}"))
        .with_timeout(timeout);
    f.api
        .wait_for_first_poll(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{function} initialises: {e}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    (f, log)
}

/// `instances` ingest execution environments, each behind its own Function
/// URL (a server stops when its `FunctionUrl` is dropped: keep them to the
/// end), and the URLs to push to.
pub async fn ingest_behind_urls(
    stack: &Stack,
    test: &str,
    instances: usize,
) -> (Vec<FunctionUrl>, Vec<String>) {
    let mut function_urls = Vec::new();
    for n in 0..instances {
        let env = [("INGEST_TOKEN", INGEST_TOKEN)];
        let (f, _log) = start(stack, test, "ingest", n, &env, Duration::from_secs(30)).await;
        function_urls.push(FunctionUrl::serve(f).await.unwrap());
    }
    let urls = function_urls
        .iter()
        .map(|u| format!("{}/", u.url()))
        .collect();
    (function_urls, urls)
}

pub fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

/// Gives `name` an enabled webhook to `url` (private targets allowed).
pub async fn webhook(stack: &Stack, name: &str, url: &str) -> RepoRecord {
    let url = validate_webhook_url(url, true).unwrap();
    stack
        .store()
        .put_url(&repo(name), &url, "2026-11-28T08:00:00Z")
        .await
        .unwrap()
}

pub async fn config(stack: &Stack, name: &str) -> WebhookConfig {
    stack
        .store()
        .get(&repo(name))
        .await
        .unwrap()
        .and_then(|r| r.webhook)
        .unwrap()
}

/// The registry event id of push `round` of `name`.
pub fn event_id(name: &str, tag: &str) -> String {
    format!("reg-{name}-{tag}")
}

/// The webhook id ingest derives for a native event with that id.
pub fn expected_webhook_id(name: &str, tag: &str) -> String {
    derive_webhook_id(&["native", &event_id(name, tag)])
}

/// A native push event (docs/events.md#native-push-event) of `name:tag`.
pub fn native_push(name: &str, tag: &str) -> String {
    let (user, rest) = name.split_once('/').unwrap();
    json!({"event": "push", "username": user, "repository": rest, "tag": tag,
           "digest": format!("sha256:{}", "a".repeat(64)), "image_size": 126,
           "layers": [format!("sha256:{}", "b".repeat(64))], "repository_size": 4096,
           "pushed_at": "2026-11-28T08:00:00Z", "id": event_id(name, tag)})
    .to_string()
}

/// What ingest answered a push, after a registry's retries.
#[derive(Debug, Clone)]
pub struct PushAnswer {
    pub status: u16,
    pub body: Value,
    /// 5xx answers retried before this one.
    pub retried_5xx: u32,
}

impl PushAnswer {
    pub fn dropped(&self) -> u64 {
        self.body["dropped"].as_u64().unwrap_or(0)
    }
    pub fn queued(&self) -> u64 {
        self.body["queued"].as_u64().unwrap_or(0)
    }
}

/// POSTs `body` to the ingest Function URL like a registry: a 5xx or a
/// connection error is retried (after 100 ms, up to `max_tries`).
pub async fn push(http: &reqwest::Client, url: &str, body: &str, max_tries: u32) -> PushAnswer {
    let mut retried = 0;
    loop {
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {INGEST_TOKEN}"))
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().as_u16() < 500 => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                return PushAnswer {
                    status,
                    body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    retried_5xx: retried,
                };
            }
            _ if retried + 1 < max_tries => {
                retried += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(resp) => {
                return PushAnswer {
                    status: resp.status().as_u16(),
                    body: Value::String(resp.text().await.unwrap_or_default()),
                    retried_5xx: retried,
                }
            }
            Err(e) => panic!("ingest unreachable after {retried} retries: {e}"),
        }
    }
}

/// (visible, in flight) messages on a queue.
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes");
    let attrs = out.attributes.unwrap_or_default();
    let n = |k: QueueAttributeName| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Waits until the queue has held nothing (visible or in flight) for two
/// checks in a row, 250 ms apart.
pub async fn wait_until_empty(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    let mut empty_checks = 0;
    loop {
        let (visible, in_flight) = depth(sqs, queue_url).await;
        if visible + in_flight == 0 {
            empty_checks += 1;
            if empty_checks >= 2 {
                return started.elapsed();
            }
        } else {
            empty_checks = 0;
        }
        assert!(
            started.elapsed() < timeout,
            "queue not drained after {timeout:?}: {visible} visible, {in_flight} in flight"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every message on the DLQ, as jobs (received and left invisible).
pub async fn dead_letters(stack: &Stack, sqs: &aws_sdk_sqs::Client) -> Vec<DeliveryJob> {
    let mut jobs = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let out = sqs
            .receive_message()
            .queue_url(&stack.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .expect("receive from the DLQ");
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
        }
        for m in msgs {
            jobs.push(
                DeliveryJob::parse(m.body().unwrap_or_default()).expect("a DLQ message is a job"),
            );
        }
    }
    jobs
}

/// Every EMF line the deliver function printed.
pub fn emf_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// The sum of each EMF figure over all lines of these logs.
pub fn emf_totals(logs: &[&Path]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for log in logs {
        for line in emf_lines(log) {
            if let Some(obj) = line.as_object() {
                for (k, v) in obj {
                    if let Some(n) = v.as_u64() {
                        *totals.entry(k.clone()).or_insert(0) += n;
                    }
                }
            }
        }
    }
    totals
}

/// The SQS client of the event source mapping: straight to moto, not
/// through the fault-injecting proxy (it stands for the Lambda service).
pub async fn direct_sqs(stack: &Stack) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&alin_tests::sdk_config(stack.moto.endpoint()).await)
}

pub async fn direct_store(stack: &Stack) -> shared::adapters::DynamoStore {
    let sdk = alin_tests::sdk_config(stack.moto.endpoint()).await;
    shared::adapters::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &stack.table)
}
