//! A full-size batch: 10,000 jobs over 1,000 repositories, receivers
//! answering 204. DynamoDB calls are counted exactly by the devstack AWS
//! proxy between the real DynamoDB store and moto: at most 10 reads
//! (BatchGetItem, 100 keys a call) and at most 1,000 writes (one
//! `record_outcome` per repository) — in process, and for the `deliver`
//! binary through the Runtime API, whose peak RSS must stay within 64 MiB.
//! The binary test needs `cargo build -p deliver` first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alin_tests::{repo_root, Stack};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use deliver::{Config, Deliverer, DeliveryPolicy};
use devstack::receiver::{Behaviour, Options, Receiver};
use devstack::runtime_api::{workspace_binary, LocalFunction};
use futures::stream::{self, StreamExt};
use shared::domain::{validate_webhook_url, RepositoryName};
use shared::net::StaticLookup;
use shared::ports::WebhookStore;

const REPOS: usize = 1_000;
const JOBS: usize = 10_000;

fn record(i: usize) -> SqsMessage {
    let r = i % REPOS;
    let body = format!(
        r#"{{"v":1,"webhook_id":"evt_{i}","kind":"push","repository":"user{r}/app","tag":"t{i}","image_size":1234,"layers":["sha256:{d}"],"repository_size":5678}}"#,
        d = "c".repeat(64)
    );
    let mut m = SqsMessage::default();
    m.message_id = Some(format!("00000000-0000-4000-8000-{i:012}"));
    m.receipt_handle = Some(format!("rh-{i}"));
    m.body = Some(body);
    m.attributes = HashMap::from([
        ("ApproximateReceiveCount".to_owned(), "1".to_owned()),
        ("SentTimestamp".to_owned(), "1795852800000".to_owned()),
    ]);
    m
}

/// Seeds one webhook per repository, spread over the sink's ports.
async fn seed(stack: &Stack, sink: &Receiver) {
    let store = stack.store();
    stream::iter(0..REPOS)
        .map(|r| {
            let url =
                validate_webhook_url(&sink.url_at(r, &format!("/hook/{r}?t=x")), true).unwrap();
            let store = &store;
            async move {
                store
                    .put_url(
                        &RepositoryName::parse(&format!("user{r}/app")).unwrap(),
                        &url,
                        "2026-11-28T08:00:00Z",
                    )
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_over_a_thousand_repositories() {
    let stack = Stack::new("deliver-scale").await;
    let sink = Receiver::start_with(Options::counting(8), Behaviour::status(204))
        .await
        .unwrap();
    seed(&stack, &sink).await;
    let store = stack.store();

    let settings = Config {
        delivery: DeliveryPolicy {
            delivery_timeout: Duration::from_secs(10),
            delivery_concurrency: 64,
            per_host_concurrency: 16,
            allow_private_targets: true,
            ..DeliveryPolicy::default()
        },
        ..Config::default()
    };
    let deliverer = Deliverer::new(
        settings,
        Arc::new(stack.store()),
        Arc::new(stack.queue()),
        Arc::new(StaticLookup::new()),
    )
    .unwrap();
    let mut event = SqsEvent::default();
    event.records = (0..JOBS).map(record).collect();

    stack.proxy.reset_counts();
    let started = Instant::now();
    let report = deliverer.deliver(event.into(), None).await.unwrap();
    let took = started.elapsed();
    let counts = stack.proxy.counts();
    eprintln!(
        "10,000 jobs in {took:?}; AWS calls {counts:?}; {:?}",
        report.summary
    );

    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(report.summary.delivered, JOBS as u64);
    assert_eq!(sink.count(), JOBS);
    let reads = stack.proxy.count("dynamodb:BatchGetItem")
        + stack.proxy.count("dynamodb:GetItem")
        + stack.proxy.count("dynamodb:Query")
        + stack.proxy.count("dynamodb:Scan");
    let writes = stack.proxy.count("dynamodb:UpdateItem")
        + stack.proxy.count("dynamodb:PutItem")
        + stack.proxy.count("dynamodb:TransactWriteItems");
    assert!(reads <= 10, "reads {reads}: {counts:?}");
    assert!(writes <= REPOS as u64, "writes {writes}: {counts:?}");
    assert_eq!(
        stack.proxy.count_prefix("dynamodb:"),
        reads + writes,
        "no other DynamoDB call: {counts:?}"
    );
    assert_eq!(stack.proxy.count_prefix("sqs:"), 0, "nothing to retry");
    // Every repository got its outcome.
    let sample = store
        .get(&RepositoryName::parse("user999/app").unwrap())
        .await
        .unwrap()
        .and_then(|r| r.webhook)
        .unwrap();
    assert_eq!(sample.last_delivery.unwrap().outcome, "delivered");
}

fn record_json(i: usize, queue_arn: &str) -> serde_json::Value {
    let m = record(i);
    serde_json::json!({
        "messageId": m.message_id,
        "receiptHandle": m.receipt_handle,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795852800000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1795852800001"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1"
    })
}

/// The binary, through the Runtime API, on the full-size batch: every job
/// delivered, the DynamoDB call budget held, peak RSS within 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_on_ten_thousand_jobs_within_budget() {
    let binary = workspace_binary("deliver");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p deliver` first",
        binary.display()
    );
    let stack = Stack::new("deliver-scale-bin").await;
    let sink = Receiver::start_with(Options::counting(16), Behaviour::status(204))
        .await
        .unwrap();
    seed(&stack, &sink).await;
    let event = serde_json::json!({
        "Records": (0..JOBS).map(|i| record_json(i, &stack.queue_arn)).collect::<Vec<_>>()
    });
    let mut env = stack.function_env();
    env.push(("ALLOW_PRIVATE_TARGETS".into(), "true".into()));
    env.push(("DELIVERY_CONCURRENCY".into(), "64".into()));
    env.push(("PER_HOST_CONCURRENCY".into(), "4".into()));
    let log = repo_root()
        .join(".devstack")
        .join("logs")
        .join(format!("deliver-scale-{}.log", stack.table));
    let f = LocalFunction::start(&binary, &env, &log).await.unwrap();
    stack.proxy.reset_counts();
    let inv = f.invoke(event, Duration::from_secs(300)).await.unwrap();
    let peak_kib = f.peak_rss_kib();
    let counts = stack.proxy.counts();
    f.stop().await.unwrap();
    eprintln!(
        "binary: 10,000 jobs in {:?}, peak RSS {peak_kib:?} KiB, AWS calls {counts:?}",
        inv.duration
    );
    let response = inv
        .ok()
        .unwrap_or_else(|| panic!("function error: {:?}", inv.error()));
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert_eq!(sink.count(), JOBS);
    assert_eq!(stack.proxy.count("dynamodb:BatchGetItem"), 10, "{counts:?}");
    assert_eq!(
        stack.proxy.count("dynamodb:UpdateItem"),
        REPOS as u64,
        "{counts:?}"
    );
    assert_eq!(
        stack.proxy.count_prefix("dynamodb:"),
        10 + REPOS as u64,
        "{counts:?}"
    );
    let peak = peak_kib.expect("peak RSS readable");
    assert!(peak <= 64 * 1024, "peak RSS {peak} KiB");
}
