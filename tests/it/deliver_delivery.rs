//! `deliver` in process (`deliver::Deliverer`) against moto — the real
//! DynamoDB store and SQS queue adapters, through the counting proxy — and
//! real local HTTP receivers (devstack): the exact request (checked with the
//! Python `standardwebhooks` library), each outcome class of docs/webhook.md#outcomes,
//! the retry visibility on the real queue, the dead-letter queue,
//! disabling at the threshold and resetting on success, 410, coalescing,
//! the deadline rule, and a burst of failures counting once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use alin_tests::{verify_with_standardwebhooks, Stack};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::Message;
use deliver::{BatchReport, Config, Deliverer, DeliveryPolicy};
use devstack::receiver::{Behaviour, Receiver};
use lambda_runtime::{Context, LambdaEvent};
use shared::adapters::DynamoStore;
use shared::domain::{validate_webhook_url, RepoRecord, RepositoryName, WebhookConfig};
use shared::net::StaticLookup;
use shared::ports::WebhookStore;

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn job(id: &str, repository: &str, tag: &str, kind: &str, pushed_at: Option<&str>) -> String {
    let pushed = pushed_at
        .map(|p| format!(r#","pushed_at":"{p}""#))
        .unwrap_or_default();
    let (size, layers) = if kind == "ping" {
        (0, String::new())
    } else {
        (
            289,
            format!(r#""sha256:{}","sha256:{}""#, "a".repeat(64), "b".repeat(64)),
        )
    };
    format!(
        r#"{{"v":1,"webhook_id":"{id}","kind":"{kind}","repository":"{repository}","tag":"{tag}","image_size":{size},"layers":[{layers}],"repository_size":67890{pushed}}}"#
    )
}

fn push(id: &str, repository: &str, tag: &str) -> String {
    job(id, repository, tag, "push", None)
}

fn settings() -> Config {
    Config {
        registry_host: "container.alin.io".into(),
        delivery: DeliveryPolicy {
            failure_threshold: 3,
            delivery_timeout: Duration::from_secs(1),
            delivery_concurrency: 16,
            per_host_concurrency: 4,
            retry_base_delay: Duration::from_secs(30),
            max_attempts: 6,
            allow_private_targets: true,
        },
        deadline_margin: Duration::from_millis(500),
        host_breaker: 3,
    }
}

struct Rig {
    stack: Stack,
    store: DynamoStore,
    deliverer: Deliverer,
}

impl Rig {
    async fn new(hint: &str, settings: Config) -> Rig {
        Self::with_params(hint, settings, &[]).await
    }

    async fn with_params(hint: &str, settings: Config, params: &[&str]) -> Rig {
        let stack = Stack::with_params(hint, params).await;
        let store = stack.store();
        let deliverer = Deliverer::new(
            settings,
            Arc::new(stack.store()),
            Arc::new(stack.queue()),
            Arc::new(StaticLookup::new()),
        )
        .unwrap();
        Rig {
            stack,
            store,
            deliverer,
        }
    }

    async fn webhook(&self, name: &str, url: &str) -> RepoRecord {
        let url = validate_webhook_url(url, true).unwrap();
        self.store
            .put_url(&repo(name), &url, "2026-11-28T08:00:00Z")
            .await
            .unwrap()
    }

    async fn config(&self, name: &str) -> WebhookConfig {
        self.store
            .get(&repo(name))
            .await
            .unwrap()
            .and_then(|r| r.webhook)
            .unwrap()
    }

    /// Receives what is visible and builds the event Lambda would send.
    async fn receive(&self, max: usize) -> (Vec<Message>, SqsEvent) {
        let msgs = self.stack.drain(&self.stack.queue_url, max).await;
        let event = serde_json::from_value(self.stack.sqs_event(&msgs)).unwrap();
        (msgs, event)
    }

    async fn deliver(&self, event: SqsEvent) -> BatchReport {
        self.deliverer.deliver(event.into(), None).await.unwrap()
    }

    /// Enqueues, receives and delivers one batch; returns the message ids
    /// reported failed, in body order.
    async fn round(&self, bodies: &[String]) -> (Vec<String>, BatchReport, Vec<Message>) {
        let msgs = self.stack.enqueue_and_receive(bodies).await;
        let event = serde_json::from_value(self.stack.sqs_event(&msgs)).unwrap();
        let report = self.deliver(event).await;
        (failed_bodies(&report, &msgs), report, msgs)
    }
}

/// The bodies of the messages reported failed (message ids are random).
fn failed_bodies(report: &BatchReport, msgs: &[Message]) -> Vec<String> {
    let mut out: Vec<String> = report
        .response
        .batch_item_failures
        .iter()
        .map(|f| {
            msgs.iter()
                .find(|m| m.message_id() == Some(f.item_identifier.as_str()))
                .and_then(|m| m.body())
                .map(webhook_id_of)
                .unwrap_or_else(|| panic!("unknown message id {}", f.item_identifier))
        })
        .collect();
    out.sort();
    out
}

/// The webhook id of a job body, or the body itself when it is malformed.
fn webhook_id_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["webhook_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// GIVEN a webhook URL with a query string and a push job on the queue
/// THEN the receiver gets exactly the docs/webhook.md#the-request request, the signature
/// verifies with `standardwebhooks`, and a tampered one does not.
#[tokio::test]
async fn sends_the_exact_request_and_standardwebhooks_verifies_it() {
    let rx = Receiver::start(Behaviour::ok()).await.unwrap();
    let rig = Rig::new("deliver-exact", settings()).await;
    let rec = rig
        .webhook("alice/team/app", &rx.url("/hooks/ci?token=s3cr3t&a=b%20c"))
        .await;
    let secret = rec.webhook.unwrap().secret.expose().to_owned();
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let (failed, report, _) = rig
        .round(&[push("evt_exact", "alice/team/app", "1.0")])
        .await;
    assert!(failed.is_empty());
    assert_eq!(report.summary.delivered, 1);

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/hooks/ci?token=s3cr3t&a=b%20c");
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(ts >= before && ts <= time::OffsetDateTime::now_utc().unix_timestamp());
    let when =
        shared::domain::time::rfc3339(time::OffsetDateTime::from_unix_timestamp(ts).unwrap());
    let body = format!(
        r#"{{"image":"container.alin.io/alice/team/app:1.0","image_size":289,"layers":["sha256:{a}","sha256:{b}"],"repository":"container.alin.io/alice/team/app","repository_size":67890,"event":"push","timestamp":"{when}"}}"#,
        a = "a".repeat(64),
        b = "b".repeat(64)
    );
    assert_eq!(r.body_text(), body, "body bytes exactly");
    let names: Vec<&str> = r
        .headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "host")
        .collect();
    // docs/webhook.md#the-request's order exactly (hyper lowercases names; HTTP names are
    // case-insensitive), Content-Length in its place and only once.
    assert_eq!(
        names,
        [
            "user-agent",
            "accept-encoding",
            "accept",
            "connection",
            "x-alin-webhook",
            "content-length",
            "content-type",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature"
        ]
    );
    assert_eq!(r.header("user-agent"), Some("Alin.io WebHook Handler"));
    assert_eq!(r.header("accept-encoding"), Some("gzip, deflate"));
    assert_eq!(r.header("accept"), Some("*/*"));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(r.header("x-alin-webhook"), Some("alice/team/app:1.0"));
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("webhook-id"), Some("evt_exact"));
    assert_eq!(r.header_all("webhook-signature").len(), 1);
    assert_eq!(r.header_all("content-length").len(), 1);
    assert!(r.header("webhook-signature").unwrap().starts_with("v1,"));

    verify_with_standardwebhooks(&secret, &r.headers, &r.body_text())
        .expect("standardwebhooks verifies");
    let mut tampered = r.body.to_vec();
    tampered[10] ^= 1;
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(verify_with_standardwebhooks(&secret, &r.headers, &tampered).is_err());

    let w = rig.config("alice/team/app").await;
    assert_eq!(w.consecutive_failures, 0);
    let ld = w.last_delivery.unwrap();
    assert_eq!(
        (
            ld.webhook_id.as_str(),
            ld.event.as_str(),
            ld.tag.as_str(),
            ld.outcome.as_str()
        ),
        ("evt_exact", "push", "1.0", "delivered")
    );
    assert_eq!((ld.status, ld.error, ld.attempt), (Some(200), None, 1));
    assert_eq!(ld.at, when);
}

/// Each outcome class of docs/webhook.md#outcomes against real receivers, with the
/// records in DynamoDB.
#[tokio::test]
async fn each_outcome_class_against_dynamodb() {
    let rig = Rig::new("deliver-classes", settings()).await;
    let cases: Vec<(&str, Behaviour)> = vec![
        ("c/ok", Behaviour::ok()),
        ("c/e500", Behaviour::status(500)),
        (
            "c/e503",
            Behaviour::status(503).with_header("Retry-After", "120"),
        ),
        ("c/gone", Behaviour::status(410)),
        ("c/e429", Behaviour::status(429)),
        ("c/redirect", Behaviour::redirect("/elsewhere")),
        ("c/e404", Behaviour::status(404)),
        (
            "c/slow",
            Behaviour::delay(Duration::from_secs(3), Behaviour::ok()),
        ),
        ("c/reset", Behaviour::Reset),
    ];
    let mut receivers = Vec::new();
    let mut bodies = Vec::new();
    for (i, (name, behaviour)) in cases.into_iter().enumerate() {
        let rx = Receiver::start(behaviour).await.unwrap();
        rig.webhook(name, &rx.url("/h")).await;
        bodies.push(push(&format!("evt_{i}"), name, "1.0"));
        receivers.push(rx);
    }
    rig.stack.enqueue(&bodies).await;
    let (msgs, event) = rig.receive(bodies.len()).await;
    assert_eq!(msgs.len(), bodies.len());
    let started = Instant::now();
    let report = rig.deliver(event).await;
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "the 1 s timeout applies, the 3 s receiver is not waited for"
    );
    let failed = failed_bodies(&report, &msgs);
    // retried: 500, 503, 429, timeout, reset
    assert_eq!(failed, ["evt_1", "evt_2", "evt_4", "evt_7", "evt_8"]);
    let f = &report.summary;
    assert_eq!(
        (
            f.delivered,
            f.failed,
            f.gone,
            f.retried,
            f.dead_lettered,
            f.disabled
        ),
        (1, 8, 1, 5, 0, 1)
    );
    for rx in &receivers {
        assert_eq!(rx.count(), 1, "one request each, redirect not followed");
    }
    // Retried jobs are invisible for their backoff (≥ 24 s here).
    assert!(rig.stack.drain(&rig.stack.queue_url, 10).await.is_empty());

    let expect = [
        ("c/ok", 0, true, "delivered", Some(200), None),
        ("c/e500", 1, true, "retrying", Some(500), Some("HTTP 500")),
        ("c/e503", 1, true, "retrying", Some(503), Some("HTTP 503")),
        ("c/gone", 1, false, "gone", Some(410), Some("HTTP 410")),
        ("c/e429", 1, true, "retrying", Some(429), Some("HTTP 429")),
        ("c/redirect", 1, true, "failed", Some(302), Some("HTTP 302")),
        ("c/e404", 1, true, "failed", Some(404), Some("HTTP 404")),
        ("c/slow", 1, true, "retrying", None, Some("timeout")),
        (
            "c/reset",
            1,
            true,
            "retrying",
            None,
            Some("connection error"),
        ),
    ];
    for (name, count, enabled, outcome, status, error) in expect {
        let w = rig.config(name).await;
        assert_eq!(
            (w.consecutive_failures, w.enabled),
            (count, enabled),
            "{name}"
        );
        let ld = w.last_delivery.unwrap();
        assert_eq!(
            (ld.outcome.as_str(), ld.status, ld.error.as_deref()),
            (outcome, status, error),
            "{name}"
        );
    }
    let gone = rig.config("c/gone").await;
    assert!(gone.disabled_at.is_some());
    assert_eq!(
        gone.disabled_reason.as_deref(),
        Some("receiver answered 410 Gone")
    );
}

/// The retry visibility is set on the real queue with
/// ChangeMessageVisibilityBatch: the job is invisible for its backoff
/// (`Retry-After: 3` lengthening a 1 s base) and then comes back as
/// attempt 2 with the same webhook id.
#[tokio::test]
async fn retry_visibility_on_the_queue() {
    let rx = Receiver::start(Behaviour::status(503).with_header("Retry-After", "3"))
        .await
        .unwrap();
    let mut s = settings();
    s.delivery.retry_base_delay = Duration::from_secs(1);
    let rig = Rig::new("deliver-retry", s).await;
    rig.webhook("alice/app", &rx.url("/h")).await;
    rig.stack.proxy.reset_counts();
    let (failed, _, _) = rig.round(&[push("evt_r", "alice/app", "1.0")]).await;
    let set_at = Instant::now();
    assert_eq!(failed, ["evt_r"]);
    assert_eq!(rig.stack.proxy.count("sqs:ChangeMessageVisibilityBatch"), 1);

    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        rig.stack.drain(&rig.stack.queue_url, 10).await.is_empty(),
        "still invisible 2 s later (Retry-After: 3)"
    );
    let wait = Duration::from_millis(3400).saturating_sub(set_at.elapsed());
    tokio::time::sleep(wait).await;
    let (msgs, event) = rig.receive(10).await;
    assert_eq!(msgs.len(), 1, "back after 3 s");
    assert_eq!(receive_count(&msgs[0]), 2);
    // The second attempt keeps the webhook id and signs a new timestamp.
    rx.set_behaviour(Behaviour::ok());
    let report = rig.deliver(event).await;
    assert!(report.response.batch_item_failures.is_empty());
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
    let ld = rig.config("alice/app").await.last_delivery.unwrap();
    assert_eq!((ld.outcome.as_str(), ld.attempt), ("delivered", 2));
    assert_eq!(rig.config("alice/app").await.consecutive_failures, 0);
}

/// With the redrive policy's maxReceiveCount = MAX_ATTEMPTS = 2: a job that
/// keeps failing and a malformed job both end in the dead-letter queue.
#[tokio::test]
async fn exhausted_and_malformed_jobs_end_in_the_dead_letter_queue() {
    let rx = Receiver::start(Behaviour::status(500)).await.unwrap();
    let mut s = settings();
    s.delivery.max_attempts = 2;
    s.delivery.retry_base_delay = Duration::ZERO;
    let rig = Rig::with_params("deliver-dlq", s, &["MaxAttempts=2"]).await;
    rig.webhook("alice/app", &rx.url("/h")).await;
    rig.stack
        .enqueue(&[push("evt_dlq", "alice/app", "1.0"), "{\"v\":1".to_owned()])
        .await;
    let mut rounds = Vec::new();
    for _ in 0..4 {
        let (msgs, event) = rig.receive(10).await;
        if msgs.is_empty() {
            break;
        }
        let report = rig.deliver(event).await;
        rounds.push((
            msgs.iter().map(receive_count).collect::<Vec<_>>(),
            report.summary.clone(),
        ));
        assert_eq!(report.response.batch_item_failures.len(), 2);
    }
    assert_eq!(rounds.len(), 2, "two attempts, then the DLQ: {rounds:?}");
    assert_eq!(rounds[0].1.retried, 1);
    assert_eq!(rounds[1].1.dead_lettered, 1);
    assert_eq!(rounds[1].1.malformed, 1);
    let dead = rig.stack.drain(&rig.stack.dlq_url, 10).await;
    let mut bodies: Vec<String> = dead
        .iter()
        .map(|m| webhook_id_of(m.body().unwrap_or_default()))
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["evt_dlq", "{\"v\":1"]);
    assert_eq!(rx.count(), 2);
    let w = rig.config("alice/app").await;
    assert_eq!(w.consecutive_failures, 2);
    assert_eq!(w.last_delivery.unwrap().outcome, "failed");
}

/// Sustained failure disables at FAILURE_THRESHOLD (with time and reason),
/// a success in between resets the count, a disabled webhook's jobs are
/// dropped, and enabling resets.
#[tokio::test]
async fn disables_at_the_threshold_and_resets_on_success() {
    let rx = Receiver::start(Behaviour::status(503)).await.unwrap();
    let rig = Rig::new("deliver-threshold", settings()).await; // threshold 3
    rig.webhook("alice/app", &rx.url("/h")).await;
    let batch = |n: usize| -> Vec<String> {
        (0..3)
            .map(|i| push(&format!("evt_{n}_{i}"), "alice/app", &format!("t{i}")))
            .collect()
    };
    rig.round(&batch(1)).await;
    rig.round(&batch(2)).await;
    assert_eq!(rig.config("alice/app").await.consecutive_failures, 2);
    rx.set_behaviour(Behaviour::ok());
    rig.round(&batch(3)).await;
    assert_eq!(rig.config("alice/app").await.consecutive_failures, 0);

    rx.set_behaviour(Behaviour::status(503));
    rig.round(&batch(4)).await;
    rig.round(&batch(5)).await;
    let w = rig.config("alice/app").await;
    assert_eq!((w.consecutive_failures, w.enabled), (2, true));
    let (_, report, _) = rig.round(&batch(6)).await;
    assert_eq!(report.summary.disabled, 1);
    let w = rig.config("alice/app").await;
    assert_eq!((w.consecutive_failures, w.enabled), (3, false));
    assert!(w.disabled_at.is_some());
    assert_eq!(w.disabled_reason.as_deref(), Some("HTTP 503"));

    let sent = rx.count();
    let (failed, report, _) = rig.round(&batch(7)).await;
    assert!(failed.is_empty(), "dropped jobs are acknowledged");
    assert_eq!(report.summary.dropped, 3);
    assert_eq!(rx.count(), sent, "nothing sent to a disabled webhook");

    rig.store
        .enable(&repo("alice/app"), "2026-11-28T09:00:00Z")
        .await
        .unwrap();
    rx.set_behaviour(Behaviour::ok());
    let (failed, _, _) = rig.round(&batch(8)).await;
    assert!(failed.is_empty());
    let w = rig.config("alice/app").await;
    assert_eq!((w.consecutive_failures, w.enabled), (0, true));
}

/// 410 Gone disables at once; the next jobs are dropped.
#[tokio::test]
async fn gone_disables_at_once() {
    let rx = Receiver::start(Behaviour::status(410)).await.unwrap();
    let rig = Rig::new("deliver-gone", settings()).await;
    rig.webhook("alice/app", &rx.url("/h")).await;
    let (failed, report, _) = rig.round(&[push("evt_g", "alice/app", "1.0")]).await;
    assert!(failed.is_empty(), "410 is not retried");
    assert_eq!((report.summary.gone, report.summary.disabled), (1, 1));
    let w = rig.config("alice/app").await;
    assert!(!w.enabled);
    assert_eq!(
        w.disabled_reason.as_deref(),
        Some("receiver answered 410 Gone")
    );
    let (_, report, _) = rig.round(&[push("evt_g2", "alice/app", "1.1")]).await;
    assert_eq!(report.summary.dropped, 1);
    assert_eq!(rx.count(), 1);
}

/// Several pushes of one tag in a batch send one webhook (the newest by
/// pushed_at); a ping is never coalesced with pushes.
#[tokio::test]
async fn coalesces_pushes_of_one_tag() {
    let rx = Receiver::start(Behaviour::status(204)).await.unwrap();
    let rig = Rig::new("deliver-coalesce", settings()).await;
    rig.webhook("alice/app", &rx.url("/h")).await;
    let at = |s: &str| format!("2026-11-28T08:00:{s}Z");
    let (failed, report, _) = rig
        .round(&[
            job("evt_old", "alice/app", "latest", "push", Some(&at("01"))),
            job("evt_new", "alice/app", "latest", "push", Some(&at("30"))),
            job("evt_mid", "alice/app", "latest", "push", Some(&at("15"))),
            job("evt_ping", "alice/app", "ping", "ping", None),
        ])
        .await;
    assert!(failed.is_empty(), "superseded jobs are acknowledged");
    assert_eq!(
        (report.summary.superseded, report.summary.delivered),
        (2, 2)
    );
    let mut ids: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["evt_new", "evt_ping"]);
    let ping = rx
        .requests()
        .into_iter()
        .find(|r| r.header("webhook-id") == Some("evt_ping"))
        .unwrap();
    let body = ping.body_json().unwrap();
    assert_eq!(body["event"], "ping");
    assert_eq!(body["image"], "container.alin.io/alice/app:ping");
    assert_eq!(body["image_size"], 0);
    assert_eq!(body["layers"], serde_json::json!([]));
}

/// GIVEN a context deadline a few seconds away and a slow receiver
/// THEN no request starts once the deadline is too close; the jobs not
/// started are re-queued as new messages (attempt count unchanged, their
/// records acknowledged), come back within seconds, and count against
/// nothing; the host's turns alternate between the repositories.
#[tokio::test]
async fn deadline_rule() {
    let rx = alin_tests::slow_receiver(400, Behaviour::ok()).await;
    let mut s = settings();
    s.delivery.delivery_timeout = Duration::from_secs(1);
    s.deadline_margin = Duration::from_millis(500);
    s.delivery.delivery_concurrency = 1;
    s.delivery.per_host_concurrency = 1;
    let rig = Rig::new("deliver-deadline", s).await;
    rig.webhook("alice/early", &rx.url("/e")).await;
    rig.webhook("alice/late", &rx.url("/l")).await;
    let early: Vec<String> = (0..3)
        .map(|i| push(&format!("evt_e{i}"), "alice/early", &format!("t{i}")))
        .collect();
    let late: Vec<String> = (0..4)
        .map(|i| push(&format!("evt_l{i}"), "alice/late", &format!("t{i}")))
        .collect();
    rig.stack.enqueue(&early).await;
    rig.stack.enqueue(&late).await;
    let (mut msgs, _) = rig.receive(7).await;
    assert_eq!(msgs.len(), 7);
    // early jobs first in the batch
    msgs.sort_by_key(|m| webhook_id_of(m.body().unwrap_or_default()));
    let event = serde_json::from_value(rig.stack.sqs_event(&msgs)).unwrap();

    let mut ctx = Context::default();
    ctx.request_id = "it-deadline".into();
    let deadline = SystemTime::now() + Duration::from_millis(2600);
    ctx.deadline = deadline
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let response = rig
        .deliverer
        .handle(LambdaEvent::new(event, ctx))
        .await
        .unwrap();
    assert!(SystemTime::now() < deadline, "answered before the deadline");
    assert!(
        response.batch_item_failures.is_empty(),
        "re-queued, not failed: {:?}",
        response.batch_item_failures
    );
    // Requests may start for ~1.1 s, 400 ms each, one at a time: three at
    // most (fewer when the store read was slow), taking turns between the
    // two repositories.
    let order = [
        "evt_e0", "evt_l0", "evt_e1", "evt_l1", "evt_e2", "evt_l2", "evt_l3",
    ];
    let sent: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect();
    let started = sent.len();
    assert!((1..=3).contains(&started), "started {sent:?}");
    assert_eq!(sent, order[..started]);
    let mut want: Vec<String> = order[started..].iter().map(|s| s.to_string()).collect();
    want.sort();
    let late = rig.config("alice/late").await;
    assert_eq!(late.consecutive_failures, 0);
    assert_eq!(
        late.last_delivery.map(|l| l.outcome.to_string()),
        (started >= 2).then(|| "delivered".to_owned())
    );
    assert_eq!(
        rig.config("alice/early")
            .await
            .last_delivery
            .unwrap()
            .outcome,
        "delivered"
    );
    // back within 0–5 s, as new messages carrying their attempt count (0)
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let back = rig.stack.drain(&rig.stack.queue_url, 10).await;
    let mut ids: Vec<String> = back
        .iter()
        .map(|m| webhook_id_of(m.body().unwrap_or_default()))
        .collect();
    ids.sort();
    assert_eq!(ids, want);
    for m in &back {
        let queued = shared::domain::QueuedJob::parse(m.body().unwrap()).unwrap();
        assert_eq!(queued.attempts, Some(0));
    }
}

/// GIVEN ten jobs of one repository failing in one batch
/// THEN the failure count goes up by one, in one DynamoDB write.
#[tokio::test]
async fn a_burst_of_failures_counts_once() {
    let rx = Receiver::start(Behaviour::status(503)).await.unwrap();
    let rig = Rig::new("deliver-burst", settings()).await;
    rig.webhook("alice/app", &rx.url("/h")).await;
    let bodies: Vec<String> = (0..10)
        .map(|i| push(&format!("evt_b{i}"), "alice/app", &format!("t{i}")))
        .collect();
    rig.stack.enqueue(&bodies).await;
    let (msgs, event) = rig.receive(10).await;
    assert_eq!(msgs.len(), 10);
    rig.stack.proxy.reset_counts();
    let report = rig.deliver(event).await;
    assert_eq!(report.response.batch_item_failures.len(), 10);
    assert_eq!(report.summary.failed, 10);
    assert_eq!(rx.count(), 10);
    assert_eq!(rig.stack.proxy.count("dynamodb:BatchGetItem"), 1);
    assert_eq!(rig.stack.proxy.count("dynamodb:UpdateItem"), 1);
    assert_eq!(rig.stack.proxy.count("sqs:ChangeMessageVisibilityBatch"), 1);
    let w = rig.config("alice/app").await;
    assert_eq!((w.consecutive_failures, w.enabled), (1, true));
}

/// A failure against a URL replaced while the batch ran never counts
/// against the new URL.
#[tokio::test]
async fn a_replaced_url_is_not_blamed() {
    let rx = alin_tests::slow_receiver(300, Behaviour::status(500)).await;
    let rig = Rig::new("deliver-stale", settings()).await;
    rig.webhook("alice/app", &rx.url("/old")).await;
    rig.stack
        .enqueue(&[push("evt_s", "alice/app", "1.0")])
        .await;
    let (_, event) = rig.receive(1).await;
    let replace = async {
        rx.wait_for(1, Duration::from_secs(5)).await.unwrap();
        rig.webhook("alice/app", &rx.url("/new")).await;
    };
    let (report, ()) = tokio::join!(rig.deliver(event), replace);
    assert_eq!(
        report.response.batch_item_failures.len(),
        1,
        "still retried"
    );
    let w = rig.config("alice/app").await;
    assert!(w.url.ends_with("/new"));
    assert_eq!((w.consecutive_failures, w.last_delivery), (0, None));
}
