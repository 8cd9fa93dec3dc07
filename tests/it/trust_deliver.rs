//! Trust at deliver's door, through the real `deliver` binary (devstack's
//! Runtime API emulation) against moto and real receivers on 127.0.0.1:
//! a DNS failure is a connection failure (retried with backoff), attempts
//! are real attempts (a job never sent does not move toward the DLQ), and
//! one slow repository does not starve the others.
//! Needs `cargo build -p deliver` first (scripts/test.sh builds every
//! binary before the tests).

use std::time::{Duration, Instant};

use alin_tests::Stack;
use aws_sdk_sqs::types::Message;
use devstack::receiver::{Behaviour, Receiver};
use devstack::runtime_api::LocalFunction;
use serde_json::Value;

use crate::deliver_binary::{
    answer, config, failed_ids, last_emf, push, receive_count, start, webhook,
};

/// GIVEN a webhook whose host name does not resolve (`.invalid` never does)
/// WHEN the binary delivers a job for it
/// THEN the job is reported failed and comes back after its backoff (not
/// at once, not acknowledged), the failure is counted once, and the record
/// says "retrying", not an address-rule refusal.
#[tokio::test]
async fn a_name_that_does_not_resolve_is_retried_with_backoff() {
    let stack = Stack::new("trust-dns").await;
    webhook(&stack, "alice/app", "http://hooks.moved.invalid:9/h").await;
    let msgs = stack
        .enqueue_and_receive(&[push("evt_dns", "alice/app", "1.0")])
        .await;
    let event = stack.sqs_event(&msgs);
    let (f, log) = start(
        &stack,
        "dns",
        &[
            ("RETRY_BASE_DELAY_SECS", "3"),
            ("DELIVERY_TIMEOUT_SECS", "2"),
        ],
        Duration::from_secs(30),
    )
    .await;
    let response = answer(&f, event, Duration::from_secs(30)).await;
    let answered = Instant::now();
    assert_eq!(
        failed_ids(&response),
        [msgs[0].message_id().unwrap().to_owned()],
        "reported failed, not acknowledged"
    );
    let w = config(&stack, "alice/app").await;
    assert_eq!(w.consecutive_failures, 1);
    let ld = w.last_delivery.unwrap();
    assert_eq!(ld.outcome, "retrying");
    assert!(
        !ld.error.as_deref().unwrap_or_default().contains("refused"),
        "{:?}",
        ld.error
    );
    let emf = last_emf(&log);
    assert_eq!(
        (emf["failed"].as_u64(), emf["retried"].as_u64()),
        (Some(1), Some(1))
    );

    // Backoff: 3 s ±20% → 3–4 s; not back at once.
    assert!(stack.drain(&stack.queue_url, 10).await.is_empty());
    tokio::time::sleep(Duration::from_millis(4500).saturating_sub(answered.elapsed())).await;
    let back = stack.drain(&stack.queue_url, 10).await;
    assert_eq!(back.len(), 1, "back after its backoff");
    assert_eq!(receive_count(&back[0]), 2);
    f.stop().await.unwrap();
}

// ------------------------------------------------- attempts are attempts

/// A started function and its invocation timeout (the deadline it sees).
struct Func(LocalFunction, Duration);

/// Invokes `f` with `msgs` (in that order) and does what the event source
/// mapping does with the answer: deletes every message not reported failed.
/// Returns the failed message ids.
async fn round(stack: &Stack, f: &Func, msgs: &[Message]) -> Vec<String> {
    let response = answer(&f.0, stack.sqs_event(msgs), f.1).await;
    let failed = failed_ids(&response);
    for m in msgs {
        if !failed.iter().any(|id| Some(id.as_str()) == m.message_id()) {
            stack
                .sqs
                .delete_message()
                .queue_url(&stack.queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    failed
}

fn webhook_id(m: &Message) -> String {
    let body: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
    body["webhook_id"].as_str().unwrap_or_default().to_owned()
}

/// Receives until the message of job `id` and at least `want` messages in
/// all are in hand (delayed ones included), or `timeout` passes.
async fn receive(stack: &Stack, id: &str, want: usize, timeout: Duration) -> Vec<Message> {
    let until = Instant::now() + timeout;
    let mut all: Vec<Message> = Vec::new();
    let done = |all: &[Message]| all.len() >= want && all.iter().any(|m| webhook_id(m) == id);
    while !done(&all) && Instant::now() < until {
        all.extend(stack.drain(&stack.queue_url, 10).await);
        if !done(&all) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    all
}

/// Everything in the dead-letter queue, by webhook id.
async fn dead_letter_ids(stack: &Stack) -> Vec<String> {
    let msgs = stack.drain(&stack.dlq_url, 100).await;
    msgs.iter().map(webhook_id).collect()
}

/// The short-deadline function: 4 s invocations, 1 s request timeout and the
/// 2 s margin leave ~1 s to start requests, one at a time.
async fn short_deadline(stack: &Stack, name: &str, max_attempts: &str) -> Func {
    let (f, _log) = start(
        stack,
        name,
        &[
            ("DELIVERY_TIMEOUT_SECS", "1"),
            ("DELIVERY_CONCURRENCY", "1"),
            ("PER_HOST_CONCURRENCY", "1"),
            ("RETRY_BASE_DELAY_SECS", "1"),
            ("MAX_ATTEMPTS", max_attempts),
            ("FAILURE_THRESHOLD", "50"),
        ],
        Duration::from_secs(4),
    )
    .await;
    f.api
        .wait_for_first_poll(Duration::from_secs(30))
        .await
        .unwrap();
    Func(f, Duration::from_secs(4))
}

async fn normal(stack: &Stack, name: &str, max_attempts: &str) -> Func {
    let f = start(
        stack,
        name,
        &[
            ("DELIVERY_TIMEOUT_SECS", "2"),
            ("RETRY_BASE_DELAY_SECS", "1"),
            ("MAX_ATTEMPTS", max_attempts),
            ("FAILURE_THRESHOLD", "50"),
        ],
        Duration::from_secs(60),
    )
    .await
    .0;
    Func(f, Duration::from_secs(60))
}

/// Puts `blockers` (jobs of the same repository, before it in the event)
/// ahead of the job `id` so it cannot start within the short deadline.
fn blockers_first(mut msgs: Vec<Message>, id: &str) -> Vec<Message> {
    msgs.sort_by_key(|m| webhook_id(m) == id);
    msgs
}

/// GIVEN MAX_ATTEMPTS 2 and a job that misses the deadline three times (its
/// repository's earlier jobs on a slow receiver fill the ~1 s window)
/// THEN each time it is re-queued with no attempt counted (its record
/// acknowledged, the new message received afresh), and the next normal
/// invocation delivers it: not in the dead-letter queue.
#[tokio::test]
async fn a_job_that_keeps_missing_the_deadline_is_still_delivered() {
    let stack = Stack::with_params("trust-misses", &["MaxAttempts=2"]).await;
    let rx = alin_tests::slow_receiver(600, Behaviour::ok()).await;
    webhook(&stack, "busy/app", &rx.url("/busy")).await;
    let short = short_deadline(&stack, "misses-short", "2").await;
    stack.enqueue(&[push("evt_j", "busy/app", "j")]).await;
    for r in 0..3 {
        let blockers: Vec<String> = (0..2)
            .map(|b| push(&format!("evt_b{r}{b}"), "busy/app", &format!("b{r}{b}")))
            .collect();
        stack.enqueue(&blockers).await;
        let msgs = receive(&stack, "evt_j", 3, Duration::from_secs(10)).await;
        let msgs = blockers_first(msgs, "evt_j");
        assert!(msgs.len() >= 3, "round {r}: the job and its blockers");
        let j = msgs
            .iter()
            .find(|m| webhook_id(m) == "evt_j")
            .expect("evt_j");
        assert_eq!(receive_count(j), 1, "round {r}: a new message each time");
        let failed = round(&stack, &short, &msgs).await;
        assert!(
            failed.is_empty(),
            "round {r}: re-queued, not failed: {failed:?}"
        );
        assert!(
            !rx.requests()
                .iter()
                .any(|q| q.header("webhook-id") == Some("evt_j")),
            "round {r}: evt_j must not have started"
        );
    }
    short.0.stop().await.unwrap();
    let f = normal(&stack, "misses-normal", "2").await;
    let msgs = receive(&stack, "evt_j", 1, Duration::from_secs(10)).await;
    assert!(msgs.iter().any(|m| webhook_id(m) == "evt_j"));
    assert!(round(&stack, &f, &msgs).await.is_empty());
    let sent: Vec<_> = rx
        .requests()
        .into_iter()
        .filter(|q| q.header("webhook-id") == Some("evt_j"))
        .collect();
    assert_eq!(sent.len(), 1, "delivered once");
    assert!(dead_letter_ids(&stack).await.is_empty());
    let ld = config(&stack, "busy/app").await.last_delivery.unwrap();
    assert_eq!((ld.webhook_id.as_str(), ld.attempt), ("evt_j", 1));
    f.0.stop().await.unwrap();
}

/// GIVEN MAX_ATTEMPTS 2 and a receiver that always answers 503
/// WHEN the job fails its 1st attempt, then misses the deadline (re-queued
/// with 1 attempt made), then fails again
/// THEN it reaches the dead-letter queue after exactly 2 requests: the miss
/// used up no attempt, and the re-queued message is not sent a 3rd time.
#[tokio::test]
async fn a_failing_job_reaches_the_dlq_after_exactly_max_attempts() {
    let stack = Stack::with_params("trust-dlq", &["MaxAttempts=2"]).await;
    let rx = Receiver::start(Behaviour::status(503)).await.unwrap();
    webhook(&stack, "flaky/app", &rx.url("/flaky")).await;
    let hits = || {
        rx.requests()
            .iter()
            .filter(|q| q.header("webhook-id") == Some("evt_j"))
            .count()
    };
    let f = normal(&stack, "dlq-normal", "2").await;
    stack.enqueue(&[push("evt_j", "flaky/app", "j")]).await;
    let msgs = receive(&stack, "evt_j", 1, Duration::from_secs(10)).await;
    assert_eq!(round(&stack, &f, &msgs).await.len(), 1, "attempt 1 failed");
    assert_eq!(hits(), 1);

    // Back after its backoff (1 s ±20%), behind two slow jobs of its
    // repository: not started, re-queued with its 1 attempt.
    rx.set_behaviour(Behaviour::delay(
        Duration::from_millis(600),
        Behaviour::ok(),
    ));
    stack
        .enqueue(&[
            push("evt_b0", "flaky/app", "b0"),
            push("evt_b1", "flaky/app", "b1"),
        ])
        .await;
    let short = short_deadline(&stack, "dlq-short", "2").await;
    let msgs = receive(&stack, "evt_j", 3, Duration::from_secs(10)).await;
    let msgs = blockers_first(msgs, "evt_j");
    assert_eq!(msgs.len(), 3);
    assert!(round(&stack, &short, &msgs).await.is_empty(), "re-queued");
    assert_eq!(hits(), 1, "not started");
    short.0.stop().await.unwrap();

    // Attempt 2 (the re-queued message's first receive) fails: last attempt.
    rx.set_behaviour(Behaviour::status(503));
    let msgs = receive(&stack, "evt_j", 1, Duration::from_secs(10)).await;
    let j = msgs
        .iter()
        .find(|m| webhook_id(m) == "evt_j")
        .expect("evt_j back");
    assert_eq!(receive_count(j), 1, "a new message");
    assert!(!round(&stack, &f, &msgs).await.is_empty());
    assert_eq!(hits(), 2);
    let ld = config(&stack, "flaky/app").await.last_delivery.unwrap();
    assert_eq!((ld.outcome.as_str(), ld.attempt), ("failed", 2));

    // Its message still has a receive left: it is released, not sent, until
    // the redrive policy moves it to the dead-letter queue.
    let until = Instant::now() + Duration::from_secs(20);
    let mut dead = Vec::new();
    while Instant::now() < until && !dead.contains(&"evt_j".to_owned()) {
        let msgs = stack.drain(&stack.queue_url, 10).await;
        if !msgs.is_empty() {
            round(&stack, &f, &msgs).await;
        }
        dead.extend(dead_letter_ids(&stack).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(dead.contains(&"evt_j".to_owned()), "in the DLQ: {dead:?}");
    assert_eq!(hits(), 2, "exactly MAX_ATTEMPTS requests");
    f.0.stop().await.unwrap();
}

/// GIVEN one repository with many slow jobs and another with one job, both
/// on the same host, one request at a time and ~4 s to start requests (1 s
/// a request: room for 4 or 5, never for all 9)
/// THEN the second repository's job is sent within the batch: the host's
/// turns go round its repositories.
#[tokio::test]
async fn a_slow_repository_does_not_starve_another_on_its_host() {
    let stack = Stack::new("trust-fair").await;
    let rx = alin_tests::slow_receiver(1000, Behaviour::ok()).await;
    webhook(&stack, "slow/app", &rx.url("/slow")).await;
    webhook(&stack, "other/app", &rx.url("/other")).await;
    let mut bodies: Vec<String> = (0..8)
        .map(|i| push(&format!("evt_s{i}"), "slow/app", &format!("t{i}")))
        .collect();
    bodies.push(push("evt_o", "other/app", "1.0"));
    stack.enqueue(&bodies).await;
    let (f, _log) = start(
        &stack,
        "fair-short",
        &[
            ("DELIVERY_TIMEOUT_SECS", "1"),
            ("DELIVERY_CONCURRENCY", "1"),
            ("PER_HOST_CONCURRENCY", "1"),
            ("MAX_ATTEMPTS", "6"),
            ("FAILURE_THRESHOLD", "50"),
        ],
        Duration::from_secs(7),
    )
    .await;
    f.api
        .wait_for_first_poll(Duration::from_secs(30))
        .await
        .unwrap();
    let short = Func(f, Duration::from_secs(7));
    let msgs = receive(&stack, "evt_o", 9, Duration::from_secs(10)).await;
    let msgs = blockers_first(msgs, "evt_o");
    assert_eq!(msgs.len(), 9);
    round(&stack, &short, &msgs).await;
    let sent: Vec<String> = rx
        .requests()
        .iter()
        .filter_map(|q| q.header("webhook-id").map(str::to_owned))
        .collect();
    assert!(sent.contains(&"evt_o".to_owned()), "sent: {sent:?}");
    assert!(sent.len() <= 5, "the deadline stopped the batch: {sent:?}");
    let other = config(&stack, "other/app").await;
    assert_eq!(
        other.last_delivery.map(|l| l.webhook_id),
        Some("evt_o".to_owned())
    );
    short.0.stop().await.unwrap();
}
