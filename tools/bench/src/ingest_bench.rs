//! ingest's AWS calls per event: SQS events of 10 push events (the
//! registry-events trigger's BatchSize) through the binary, every queued job
//! checked; then single pushes through the Function URL (the unbatched path).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use serde_json::{json, Value};

use crate::stack::{self, count, start_function, tally, Pool, Stack, BENCH_INGEST_TOKEN};
use crate::stats::{median, mib, ms, percentile};
use crate::Context as _;
use crate::{workload, Ctx, Res};

/// The registry-events queue mapping's BatchSize in template.yaml.
pub const BATCH: usize = 10;
/// Invocations between drains of the delivery queue.
const DRAIN_EVERY: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let (events, repos_n) = (ctx.sizes.ingest_events, ctx.sizes.repos);
    let stack = Stack::create(&ctx.moto, "in").await?;
    let repos = workload::repos("in", repos_n)?;
    ctx.progress(&format!("ingest: seeding {repos_n} webhooks"));
    // ingest only reads the records; the URLs are never called.
    stack
        .seed(&repos, |i| format!("http://127.0.0.1:9/hook/{i}"))
        .await?;
    let extra = [("INGEST_TOKEN", BENCH_INGEST_TOKEN)];
    let env = stack.env(&stack.proxy.endpoint(), &extra);
    let (f, log) = start_function(ctx, "ingest", "ingest-sqs", &env, TIMEOUT).await?;
    let proxy = &stack.proxy;
    proxy.reset_counts();
    let push = |e: usize| {
        let (tag, id) = (format!("t{e}"), format!("ev-{e}"));
        workload::native_push(&repos[e % repos_n], &tag, &id, e as u64)
    };
    let (mut queued, mut durations, mut calls) = (HashSet::new(), Vec::new(), Vec::new());
    let batches = events.div_ceil(BATCH);
    for b in 0..batches {
        // Consecutive events go to different repositories: a batch of ten
        // names ten repositories (no help from de-duplication).
        let arn = &stack.registry_queue_arn;
        let records = (b * BATCH..((b + 1) * BATCH).min(events))
            .map(|e| workload::sqs_record("in", e, push(e).to_string(), arn));
        let event = json!({ "Records": records.collect::<Vec<_>>() });
        let inv = f.invoke(event, TIMEOUT).await.ctx("invoking ingest")?;
        let failures = inv.ok().and_then(|v| v["batchItemFailures"].as_array());
        if failures.map(Vec::len) != Some(0) {
            return Err(format!(
                "ingest batch {b}: {:?}; log:\n{}",
                inv.outcome,
                devstack::paths::log_tail(&log, 20)
            ));
        }
        durations.push(ms(inv.duration));
        // Take the jobs off the queue as a consumer would: moto's SendMessage
        // time grows with the queue's length. Drained directly, not counted.
        if (b + 1) % DRAIN_EVERY == 0 || b + 1 == batches {
            calls.extend(proxy.take_calls());
            drain(&stack, &mut queued).await?;
        }
    }
    if queued.len() != events {
        return Err(format!(
            "ingest queued {} distinct jobs for {events} push events",
            queued.len()
        ));
    }
    let peak_rss_mib = mib(f.peak_rss_kib());
    let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len() as f64;
    let (aws, mean_ms) = (tally(&calls), stack::per_op(&calls, mean));

    // Single pushes POSTed one after another to the Function URL emulation
    // (the first one a warm-up, not counted).
    let pool = Arc::new(Pool::new(vec![f]));
    let url = devstack::function_url::FunctionUrl::serve(pool.clone())
        .await
        .ctx("function url")?;
    let (http, singles) = (stack::http_client()?, ctx.sizes.singles);
    for k in 0..=singles {
        let resp = stack::post_push(&http, &url.url(), &push(events + k))
            .send()
            .await
            .ctx("POST ingest")?;
        if resp.status().as_u16() != 202 {
            return Err(format!("ingest answered {}", resp.status()));
        }
        if k == 0 {
            proxy.reset_counts();
        }
    }
    let http_calls = proxy.take_calls();
    let mut seen = HashSet::new();
    drain(&stack, &mut seen).await?;
    if seen.len() != singles + 1 {
        return Err(format!(
            "{} jobs queued for {} pushes over HTTP",
            seen.len(),
            singles + 1
        ));
    }
    let http_ms: Vec<f64> = pool.durations_ms().into_iter().skip(1).collect();
    Ok(json!({
        "events": events, "repos": repos_n, "batch": BATCH, "invocations": batches,
        "median_ms": median(&durations), "p99_ms": percentile(&durations, 99.0),
        "billed_ms_sum": durations.iter().map(|&d| crate::stats::billed_ms(d)).sum::<f64>(),
        "per_event": {
            "sends": count(&aws, "sqs:SendMessageBatch") / events as f64,
            "reads": count(&aws, "dynamodb:BatchGetItem") / events as f64,
        },
        "aws": aws, "mean_call_ms": mean_ms, "queued": queued.len(), "peak_rss_mib": peak_rss_mib,
        "http": { "pushes": singles, "median_ms": median(&http_ms), "billed_ms_mean": crate::stats::mean_billed(&http_ms), "aws": tally(&http_calls) },
    }))
}

/// Receives and deletes everything on the queue; every body must be a
/// delivery job, each seen once (by `repository:tag`).
async fn drain(stack: &Stack, seen: &mut HashSet<String>) -> Res<()> {
    loop {
        let messages = stack.receive_jobs().await?;
        if messages.is_empty() {
            return Ok(());
        }
        let mut delete = stack.sqs.delete_message_batch().queue_url(&stack.queue_url);
        for (i, (job, m)) in messages.iter().enumerate() {
            if !seen.insert(job.image_ref()) {
                return Err(format!("ingest queued {} twice", job.image_ref()));
            }
            let entry = DeleteMessageBatchRequestEntry::builder().id(i.to_string());
            let entry = entry.receipt_handle(m.receipt_handle().unwrap_or_default());
            delete = delete.entries(entry.build().map_err(|e| e.to_string())?);
        }
        delete.send().await.ctx("DeleteMessageBatch")?;
    }
}
