//! Faults in AWS, end to end through the binaries. The stack's proxy
//! (devstack `AwsProxy`, between the functions and moto) throttles every 5th
//! DynamoDB call, answers 500 to every 7th SQS call and drops every 11th
//! call of any kind, for the whole run. The SDK's own retries absorb most of
//! those, so on top of them every call of one operation fails for a while,
//! which reaches the functions' own error paths:
//!
//! Phase 1 — 300 native pushes over 30 repositories through `ingest` (four
//! execution environments behind Function URLs; a push answered 5xx is
//! retried, as a registry does) and `deliver` (event source mapping, which
//! talks to moto directly: it stands for the Lambda service), with 4-second
//! windows where every `sqs:SendMessageBatch`, then every
//! `dynamodb:BatchGetItem`, fails: ingest must answer 5xx, never 202 for a
//! push it did not queue. A third of the receivers answer 503 to every third
//! request, so deliver retries throughout.
//!
//! Phase 2 — jobs put straight on the queue while, in turn, every
//! `sqs:ChangeMessageVisibilityBatch` fails (deliver cannot schedule its
//! retries: the jobs must still be reported failed and come back after the
//! queue's visibility timeout, set to 10 s here), every
//! `dynamodb:BatchGetItem` fails (deliver cannot read the batch's webhooks:
//! the whole batch must fail and come back), and every `dynamodb:UpdateItem`
//! fails (outcomes cannot be recorded: the deliveries still stand).
//!
//! Proven: no event is lost — every push and job is delivered (with the same
//! `webhook-id` on every attempt and duplicate) or is in the DLQ; the items
//! AWS failures touched were handed back and retried, never acknowledged
//! undelivered. Needs `cargo build -p ingest -p deliver`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alin_tests::Stack;
use aws_sdk_sqs::types::QueueAttributeName;
use devstack::aws_proxy::{Fault, FaultKind};
use devstack::esm::EventSourceMapping;
use devstack::receiver::{Behaviour, Receiver};
use futures::stream::{self, StreamExt};
use shared::ports::WebhookStore;

use crate::reliability_common as common;
use common::*;

const REPOS: usize = 30;
const ROUNDS: usize = 10;

fn fault(prefix: &str, kind: FaultKind, every: u64) -> Fault {
    Fault {
        operation_prefix: prefix.to_owned(),
        kind,
        every,
    }
}

fn base_faults() -> Vec<Fault> {
    vec![
        fault("dynamodb:", FaultKind::Throttle, 5),
        fault("sqs:", FaultKind::ServerError, 7),
        fault("", FaultKind::Drop, 11),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_when_aws_fails() {
    let started = Instant::now();
    let stack = Stack::with_params("rel-aws", &["MaxAttempts=6"]).await;
    let direct = direct_sqs(&stack).await;
    direct
        .set_queue_attributes()
        .queue_url(&stack.queue_url)
        .attributes(QueueAttributeName::VisibilityTimeout, "10")
        .send()
        .await
        .unwrap();

    let healthy = Receiver::start(Behaviour::ok()).await.unwrap();
    let mut flaky = Vec::new();
    let names: Vec<String> = (0..REPOS).map(|i| format!("aws{i:02}/app")).collect();
    for (i, name) in names.iter().enumerate() {
        let url = if i % 3 == 0 {
            let rx = Receiver::start(Behaviour::script(|k| {
                if k % 3 == 0 {
                    Behaviour::status(503)
                } else {
                    Behaviour::ok()
                }
            }))
            .await
            .unwrap();
            let u = rx.url("/hook");
            flaky.push(rx);
            u
        } else {
            healthy.url(&format!("/h/{name}"))
        };
        webhook(&stack, name, &url).await;
    }

    let deliver_env = [
        ("ALLOW_PRIVATE_TARGETS", "true"),
        ("RETRY_BASE_DELAY_SECS", "1"),
        ("DELIVERY_TIMEOUT_SECS", "2"),
        ("MAX_ATTEMPTS", "6"),
        ("FAILURE_THRESHOLD", "1000"),
    ];
    let (deliver, deliver_log) = start(
        &stack,
        "rel-aws",
        "deliver",
        0,
        &deliver_env,
        Duration::from_secs(60),
    )
    .await;
    let esm = EventSourceMapping::start(
        direct.clone(),
        &stack.queue_url,
        &stack.queue_arn,
        Arc::new(deliver),
        100,
        Duration::from_millis(300),
    );
    let (function_urls, ingest_urls) = ingest_behind_urls(&stack, "rel-aws", 4).await;

    // Faults on from the first push; the windows while pushes are flowing.
    stack.proxy.reset_counts();
    stack.proxy.set_faults(base_faults());
    let proxy = &stack.proxy;
    let push_start = Instant::now();
    let started_at = |secs: u64| push_start + Duration::from_secs(secs);
    let windows = async {
        for (at, op, kind) in [
            (2u64, "sqs:SendMessageBatch", FaultKind::ServerError),
            (8, "dynamodb:BatchGetItem", FaultKind::Throttle),
        ] {
            tokio::time::sleep_until(tokio::time::Instant::from_std(started_at(at))).await;
            let mut faults = vec![fault(op, kind, 1)];
            faults.extend(base_faults());
            proxy.set_faults(faults);
            tokio::time::sleep(Duration::from_secs(4)).await;
            proxy.set_faults(base_faults());
        }
    };
    let http = reqwest::Client::new();
    let order: Vec<(usize, String)> = (0..ROUNDS)
        .flat_map(|r| (0..REPOS).map(move |i| (i, format!("t{r}"))))
        .collect();
    let total = order.len();
    // ~15 s of pushes: one every 50 ms, up to 8 in flight.
    let pushing = stream::iter(order.into_iter().enumerate())
        .map(|(k, (i, tag))| {
            let http = http.clone();
            let url = ingest_urls[k % ingest_urls.len()].clone();
            let body = native_push(&names[i], &tag);
            async move {
                let at = push_start + Duration::from_millis(50 * k as u64);
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                ((i, tag), push(&http, &url, &body, 200).await)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>();
    let (answers, ()) = tokio::join!(pushing, windows);
    let push_time = push_start.elapsed();
    for (_, a) in &answers {
        assert_eq!(a.status, 202, "{a:?}");
        assert_eq!(a.queued() + a.dropped(), 1, "{a:?}");
        assert_eq!(
            a.dropped(),
            0,
            "every repository has an enabled webhook: {a:?}"
        );
    }
    let ingest_5xx: u32 = answers.iter().map(|(_, a)| a.retried_5xx).sum();

    let drain = wait_until_empty(&direct, &stack.queue_url, Duration::from_secs(180)).await;
    let phase1_calls: u64 = stack.proxy.counts().values().sum();
    let phase1_injected = stack.proxy.injected();
    let phase1_emf = emf_totals(&[&deliver_log]);
    let phase1_esm = esm.stats();

    // ------------------------------------------------------------ phase 2
    let p2_rx = Receiver::start(Behaviour::script(|k| {
        if k == 0 {
            Behaviour::status(503)
        } else {
            Behaviour::ok()
        }
    }))
    .await
    .unwrap();
    let mut p2_jobs: Vec<(String, String)> = Vec::new();
    let direct_store = direct_store(&stack).await;
    let mut phase2 = Vec::new();
    for (case, op, kind) in [
        (
            "cmv",
            "sqs:ChangeMessageVisibilityBatch",
            FaultKind::ServerError,
        ),
        ("bgi", "dynamodb:BatchGetItem", FaultKind::Throttle),
        ("upd", "dynamodb:UpdateItem", FaultKind::Throttle),
    ] {
        let before_emf = emf_totals(&[&deliver_log]);
        let before_esm = esm.stats();
        let mut faults = vec![fault(op, kind, 1)];
        faults.extend(base_faults());
        let names2: Vec<String> = (0..5).map(|i| format!("awsp2{case}{i}/app")).collect();
        for name in &names2 {
            // The first request on each path is a 503 (a retry to schedule).
            let url = shared::domain::validate_webhook_url(&p2_rx.url(&format!("/{name}")), true)
                .unwrap();
            direct_store
                .put_url(&repo(name), &url, "2026-11-28T08:00:00Z")
                .await
                .unwrap();
        }
        stack.proxy.set_faults(faults);
        for (i, name) in names2.iter().enumerate() {
            let id = format!("evt_p2_{case}_{i}");
            let body =
                serde_json::json!({"v": 1, "webhook_id": id, "kind": "push", "repository": name,
                "tag": "1.0", "image_size": 1, "layers": [], "repository_size": 1})
                .to_string();
            direct
                .send_message()
                .queue_url(&stack.queue_url)
                .message_body(body)
                .send()
                .await
                .unwrap();
            p2_jobs.push((id, format!("{name}:1.0")));
        }
        // Keep the operation failing until deliver gives up on it (its own
        // retries and the SDK's ride out short outages), then heal it.
        let gave_up = Instant::now();
        loop {
            let now = emf_totals(&[&deliver_log]);
            let d = |k: &str| {
                now.get(k).copied().unwrap_or(0) - before_emf.get(k).copied().unwrap_or(0)
            };
            let signal = match case {
                "cmv" => d("queue_errors"),
                "bgi" => esm.stats().function_errors - before_esm.function_errors,
                _ => d("store_errors"),
            };
            if signal > 0 {
                break;
            }
            assert!(
                gave_up.elapsed() < Duration::from_secs(90),
                "{case}: deliver never reported the failure"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stack.proxy.set_faults(base_faults());
        wait_until_empty(&direct, &stack.queue_url, Duration::from_secs(90)).await;
        let after = emf_totals(&[&deliver_log]);
        let d =
            |k: &str| after.get(k).copied().unwrap_or(0) - before_emf.get(k).copied().unwrap_or(0);
        let esm_now = esm.stats();
        phase2.push((
            case,
            d("queue_errors"),
            esm_now.function_errors - before_esm.function_errors,
            d("store_errors"),
            d("delivered"),
        ));
    }
    let stats = esm.stop().await.unwrap();
    let injected = stack.proxy.injected();
    let calls = stack.proxy.counts();
    stack.proxy.set_faults(Vec::new());
    let dlq = dead_letters(&stack, &direct).await;
    let dlq_events: BTreeSet<String> = dlq.iter().map(|j| j.image_ref()).collect();

    // Phase 1: every push delivered (a 2xx with its webhook id) or dead-lettered.
    let mut attempts: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for r in healthy.requests() {
        attempts
            .entry(r.header("x-alin-webhook").unwrap().to_owned())
            .or_default()
            .push((r.header("webhook-id").unwrap().to_owned(), true));
    }
    for rx in &flaky {
        for r in rx.requests() {
            attempts
                .entry(r.header("x-alin-webhook").unwrap().to_owned())
                .or_default()
                .push((
                    r.header("webhook-id").unwrap().to_owned(),
                    r.index_for_path % 3 != 0,
                ));
        }
    }
    for r in p2_rx.requests() {
        attempts
            .entry(r.header("x-alin-webhook").unwrap().to_owned())
            .or_default()
            .push((
                r.header("webhook-id").unwrap().to_owned(),
                r.index_for_path != 0,
            ));
    }
    let mut expected: Vec<(String, String)> = answers
        .iter()
        .map(|((i, tag), _)| {
            (
                expected_webhook_id(&names[*i], tag),
                format!("{}:{tag}", names[*i]),
            )
        })
        .collect();
    expected.extend(p2_jobs.iter().cloned());
    let mut lost = Vec::new();
    let mut delivered = 0;
    let mut duplicates = 0;
    for (want, image) in &expected {
        let seen = attempts.get(image).cloned().unwrap_or_default();
        assert!(
            seen.iter().all(|(id, _)| id == want),
            "{image}: ids {seen:?}, want {want}"
        );
        let oks = seen.iter().filter(|(_, ok)| *ok).count();
        if oks > 0 {
            delivered += 1;
            duplicates += oks - 1;
        } else if !dlq_events.contains(image) {
            lost.push(format!("{image}: attempts {seen:?}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} events lost:\n{}",
        lost.len(),
        lost.join("\n")
    );
    assert_eq!(
        delivered + dlq.len(),
        expected.len(),
        "delivered {delivered} + DLQ {} = pushed {}",
        dlq.len(),
        expected.len()
    );

    // The faults were real and reached the functions' own error paths.
    assert!(
        phase1_injected > 50,
        "faults injected in phase 1: {phase1_injected}"
    );
    assert!(
        ingest_5xx > 0,
        "the SendMessageBatch / BatchGetItem windows made ingest answer 5xx"
    );
    for (case, queue_errors, function_errors, store_errors, delivered) in &phase2 {
        assert_eq!(
            *delivered, 5,
            "{case}: all five delivered after the fault healed"
        );
        match *case {
            "cmv" => assert!(
                *queue_errors > 0,
                "{case}: visibility changes failed: {phase2:?}"
            ),
            "bgi" => assert!(
                *function_errors > 0,
                "{case}: a whole batch failed and came back: {phase2:?}"
            ),
            _ => assert!(
                *store_errors > 0,
                "{case}: outcome writes failed: {phase2:?}"
            ),
        }
    }
    let emf = emf_totals(&[&deliver_log]);
    eprintln!(
        "reliability_aws_faults: phase 1: {total} pushes, {phase1_injected} faults over {phase1_calls} AWS calls, \
         ingest answered 5xx {ingest_5xx} times (retried), deliver emf {phase1_emf:?}, esm {phase1_esm:?}, \
         pushes {push_time:?} + drain {drain:?}; phase 2 (case, queue_errors, function_errors, store_errors, delivered): {phase2:?}; \
         overall {injected} faults, calls {calls:?}; delivered {delivered} (+{duplicates} duplicate deliveries), DLQ {}; \
         esm {stats:?}; emf {emf:?}; total {:?}",
        dlq.len(),
        started.elapsed()
    );
    drop(function_urls);
}
