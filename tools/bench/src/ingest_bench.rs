//! Measurement 3 for `ingest`: SQS events of 10 native push events each
//! (the registry-events queue trigger's BatchSize in template.yaml), every
//! repository with a webhook, through the binary and the Runtime API;
//! AWS calls per event, the jobs really queued, and invocation durations.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use serde_json::Value;
use shared::adapters::DynamoStore;
use std::collections::HashSet;

use crate::meter::{units_of, Units};
use crate::stack::{self, function_env, start_function, Chain, Stack};
use crate::workload;
use crate::{Ctx, Res};

/// The registry-events queue mapping's BatchSize in template.yaml.
pub const BATCH: usize = 10;
/// Invocations between drains of the delivery queue.
const DRAIN_EVERY: usize = 20;

pub struct IngestResult {
    pub events: usize,
    pub repos: usize,
    pub invocations: usize,
    pub durations_ms: Vec<f64>,
    pub counts: BTreeMap<String, u64>,
    pub units: Units,
    pub queued: u64,
    pub peak_rss_kib: Option<u64>,
    /// Per operation: calls and mean latency in ms.
    pub op_latency: BTreeMap<String, (u64, f64)>,
    /// One push per request through the Function URL emulation, one after
    /// another on a warm process: the unbatched ingest path.
    pub http: HttpPushes,
}

pub struct HttpPushes {
    pub pushes: usize,
    pub durations_ms: Vec<f64>,
    pub counts: BTreeMap<String, u64>,
    pub units: Units,
}

impl IngestResult {
    pub fn count(&self, op: &str) -> u64 {
        self.counts.get(op).copied().unwrap_or(0)
    }
}

pub async fn run(ctx: &Ctx, events: usize, repos_n: usize) -> Res<IngestResult> {
    let stack = Stack::create(&ctx.moto, &ctx.root, "in").await?;
    let chain = Chain::start(&ctx.moto).await?;
    let direct = stack::sdk(ctx.moto.endpoint()).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&direct), &stack.table);
    let repos = workload::repos("in", repos_n)?;
    ctx.progress(&format!("ingest: seeding {repos_n} webhooks"));
    // ingest only reads the records; the URLs are never called.
    stack::seed(&store, &repos, |i| format!("http://127.0.0.1:9/hook/{i}")).await?;

    let env = function_env(&ctx.moto, &stack, &chain.endpoint(), &[]);
    let (f, log) = start_function(
        "ingest",
        &env,
        &ctx.logs,
        "ingest-sqs",
        Duration::from_secs(60),
    )
    .await?;
    chain.reset();
    let sqs = aws_sdk_sqs::Client::new(&direct);
    let mut queued: HashSet<String> = HashSet::new();
    let mut durations = Vec::new();
    let batches = events.div_ceil(BATCH);
    for b in 0..batches {
        let records: Vec<Value> = (b * BATCH..((b + 1) * BATCH).min(events))
            .map(|e| {
                // Consecutive events go to different repositories: a batch of
                // ten names ten repositories (no help from de-duplication).
                let repo = &repos[e % repos_n];
                let body =
                    workload::native_push(repo, &format!("t{e}"), &format!("ev-{e}"), e as u64);
                workload::sqs_record("in", e, body.to_string(), &stack.registry_queue_arn)
            })
            .collect();
        let inv = f
            .invoke(workload::sqs_event(records), Duration::from_secs(60))
            .await
            .map_err(|e| format!("invoking ingest: {e}"))?;
        let failures = inv
            .ok()
            .and_then(|v| v.get("batchItemFailures"))
            .and_then(Value::as_array)
            .map(Vec::len);
        if failures != Some(0) {
            return Err(format!(
                "ingest batch {b}: {:?}; log:\n{}",
                inv.outcome,
                stack::tail(&log, 10)
            ));
        }
        durations.push(crate::stats::ms(inv.duration));
        // Take the jobs off the queue as a consumer would: moto's SendMessage
        // time grows with the queue's length (it recomputes the queue's
        // attributes over every message), and PurgeQueue is allowed once a
        // minute. Drained directly, not through the counting proxy.
        if (b + 1) % DRAIN_EVERY == 0 || b + 1 == batches {
            drain(&sqs, &stack.queue_url, &mut queued).await?;
        }
        if (b + 1) % 250 == 0 {
            ctx.progress(&format!("ingest: {} of {batches} batches", b + 1));
        }
    }
    let peak_rss_kib = f.peak_rss_kib();
    let calls = chain.meter.take();
    let counts = chain.counts(&calls);

    let http = http_pushes(ctx, f, &chain, &repos, &sqs, &stack.queue_url, events).await?;

    if queued.len() != events {
        return Err(format!(
            "ingest queued {} distinct delivery jobs for {events} push events",
            queued.len()
        ));
    }
    Ok(IngestResult {
        events,
        repos: repos_n,
        invocations: batches,
        durations_ms: durations,
        counts,
        units: units_of(&calls),
        op_latency: crate::meter::op_latency(&calls),
        http,
        queued: queued.len() as u64,
        peak_rss_kib,
    })
}

/// Receives and deletes everything on the queue; every body must be a
/// delivery job, each seen once (by `repository:tag`).
async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str, seen: &mut HashSet<String>) -> Res<()> {
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {e}"))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let job = shared::domain::DeliveryJob::parse(m.body().unwrap_or_default())
                .map_err(|e| format!("ingest queued something that is not a job: {e}"))?;
            if !seen.insert(job.image_ref()) {
                return Err(format!("ingest queued {} twice", job.image_ref()));
            }
            entries.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| format!("DeleteMessageBatch: {e}"))?;
    }
}

/// Single pushes POSTed one after another to the ingest Function URL
/// emulation (the first one a warm-up, not counted).
async fn http_pushes(
    ctx: &Ctx,
    f: devstack::runtime_api::LocalFunction,
    chain: &Chain,
    repos: &[shared::domain::RepositoryName],
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    first: usize,
) -> Res<HttpPushes> {
    let n = if ctx.small { 10 } else { 50 };
    let pool = std::sync::Arc::new(crate::latency::Pool::new(vec![f], Duration::from_secs(60)));
    let url = devstack::function_url::FunctionUrl::serve(pool.clone())
        .await
        .map_err(|e| format!("function url: {e}"))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    for k in 0..=n {
        if k == 1 {
            chain.reset();
        }
        let e = first + k;
        let body = workload::native_push(
            &repos[e % repos.len()],
            &format!("t{e}"),
            &format!("ev-{e}"),
            e as u64,
        );
        let resp = http
            .post(format!("{}/", url.url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("POST ingest: {e}"))?;
        if resp.status().as_u16() != 202 {
            return Err(format!("ingest answered {}", resp.status()));
        }
    }
    let calls = chain.meter.take();
    let counts = chain.counts(&calls);
    let mut seen = HashSet::new();
    drain(sqs, queue_url, &mut seen).await?;
    if seen.len() != n + 1 {
        return Err(format!(
            "{} jobs queued for {} pushes over HTTP",
            seen.len(),
            n + 1
        ));
    }
    let durations_ms = pool
        .samples()
        .iter()
        .skip(1)
        .map(|s| crate::stats::ms(s.duration))
        .collect();
    Ok(HttpPushes {
        pushes: n,
        durations_ms,
        counts,
        units: units_of(&calls),
    })
}
