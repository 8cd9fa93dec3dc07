//! Faults at the receivers, end to end through the binaries: pushes go to
//! `ingest` behind the Function URL emulation, jobs through the real (moto)
//! delivery queue, `deliver` behind the SQS event source mapping emulation
//! (batch 100, 300 ms window), and webhooks to local receivers that answer
//! 503, time out, reset the connection or answer slowly on their first
//! requests and then recover, or fail for good (503 forever, 410, 400).
//!
//! Full run: 2,000 pushes over 200 repositories (`RELIABILITY_PUSHES`
//! changes the count; repositories = pushes / 10). Policy:
//! RETRY_BASE_DELAY_SECS=1, DELIVERY_TIMEOUT_SECS=1, MAX_ATTEMPTS=3 (the
//! queue's redrive maxReceiveCount, `MaxAttempts=3`), FAILURE_THRESHOLD=4.
//!
//! Proven: every event to an endpoint that recovers within the policy is
//! delivered at least once and those endpoints end enabled with a count of
//! 0; every attempt of an event carries the same `webhook-id` (the one
//! derived from the registry's event id) with a valid signature; and
//! delivered + dead-lettered + dropped-by-policy = pushed, each event in
//! exactly one class, cross-checked against the queue (jobs queued =
//! messages deleted + DLQ messages) and deliver's own metrics.
//! Needs `cargo build -p ingest -p deliver` first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alin_tests::Stack;
use devstack::esm::EventSourceMapping;
use devstack::receiver::{Behaviour, Receiver};
use futures::stream::{self, StreamExt};

use crate::reliability_common as common;
use common::*;

const MAX_ATTEMPTS: u32 = 3;
const FAILURE_THRESHOLD: u32 = 4;
const ROUNDS: usize = 10;

/// How a repository's receiver behaves, by request index on its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Healthy,
    /// 503 twice, then 200.
    Flaky503,
    /// First request answered after 2.5 s (timeout at 1 s), then 200.
    Timeout,
    /// Connection reset twice, then 200.
    Reset,
    /// 400 ms answers three times, then fast; always 200.
    Slow,
    /// 503 forever.
    Dead503,
    /// 410 Gone.
    Gone,
    /// 400 forever.
    Reject400,
}

/// What the deliver client saw for request `index` of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Delivered,
    Retryable,
    Permanent,
}

impl Class {
    fn of(i: usize) -> Class {
        match i % 20 {
            0..=9 => Class::Healthy,
            10..=12 => Class::Flaky503,
            13 | 19 => Class::Timeout,
            14 => Class::Reset,
            15 => Class::Slow,
            16 => Class::Dead503,
            17 => Class::Gone,
            _ => Class::Reject400,
        }
    }

    fn recovers(self) -> bool {
        matches!(
            self,
            Class::Healthy | Class::Flaky503 | Class::Timeout | Class::Reset | Class::Slow
        )
    }

    fn behaviour(self) -> Behaviour {
        match self {
            Class::Healthy => Behaviour::ok(),
            Class::Flaky503 => Behaviour::script(|i| {
                if i < 2 {
                    Behaviour::status(503)
                } else {
                    Behaviour::ok()
                }
            }),
            Class::Timeout => Behaviour::script(|i| {
                if i < 1 {
                    Behaviour::delay(Duration::from_millis(2500), Behaviour::ok())
                } else {
                    Behaviour::ok()
                }
            }),
            Class::Reset => Behaviour::script(|i| {
                if i < 2 {
                    Behaviour::Reset
                } else {
                    Behaviour::ok()
                }
            }),
            Class::Slow => Behaviour::script(|i| {
                if i < 3 {
                    Behaviour::delay(Duration::from_millis(400), Behaviour::ok())
                } else {
                    Behaviour::ok()
                }
            }),
            Class::Dead503 => Behaviour::status(503),
            Class::Gone => Behaviour::status(410),
            Class::Reject400 => Behaviour::status(400),
        }
    }

    fn seen(self, index: usize) -> Seen {
        match self {
            Class::Healthy | Class::Slow => Seen::Delivered,
            Class::Flaky503 | Class::Reset if index < 2 => Seen::Retryable,
            Class::Timeout if index < 1 => Seen::Retryable,
            Class::Flaky503 | Class::Reset | Class::Timeout => Seen::Delivered,
            Class::Dead503 => Seen::Retryable,
            Class::Gone | Class::Reject400 => Seen::Permanent,
        }
    }
}

/// One event's fate, the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    Delivered,
    DeadLettered,
    /// Answered 410 / 400: a failure that is not retried.
    RefusedByReceiver,
    /// ingest dropped it: the webhook was disabled when it arrived.
    DroppedAtIngest,
    /// deliver dropped it: the webhook was disabled by then.
    DroppedAtDeliver,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_survive_failing_receivers_end_to_end() {
    let pushes: usize = std::env::var("RELIABILITY_PUSHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let repos = (pushes / ROUNDS).max(20);
    let started = Instant::now();
    let stack = Stack::with_params("rel-rx", &["MaxAttempts=3", "DeliverTimeoutSeconds=15"]).await;

    // Receivers: healthy repositories share four; every other one has its
    // own, so one repository's transport failures never trip the per-host
    // breaker for another.
    let shared_rx: Vec<Receiver> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(Receiver::start(Behaviour::ok()).await.unwrap());
        }
        v
    };
    let mut own_rx: BTreeMap<usize, Receiver> = BTreeMap::new();
    let names: Vec<String> = (0..repos).map(|i| format!("rel{i:03}/app")).collect();
    for (i, name) in names.iter().enumerate() {
        let class = Class::of(i);
        let url = if class == Class::Healthy {
            shared_rx[i % 4].url(&format!("/h/{name}"))
        } else {
            let rx = Receiver::start(class.behaviour()).await.unwrap();
            let u = rx.url(&format!("/h/{name}?token=per-repo-{i}"));
            own_rx.insert(i, rx);
            u
        };
        webhook(&stack, name, &url).await;
    }

    let deliver_env = [
        ("ALLOW_PRIVATE_TARGETS", "true"),
        ("RETRY_BASE_DELAY_SECS", "1"),
        ("DELIVERY_TIMEOUT_SECS", "1"),
        ("MAX_ATTEMPTS", "3"),
        ("FAILURE_THRESHOLD", "4"),
    ];
    let (deliver, deliver_log) = start(
        &stack,
        "rel-rx",
        "deliver",
        0,
        &deliver_env,
        Duration::from_secs(60),
    )
    .await;
    let deliver = Arc::new(deliver);
    let esm = EventSourceMapping::start(
        stack.sqs.clone(),
        &stack.queue_url,
        &stack.queue_arn,
        deliver.clone(),
        100,
        Duration::from_millis(300),
    );
    // Two ingest execution environments, each behind its own Function URL.
    let (function_urls, ingest_urls) = ingest_behind_urls(&stack, "rel-rx", 2).await;

    // Pushes: the always-503 repositories' events in one burst first, then
    // round after round over all the others.
    let mut order: Vec<(usize, String)> = Vec::new();
    for (i, _) in names
        .iter()
        .enumerate()
        .filter(|(i, _)| Class::of(*i) == Class::Dead503)
    {
        for r in 0..ROUNDS {
            order.push((i, format!("t{r}")));
        }
    }
    for r in 0..ROUNDS {
        for (i, _) in names
            .iter()
            .enumerate()
            .filter(|(i, _)| Class::of(*i) != Class::Dead503)
        {
            order.push((i, format!("t{r}")));
        }
    }
    let total = order.len();
    let http = reqwest::Client::new();
    let push_started = Instant::now();
    let answers: Vec<((usize, String), PushAnswer)> = stream::iter(order.into_iter().enumerate())
        .map(|(k, (i, tag))| {
            let http = http.clone();
            let url = ingest_urls[k % ingest_urls.len()].clone();
            let body = native_push(&names[i], &tag);
            async move { ((i, tag), push(&http, &url, &body, 20).await) }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let push_time = push_started.elapsed();
    for (_, a) in &answers {
        assert_eq!(a.status, 202, "{a:?}");
        assert_eq!(a.retried_5xx, 0, "no AWS fault here, so no 5xx: {a:?}");
    }

    let drain_time = wait_until_empty(&stack.sqs, &stack.queue_url, Duration::from_secs(240)).await;
    let stats = esm.stop().await.unwrap();
    let dlq = dead_letters(&stack, &stack.sqs).await;

    // ---------------------------------------------------------- analysis
    // Requests per event (repository:tag), with what deliver saw.
    let mut requests: BTreeMap<String, Vec<(String, Seen)>> = BTreeMap::new();
    let mut all_requests = 0usize;
    let mut bad_signatures = Vec::new();
    let mut secrets = BTreeMap::new();
    for name in &names {
        secrets.insert(name.clone(), config(&stack, name).await.secret);
    }
    let recorded = shared_rx
        .iter()
        .flat_map(|rx| rx.requests())
        .chain(own_rx.values().flat_map(|rx| rx.requests()));
    for r in recorded {
        all_requests += 1;
        let image = r.header("x-alin-webhook").unwrap_or_default().to_owned();
        let name = image.split(':').next().unwrap_or_default().to_owned();
        let i = names
            .iter()
            .position(|n| *n == name)
            .expect("a known repository");
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        let ts: i64 = r
            .header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if !secrets[&name].verify(
            &id,
            ts,
            &r.body,
            r.header("webhook-signature").unwrap_or_default(),
        ) {
            bad_signatures.push(image.clone());
        }
        requests
            .entry(image)
            .or_default()
            .push((id, Class::of(i).seen(r.index_for_path)));
    }
    assert!(
        bad_signatures.is_empty(),
        "bad signatures: {bad_signatures:?}"
    );

    let dlq_events: BTreeSet<String> = dlq.iter().map(|j| j.image_ref()).collect();
    assert_eq!(dlq_events.len(), dlq.len(), "a job dead-lettered twice");
    let ingest_dropped: BTreeSet<String> = answers
        .iter()
        .filter(|(_, a)| a.dropped() == 1)
        .map(|((i, tag), _)| format!("{}:{tag}", names[*i]))
        .collect();

    let mut fates: BTreeMap<Fate, usize> = BTreeMap::new();
    let mut by_class: BTreeMap<(Class, Fate), usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    for ((i, tag), _) in &answers {
        let name = &names[*i];
        let image = format!("{name}:{tag}");
        let class = Class::of(*i);
        let seen = requests.get(&image).cloned().unwrap_or_default();
        let want_id = expected_webhook_id(name, tag);
        if seen.iter().any(|(id, _)| *id != want_id) {
            problems.push(format!(
                "{image}: webhook-ids {:?}, want {want_id} on every attempt",
                seen.iter().map(|s| &s.0).collect::<BTreeSet<_>>()
            ));
        }
        ids.insert(want_id);
        let delivered = seen.iter().any(|(_, s)| *s == Seen::Delivered);
        let refused = seen.iter().any(|(_, s)| *s == Seen::Permanent);
        let fate = if delivered {
            Fate::Delivered
        } else if dlq_events.contains(&image) {
            Fate::DeadLettered
        } else if refused {
            Fate::RefusedByReceiver
        } else if ingest_dropped.contains(&image) {
            Fate::DroppedAtIngest
        } else {
            Fate::DroppedAtDeliver
        };
        if delivered && dlq_events.contains(&image) {
            problems.push(format!("{image}: delivered and dead-lettered"));
        }
        if class.recovers() && fate != Fate::Delivered {
            problems.push(format!("{image} ({class:?}): {fate:?}, attempts {seen:?}"));
        }
        if fate == Fate::DroppedAtDeliver && !seen.is_empty() && class != Class::Dead503 {
            problems.push(format!(
                "{image} ({class:?}): dropped after attempts {seen:?}"
            ));
        }
        *fates.entry(fate).or_default() += 1;
        *by_class.entry((class, fate)).or_default() += 1;
    }
    assert_eq!(ids.len(), total, "webhook ids are distinct per event");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // The identity, and its cross-checks.
    let n = |f: Fate| fates.get(&f).copied().unwrap_or(0);
    let delivered = n(Fate::Delivered);
    let dead_lettered = n(Fate::DeadLettered);
    let dropped_by_policy =
        n(Fate::RefusedByReceiver) + n(Fate::DroppedAtIngest) + n(Fate::DroppedAtDeliver);
    assert_eq!(delivered + dead_lettered + dropped_by_policy, total);
    assert_eq!(
        dead_lettered,
        dlq.len(),
        "every DLQ message is one of the pushes"
    );
    let queued: u64 = answers.iter().map(|(_, a)| a.queued()).sum();
    let ingest_drops: u64 = answers.iter().map(|(_, a)| a.dropped()).sum();
    assert_eq!(
        queued + ingest_drops,
        total as u64,
        "ingest queued or dropped every push"
    );
    assert_eq!(
        stats.deleted + dlq.len() as u64,
        queued,
        "every queued job was deleted once or dead-lettered: {stats:?}"
    );
    assert_eq!(
        (
            stats.function_errors,
            stats.delete_errors,
            stats.invalid_responses
        ),
        (0, 0, 0),
        "{stats:?}"
    );
    let emf = emf_totals(&[&deliver_log]);
    let e = |k: &str| emf.get(k).copied().unwrap_or(0);
    assert_eq!(
        e("dropped") as usize,
        n(Fate::DroppedAtDeliver),
        "deliver's dropped metric: {emf:?}"
    );
    assert_eq!(e("superseded"), 0);
    assert_eq!(e("malformed"), 0);
    assert_eq!(
        e("not_started") + e("deferred"),
        0,
        "nothing hit the deadline or the host breaker: {emf:?}"
    );

    // The endpoints: recovered ones enabled with a count of 0; 410 and
    // permanent failures disabled.
    for (i, name) in names.iter().enumerate() {
        let class = Class::of(i);
        let w = config(&stack, name).await;
        match class {
            c if c.recovers() => assert!(
                w.enabled && w.consecutive_failures == 0,
                "{name} ({c:?}) recovered within the policy but ended {} with count {}",
                if w.enabled { "enabled" } else { "disabled" },
                w.consecutive_failures
            ),
            Class::Gone => {
                assert!(!w.enabled, "{name}: 410 disables");
                assert_eq!(
                    w.disabled_reason.as_deref(),
                    Some("receiver answered 410 Gone")
                );
            }
            Class::Reject400 => {
                assert!(
                    !w.enabled,
                    "{name}: {FAILURE_THRESHOLD} failing batches disable"
                );
                assert_eq!(w.consecutive_failures, FAILURE_THRESHOLD);
            }
            // Without a single dead-lettered event, each always-503 webhook
            // must have reached the threshold and been disabled.
            Class::Dead503 if dead_lettered == 0 => {
                assert!(
                    !w.enabled,
                    "{name}: always 503, nothing dead-lettered, still enabled"
                )
            }
            _ => assert!(w.consecutive_failures <= FAILURE_THRESHOLD),
        }
    }
    // An always-503 event ends in the DLQ after MAX_ATTEMPTS, or is dropped
    // once its webhook reached FAILURE_THRESHOLD failing batches first; which
    // comes first depends on how the mapping cut the batches. Either way it
    // ends somewhere known, and a webhook that dropped events is disabled.
    let dead = |f: Fate| by_class.get(&(Class::Dead503, f)).copied().unwrap_or(0);
    assert_eq!(
        dead(Fate::DeadLettered) + dead(Fate::DroppedAtDeliver),
        by_class
            .iter()
            .filter(|((c, _), _)| *c == Class::Dead503)
            .map(|(_, n)| n)
            .sum::<usize>(),
        "always-503 events end in the DLQ or dropped: {by_class:?}"
    );

    for j in &dlq {
        let i = names
            .iter()
            .position(|n| *n == j.repository.as_str())
            .unwrap();
        assert_eq!(
            Class::of(i),
            Class::Dead503,
            "only never-recovering endpoints' events are dead-lettered"
        );
        let attempts = requests.get(&j.image_ref()).map_or(0, Vec::len);
        assert_eq!(
            attempts,
            MAX_ATTEMPTS as usize,
            "{} was dead-lettered after {attempts} attempts",
            j.image_ref()
        );
    }

    eprintln!(
        "reliability_receivers: {total} pushes over {repos} repositories, {all_requests} webhook requests; \
         delivered {delivered}, dead-lettered {dead_lettered}, dropped by policy {dropped_by_policy} \
         (refused by receiver {}, at ingest {}, at deliver {}); by class {by_class:?}; \
         esm {stats:?}; emf {emf:?}; pushes took {push_time:?}, queue drained {drain_time:?} later, total {:?}",
        n(Fate::RefusedByReceiver),
        n(Fate::DroppedAtIngest),
        n(Fate::DroppedAtDeliver),
        started.elapsed()
    );
    drop(function_urls);
}
