//! Property tests of the delivery job parser (`DeliveryJob::parse`) and of
//! the deliver handler (`Deliverer::deliver`, memory store and queue, a
//! resolver without DNS, no network reached) on arbitrary and mutated SQS
//! message bodies.
//!
//! What must hold: no panic; a body parses iff it is a delivery job, and a
//! parsed job re-serialises to itself; in a batch exactly the malformed
//! records are reported as batch item failures with visibility 0 (they come
//! straight back and reach the DLQ after MAX_ATTEMPTS receives), and no
//! valid job is ever failed for another record's sake.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use deliver::{Config, Deliverer, DeliveryPolicy};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{
    validate_webhook_url, BatchOutcome, DeliveryJob, LastDelivery, OutcomeKind, RepositoryName,
};
use shared::ports::WebhookStore;

use crate::props_common as common;
use common::*;

fn job(id: &str, repo: &str, tag: &str) -> Value {
    json!({"v": 1, "webhook_id": id, "kind": "push", "repository": repo, "tag": tag,
           "digest": d64('a'), "image_size": 126, "layers": [d64('b')],
           "repository_size": 4096, "pushed_at": "2026-11-28T08:41:13Z"})
}

fn ping(id: &str, repo: &str) -> Value {
    json!({"v": 1, "webhook_id": id, "kind": "ping", "repository": repo, "tag": "ping",
           "image_size": 0, "layers": [], "repository_size": 0})
}

fn arb_job_doc() -> impl Strategy<Value = Value> {
    let repo = prop::sample::select(vec![
        "alice/app",
        "bob/app",
        "carol/app",
        "dave/app",
        "nobody/app",
    ]);
    (repo, "[a-z0-9._-]{1,12}", any::<u16>())
        .prop_map(|(r, tag, n)| job(&format!("evt_{n}"), r, &tag))
}

fn arb_body() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (arb_job_doc(), arb_mutations()).prop_map(|(j, m)| mutate(j, &m).to_string()),
        3 => arb_job_doc().prop_map(|j| j.to_string()),
        1 => Just(ping("evt_ping", "alice/app").to_string()),
        1 => arb_json().prop_map(|v| v.to_string()),
        1 => nasty_string(),
    ]
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Webhooks that can never be contacted: a name resolving to a private
/// address (refused at connect time), a private literal (refused before
/// sending), a disabled one; `dave` and `nobody` have none.
async fn store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::default());
    for (repo, url) in [
        ("alice/app", "http://hooks.internal.test/h?token=s3cr3t"),
        ("carol/app", "http://10.0.0.1/h"),
        ("bob/app", "https://hooks.internal.test/bob"),
    ] {
        store
            .put_url(
                &RepositoryName::parse(repo).unwrap(),
                &validate_webhook_url(url, true).unwrap(),
                "2026-11-28T08:00:00Z",
            )
            .await
            .unwrap();
    }
    let bob = RepositoryName::parse("bob/app").unwrap();
    let version = store
        .get(&bob)
        .await
        .unwrap()
        .and_then(|r| r.webhook)
        .map(|w| w.url_version)
        .unwrap();
    let gone = BatchOutcome {
        url_version: version,
        kind: OutcomeKind::Gone,
        last_delivery: LastDelivery {
            webhook_id: "evt_0".into(),
            event: "push".into(),
            tag: "1".into(),
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
    store.record_outcome(&bob, &gone, 5).await.unwrap();
    store
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Parsing never panics, and a parsed job round-trips exactly.
    #[test]
    fn delivery_job_parse_never_panics_and_round_trips(body in arb_body()) {
        if let Ok(job) = DeliveryJob::parse(&body) {
            let again = DeliveryJob::parse(&job.to_json());
            prop_assert!(again.is_ok(), "{} did not parse again", job.to_json());
            prop_assert_eq!(again.unwrap(), job);
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// The handler on a batch of mutated and arbitrary bodies: exactly the
    /// malformed records fail, with visibility 0; every valid job ends
    /// (refused by the address rule, dropped or superseded) without being
    /// retried; nothing is delivered (nothing is reachable).
    #[test]
    fn deliver_handler_fails_exactly_the_malformed_records(
        bodies in prop::collection::vec(arb_body(), 1..8),
        receives in 1u32..6,
    ) {
        rt().block_on(async {
            let queue = Arc::new(MemoryQueue::default());
            let settings = Config {
                delivery: DeliveryPolicy {
                    delivery_timeout: Duration::from_secs(1),
                    retry_base_delay: Duration::from_secs(1),
                    max_attempts: 3,
                    allow_private_targets: false,
                    ..DeliveryPolicy::default()
                },
                ..Config::default()
            };
            let deliverer = Deliverer::new(settings, store().await, queue.clone(), Arc::new(OfflineLookup))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let event: SqsEvent = serde_json::from_value(sqs_event(&bodies, receives))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let report = deliverer
                .deliver(event.into(), None)
                .await
                .map_err(|e| TestCaseError::fail(format!("batch failed as a whole: {e}")))?;
            let failed: BTreeSet<String> = report
                .response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            let malformed: BTreeSet<String> = bodies
                .iter()
                .enumerate()
                .filter(|(_, b)| DeliveryJob::parse(b).is_err())
                .map(|(i, _)| format!("m{i}"))
                .collect();
            prop_assert_eq!(&failed, &malformed, "{:?} {:?}", report.summary, bodies);
            prop_assert_eq!(report.summary.malformed as usize, malformed.len());
            prop_assert_eq!(report.summary.delivered, 0);
            prop_assert_eq!(report.summary.received as usize, bodies.len());
            for (handle, secs) in queue.visibility_changes() {
                prop_assert_eq!(secs, 0, "{} comes straight back", handle);
            }
            Ok(())
        })?;
    }
}
