//! The delivery history end to end, through the real binaries (see
//! `formats::Services`): every attempt lands in the repository's record in
//! the outcome write (no extra write call), newest first, across retries,
//! an automatic disable and a URL replacement, bounded to 25; and what the
//! history costs in item size (write units), printed for the cost section.

use std::time::Duration;

use alin_tests::Stack;
use aws_sdk_dynamodb::types::AttributeValue;
use devstack::receiver::{Behaviour, Receiver};
use serde_json::{json, Value};

use crate::deliver_binary::push;
use crate::formats::{enqueue, requests_for, Services};

async fn deliveries(s: &Services, name: &str) -> Vec<Value> {
    let (status, body) = s
        .call(
            "GET",
            &format!("/repositories/{name}/webhook/deliveries"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["repository"], name);
    body["deliveries"].as_array().cloned().unwrap()
}

fn summary(d: &[Value]) -> Vec<(String, u64, String, Value, Value)> {
    d.iter()
        .map(|e| {
            (
                e["webhook_id"].as_str().unwrap().to_owned(),
                e["attempt"].as_u64().unwrap(),
                e["kind"].as_str().unwrap().to_owned(),
                e["status"].clone(),
                e["error"].clone(),
            )
        })
        .collect()
}

/// GIVEN a webhook answering 503 and `FAILURE_THRESHOLD=2`
/// WHEN a push fails twice (first attempt, then its retry), the webhook is
/// disabled, its URL is replaced by one that answers 200, and the retry and
/// a new push are delivered there
/// THEN the history lists all four attempts newest first with their attempt
/// number, kind, status and error class, kept across the disable and the
/// replacement; every outcome was one UpdateItem per repository per batch.
#[tokio::test]
async fn history_follows_retries_disable_and_url_replacement() {
    let s = Services::start_with("history", &[("FAILURE_THRESHOLD", "2")]).await;
    let busy = Receiver::start(Behaviour::status(503)).await.unwrap();
    let ok = Receiver::start(Behaviour::ok()).await.unwrap();
    s.put("alice/app", json!({"url": busy.url("/h")})).await;
    assert_eq!(deliveries(&s, "alice/app").await, Vec::<Value>::new());

    enqueue(&s.stack, &[push("evt_h1", "alice/app", "1.0")]).await;
    s.stack.proxy.reset_counts();
    s.deliver_queued(1).await;
    assert_eq!(s.stack.proxy.count("dynamodb:UpdateItem"), 1);
    s.deliver_queued(1).await;
    let (_, config) = s.call("GET", "/repositories/alice/app/webhook", None).await;
    assert_eq!(config["enabled"], false, "{config}");
    let before = deliveries(&s, "alice/app").await;
    assert_eq!(
        summary(&before),
        [
            ("evt_h1".into(), 2, "retry".into(), json!(503), Value::Null),
            ("evt_h1".into(), 1, "first".into(), json!(503), Value::Null),
        ]
    );
    assert_eq!(before[0]["event"], "push");
    assert_eq!(before[0]["tag"], "1.0");
    assert!(before[0]["at"].as_str().unwrap().ends_with('Z'));
    assert!(before[0]["duration_ms"].is_u64());

    s.put("alice/app", json!({"url": ok.url("/h")})).await;
    assert_eq!(deliveries(&s, "alice/app").await, before, "kept on replace");
    enqueue(&s.stack, &[push("evt_h2", "alice/app", "2.0")]).await;
    s.stack.proxy.reset_counts();
    s.deliver_queued(2).await;
    assert_eq!(ok.count(), 2);
    assert_eq!(
        s.stack.proxy.count("dynamodb:UpdateItem"),
        1,
        "history rides in the outcome write"
    );
    let after = deliveries(&s, "alice/app").await;
    let mut newest: Vec<(String, u64, String, Value, Value)> = summary(&after[..2]).to_vec();
    newest.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        newest,
        [
            ("evt_h1".into(), 3, "retry".into(), json!(200), Value::Null),
            ("evt_h2".into(), 1, "first".into(), json!(200), Value::Null),
        ]
    );
    assert_eq!(after[2..], before[..]);
}

/// GIVEN a receiver that refuses connections
/// THEN the attempt is recorded with its error class and no status.
#[tokio::test]
async fn failed_connections_are_recorded_by_class() {
    let s = Services::start("history-conn").await;
    let closed = format!("http://127.0.0.1:{}/h", alin_tests::free_port().unwrap());
    s.put("alice/app", json!({"url": closed})).await;
    enqueue(&s.stack, &[push("evt_c1", "alice/app", "1.0")]).await;
    s.deliver_queued(1).await;
    let d = deliveries(&s, "alice/app").await;
    assert_eq!(
        summary(&d),
        [(
            "evt_c1".into(),
            1,
            "first".into(),
            Value::Null,
            json!("connection")
        )]
    );
    let (status, _) = s
        .call("GET", "/repositories/bob/app/webhook/deliveries", None)
        .await;
    assert_eq!(status, 404);
}

/// DynamoDB's item size: attribute names plus values (UTF-8 bytes; numbers
/// counted by their digits, a close upper bound).
fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    AttributeValue::Bool(_) => 1,
                    _ => 0,
                }
        })
        .sum()
}

async fn record_item(
    stack: &Stack,
    name: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    stack
        .dynamodb
        .get_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(format!("repo#{name}")))
        .key("sk", AttributeValue::S("repo".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

/// GIVEN 30 pushes of distinct tags in one batch
/// THEN the history keeps the newest 25 (all from the batch) and the item,
/// full history included, stays well under DynamoDB's 400 KB: the figure
/// printed is the per-outcome-write cost before and after (1 WCU per
/// started KB).
#[tokio::test]
async fn history_keeps_the_newest_25_and_prints_its_write_cost() {
    let s = Services::start("history-25").await;
    let ok = Receiver::start(Behaviour::ok()).await.unwrap();
    s.put(
        "alice/app",
        json!({"url": ok.url("/hooks/ci?token=0123456789abcdef")}),
    )
    .await;
    enqueue(&s.stack, &[push("evt_first", "alice/app", "0.9")]).await;
    s.deliver_queued(1).await;
    let mut without = record_item(&s.stack, "alice/app").await;
    without.remove("deliveries");
    // A typical image: 8 layers (each entry keeps its event's payload for
    // redelivery, so this is the costly case: 25 distinct events).
    let bodies: Vec<String> = (0..30)
        .map(|i| {
            let layers: Vec<String> = (0..8)
                .map(|l| format!("\"sha256:{:064x}\"", i * 8 + l))
                .collect();
            format!(
                r#"{{"v":1,"webhook_id":"evt_b{i:02}","kind":"push","repository":"alice/app","tag":"1.{i}","image_size":73400320,"layers":[{}],"repository_size":524288000}}"#,
                layers.join(",")
            )
        })
        .collect();
    enqueue(&s.stack, &bodies).await;
    s.deliver_queued(30).await;
    assert_eq!(ok.count(), 31);
    let d = deliveries(&s, "alice/app").await;
    assert_eq!(d.len(), 25);
    assert!(d
        .iter()
        .all(|e| e["webhook_id"].as_str().unwrap().starts_with("evt_b")));
    let ats: Vec<&str> = d.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted, "newest first");

    let with = record_item(&s.stack, "alice/app").await;
    let (before, after) = (item_size(&without), item_size(&with));
    let wcu = |bytes: usize| bytes.div_ceil(1024);
    println!(
        "history cost: record {before} B ({} WCU per outcome write) -> {after} B with 25 attempts of 8-layer pushes ({} WCU)",
        wcu(before),
        wcu(after)
    );
    assert!(after < 32 * 1024, "{after} bytes");
}

async fn redeliver(s: &Services, name: &str, id: &str) -> (u16, Value) {
    s.call(
        "POST",
        &format!("/repositories/{name}/webhook/deliveries/{id}/redeliver"),
        None,
    )
    .await
}

/// GIVEN a delivered push
/// WHEN it is redelivered through the settings API
/// THEN the same job goes through the delivery queue (202), the receiver
/// gets the same body but for its timestamp, with the same webhook id and a
/// new signature that verifies, and the history marks the attempt as a
/// redelivery; an unknown id or repository is a 404, a push of a disabled
/// webhook a 409 until its URL is replaced, after which the redelivery goes
/// to the new URL.
#[tokio::test]
async fn redelivery_sends_the_same_event_again() {
    let s = Services::start("history-redeliver").await;
    let ok = Receiver::start(Behaviour::ok()).await.unwrap();
    let gone = Receiver::start(Behaviour::status(410)).await.unwrap();
    let config = s.put("alice/app", json!({"url": ok.url("/h")})).await;
    let secret = config["secret"].as_str().unwrap().to_owned();
    enqueue(&s.stack, &[push("evt_r1", "alice/app", "1.0")]).await;
    s.deliver_queued(1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (status, answer) = redeliver(&s, "alice/app", "evt_r1").await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"queued": true, "event": "push", "repository": "alice/app", "tag": "1.0",
               "webhook_id": "evt_r1"})
    );
    let queued = s.stack.drain(&s.stack.queue_url, 1).await;
    assert_eq!(queued.len(), 1);
    let job: Value = serde_json::from_str(queued[0].body().unwrap()).unwrap();
    let original: Value = serde_json::from_str(&push("evt_r1", "alice/app", "1.0")).unwrap();
    assert_eq!(job, original, "the same job, through the delivery queue");
    enqueue(&s.stack, &[queued[0].body().unwrap().to_owned()]).await;
    s.deliver_queued(1).await;

    let reqs = ok.requests();
    assert_eq!(reqs.len(), 2);
    let (a, b) = (&reqs[0], &reqs[1]);
    assert_eq!(b.header("webhook-id"), Some("evt_r1"));
    assert_ne!(a.header("webhook-timestamp"), b.header("webhook-timestamp"));
    assert_ne!(a.header("webhook-signature"), b.header("webhook-signature"));
    let strip = |r: &devstack::receiver::RecordedRequest| {
        let mut v = r.body_json().unwrap();
        v.as_object_mut().unwrap().remove("timestamp");
        v
    };
    assert_eq!(strip(a), strip(b), "the same body but for its timestamp");
    alin_tests::verify_with_standardwebhooks(&secret, &b.headers, &b.body_text())
        .expect("the redelivery's new signature verifies");
    let d = deliveries(&s, "alice/app").await;
    assert_eq!(
        summary(&d),
        [
            (
                "evt_r1".into(),
                1,
                "redelivery".into(),
                json!(200),
                Value::Null
            ),
            ("evt_r1".into(), 1, "first".into(), json!(200), Value::Null),
        ]
    );
    assert!(d.iter().all(|e| e.get("payload").is_none()), "{d:?}");

    assert_eq!(redeliver(&s, "alice/app", "evt_nope").await.0, 404);
    assert_eq!(redeliver(&s, "bob/app", "evt_r1").await.0, 404);
    let (status, _) = s
        .call(
            "GET",
            "/repositories/alice/app/webhook/deliveries/evt_r1/redeliver",
            None,
        )
        .await;
    assert_eq!(status, 405);

    // Disabled by a 410: a push is not redelivered until the URL is fixed.
    s.put("bob/app", json!({"url": gone.url("/h")})).await;
    enqueue(&s.stack, &[push("evt_r2", "bob/app", "3.0")]).await;
    s.deliver_queued(1).await;
    let (status, answer) = redeliver(&s, "bob/app", "evt_r2").await;
    assert_eq!(status, 409, "{answer}");
    s.put("bob/app", json!({"url": ok.url("/fixed")})).await;
    assert_eq!(redeliver(&s, "bob/app", "evt_r2").await.0, 202);
    s.deliver_queued(1).await;
    let fixed = requests_for(&ok, "/fixed");
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].header("webhook-id"), Some("evt_r2"));
    let d = deliveries(&s, "bob/app").await;
    assert_eq!(
        summary(&d),
        [
            (
                "evt_r2".into(),
                1,
                "redelivery".into(),
                json!(200),
                Value::Null
            ),
            ("evt_r2".into(), 1, "first".into(), json!(410), Value::Null),
        ]
    );
}
