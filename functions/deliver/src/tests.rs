//! Handler tests: [`Deliverer`] with `MemoryStore`/`MemoryQueue` against real
//! HTTP servers on 127.0.0.1 (a tiny programmable axum receiver, and a raw
//! TCP listener that resets connections).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures::future::BoxFuture;
use lambda_runtime::{Context, LambdaEvent};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{
    BatchOutcome, DeliveryOutcome, LastDelivery, OutcomeApplied, OutcomeKind, RepoRecord,
    RepositoryName, WebhookUrl,
};
use shared::net::StaticLookup;
use shared::ports::{LayerSize, StoreError, WebhookStore};

use crate::{Config, Deliverer, DeliveryPolicy, Summary};

// ---------------------------------------------------------------- receiver

/// What the receiver answers on a path.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// One request as the receiver got it.
#[derive(Clone, Debug)]
struct Received {
    path_and_query: String,
    /// Names lowercase (hyper), in wire order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Hook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(self: &Arc<Self>) -> GaugeGuard {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        GaugeGuard(self.clone())
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct RxState {
    replies: Mutex<HashMap<String, Reply>>,
    by_image: Mutex<HashMap<String, Reply>>,
    default: Reply,
    received: Mutex<Vec<Received>>,
    gauge: Arc<Gauge>,
    shared_gauge: Option<Arc<Gauge>>,
    hook: Mutex<Option<Hook>>,
}

/// A programmable webhook receiver on 127.0.0.1.
struct Receiver {
    addr: SocketAddr,
    state: Arc<RxState>,
}

impl Receiver {
    async fn start(default: Reply) -> Self {
        Self::start_with(default, None).await
    }

    async fn start_with(default: Reply, shared_gauge: Option<Arc<Gauge>>) -> Self {
        let state = Arc::new(RxState {
            replies: Mutex::new(HashMap::new()),
            by_image: Mutex::new(HashMap::new()),
            default,
            received: Mutex::new(Vec::new()),
            gauge: Arc::new(Gauge::default()),
            shared_gauge,
            hook: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    fn on(&self, path: &str, reply: Reply) -> String {
        self.state
            .replies
            .lock()
            .unwrap()
            .insert(path.to_owned(), reply);
        self.url(path)
    }

    /// Answers by the `x-alin-webhook` header, before the path.
    fn on_image(&self, image: &str, reply: Reply) {
        self.state
            .by_image
            .lock()
            .unwrap()
            .insert(image.to_owned(), reply);
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    fn set_hook(&self, hook: Hook) {
        *self.state.hook.lock().unwrap() = Some(hook);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path_and_query.split('?').next() == Some(path))
            .collect()
    }

    fn max_in_flight(&self) -> usize {
        self.state.gauge.max()
    }
}

async fn receive(State(st): State<Arc<RxState>>, req: Request) -> Response {
    let _g = st.gauge.enter();
    let _s = st.shared_gauge.as_ref().map(|g| g.enter());
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default()
        .to_vec();
    let path = parts.uri.path().to_owned();
    let received = Received {
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    };
    let image = received.header("x-alin-webhook").unwrap_or("").to_owned();
    st.received.lock().unwrap().push(received);
    let by_image = st.by_image.lock().unwrap().get(&image).cloned();
    let reply = by_image
        .or_else(|| st.replies.lock().unwrap().get(&path).cloned())
        .unwrap_or_else(|| st.default.clone());
    let hook = st.hook.lock().unwrap().clone();
    if let Some(hook) = hook {
        hook().await;
    }
    tokio::time::sleep(reply.delay).await;
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k, v);
    }
    resp.body(Body::from("ok")).unwrap()
}

/// A listener that accepts, waits for the request and resets the connection.
async fn reset_server() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    (addr, accepted)
}

// ---------------------------------------------------------------- fixtures

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn job_body(id: &str, repository: &str, tag: &str, kind: &str, pushed_at: Option<&str>) -> String {
    let pushed = pushed_at
        .map(|p| format!(r#","pushed_at":"{p}""#))
        .unwrap_or_default();
    let d = "a".repeat(64);
    let (size, layers) = if kind == "ping" {
        (0, String::new())
    } else {
        (126, format!(r#""sha256:{d}""#))
    };
    format!(
        r#"{{"v":1,"webhook_id":"{id}","kind":"{kind}","repository":"{repository}","tag":"{tag}","image_size":{size},"layers":[{layers}],"repository_size":4096{pushed}}}"#
    )
}

fn push(id: &str, repository: &str, tag: &str) -> String {
    job_body(id, repository, tag, "push", None)
}

fn msg(message_id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(message_id.to_owned());
    m.receipt_handle = Some(format!("rh-{message_id}"));
    m.body = Some(body.to_owned());
    m.attributes = HashMap::from([
        (
            "ApproximateReceiveCount".to_owned(),
            receive_count.to_string(),
        ),
        ("SentTimestamp".to_owned(), "1795852800000".to_owned()),
    ]);
    m
}

fn event(msgs: Vec<SqsMessage>) -> crate::SqsBatch {
    let mut e = SqsEvent::default();
    e.records = msgs;
    e.into()
}

fn settings() -> Config {
    Config {
        registry_host: "container.alin.io".into(),
        delivery: DeliveryPolicy {
            failure_threshold: 3,
            delivery_timeout: Duration::from_secs(2),
            delivery_concurrency: 16,
            per_host_concurrency: 4,
            retry_base_delay: Duration::from_secs(30),
            max_attempts: 3,
            allow_private_targets: true,
        },
        deadline_margin: Duration::from_millis(500),
        host_breaker: 3,
    }
}

struct Rig {
    deliverer: Deliverer,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
}

impl Rig {
    fn new(settings: Config) -> Self {
        Self::with_lookup(settings, StaticLookup::new())
    }

    fn with_lookup(settings: Config, lookup: StaticLookup) -> Self {
        let store = Arc::new(MemoryStore::default());
        let queue = Arc::new(MemoryQueue::default());
        let deliverer =
            Deliverer::new(settings, store.clone(), queue.clone(), Arc::new(lookup)).unwrap();
        Self {
            deliverer,
            store,
            queue,
        }
    }

    async fn webhook(&self, name: &str, url: &str) -> RepoRecord {
        let url: WebhookUrl = shared::domain::validate_webhook_url(url, true).unwrap();
        self.store
            .put_url(&repo(name), &url, "2026-11-28T08:00:00Z")
            .await
            .unwrap()
    }

    async fn record(&self, name: &str) -> RepoRecord {
        self.store.get(&repo(name)).await.unwrap().unwrap()
    }

    async fn failures(&self, name: &str) -> u32 {
        let rec = self.record(name).await;
        rec.webhook.unwrap().consecutive_failures
    }

    async fn run(&self, msgs: Vec<SqsMessage>) -> (Vec<String>, Summary) {
        let report = self.deliverer.deliver(event(msgs), None).await.unwrap();
        let failed = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        check_sums(&report.summary);
        (failed, report.summary)
    }

    fn visibility(&self, message_id: &str) -> Option<i32> {
        let handle = format!("rh-{message_id}");
        self.queue
            .visibility_changes()
            .into_iter()
            .filter(|(h, _)| *h == handle)
            .map(|(_, v)| v)
            .next_back()
    }

    /// Sets a repository's failure count by recording failed batches.
    async fn prime_failures(&self, name: &str, count: u32) {
        let rec = self.record(name).await;
        let version = rec.webhook.unwrap().url_version;
        for _ in 0..count {
            let outcome = BatchOutcome {
                url_version: version,
                kind: OutcomeKind::Failed {
                    reason: "HTTP 500".into(),
                },
                last_delivery: LastDelivery {
                    webhook_id: "evt_prime".into(),
                    event: "push".into(),
                    tag: "x".into(),
                    at: "2026-11-28T08:00:00Z".into(),
                    outcome: DeliveryOutcome::Failed,
                    status: Some(500),
                    error: Some("HTTP 500".into()),
                    duration_ms: 1,
                    attempt: 1,
                },
                now: "2026-11-28T08:00:00Z".into(),
                history: None,
            };
            self.store
                .record_outcome(&repo(name), &outcome, 1000)
                .await
                .unwrap();
        }
    }
}

/// Every record is counted in exactly one final class.
fn check_sums(f: &Summary) {
    assert_eq!(
        f.received,
        f.malformed
            + f.superseded
            + f.dropped
            + f.delivered
            + f.failed
            + f.not_started
            + f.deferred,
        "{f:?}"
    );
    assert!(f.retried + f.dead_lettered + f.gone <= f.failed, "{f:?}");
}

// ---------------------------------------------------------------- tests

/// GIVEN a webhook URL with a query string
/// WHEN a push job is delivered
/// THEN the receiver gets exactly the contract's webhook request, signed.
#[tokio::test]
async fn sends_the_contract_request_exactly() {
    let rx = Receiver::start(Reply::status(200)).await;
    let rig = Rig::new(settings());
    let rec = rig
        .webhook("alice/team/app", &rx.url("/hook?token=abc&x=1"))
        .await;
    let secret = rec.webhook.unwrap().secret;
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let (failed, f) = rig
        .run(vec![msg(
            "m1",
            &push("evt_abc", "alice/team/app", "1.0"),
            1,
        )])
        .await;
    let after = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(failed.is_empty());
    assert_eq!(f.delivered, 1);

    let got = rx.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path_and_query, "/hook?token=abc&x=1");
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!((before..=after).contains(&ts));
    let body = format!(
        r#"{{"image":"container.alin.io/alice/team/app:1.0","image_size":126,"layers":["sha256:{d}"],"repository":"container.alin.io/alice/team/app","repository_size":4096,"event":"push","timestamp":"{t}"}}"#,
        d = "a".repeat(64),
        t = shared::domain::time::rfc3339(time::OffsetDateTime::from_unix_timestamp(ts).unwrap())
    );
    assert_eq!(String::from_utf8(r.body.clone()).unwrap(), body);
    let expected = [
        ("user-agent", "Alin.io WebHook Handler".to_owned()),
        ("accept-encoding", "gzip, deflate".to_owned()),
        ("accept", "*/*".to_owned()),
        ("connection", "keep-alive".to_owned()),
        ("x-alin-webhook", "alice/team/app:1.0".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("webhook-id", "evt_abc".to_owned()),
        ("webhook-timestamp", ts.to_string()),
    ];
    // The contract's headers, in contract order (host and content-length
    // are the client's).
    let ours: Vec<(&str, &str)> = r
        .headers
        .iter()
        .filter(|(n, _)| n != "host" && n != "content-length")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(ours.len(), 9, "{ours:?}");
    for (i, (name, value)) in expected.iter().enumerate() {
        assert_eq!(ours[i], (*name, value.as_str()));
    }
    assert_eq!(ours[8].0, "webhook-signature");
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(secret.verify("evt_abc", ts, &r.body, ours[8].1));

    let w = rig.record("alice/team/app").await.webhook.unwrap();
    assert_eq!(w.consecutive_failures, 0);
    let ld = w.last_delivery.unwrap();
    assert_eq!(
        (ld.webhook_id.as_str(), ld.event.as_str(), ld.tag.as_str()),
        ("evt_abc", "push", "1.0")
    );
    assert_eq!(
        (ld.outcome.as_str(), ld.status, ld.error, ld.attempt),
        ("delivered", Some(200), None, 1)
    );
}

/// A malformed job is reported failed (visibility 0, so it reaches the DLQ
/// after MAX_ATTEMPTS receives) and never holds up the rest.
#[tokio::test]
async fn malformed_jobs_fail_alone() {
    let rx = Receiver::start(Reply::status(200)).await;
    let rig = Rig::new(settings());
    rig.webhook("alice/app", &rx.url("/a")).await;
    let (failed, f) = rig
        .run(vec![
            msg("bad1", "{\"v\":1", 1),
            msg("ok", &push("evt_1", "alice/app", "1.0"), 1),
            msg("bad2", &push("evt 2", "alice/app", "1.0"), 1),
            msg("bad3", "[]", 1),
        ])
        .await;
    assert_eq!(failed, ["bad1", "bad2", "bad3"]);
    assert_eq!((f.malformed, f.delivered), (3, 1));
    assert_eq!(rig.visibility("bad1"), Some(0));
    assert_eq!(rx.received().len(), 1);
}

/// No webhook, no record, or a disabled webhook: acknowledged, nothing sent,
/// nothing written.
#[tokio::test]
async fn no_webhook_or_disabled_is_dropped() {
    let rx = Receiver::start(Reply::status(200)).await;
    let rig = Rig::new(settings());
    rig.webhook("alice/disabled", &rx.url("/d")).await;
    rig.prime_failures("alice/disabled", 0).await;
    rig.webhook("alice/deleted", &rx.url("/x")).await;
    rig.store.delete(&repo("alice/deleted")).await.unwrap();
    // disable through the store's own rule
    let version = rig
        .record("alice/disabled")
        .await
        .webhook
        .unwrap()
        .url_version;
    rig.store
        .record_outcome(
            &repo("alice/disabled"),
            &BatchOutcome {
                url_version: version,
                kind: OutcomeKind::Gone,
                last_delivery: LastDelivery {
                    webhook_id: "evt_0".into(),
                    event: "push".into(),
                    tag: "0".into(),
                    at: "2026-11-28T08:00:00Z".into(),
                    outcome: DeliveryOutcome::Gone,
                    status: Some(410),
                    error: None,
                    duration_ms: 1,
                    attempt: 1,
                },
                now: "2026-11-28T08:00:00Z".into(),
                history: None,
            },
            5,
        )
        .await
        .unwrap();
    let writes_before = rig.store.calls().1;
    let (failed, f) = rig
        .run(vec![
            msg("m1", &push("evt_1", "alice/disabled", "1.0"), 1),
            msg("m2", &push("evt_2", "alice/deleted", "1.0"), 1),
            msg("m3", &push("evt_3", "nobody/home", "1.0"), 1),
        ])
        .await;
    assert!(failed.is_empty());
    assert_eq!(f.dropped, 3);
    assert!(rx.received().is_empty());
    assert_eq!(rig.store.calls().1, writes_before);
    assert!(rig.queue.visibility_changes().is_empty());

    // A ping is the owner's explicit test: it reaches a disabled webhook, its
    // success resets the count, and the webhook stays disabled.
    let (failed, f) = rig
        .run(vec![msg(
            "m4",
            &job_body("evt_4", "alice/disabled", "ping", "ping", None),
            1,
        )])
        .await;
    assert!(failed.is_empty());
    assert_eq!((f.delivered, f.dropped), (1, 0));
    assert_eq!(rx.received().len(), 1);
    let w = rig.record("alice/disabled").await.webhook.unwrap();
    assert!(!w.enabled, "a ping does not re-enable");
    assert_eq!(w.consecutive_failures, 0);
}

/// Each outcome class of the outcomes policy, in one batch.
#[tokio::test]
async fn each_outcome_class() {
    let rx = Receiver::start(Reply::status(200)).await;
    let (reset_addr, resets) = reset_server().await;
    let mut s = settings();
    s.delivery.delivery_timeout = Duration::from_millis(1000);
    let rig = Rig::new(s);
    let cases: Vec<(&str, String)> = vec![
        ("o/ok", rx.on("/ok", Reply::status(200))),
        ("o/accepted", rx.on("/accepted", Reply::status(202))),
        ("o/gone", rx.on("/gone", Reply::status(410))),
        ("o/e500", rx.on("/e500", Reply::status(500))),
        (
            "o/e503",
            rx.on("/e503", Reply::status(503).header("Retry-After", "120")),
        ),
        ("o/e429", rx.on("/e429", Reply::status(429))),
        (
            "o/redirect",
            rx.on("/redirect", Reply::status(302).header("Location", "/ok")),
        ),
        ("o/e404", rx.on("/e404", Reply::status(404))),
        (
            "o/slow",
            rx.on("/slow", Reply::status(200).delay(Duration::from_secs(3))),
        ),
        ("o/reset", format!("http://{reset_addr}/r")),
    ];
    let mut msgs = Vec::new();
    for (i, (name, url)) in cases.iter().enumerate() {
        rig.webhook(name, url).await;
        msgs.push(msg(
            &format!("m{i}"),
            &push(&format!("evt_{i}"), name, "1.0"),
            1,
        ));
    }
    let started = Instant::now();
    let (failed, f) = rig.run(msgs).await;
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "timeout not applied"
    );
    // retried: 500, 503, 429, slow (timeout), reset
    assert_eq!(failed, ["m3", "m4", "m5", "m8", "m9"]);
    assert_eq!(
        (f.delivered, f.failed, f.gone, f.retried, f.dead_lettered),
        (2, 8, 1, 5, 0)
    );
    assert!(resets.load(Ordering::SeqCst) >= 1);
    // the redirect was not followed
    assert_eq!(rx.received_on("/ok").len(), 1);

    let v = |m: &str| rig.visibility(m).unwrap();
    assert!((24..=36).contains(&v("m3")), "{}", v("m3"));
    assert_eq!(v("m4"), 120, "Retry-After honoured");
    assert!((24..=36).contains(&v("m5")));
    assert!((24..=36).contains(&v("m8")));
    assert!((24..=36).contains(&v("m9")));
    for acked in ["m0", "m1", "m2", "m6", "m7"] {
        assert_eq!(rig.visibility(acked), None, "{acked}");
    }

    let expect = [
        ("o/ok", 0, true, "delivered", Some(200), None),
        ("o/accepted", 0, true, "delivered", Some(202), None),
        ("o/gone", 1, false, "gone", Some(410), Some("HTTP 410")),
        ("o/e500", 1, true, "retrying", Some(500), Some("HTTP 500")),
        ("o/e503", 1, true, "retrying", Some(503), Some("HTTP 503")),
        ("o/e429", 1, true, "retrying", Some(429), Some("HTTP 429")),
        ("o/redirect", 1, true, "failed", Some(302), Some("HTTP 302")),
        ("o/e404", 1, true, "failed", Some(404), Some("HTTP 404")),
        ("o/slow", 1, true, "retrying", None, Some("timeout")),
        (
            "o/reset",
            1,
            true,
            "retrying",
            None,
            Some("connection error"),
        ),
    ];
    for (name, count, enabled, outcome, status, error) in expect {
        let w = rig.record(name).await.webhook.unwrap();
        assert_eq!(w.consecutive_failures, count, "{name}");
        assert_eq!(w.enabled, enabled, "{name}");
        let ld = w.last_delivery.unwrap();
        assert_eq!(ld.outcome, outcome, "{name}");
        assert_eq!(ld.status, status, "{name}");
        assert_eq!(ld.error.as_deref(), error, "{name}");
    }
    let gone = rig.record("o/gone").await.webhook.unwrap();
    assert!(gone.disabled_at.is_some() && gone.disabled_reason.is_some());
    assert_eq!(f.disabled, 1);
}

/// The last attempt of a retryable failure is reported failed with
/// visibility 0, so the redrive policy (maxReceiveCount = MAX_ATTEMPTS)
/// moves it to the DLQ on the next receive.
#[tokio::test]
async fn last_attempt_goes_to_the_dead_letter_queue() {
    let rx = Receiver::start(Reply::status(503)).await;
    let rig = Rig::new(settings()); // max_attempts 3
    rig.webhook("alice/a", &rx.url("/a")).await;
    rig.webhook("alice/b", &rx.url("/b")).await;
    rig.webhook("alice/c", &rx.url("/c")).await;
    let (failed, f) = rig
        .run(vec![
            msg("first", &push("evt_1", "alice/a", "1.0"), 1),
            msg("second", &push("evt_2", "alice/b", "1.0"), 2),
            msg("last", &push("evt_3", "alice/c", "1.0"), 3),
        ])
        .await;
    assert_eq!(failed, ["first", "second", "last"]);
    assert_eq!((f.retried, f.dead_lettered), (2, 1));
    assert!((24..=36).contains(&rig.visibility("first").unwrap()));
    assert!((48..=72).contains(&rig.visibility("second").unwrap()));
    assert_eq!(rig.visibility("last"), Some(0));
    let ld = rig
        .record("alice/c")
        .await
        .webhook
        .unwrap()
        .last_delivery
        .unwrap();
    assert_eq!((ld.outcome.as_str(), ld.attempt), ("failed", 3));
}

/// GIVEN ten jobs of one repository that all fail in one batch
/// THEN the count goes up by one, with one write; a sustained failure
/// disables at the threshold; a success resets the count.
#[tokio::test]
async fn a_burst_of_failures_counts_once() {
    let rx = Receiver::start(Reply::status(503)).await;
    let rig = Rig::new(settings()); // threshold 3
    rig.webhook("alice/app", &rx.url("/fail")).await;
    let batch = |round: usize| {
        (0..10)
            .map(|i| {
                msg(
                    &format!("r{round}m{i}"),
                    &push(&format!("evt_{round}_{i}"), "alice/app", &format!("t{i}")),
                    1,
                )
            })
            .collect::<Vec<_>>()
    };
    let writes = rig.store.calls().1;
    let (failed, f) = rig.run(batch(1)).await;
    assert_eq!((failed.len(), f.failed), (10, 10));
    assert_eq!(rig.failures("alice/app").await, 1);
    assert_eq!(rig.store.calls().1, writes + 1);
    assert_eq!(rx.received().len(), 10);

    // success in between resets the count
    rx.on("/fail", Reply::status(200));
    rig.run(batch(2)).await;
    assert_eq!(rig.failures("alice/app").await, 0);

    rx.on("/fail", Reply::status(503));
    for round in 3..=4 {
        rig.run(batch(round)).await;
    }
    assert_eq!(rig.failures("alice/app").await, 2);
    assert!(rig.record("alice/app").await.webhook.unwrap().enabled);
    let (_, f) = rig.run(batch(5)).await;
    let w = rig.record("alice/app").await.webhook.unwrap();
    assert_eq!((w.consecutive_failures, w.enabled), (3, false));
    assert_eq!(w.disabled_reason.as_deref(), Some("HTTP 503"));
    assert_eq!(f.disabled, 1);
    // disabled: dropped from now on
    let sent = rx.received().len();
    let (failed, f) = rig.run(batch(6)).await;
    assert!(failed.is_empty());
    assert_eq!(f.dropped, 10);
    assert_eq!(rx.received().len(), sent);
}

/// Mixed outcomes in one batch for one repository: any 2xx → Delivered
/// (count back to 0, the failed job still retried); else any 410 → Gone.
#[tokio::test]
async fn mixed_outcomes_in_one_batch() {
    let rx = Receiver::start(Reply::status(500)).await;
    rx.on_image("alice/app:good", Reply::status(200));
    rx.on_image("bob/app:gone", Reply::status(410));
    let rig = Rig::new(settings());
    rig.webhook("alice/app", &rx.url("/a")).await;
    rig.webhook("bob/app", &rx.url("/b")).await;
    rig.prime_failures("alice/app", 2).await;
    let (failed, f) = rig
        .run(vec![
            msg("a-bad", &push("evt_1", "alice/app", "bad"), 1),
            msg("a-good", &push("evt_2", "alice/app", "good"), 1),
            msg("b-bad", &push("evt_3", "bob/app", "bad"), 1),
            msg("b-gone", &push("evt_4", "bob/app", "gone"), 1),
        ])
        .await;
    assert_eq!(failed, ["a-bad", "b-bad"]);
    assert_eq!((f.delivered, f.failed, f.gone, f.disabled), (1, 3, 1, 1));
    let alice = rig.record("alice/app").await.webhook.unwrap();
    assert_eq!((alice.consecutive_failures, alice.enabled), (0, true));
    let bob = rig.record("bob/app").await.webhook.unwrap();
    assert_eq!((bob.consecutive_failures, bob.enabled), (1, false));
}

/// GIVEN a context deadline a few seconds away and a slow receiver
/// THEN jobs that would not finish in time are not started, re-queued with
/// a short delay and their attempt count unchanged (their records
/// acknowledged, no receive used up), and not counted against their
/// webhooks; the host's turns alternate between the two repositories.
#[tokio::test]
async fn deadline_leaves_unstarted_jobs_uncounted() {
    let rx = Receiver::start(Reply::status(200).delay(Duration::from_millis(400))).await;
    let mut s = settings();
    s.delivery.delivery_timeout = Duration::from_secs(1);
    s.deadline_margin = Duration::from_millis(500);
    s.delivery.delivery_concurrency = 1;
    s.delivery.per_host_concurrency = 1;
    let rig = Rig::new(s);
    rig.webhook("alice/early", &rx.url("/e")).await;
    rig.webhook("alice/late", &rx.url("/l")).await;
    let writes = rig.store.calls().1;
    let mut msgs: Vec<SqsMessage> = (0..3)
        .map(|i| {
            msg(
                &format!("e{i}"),
                &push(&format!("evt_e{i}"), "alice/early", &format!("t{i}")),
                1,
            )
        })
        .collect();
    msgs.extend((0..5).map(|i| {
        msg(
            &format!("l{i}"),
            &push(&format!("evt_l{i}"), "alice/late", &format!("t{i}")),
            1,
        )
    }));
    let mut ctx = Context::default();
    ctx.request_id = "req-deadline".into();
    // 1.5 s reserved (timeout + margin): requests may start for ~1.1 s.
    let deadline = SystemTime::now() + Duration::from_millis(2600);
    ctx.deadline = deadline
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let started = Instant::now();
    let response = rig
        .deliverer
        .handle(LambdaEvent::new(event(msgs), ctx))
        .await
        .unwrap();
    assert!(SystemTime::now() < deadline, "finished after the deadline");
    assert!(started.elapsed() < Duration::from_millis(2200));
    assert!(
        response.batch_item_failures.is_empty(),
        "not-started jobs are re-queued, their records acknowledged"
    );
    // Turns alternate: e0 at 0 ms, l0 at 400 ms, e1 at 800 ms; l1 would
    // start at 1200 ms. On a loaded machine the third may miss the cut.
    let order = [
        "evt_e0", "evt_l0", "evt_e1", "evt_l1", "evt_e2", "evt_l2", "evt_l3", "evt_l4",
    ];
    let sent: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect();
    assert!((2..=3).contains(&sent.len()), "started {sent:?}");
    assert_eq!(sent, order[..sent.len()]);
    let requeued = rig.queue.requeued();
    let ids: Vec<&str> = requeued
        .iter()
        .map(|(j, _)| j.job.webhook_id.as_str())
        .collect();
    let mut want = order[sent.len()..].to_vec();
    want.sort_unstable();
    let mut ids = ids.clone();
    ids.sort_unstable();
    assert_eq!(ids, want);
    for (job, delay) in &requeued {
        assert!((0..=5).contains(delay), "{delay}");
        assert_eq!(job.attempts, Some(0), "not an attempt");
    }
    assert!(rig.queue.visibility_changes().is_empty());
    for name in ["alice/early", "alice/late"] {
        let w = rig.record(name).await.webhook.unwrap();
        assert_eq!(w.consecutive_failures, 0, "{name}");
        assert_eq!(
            w.last_delivery.map(|l| l.outcome),
            Some(DeliveryOutcome::Delivered)
        );
    }
    assert_eq!(rig.store.calls().1, writes + 2, "one write per repository");
}

/// GIVEN a job re-queued after two real attempts (version 2, `attempts` 2),
/// received for the first time, MAX_ATTEMPTS 3
/// THEN this is its 3rd attempt: a 503 sends it to the dead-letter path
/// (visibility 0) and the record says "failed" at attempt 3. A job whose
/// attempts are used up is not sent again: released at once for the redrive
/// policy. A re-queue that fails falls back to the visibility path.
#[tokio::test]
async fn attempts_count_real_attempts() {
    let rx = Receiver::start(Reply::status(503)).await;
    let rig = Rig::new(settings()); // max_attempts 3
    rig.webhook("alice/app", &rx.url("/h")).await;
    let requeued = |id: &str, tag: &str, attempts: u32| {
        let job = shared::domain::DeliveryJob::parse(&push(id, "alice/app", tag)).unwrap();
        shared::domain::QueuedJob {
            job,
            attempts: Some(attempts),
        }
        .to_json()
    };
    let (failed, f) = rig
        .run(vec![
            msg("third", &requeued("evt_3", "a", 2), 1),
            msg("spent", &requeued("evt_x", "b", 3), 2),
        ])
        .await;
    assert_eq!(failed, ["third", "spent"]);
    assert_eq!((f.failed, f.dead_lettered, f.retried), (2, 2, 0));
    assert_eq!(rx.received().len(), 1, "the spent job is not sent");
    assert_eq!(rig.visibility("third"), Some(0));
    assert_eq!(rig.visibility("spent"), Some(0));
    let ld = rig
        .record("alice/app")
        .await
        .webhook
        .unwrap()
        .last_delivery
        .unwrap();
    assert_eq!((ld.outcome, ld.attempt), (DeliveryOutcome::Failed, 3));
}

/// GIVEN the re-queue send fails
/// THEN the jobs not sent come back through their visibility: nothing lost.
#[tokio::test]
async fn a_failed_requeue_falls_back_to_visibility() {
    let (reset_addr, _accepted) = reset_server().await;
    let mut s = settings();
    s.delivery.per_host_concurrency = 1;
    s.host_breaker = 1;
    let rig = Rig::new(s);
    rig.webhook("dead/app", &format!("http://{reset_addr}/x"))
        .await;
    rig.queue.fail_next_sends(1);
    let (failed, f) = rig
        .run(vec![
            msg("a", &push("evt_a", "dead/app", "1"), 1),
            msg("b", &push("evt_b", "dead/app", "2"), 1),
            msg("c", &push("evt_c", "dead/app", "3"), 1),
        ])
        .await;
    assert_eq!((f.failed, f.deferred, f.requeued), (1, 2, 1));
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(rig.queue.requeued().len(), 1);
    for id in &failed {
        assert!((24..=36).contains(&rig.visibility(id).unwrap()), "{id}");
    }
}

/// A failure against a URL replaced during the batch never counts against
/// the new URL.
#[tokio::test]
async fn a_stale_url_never_counts() {
    let rx = Receiver::start(Reply::status(500)).await;
    let rig = Rig::new(settings());
    rig.webhook("alice/app", &rx.url("/old")).await;
    let store = rig.store.clone();
    let new_url = shared::domain::validate_webhook_url(&rx.url("/new"), true).unwrap();
    rx.set_hook(Arc::new(move || {
        let (store, url) = (store.clone(), new_url.clone());
        Box::pin(async move {
            store
                .put_url(&repo("alice/app"), &url, "2026-11-28T09:00:00Z")
                .await
                .unwrap();
        })
    }));
    let (failed, _) = rig
        .run(vec![msg("m1", &push("evt_1", "alice/app", "1.0"), 1)])
        .await;
    assert_eq!(failed, ["m1"], "still retried");
    let w = rig.record("alice/app").await.webhook.unwrap();
    assert!(w.url.ends_with("/new"));
    assert_eq!((w.consecutive_failures, w.last_delivery), (0, None));
}

/// The address rule at delivery time: an IP literal is refused before
/// sending, a name is refused by the resolver at connect time; both are
/// permanent failures counted against the webhook, nothing reaches the host.
#[tokio::test]
async fn forbidden_addresses_are_refused_and_counted() {
    let rx = Receiver::start(Reply::status(200)).await;
    let mut s = settings();
    s.delivery.allow_private_targets = false;
    let lookup = StaticLookup::new().with("evil.example", &["127.0.0.1".parse().unwrap()]);
    let rig = Rig::with_lookup(s, lookup);
    rig.webhook("alice/literal", &rx.url("/lit?token=s3cr3t"))
        .await;
    rig.webhook(
        "alice/name",
        &format!("http://evil.example:{}/name", rx.addr.port()),
    )
    .await;
    let (failed, f) = rig
        .run(vec![
            msg("lit", &push("evt_1", "alice/literal", "1.0"), 1),
            msg("name", &push("evt_2", "alice/name", "1.0"), 1),
        ])
        .await;
    assert!(failed.is_empty(), "not retried");
    assert_eq!((f.failed, f.retried), (2, 0));
    assert!(rx.received().is_empty());
    for name in ["alice/literal", "alice/name"] {
        let w = rig.record(name).await.webhook.unwrap();
        assert_eq!(w.consecutive_failures, 1, "{name}");
        let ld = w.last_delivery.unwrap();
        assert_eq!(ld.outcome, "failed");
        assert_eq!(
            ld.error.as_deref(),
            Some("refused: forbidden address (loopback)"),
            "{name}"
        );
    }
}

/// A resolver that cannot resolve (NXDOMAIN, SERVFAIL, timeout): the
/// webhook's name gives no address right now.
struct FailingLookup;

#[async_trait::async_trait]
impl shared::net::NameLookup for FailingLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        if host == "127.0.0.1" {
            return Ok(vec!["127.0.0.1:0".parse().unwrap()]);
        }
        Err(std::io::Error::other(
            "Temporary failure in name resolution",
        ))
    }
}

/// GIVEN a webhook whose name does not resolve now
/// THEN the job comes back with its backoff like a connection error
/// (counted once for the batch), never acknowledged as an address-rule
/// refusal.
#[tokio::test]
async fn a_dns_failure_is_retried_like_a_connection_error() {
    for allow_private in [false, true] {
        let mut s = settings();
        s.delivery.allow_private_targets = allow_private;
        let store = Arc::new(MemoryStore::default());
        let queue = Arc::new(MemoryQueue::default());
        let deliverer =
            Deliverer::new(s, store.clone(), queue.clone(), Arc::new(FailingLookup)).unwrap();
        let rig = Rig {
            deliverer,
            store,
            queue,
        };
        rig.webhook("alice/app", "https://hooks.moved.example/x")
            .await;
        let (failed, f) = rig
            .run(vec![
                msg("a", &push("evt_a", "alice/app", "1.0"), 1),
                msg("b", &push("evt_b", "alice/app", "2.0"), 2),
            ])
            .await;
        assert_eq!(failed, ["a", "b"], "allow_private={allow_private}");
        assert_eq!((f.failed, f.retried, f.dead_lettered), (2, 2, 0));
        assert!((24..=36).contains(&rig.visibility("a").unwrap()));
        assert!((48..=72).contains(&rig.visibility("b").unwrap()));
        let w = rig.record("alice/app").await.webhook.unwrap();
        assert_eq!(w.consecutive_failures, 1, "counted once per batch");
        let ld = w.last_delivery.unwrap();
        assert_eq!(ld.outcome, "retrying");
        assert_eq!(ld.error.as_deref(), Some("connection error"));
    }
}

/// At most DELIVERY_CONCURRENCY in flight, PER_HOST_CONCURRENCY per host.
#[tokio::test]
async fn concurrency_limits_hold() {
    let total = Arc::new(Gauge::default());
    let reply = Reply::status(204).delay(Duration::from_millis(60));
    let a = Receiver::start_with(reply.clone(), Some(total.clone())).await;
    let b = Receiver::start_with(reply.clone(), Some(total.clone())).await;
    let c = Receiver::start_with(reply, Some(total.clone())).await;
    let mut s = settings();
    s.delivery.delivery_concurrency = 5;
    s.delivery.per_host_concurrency = 2;
    let rig = Rig::new(s);
    let mut msgs = Vec::new();
    for (k, rx) in [&a, &b, &c].iter().enumerate() {
        for r in 0..4 {
            let name = format!("h{k}/r{r}");
            rig.webhook(&name, &rx.url(&format!("/{r}"))).await;
            for t in 0..3 {
                msgs.push(msg(
                    &format!("{k}-{r}-{t}"),
                    &push(&format!("evt_{k}_{r}_{t}"), &name, &format!("t{t}")),
                    1,
                ));
            }
        }
    }
    let (failed, f) = rig.run(msgs).await;
    assert!(failed.is_empty());
    assert_eq!(f.delivered, 36);
    for rx in [&a, &b, &c] {
        assert_eq!(rx.received().len(), 12);
        assert!(rx.max_in_flight() <= 2, "per host {}", rx.max_in_flight());
    }
    assert!(total.max() <= 5, "global {}", total.max());
    assert!(total.max() >= 4, "used the concurrency: {}", total.max());
}

/// A host that keeps failing at the transport level: after `host_breaker`
/// failures in a row its remaining jobs are deferred with backoff, not sent,
/// and not counted against their webhooks.
#[tokio::test]
async fn a_dead_host_does_not_clog_the_batch() {
    let (reset_addr, accepted) = reset_server().await;
    let rx = Receiver::start(Reply::status(200)).await;
    let mut s = settings();
    s.delivery.per_host_concurrency = 1;
    s.host_breaker = 3;
    let rig = Rig::new(s);
    let mut msgs = Vec::new();
    for i in 0..8 {
        let name = format!("dead/r{i}");
        rig.webhook(&name, &format!("http://{reset_addr}/{i}"))
            .await;
        msgs.push(msg(
            &format!("d{i}"),
            &push(&format!("evt_d{i}"), &name, "1"),
            1,
        ));
    }
    rig.webhook("live/app", &rx.url("/live")).await;
    msgs.push(msg("live", &push("evt_live", "live/app", "1"), 1));
    let (failed, f) = rig.run(msgs).await;
    assert_eq!((f.failed, f.deferred, f.delivered), (3, 5, 1));
    // The 3 attempted come back with backoff; the 5 deferred are re-queued
    // with the backoff of their attempt as delay, attempt count unchanged.
    assert_eq!(failed.len(), 3);
    assert_eq!(f.requeued, 5);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    let mut counted = 0;
    for i in 0..8 {
        let w = rig.record(&format!("dead/r{i}")).await.webhook.unwrap();
        counted += w.consecutive_failures;
    }
    assert_eq!(counted, 3);
    for id in &failed {
        assert!((24..=36).contains(&rig.visibility(id).unwrap()));
    }
    for (job, delay) in rig.queue.requeued() {
        assert!((24..=36).contains(&delay), "{delay}");
        assert_eq!(job.attempts, Some(0));
    }
}

/// A record without a messageId can never be reported (an empty
/// itemIdentifier fails the whole batch).
#[tokio::test]
async fn never_an_empty_item_identifier() {
    let rig = Rig::new(settings());
    let mut m = msg("x", "garbage", 1);
    m.message_id = None;
    let (failed, f) = rig.run(vec![m, msg("y", "garbage", 1)]).await;
    assert_eq!(failed, ["y"]);
    assert_eq!(f.malformed, 2);
}

/// An empty batch reads nothing and answers an empty response.
#[tokio::test]
async fn empty_batch() {
    let rig = Rig::new(settings());
    let (failed, f) = rig.run(vec![]).await;
    assert!(failed.is_empty());
    assert_eq!(f.received, 0);
    assert_eq!(rig.store.calls(), (0, 0));
}

/// 1,000 jobs over 100 repositories: one read call per 100 repositories,
/// one write per repository.
#[tokio::test]
async fn store_calls_scale_with_repositories_not_jobs() {
    let rx = Receiver::start(Reply::status(204)).await;
    let mut s = settings();
    s.delivery.delivery_concurrency = 64;
    s.delivery.per_host_concurrency = 64;
    let rig = Rig::new(s);
    for r in 0..100 {
        rig.webhook(&format!("u{r}/app"), &rx.url(&format!("/{r}")))
            .await;
    }
    let (reads, writes) = rig.store.calls();
    let msgs = (0..1000)
        .map(|i| {
            let r = i % 100;
            msg(
                &format!("m{i}"),
                &push(&format!("evt_{i}"), &format!("u{r}/app"), &format!("t{i}")),
                1,
            )
        })
        .collect();
    let (failed, f) = rig.run(msgs).await;
    assert!(failed.is_empty());
    assert_eq!(f.delivered, 1000);
    let (reads2, writes2) = rig.store.calls();
    assert_eq!((reads2 - reads, writes2 - writes), (1, 100));
}

/// A store whose reads or outcome writes fail, around a memory store.
struct FlakyStore {
    inner: MemoryStore,
    fail_reads: bool,
    fail_writes: bool,
}

#[async_trait::async_trait]
impl WebhookStore for FlakyStore {
    async fn get(&self, repo: &RepositoryName) -> Result<Option<RepoRecord>, StoreError> {
        self.inner.get(repo).await
    }
    async fn get_many(
        &self,
        repos: &[RepositoryName],
    ) -> Result<HashMap<RepositoryName, RepoRecord>, StoreError> {
        if self.fail_reads {
            return Err(StoreError::Retryable("throttled".into()));
        }
        self.inner.get_many(repos).await
    }
    async fn put_webhook(
        &self,
        repo: &RepositoryName,
        update: &shared::ports::WebhookUpdate,
        now: &str,
    ) -> Result<RepoRecord, StoreError> {
        self.inner.put_webhook(repo, update, now).await
    }
    async fn delete(&self, repo: &RepositoryName) -> Result<bool, StoreError> {
        self.inner.delete(repo).await
    }
    async fn enable(
        &self,
        repo: &RepositoryName,
        now: &str,
    ) -> Result<Option<RepoRecord>, StoreError> {
        self.inner.enable(repo, now).await
    }
    async fn record_outcome(
        &self,
        repo: &RepositoryName,
        outcome: &BatchOutcome,
        threshold: u32,
    ) -> Result<OutcomeApplied, StoreError> {
        if self.fail_writes {
            return Err(StoreError::Retryable("throttled".into()));
        }
        self.inner.record_outcome(repo, outcome, threshold).await
    }
    async fn add_layers(
        &self,
        repo: &RepositoryName,
        layers: &[LayerSize],
    ) -> Result<u64, StoreError> {
        self.inner.add_layers(repo, layers).await
    }
}

async fn flaky(fail_reads: bool, fail_writes: bool, url: &str) -> (Deliverer, Arc<FlakyStore>) {
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::default(),
        fail_reads,
        fail_writes,
    });
    let url = shared::domain::validate_webhook_url(url, true).unwrap();
    store
        .put_url(&repo("alice/app"), &url, "2026-11-28T08:00:00Z")
        .await
        .unwrap();
    let deliverer = Deliverer::new(
        settings(),
        store.clone(),
        Arc::new(MemoryQueue::default()),
        Arc::new(StaticLookup::new()),
    )
    .unwrap();
    (deliverer, store)
}

/// The store cannot be read: the batch fails as a whole (retryable), so
/// Lambda brings every record back; nothing is sent.
#[tokio::test]
async fn an_unreadable_store_fails_the_batch_as_a_whole() {
    let rx = Receiver::start(Reply::status(200)).await;
    let (deliverer, _) = flaky(true, false, &rx.url("/a")).await;
    let err = deliverer
        .deliver(
            event(vec![msg("m1", &push("evt_1", "alice/app", "1.0"), 1)]),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(rx.received().is_empty());
    let diag = lambda_runtime::Diagnostic::from(err);
    assert_eq!(diag.error_type, "DeliverError.Retryable");
}

/// An outcome write fails: the delivery stands (acknowledged, not resent),
/// and the failure is counted in the figures.
#[tokio::test]
async fn a_failed_outcome_write_does_not_resend() {
    let rx = Receiver::start(Reply::status(200)).await;
    let (deliverer, _) = flaky(false, true, &rx.url("/a")).await;
    let report = deliverer
        .deliver(
            event(vec![msg("m1", &push("evt_1", "alice/app", "1.0"), 1)]),
            None,
        )
        .await
        .unwrap();
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(
        (report.summary.delivered, report.summary.store_errors),
        (1, 1)
    );
}

/// GIVEN a batch with a failing and a delivered push for one repository,
/// then a retry of the failed one and the delivered one sent again
/// THEN each batch puts its attempts in front of the history (newest
/// first) in its one outcome write: attempt numbers, statuses, kinds
/// (`first`, `retry`, `redelivery`), and the payload kept only on each
/// event's newest entry.
#[tokio::test]
async fn every_attempt_goes_into_the_history() {
    use shared::domain::AttemptKind;
    let rx = Receiver::start(Reply::status(500)).await;
    rx.on_image("alice/app:good", Reply::status(200));
    let rig = Rig::new(settings());
    rig.webhook("alice/app", &rx.url("/a")).await;
    let (_, _) = rig
        .run(vec![
            msg("m1", &push("evt_bad", "alice/app", "bad"), 1),
            msg("m2", &push("evt_good", "alice/app", "good"), 1),
        ])
        .await;
    let h = rig.record("alice/app").await.webhook.unwrap().deliveries;
    let mut first: Vec<(&str, Option<u16>, AttemptKind)> = h
        .iter()
        .map(|e| (e.webhook_id.as_str(), e.status, e.kind))
        .collect();
    first.sort_by_key(|e| e.0);
    assert_eq!(
        first,
        [
            ("evt_bad", Some(500), AttemptKind::First),
            ("evt_good", Some(200), AttemptKind::First)
        ]
    );
    assert!(h.iter().all(|e| e.payload.is_some()));

    let writes_before = rig.store.calls().1;
    rig.run(vec![
        msg("m3", &push("evt_bad", "alice/app", "bad"), 2),
        msg("m4", &push("evt_good", "alice/app", "good"), 1),
    ])
    .await;
    assert_eq!(
        rig.store.calls().1 - writes_before,
        1,
        "one write per repository per batch"
    );
    let h = rig.record("alice/app").await.webhook.unwrap().deliveries;
    assert_eq!(h.len(), 4);
    let mut newest: Vec<(&str, u32, AttemptKind)> = h[..2]
        .iter()
        .map(|e| (e.webhook_id.as_str(), e.attempt, e.kind))
        .collect();
    newest.sort_by_key(|e| e.0);
    assert_eq!(
        newest,
        [
            ("evt_bad", 2, AttemptKind::Retry),
            ("evt_good", 1, AttemptKind::Redelivery)
        ]
    );
    assert!(h[..2].iter().all(|e| e.payload.is_some()));
    assert!(
        h[2..].iter().all(|e| e.payload.is_none()),
        "older entries drop it"
    );
    let ats: Vec<&str> = h.iter().map(|e| e.at.as_str()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted, "newest first");
}
