//! The deliver handler on SQS batches of arbitrary message bodies
//! (`body 0xFF body …`, up to 16 records; the first two bytes choose each
//! record's ApproximateReceiveCount and whether it lacks a messageId), with
//! the memory store and queue and no network: the repositories that have a
//! webhook point at a name resolving to a private address, a private
//! literal, an IPv4-mapped literal, or are disabled, so every valid job ends
//! before a connection is made.
//!
//! Properties: never a panic, never a failed invocation; exactly the
//! records (with a messageId) whose body is not a delivery job, or whose
//! attempts are used up, are reported as batch item failures, with
//! visibility 0 (straight to the DLQ path); records without a messageId are
//! acknowledged and counted malformed; every other valid job is acknowledged
//! (refused by the address rule, dropped, or superseded), never retried.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use deliver::{Config, Deliverer, DeliveryPolicy};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{BatchOutcome, LastDelivery, OutcomeKind, QueuedJob, RepositoryName};
use shared::ports::WebhookStore;

async fn store() -> Arc<MemoryStore> {
    let store = common::store_with(
        &[
            ("alice/app", "http://hooks.test/h?token=s3cr3t"),
            ("carol/app", "http://10.0.0.1/h"),
            ("dave/app", "http://[::ffff:10.0.0.1]/h"),
            ("bob/app", "http://hooks.test/bob"),
        ],
        true,
    )
    .await;
    let bob = store
        .get(&RepositoryName::parse("bob/app").unwrap())
        .await
        .unwrap()
        .unwrap();
    let version = bob.webhook.map(|w| w.url_version).unwrap_or(0);
    let outcome = BatchOutcome {
        url_version: version,
        kind: OutcomeKind::Gone,
        last_delivery: LastDelivery {
            webhook_id: "evt_seed".into(),
            event: "push".into(),
            tag: "1.0".into(),
            at: "2026-11-28T08:00:00Z".into(),
            outcome: shared::domain::DeliveryOutcome::Gone,
            status: Some(410),
            error: Some("HTTP 410".into()),
            duration_ms: 1,
            attempt: 1,
        },
        now: "2026-11-28T08:00:00Z".into(),
        history: None,
    };
    store
        .record_outcome(&RepositoryName::parse("bob/app").unwrap(), &outcome, 5)
        .await
        .unwrap();
    store
}

fuzz_target!(|data: &[u8]| {
    let (f0, f1) = (common::pick(data, 0, 256), common::pick(data, 1, 256));
    let rest = data.get(2..).unwrap_or(&[]);
    let bodies: Vec<String> = common::parts(rest, 16)
        .iter()
        .map(|b| common::text(b))
        .collect();
    let mut records = Vec::new();
    let mut malformed = BTreeSet::new();
    let mut malformed_total = 0;
    for (i, body) in bodies.iter().enumerate() {
        let id = if i < 8 && (f1 >> i) & 1 == 1 {
            String::new()
        } else {
            format!("m{i}")
        };
        let receives = 1 + (f0 + i) % 4;
        // A record without a messageId is acknowledged and counted
        // malformed, whatever its body.
        let queued = QueuedJob::parse(body).ok();
        if id.is_empty() || queued.is_none() {
            malformed_total += 1;
            if !id.is_empty() {
                malformed.insert(id.clone());
            }
        } else if queued
            .and_then(|q| q.attempts)
            .is_some_and(|a| a as usize + receives > 3)
        {
            // Its attempts are used up: released at once for the redrive.
            malformed.insert(id.clone());
        }
        records.push(json!({
            "messageId": id, "receiptHandle": format!("rh{i}"), "body": body,
            "attributes": {"ApproximateReceiveCount": receives.to_string(),
                           "SentTimestamp": (1_795_855_273_000u64 + i as u64).to_string()},
            "messageAttributes": {}, "eventSource": "aws:sqs",
        }));
    }
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records }))
        .expect("an SQS event of strings parses");

    common::runtime().block_on(async move {
        let queue = Arc::new(MemoryQueue::default());
        let settings = Config {
            delivery: DeliveryPolicy {
                delivery_timeout: Duration::from_secs(1),
                retry_base_delay: Duration::from_secs(1),
                max_attempts: 3,
                ..DeliveryPolicy::default()
            },
            ..Config::default()
        };
        let deliverer = Deliverer::new(
            settings,
            store().await,
            queue.clone(),
            Arc::new(common::OfflineLookup),
        )
        .expect("a client");
        let report = deliverer
            .deliver(event.into(), None)
            .await
            .expect("the memory store never fails a batch");
        let failed: BTreeSet<String> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(
            failed, malformed,
            "only malformed (and spent) records fail: {:?}",
            report.summary
        );
        assert_eq!(report.summary.received as usize, bodies.len());
        assert_eq!(report.summary.malformed, malformed_total);
        assert_eq!(
            report.summary.delivered, 0,
            "nothing can be delivered offline"
        );
        for (handle, secs) in queue.visibility_changes() {
            assert_eq!(
                secs, 0,
                "{handle}: a malformed job goes straight back (to the DLQ)"
            );
        }
        let _: Value = serde_json::to_value(&report.response).expect("the response serialises");
    });
});
