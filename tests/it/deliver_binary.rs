//! The `deliver` binary as Lambda runs it: a process polling the Runtime API
//! (devstack `LocalFunction`) against moto, invoked with real SQS events
//! built from messages received from the delivery queue (receipt handles
//! and all), with `ALLOW_PRIVATE_TARGETS=true` so it may reach the local
//! receivers. Also under the emulated SQS event source mapping, end to end.
//! Needs `cargo build -p deliver` first (scripts/test.sh builds every
//! binary before the tests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use alin_tests::{repo_root, Stack};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use devstack::esm::EventSourceMapping;
use devstack::receiver::{Behaviour, Receiver};
use devstack::runtime_api::{workspace_binary, LocalFunction};
use serde_json::Value;
use shared::domain::{validate_webhook_url, RepositoryName, WebhookConfig};
use shared::ports::WebhookStore;

pub(crate) fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

pub(crate) fn push(id: &str, repository: &str, tag: &str) -> String {
    format!(
        r#"{{"v":1,"webhook_id":"{id}","kind":"push","repository":"{repository}","tag":"{tag}","image_size":126,"layers":["sha256:{d}"],"repository_size":4096}}"#,
        d = "d".repeat(64)
    )
}

pub(crate) async fn start(
    stack: &Stack,
    name: &str,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> (LocalFunction, std::path::PathBuf) {
    let binary = workspace_binary("deliver");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p deliver` first",
        binary.display()
    );
    let mut env = stack.function_env();
    env.push(("ALLOW_PRIVATE_TARGETS".into(), "true".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let log = repo_root()
        .join(".devstack")
        .join("logs")
        .join(format!("deliver-{name}-{}.log", stack.table));
    let f = LocalFunction::start(&binary, &env, &log)
        .await
        .expect("deliver starts")
        .with_timeout(timeout);
    (f, log)
}

pub(crate) async fn webhook(stack: &Stack, name: &str, url: &str) {
    let url = validate_webhook_url(url, true).unwrap();
    stack
        .store()
        .put_url(&repo(name), &url, "2026-11-28T08:00:00Z")
        .await
        .unwrap();
}

pub(crate) async fn config(stack: &Stack, name: &str) -> WebhookConfig {
    stack
        .store()
        .get(&repo(name))
        .await
        .unwrap()
        .and_then(|r| r.webhook)
        .unwrap()
}

/// Invokes `f` with `event` within `timeout`: its answer, which must come
/// before the deadline and not be a function error.
pub(crate) async fn answer(f: &LocalFunction, event: Value, timeout: Duration) -> Value {
    let inv = f.invoke(event, timeout).await.unwrap();
    assert!(!inv.timed_out, "answered before the deadline");
    inv.ok()
        .unwrap_or_else(|| panic!("function error: {:?}", inv.error()))
        .clone()
}

fn body_of(msgs: &[Message], message_id: &str) -> String {
    msgs.iter()
        .find(|m| m.message_id() == Some(message_id))
        .and_then(|m| m.body())
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The last EMF line the function printed.
pub(crate) fn last_emf(log: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v.get("_aws").is_some())
        .unwrap_or_else(|| panic!("no EMF line in {}:\n{text}", log.display()))
}

pub(crate) fn failed_ids(response: &Value) -> Vec<String> {
    let mut ids: Vec<String> = response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// GIVEN a delivered job, a 503 job and a malformed message on the queue
/// WHEN the binary is invoked with the SQS event of those messages
/// THEN it sends the signed webhook, reports the 503 and the malformed one
/// failed, sets their visibility on the queue (the malformed one back at
/// once, the 503 one after its backoff), records outcomes in DynamoDB and
/// prints its EMF line.
#[tokio::test]
async fn binary_delivers_a_real_sqs_batch() {
    let stack = Stack::new("deliver-bin").await;
    let ok = Receiver::start(Behaviour::ok()).await.unwrap();
    let busy = Receiver::start(Behaviour::status(503)).await.unwrap();
    webhook(&stack, "alice/app", &ok.url("/hook?token=t0k")).await;
    webhook(&stack, "bob/app", &busy.url("/hook")).await;
    let msgs = stack
        .enqueue_and_receive(&[
            push("evt_ok", "alice/app", "1.0"),
            push("evt_busy", "bob/app", "2.0"),
            "not a job".to_owned(),
        ])
        .await;
    let event = stack.sqs_event(&msgs);

    let (f, log) = start(
        &stack,
        "batch",
        &[
            ("RETRY_BASE_DELAY_SECS", "2"),
            ("DELIVERY_TIMEOUT_SECS", "2"),
        ],
        Duration::from_secs(30),
    )
    .await;
    stack.proxy.reset_counts();
    let response = answer(&f, event, Duration::from_secs(30)).await;
    let answered = Instant::now();
    let mut failed: Vec<String> = failed_ids(&response)
        .iter()
        .map(|id| body_of(&msgs, id))
        .collect();
    failed.sort();
    let mut want = vec![push("evt_busy", "bob/app", "2.0"), "not a job".to_owned()];
    want.sort();
    assert_eq!(failed, want);

    let reqs = ok.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.target, "/hook?token=t0k");
    assert_eq!(r.header("webhook-id"), Some("evt_ok"));
    let secret = config(&stack, "alice/app").await.secret;
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(secret.verify(
        "evt_ok",
        ts,
        &r.body,
        r.header("webhook-signature").unwrap()
    ));
    let headers: Vec<(String, String)> = r.headers.clone();
    alin_tests::verify_with_standardwebhooks(secret.expose(), &headers, &r.body_text())
        .expect("standardwebhooks verifies");

    assert_eq!(config(&stack, "alice/app").await.consecutive_failures, 0);
    let bob = config(&stack, "bob/app").await;
    assert_eq!(bob.consecutive_failures, 1);
    assert_eq!(bob.last_delivery.unwrap().outcome, "retrying");
    assert_eq!(stack.proxy.count("dynamodb:BatchGetItem"), 1);
    assert_eq!(stack.proxy.count("dynamodb:UpdateItem"), 2);
    assert_eq!(stack.proxy.count("sqs:ChangeMessageVisibilityBatch"), 1);

    // The malformed message is visible again at once; the 503 one only
    // after its backoff (2 s ±20% → 2–3 s).
    let again = stack.drain(&stack.queue_url, 10).await;
    assert_eq!(again.len(), 1, "only the malformed one is back at once");
    assert_eq!(again[0].body(), Some("not a job"));
    assert_eq!(receive_count(&again[0]), 2);
    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(answered.elapsed())).await;
    let later = stack.drain(&stack.queue_url, 10).await;
    let bodies: Vec<&str> = later.iter().filter_map(|m| m.body()).collect();
    assert!(
        bodies.contains(&push("evt_busy", "bob/app", "2.0").as_str()),
        "{bodies:?}"
    );

    let emf = last_emf(&log);
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "AlinWebhooks"
    );
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Function"]])
    );
    assert_eq!(emf["Function"], "deliver");
    for (name, value) in [
        ("received", 3),
        ("malformed", 1),
        ("delivered", 1),
        ("failed", 1),
        ("retried", 1),
    ] {
        assert_eq!(emf[name], value, "{name}: {emf}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("t0k"), "a URL's query must never be logged");
    assert!(
        !text.contains(secret.expose()),
        "a secret must never be logged"
    );
    f.stop().await.unwrap();
}

/// GIVEN an invocation timeout of 4 s, DELIVERY_TIMEOUT_SECS=1 (so requests
/// may start only during the first ~1 s) and a receiver taking 400 ms
/// THEN the binary stops starting requests in time, answers before its
/// deadline, and the jobs not started are re-queued and come back without
/// counting.
#[tokio::test]
async fn binary_stops_starting_requests_near_the_deadline() {
    let stack = Stack::new("deliver-bin-deadline").await;
    let slow = alin_tests::slow_receiver(400, Behaviour::ok()).await;
    webhook(&stack, "alice/early", &slow.url("/e")).await;
    webhook(&stack, "alice/late", &slow.url("/l")).await;
    let mut bodies: Vec<String> = (0..4)
        .map(|i| push(&format!("evt_e{i}"), "alice/early", &format!("t{i}")))
        .collect();
    bodies.extend((0..4).map(|i| push(&format!("evt_l{i}"), "alice/late", &format!("t{i}"))));
    let mut msgs = stack.enqueue_and_receive(&bodies).await;
    msgs.sort_by_key(|m| m.body().unwrap_or_default().contains("evt_l"));
    let event = stack.sqs_event(&msgs);

    let (f, log) = start(
        &stack,
        "deadline",
        &[
            ("DELIVERY_TIMEOUT_SECS", "1"),
            ("DELIVERY_CONCURRENCY", "1"),
            ("PER_HOST_CONCURRENCY", "1"),
        ],
        Duration::from_secs(4),
    )
    .await;
    // Let the cold start finish so the 4 s are the handler's.
    f.api
        .wait_for_first_poll(Duration::from_secs(30))
        .await
        .unwrap();
    let response = answer(&f, event, Duration::from_secs(4)).await;
    let failed = failed_ids(&response);
    let started = slow.count();
    assert!((1..=4).contains(&started), "requests started: {started}");
    assert!(
        failed.is_empty(),
        "jobs not started are re-queued, their records acknowledged: {failed:?}"
    );
    let late = config(&stack, "alice/late").await;
    assert_eq!(late.consecutive_failures, 0);
    let emf = last_emf(&log);
    assert_eq!(emf["not_started"], (8 - started) as u64);
    assert_eq!(emf["requeued"], (8 - started) as u64);
    assert_eq!(emf["delivered"], started as u64);
    // Back within 0–5 s, as new messages (first receive).
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let back = stack.drain(&stack.queue_url, 10).await;
    assert_eq!(back.len(), 8 - started);
    for m in &back {
        assert_eq!(receive_count(m), 1);
    }
    f.stop().await.unwrap();
}

/// End to end under the emulated event source mapping: a receiver that
/// answers 503 and then 200 gets the same webhook id twice; the job is
/// retried after its backoff, then deleted; the count goes back to 0.
#[tokio::test]
async fn binary_under_the_event_source_mapping_retries_until_delivered() {
    let stack = Stack::new("deliver-bin-esm").await;
    let rx = Receiver::start(Behaviour::sequence(vec![
        Behaviour::status(503).with_header("Retry-After", "1"),
        Behaviour::ok(),
    ]))
    .await
    .unwrap();
    webhook(&stack, "alice/app", &rx.url("/h")).await;
    let (f, _log) = start(
        &stack,
        "esm",
        &[
            ("RETRY_BASE_DELAY_SECS", "1"),
            ("DELIVERY_TIMEOUT_SECS", "2"),
        ],
        Duration::from_secs(30),
    )
    .await;
    let f = Arc::new(f);
    let esm = EventSourceMapping::start(
        stack.sqs.clone(),
        &stack.queue_url,
        &stack.queue_arn,
        f.clone(),
        100,
        Duration::from_millis(300),
    );
    stack.enqueue(&[push("evt_esm", "alice/app", "1.0")]).await;
    let reqs = rx.wait_for(2, Duration::from_secs(20)).await.unwrap();
    let stats = esm
        .wait_until(Duration::from_secs(10), |s| s.deleted == 1)
        .await
        .unwrap();
    let _ = esm.stop().await;
    assert_eq!(stats.failed, 1, "{stats:?}");
    assert_eq!(reqs[0].header("webhook-id"), Some("evt_esm"));
    assert_eq!(reqs[1].header("webhook-id"), Some("evt_esm"));
    let gap = reqs[1].received_at - reqs[0].received_at;
    assert!(
        gap >= Duration::from_millis(900),
        "retried after its backoff: {gap:?}"
    );
    let w = config(&stack, "alice/app").await;
    assert_eq!(w.consecutive_failures, 0);
    let ld = w.last_delivery.unwrap();
    assert_eq!((ld.outcome.as_str(), ld.attempt), ("delivered", 2));
}
