//! The deadline, through the deliver binary: an invocation whose Runtime API
//! deadline (`Lambda-Runtime-Deadline-Ms`) is 4 s away, with slow (but
//! healthy) receivers and one request at a time, cannot send the whole
//! batch. It must answer before the deadline, re-queue every job it did not
//! start as a new message carrying its attempt count (back in a few
//! seconds, no receive used up), lose none, and count no failure for them: repositories none of whose
//! jobs started keep `consecutive_failures` 0 and no `last_delivery` in
//! DynamoDB. Then the event source mapping delivers the rest: every job
//! delivered, nothing in the DLQ. Needs `cargo build -p deliver` first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alin_tests::Stack;
use devstack::esm::EventSourceMapping;
use devstack::receiver::Behaviour;
use serde_json::json;

use crate::reliability_common as common;
use common::*;

fn job(id: &str, repo: &str, tag: &str) -> String {
    json!({"v": 1, "webhook_id": id, "kind": "push", "repository": repo, "tag": tag,
           "image_size": 126, "layers": [], "repository_size": 4096})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_not_started_before_the_deadline_come_back_uncounted() {
    // A 4 s deadline leaves no room for a shared moto busy with other tests.
    let stack = Stack::isolated("rel-deadline", &["MaxAttempts=3"]).await;
    let slow = alin_tests::slow_receiver(600, Behaviour::ok()).await;
    let repos: Vec<String> = (0..10).map(|i| format!("deadline{i}/app")).collect();
    for r in &repos {
        webhook(&stack, r, &slow.url(&format!("/{r}"))).await;
    }
    // 3 jobs per repository: 30 jobs, 600 ms each, one at a time = 18 s of
    // work for an invocation that may start requests for only ~1 s.
    let mut bodies = Vec::new();
    let mut job_repo = BTreeMap::new();
    for (i, r) in repos.iter().enumerate() {
        for t in 0..3 {
            let id = format!("evt_dl_{i}_{t}");
            job_repo.insert(id.clone(), r.clone());
            bodies.push(job(&id, r, &format!("t{t}")));
        }
    }
    let msgs = stack.enqueue_and_receive(&bodies).await;
    let event = stack.sqs_event(&msgs);

    // DELIVERY_TIMEOUT_SECS=1 + the 2 s margin: with a 4 s deadline only the
    // first second may start requests.
    let env = [
        ("ALLOW_PRIVATE_TARGETS", "true"),
        ("DELIVERY_TIMEOUT_SECS", "1"),
        ("DELIVERY_CONCURRENCY", "1"),
        ("PER_HOST_CONCURRENCY", "1"),
        ("RETRY_BASE_DELAY_SECS", "1"),
        ("MAX_ATTEMPTS", "3"),
    ];
    let (short, short_log) = start(
        &stack,
        "rel-deadline",
        "deliver",
        0,
        &env,
        Duration::from_secs(4),
    )
    .await;
    let inv = short.invoke(event, Duration::from_secs(4)).await.unwrap();
    assert!(
        !inv.timed_out,
        "answered before the deadline ({:?})",
        inv.duration
    );
    assert!(inv.duration < Duration::from_secs(4));
    let response = inv
        .ok()
        .unwrap_or_else(|| panic!("function error {:?}", inv.error()))
        .clone();
    let failed_messages: BTreeSet<String> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        failed_messages.is_empty(),
        "re-queued, not failed: {failed_messages:?}"
    );
    // What the event source mapping does with the answer: delete the rest.
    for m in &msgs {
        if !failed_messages.contains(m.message_id().unwrap()) {
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
    let sent: BTreeSet<String> = slow
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    // Handed back: every job not sent.
    let failed: BTreeSet<String> = job_repo
        .keys()
        .filter(|id| !sent.contains(*id))
        .cloned()
        .collect();
    // None lost: every job was sent (and answered 200 within the timeout)
    // or handed back.
    assert!(
        !sent.is_empty() && sent.len() <= 3,
        "requests started: {sent:?}"
    );
    assert_eq!(
        sent.len() + failed.len(),
        bodies.len(),
        "sent {sent:?}, failed {failed:?}"
    );
    assert!(
        sent.is_disjoint(&failed),
        "a delivered job was reported failed"
    );
    let emf = emf_lines(&short_log).pop().expect("an EMF line");
    assert_eq!(emf["not_started"], json!(failed.len()), "{emf}");
    assert_eq!(emf["requeued"], json!(failed.len()), "{emf}");
    assert_eq!(
        (emf["failed"].clone(), emf["delivered"].clone()),
        (json!(0), json!(sent.len())),
        "{emf}"
    );

    // No failure counted for jobs that never started.
    let started_repos: BTreeSet<String> = sent.iter().map(|id| job_repo[id].clone()).collect();
    for r in &repos {
        let w = config(&stack, r).await;
        assert_eq!(w.consecutive_failures, 0, "{r}");
        assert!(w.enabled, "{r}");
        if started_repos.contains(r) {
            assert_eq!(
                w.last_delivery.map(|l| l.outcome.to_string()),
                Some("delivered".to_owned()),
                "{r}"
            );
        } else {
            assert!(
                w.last_delivery.is_none(),
                "{r}: nothing was attempted, nothing recorded"
            );
        }
    }
    short.stop().await.unwrap();

    // They come back (visibility 0–5 s) and a normal invocation delivers
    // them: nothing lost, nothing dead-lettered, still no failure counted.
    let normal_env = [
        ("ALLOW_PRIVATE_TARGETS", "true"),
        ("DELIVERY_TIMEOUT_SECS", "2"),
        ("RETRY_BASE_DELAY_SECS", "1"),
        ("MAX_ATTEMPTS", "3"),
    ];
    let (normal, _) = start(
        &stack,
        "rel-deadline",
        "deliver",
        1,
        &normal_env,
        Duration::from_secs(60),
    )
    .await;
    let esm = EventSourceMapping::start(
        stack.sqs.clone(),
        &stack.queue_url,
        &stack.queue_arn,
        Arc::new(normal),
        100,
        Duration::from_millis(300),
    );
    slow.wait_for(bodies.len(), Duration::from_secs(60))
        .await
        .unwrap();
    wait_until_empty(&stack.sqs, &stack.queue_url, Duration::from_secs(30)).await;
    let stats = esm.stop().await.unwrap();
    let delivered: BTreeSet<String> = slow
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), bodies.len(), "every job delivered");
    assert_eq!(
        slow.count(),
        bodies.len(),
        "each exactly once (all answered 200)"
    );
    assert!(dead_letters(&stack, &stack.sqs).await.is_empty());
    assert_eq!(stats.deleted as usize, failed.len(), "{stats:?}");
    for r in &repos {
        let w = config(&stack, r).await;
        assert_eq!((w.consecutive_failures, w.enabled), (0, true), "{r}");
        assert_eq!(
            w.last_delivery.map(|l| l.outcome.to_string()),
            Some("delivered".to_owned())
        );
    }
}
