//! Two deliver invocations at once (two `LocalFunction`s, two execution
//! environments) on the same ten repositories, every receiver answering 503
//! (after 300 ms, so the invocations overlap): the failure count of each
//! repository is exactly the number of batches that attempted it (a batch
//! counts once per repository however many of its jobs failed), the webhook
//! is disabled exactly once (one invocation reports it, `disabled_at` is the
//! first time), and once disabled both invocations drop its jobs without
//! counting. Needs `cargo build -p deliver` first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alin_tests::Stack;
use devstack::receiver::Behaviour;
use serde_json::{json, Value};

use crate::reliability_common as common;
use common::*;

const THRESHOLD: u32 = 3;
const REPOS: usize = 10;
const JOBS_PER_REPO: usize = 3;

fn job(id: &str, repo: &str, tag: &str) -> String {
    json!({"v": 1, "webhook_id": id, "kind": "push", "repository": repo, "tag": tag,
           "image_size": 126, "layers": [], "repository_size": 4096})
    .to_string()
}

/// Queues the jobs of one round for both functions and returns the two SQS
/// events (real messages: receipt handles work).
async fn round_events(stack: &Stack, round: usize, repos: &[String]) -> [Value; 2] {
    let mut bodies = Vec::new();
    for f in 0..2 {
        for (i, r) in repos.iter().enumerate() {
            for t in 0..JOBS_PER_REPO {
                bodies.push(job(
                    &format!("evt_r{round}_f{f}_{i}_{t}"),
                    r,
                    &format!("r{round}f{f}t{t}"),
                ));
            }
        }
    }
    let msgs = stack.enqueue_and_receive(&bodies).await;
    let (a, b): (Vec<_>, Vec<_>) = msgs
        .into_iter()
        .partition(|m| m.body().unwrap_or_default().contains("_f0_"));
    [stack.sqs_event(&a), stack.sqs_event(&b)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_invocations_at_once_count_exactly_and_disable_once() {
    let stack = Stack::with_params("rel-conc", &["MaxAttempts=5"]).await;
    let rx = alin_tests::slow_receiver(300, Behaviour::status(503)).await;
    let repos: Vec<String> = (0..REPOS).map(|i| format!("conc{i}/app")).collect();
    for r in &repos {
        webhook(&stack, r, &rx.url(&format!("/{r}"))).await;
    }
    let env = [
        ("ALLOW_PRIVATE_TARGETS", "true"),
        ("FAILURE_THRESHOLD", "3"),
        ("DELIVERY_TIMEOUT_SECS", "2"),
        ("RETRY_BASE_DELAY_SECS", "60"),
        ("MAX_ATTEMPTS", "5"),
        ("PER_HOST_CONCURRENCY", "64"),
    ];
    let (fa, log_a) = start(
        &stack,
        "rel-conc",
        "deliver",
        0,
        &env,
        Duration::from_secs(30),
    )
    .await;
    let (fb, log_b) = start(
        &stack,
        "rel-conc",
        "deliver",
        1,
        &env,
        Duration::from_secs(30),
    )
    .await;

    let mut overlaps = Vec::new();
    for round in 0..3 {
        let [ea, eb] = round_events(&stack, round, &repos).await;
        let (ia, ib) = tokio::join!(
            fa.invoke(ea, Duration::from_secs(30)),
            fb.invoke(eb, Duration::from_secs(30))
        );
        let (ia, ib) = (ia.unwrap(), ib.unwrap());
        assert!(
            ia.is_ok() && ib.is_ok(),
            "{:?} {:?}",
            ia.error(),
            ib.error()
        );
        let (a0, a1) = (ia.started_at, ia.started_at + ia.duration);
        let (b0, b1) = (ib.started_at, ib.started_at + ib.duration);
        overlaps.push(a0 < b1 && b0 < a1);
    }
    assert!(
        overlaps.iter().take(2).all(|o| *o),
        "the failing rounds ran at once: {overlaps:?}"
    );

    // Batches that attempted each repository, from what the receiver got:
    // request webhook-ids are evt_r{round}_f{function}_{repo}_{job}.
    let mut batches: BTreeMap<usize, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut attempted_jobs: BTreeMap<usize, usize> = BTreeMap::new();
    for r in rx.requests() {
        let id = r.header("webhook-id").unwrap().to_owned();
        let parts: Vec<&str> = id.split('_').collect();
        let repo: usize = parts[3].parse().unwrap();
        batches
            .entry(repo)
            .or_default()
            .insert((parts[1].to_owned(), parts[2].to_owned()));
        *attempted_jobs.entry(repo).or_default() += 1;
    }
    let emf = emf_totals(&[&log_a, &log_b]);
    let e = |k: &str| emf.get(k).copied().unwrap_or(0);
    for (i, r) in repos.iter().enumerate() {
        let w = config(&stack, r).await;
        let attempted = batches.get(&i).map_or(0, BTreeSet::len);
        assert!(
            attempted >= THRESHOLD as usize,
            "{r}: {attempted} batches attempted it"
        );
        assert_eq!(
            w.consecutive_failures as usize, attempted,
            "{r}: the count must be the number of batches that attempted it ({attempted}, {} jobs)",
            attempted_jobs[&i]
        );
        assert!(!w.enabled, "{r} is disabled");
        assert_eq!(w.disabled_reason.as_deref(), Some("HTTP 503"), "{r}");
        assert!(w.disabled_at.is_some());
        // Round 2 (after the disable) attempted nothing.
        assert!(
            batches[&i].iter().all(|(round, _)| round != "r2"),
            "{r} was attempted while disabled"
        );
    }
    assert_eq!(
        e("disabled"),
        REPOS as u64,
        "each webhook disabled exactly once, by one invocation: {emf:?}"
    );
    // Every job was attempted or dropped (tags are unique: nothing is
    // superseded); round 2 dropped all of its jobs.
    let attempted_total: usize = attempted_jobs.values().sum();
    assert_eq!(
        e("dropped") as usize + attempted_total,
        3 * 2 * REPOS * JOBS_PER_REPO,
        "{emf:?}"
    );
    assert!(
        e("dropped") >= (2 * REPOS * JOBS_PER_REPO) as u64,
        "round 2 dropped every job: {emf:?}"
    );
    assert_eq!(e("received"), (3 * 2 * REPOS * JOBS_PER_REPO) as u64);
    assert_eq!(e("store_errors"), 0, "{emf:?}");
    eprintln!("reliability_concurrency: overlaps {overlaps:?}; emf {emf:?}");
    fa.stop().await.unwrap();
    fb.stop().await.unwrap();
}
