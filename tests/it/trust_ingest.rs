//! Trust at ingest's doors, against the real `ingest` binary (Lambda Runtime
//! API emulation behind the Function URL emulation, as `ingest_stack.rs`
//! runs it), moto through the stack's proxy, and stub registries on
//! 127.0.0.1:
//!
//! * the HTTP door is closed without `INGEST_TOKEN` (every request 401, the
//!   SQS door unaffected), `REGISTRY_AUTH` without a token fails the cold
//!   start, and the configured token is trimmed like the presented one;
//! * manifests come only from `REGISTRY_URL`'s origin: another origin, a
//!   redirect or an environment proxy never sees a request or the
//!   credentials;
//! * a Distribution envelope is always answered 2xx: transient failures are
//!   deferred to the registry events queue (and processed by the SQS door),
//!   permanent ones kept in its dead-letter queue; only a failed deferral is
//!   a 5xx;
//! * out-of-range times are bad input, never a crash;
//! * a hostile multi-level index of large manifests keeps ingest's peak RSS
//!   under half of its configured memory;
//! * SQS records without a `messageId` are acknowledged, not failing the batch;
//! * attacker-controlled strings are cut in answers and logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::ingest_support as support;
use alin_tests::{repo_root, Stack};
use devstack::function_url::FunctionUrl;
use devstack::receiver::{Behaviour, Receiver};
use devstack::registry::StubRegistry;
use devstack::runtime_api::LocalFunction;
use ingest::manifest::{sha256_digest, OCI_INDEX, OCI_MANIFEST};
use serde_json::{json, Value};
use support::{hook, image_manifest, index_manifest, ingest_binary, layer, put_image, queued_jobs};

const TOKEN: &str = "trust-ingest-token-0123456789abcdef";
const REGISTRY_AUTH: &str = "Bearer trust-registry-credential-77c1";

/// One Distribution event (a manifest push by tag).
fn dist_event(id: &str, url: &str, repo: &str, digest: &str, timestamp: &str) -> Value {
    json!({"id": id, "timestamp": timestamp, "action": "push",
           "target": {"mediaType": OCI_MANIFEST, "size": 1, "digest": digest, "length": 1,
                      "repository": repo, "url": url, "tag": "1.0"},
           "request": {"id": "r", "addr": "127.0.0.1:1", "host": "127.0.0.1", "method": "PUT",
                       "useragent": "skopeo/1.9.3"},
           "actor": {}, "source": {"addr": "vm:5000", "instanceID": "i"}})
}

fn envelope(events: Vec<Value>) -> String {
    json!({ "events": events }).to_string()
}

fn native(repo: &str, tag: &str, id: &str) -> Value {
    let (user, name) = repo.split_once('/').unwrap();
    json!({"event": "push", "username": user, "repository": name, "tag": tag,
           "image_size": 3, "layers": [layer("n", 3).0], "repository_size": 3,
           "pushed_at": "2026-11-28T08:00:00Z", "id": id})
}

fn sqs_event(records: &[(Option<&str>, String)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            let mut r = json!({"receiptHandle": "rh", "body": body, "attributes": {},
                               "messageAttributes": {}, "eventSource": "aws:sqs"});
            if let Some(id) = id {
                r["messageId"] = json!(id);
            }
            r
        })
        .collect();
    json!({ "Records": records })
}

// ---------------------------------------------------------------- ingest

/// The ingest binary over `stack` with `extra` env, behind a Function URL.
struct Running {
    function: Arc<LocalFunction>,
    url: FunctionUrl,
    log: PathBuf,
}

async fn start_ingest(stack: &Stack, name: &str, extra: &[(&str, &str)]) -> Running {
    let mut env = stack.function_env();
    env.push(("RUST_LOG".into(), "info".into()));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    let log = repo_root()
        .join(".devstack")
        .join("logs")
        .join(format!("trust-{name}-{}.log", stack.table));
    let function = Arc::new(
        LocalFunction::start(&ingest_binary(), &env, &log)
            .await
            .expect("ingest starts")
            .with_timeout(Duration::from_secs(60)),
    );
    let url = FunctionUrl::serve(function.clone()).await.unwrap();
    Running { function, url, log }
}

impl Running {
    /// POSTs `body` with `authorization`; returns the status and JSON body.
    async fn post(&self, authorization: Option<&str>, body: &str) -> (u16, Value) {
        self.request("POST", authorization, body).await
    }

    async fn request(&self, method: &str, authorization: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}/", self.url.url()))
            .header(
                "content-type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .timeout(Duration::from_secs(120))
            .body(body.to_owned());
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn authorized(&self, body: &str) -> (u16, Value) {
        self.post(Some(&format!("Bearer {TOKEN}")), body).await
    }

    /// Invokes the SQS door with `event`; returns the function's answer.
    async fn sqs(&self, event: Value) -> Value {
        let inv = self
            .function
            .invoke(event, Duration::from_secs(180))
            .await
            .unwrap();
        inv.ok()
            .cloned()
            .unwrap_or_else(|| panic!("function error: {:?}", inv.error()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn failed_ids(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {answer}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

fn output(stack: &Stack, key: &str) -> String {
    stack.outputs[key].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------ 1 door

#[tokio::test]
async fn without_a_token_the_http_door_is_closed_and_the_sqs_door_works() {
    // GIVEN ingest started without INGEST_TOKEN
    let stack = Stack::new("trust-closed").await;
    hook(&stack, "alice/app").await;
    let ingest = start_ingest(&stack, "closed", &[]).await;
    let push = native("alice/app", "1.0", "closed-1").to_string();

    // WHEN anyone sends anything over HTTP THEN 401 with a JSON error saying why
    for (method, auth) in [
        ("POST", None),
        ("POST", Some("Bearer anything")),
        ("POST", Some("Bearer ")),
        ("GET", None),
    ] {
        let (status, body) = ingest.request(method, auth, &push).await;
        assert_eq!(status, 401, "{method} {auth:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or("")
                .contains("INGEST_TOKEN is not set"),
            "{body}"
        );
    }
    assert!(queued_jobs(&stack, 0).await.is_empty());
    // AND the cold start said why, once
    let log = ingest.log();
    assert_eq!(
        log.matches("the HTTP door is closed").count(),
        1,
        "cold start log:\n{log}"
    );

    // AND the SQS door still turns the event into a job
    let answer = ingest.sqs(sqs_event(&[(Some("m1"), push)])).await;
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    let jobs = queued_jobs(&stack, 1).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].image_ref(), "alice/app:1.0");
}

#[tokio::test]
async fn registry_auth_without_a_token_fails_the_cold_start_naming_both() {
    let stack = Stack::new("trust-authnotoken").await;
    let ingest = start_ingest(&stack, "authnotoken", &[("REGISTRY_AUTH", REGISTRY_AUTH)]).await;
    let outcome = ingest
        .function
        .invoke(sqs_event(&[]), Duration::from_secs(20))
        .await;
    // The process fails its init: the invocation errors or the process exits.
    assert!(
        outcome.as_ref().map_or(true, |inv| !inv.is_ok()),
        "ingest answered: {outcome:?}"
    );
    let init_error = ingest.function.api.init_error().map(|v| v.to_string());
    let said = format!("{}\n{}", init_error.unwrap_or_default(), ingest.log());
    assert!(
        said.contains("REGISTRY_AUTH") && said.contains("INGEST_TOKEN"),
        "no error naming both variables:\n{said}"
    );
    assert!(
        !said.contains("trust-registry-credential"),
        "credential in the log"
    );
}

#[tokio::test]
async fn the_configured_token_is_trimmed_like_the_presented_one() {
    let stack = Stack::new("trust-trim").await;
    hook(&stack, "alice/app").await;
    let padded = format!("  {TOKEN}\n");
    let ingest = start_ingest(&stack, "trim", &[("INGEST_TOKEN", &padded)]).await;
    let (status, body) = ingest
        .authorized(&native("alice/app", "1.0", "trim-1").to_string())
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = ingest
        .post(
            Some("Bearer wrong"),
            &native("alice/app", "1.0", "trim-2").to_string(),
        )
        .await;
    assert_eq!(status, 401);
}

// ------------------------------------------------------- 2 registry origin

#[tokio::test]
async fn manifests_come_only_from_registry_url_never_elsewhere() {
    // GIVEN our registry, an attacker's server and an environment proxy
    // (for `localhost`, where the registries are named; the SDK's calls to
    // 127.0.0.1 bypass it through NO_PROXY)
    let stack = Stack::new("trust-origin").await;
    hook(&stack, "alice/app").await;
    let registry = StubRegistry::start().await.unwrap();
    let attacker = StubRegistry::start().await.unwrap();
    // Both named `localhost`, where the environment proxy would apply.
    let base = |r: &StubRegistry| r.base().replace("127.0.0.1", "localhost");
    let url = |r: &StubRegistry, digest: &str| {
        format!("{}{}", base(r), StubRegistry::path("alice/app", digest))
    };
    let proxy = Receiver::start(Behaviour::status(502)).await.unwrap();
    let proxy_url = format!("http://{}", proxy.addr());
    let ingest = start_ingest(
        &stack,
        "origin",
        &[
            ("INGEST_TOKEN", TOKEN),
            ("REGISTRY_AUTH", REGISTRY_AUTH),
            ("REGISTRY_URL", &base(&registry)),
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("NO_PROXY", "127.0.0.1"),
            ("no_proxy", "127.0.0.1"),
        ],
    )
    .await;
    let digest = put_image(&registry, "alice/app", &[layer("o1", 10)]);
    put_image(&attacker, "alice/app", &[layer("o1", 10)]);

    // WHEN an envelope names the attacker's origin
    let forged = envelope(vec![dist_event(
        "forged",
        &url(&attacker, &digest),
        "alice/app",
        &digest,
        "2026-11-28T08:41:13Z",
    )]);
    let (status, body) = ingest.authorized(&forged).await;
    // THEN it is rejected (2xx, the registry must not retry) without any request
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["rejected"], 1, "{body}");
    assert_eq!(body["queued"], 0, "{body}");
    assert!(
        attacker.seen().is_empty(),
        "attacker got {:?}",
        attacker.seen()
    );
    assert!(
        registry.seen().is_empty(),
        "registry got {:?}",
        registry.seen()
    );

    // WHEN an envelope names our origin with another path and a query
    let odd_path = format!(
        "{}/v2/elsewhere/manifests/{digest}?next=http://169.254.169.254/",
        base(&registry)
    );
    let genuine = envelope(vec![dist_event(
        "genuine",
        &odd_path,
        "alice/app",
        &digest,
        "2026-11-28T08:41:13Z",
    )]);
    let (status, body) = ingest.authorized(&genuine).await;
    // THEN the manifest is fetched as {REGISTRY_URL}/v2/{repository}/manifests/{digest}
    assert_eq!((status, body["queued"].as_u64()), (202, Some(1)), "{body}");
    assert_eq!(
        registry.seen(),
        vec![(
            StubRegistry::path("alice/app", &digest),
            Some(REGISTRY_AUTH.to_owned())
        )]
    );

    // WHEN our registry answers with a redirect to the attacker
    let moved = sha256_digest(b"moved").as_str().to_owned();
    let location = url(&attacker, &digest);
    registry.answer(
        &StubRegistry::path("alice/app", &moved),
        Behaviour::status(307).with_header("location", &location),
    );
    let redirected = envelope(vec![dist_event(
        "redirected",
        &url(&registry, &moved),
        "alice/app",
        &moved,
        "2026-11-28T08:41:13Z",
    )]);
    let (status, body) = ingest.authorized(&redirected).await;
    // THEN it is not followed: rejected, nothing reaches the attacker
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["rejected"], 1, "{body}");
    assert!(
        attacker.seen().is_empty(),
        "attacker got {:?}",
        attacker.seen()
    );
    // AND the environment proxy never saw a request
    assert_eq!(proxy.count(), 0, "the proxy was used");
    assert!(!ingest.log().contains("trust-registry-credential"));
}

#[tokio::test]
async fn without_registry_url_distribution_envelopes_are_rejected_and_the_cold_start_says_so() {
    let stack = Stack::new("trust-nourl").await;
    hook(&stack, "alice/app").await;
    let registry = StubRegistry::start().await.unwrap();
    let ingest = start_ingest(&stack, "nourl", &[("INGEST_TOKEN", TOKEN)]).await;
    let digest = put_image(&registry, "alice/app", &[layer("u1", 10)]);
    let body = envelope(vec![dist_event(
        "nourl",
        &registry.url("alice/app", &digest),
        "alice/app",
        &digest,
        "2026-11-28T08:41:13Z",
    )]);
    let (status, answer) = ingest.authorized(&body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    assert!(registry.seen().is_empty());
    let log = ingest.log();
    assert!(log.contains("REGISTRY_URL is not set"), "{log}");
}

// ---------------------------------------------------- 3 never stalled

#[tokio::test]
async fn distribution_is_never_stalled_transient_events_are_deferred_permanent_ones_kept() {
    // GIVEN ingest with the registry events queue and its dead-letter queue
    let stack = Stack::new("trust-stall").await;
    hook(&stack, "alice/app").await;
    let registry = StubRegistry::start().await.unwrap();
    let events_queue = output(&stack, "RegistryEventsQueueUrl");
    let events_dlq = output(&stack, "RegistryEventsDeadLetterQueueUrl");
    let ingest = start_ingest(
        &stack,
        "stall",
        &[
            ("INGEST_TOKEN", TOKEN),
            ("REGISTRY_URL", &registry.base()),
            ("REGISTRY_EVENTS_QUEUE_URL", &events_queue),
            ("REGISTRY_EVENTS_DLQ_URL", &events_dlq),
        ],
    )
    .await;
    let ok = put_image(&registry, "alice/app", &[layer("s-ok", 7)]);
    let later_body = image_manifest(&[layer("s-later", 9)], 0);
    let later = sha256_digest(&later_body).as_str().to_owned();
    registry.answer(
        &StubRegistry::path("alice/app", &later),
        Behaviour::status(503).with_body("{}"),
    );
    let gone = sha256_digest(b"gone").as_str().to_owned();
    let event = |id: &str, digest: &str| {
        dist_event(
            id,
            &registry.url("alice/app", digest),
            "alice/app",
            digest,
            "2026-11-28T08:41:13Z",
        )
    };

    // WHEN one envelope holds a good event, one whose registry answers 503,
    // one whose manifest is gone and one malformed event
    let body = envelope(vec![
        event("st-ok", &ok),
        event("st-later", &later),
        event("st-gone", &gone),
        json!({"id": "st-bad", "action": "push", "target": {"tag": "1.0", "repository": "Not Valid"}}),
    ]);
    let (status, answer) = ingest.authorized(&body).await;

    // THEN 202 (the registry moves on), with each event's fate counted
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 1, "ignored": 0, "dropped": 0, "queued": 1, "rejected": 2, "deferred": 1})
    );
    // AND the transient one waits on the registry events queue as an envelope
    let deferred = stack.drain(&events_queue, 10).await;
    assert_eq!(deferred.len(), 1, "{deferred:?}");
    let d: Value = serde_json::from_str(deferred[0].body().unwrap()).unwrap();
    assert_eq!(d["events"][0]["id"], "st-later");
    // AND the permanent ones are kept in its dead-letter queue with a reason
    let kept = stack.drain(&events_dlq, 10).await;
    let mut kept_ids: Vec<String> = kept
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            v["events"][0]["id"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    kept_ids.sort();
    assert_eq!(kept_ids, ["st-bad", "st-gone"]);

    // WHEN the registry is back and the SQS door gets the deferred event
    registry.put("alice/app", OCI_MANIFEST, later_body);
    let answer = ingest
        .sqs(sqs_event(&[(
            Some("deferred-1"),
            deferred[0].body().unwrap().to_owned(),
        )]))
        .await;
    // THEN it becomes its job
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    let jobs = queued_jobs(&stack, 2).await;
    let mut refs: Vec<u64> = jobs.iter().map(|j| j.image_size).collect();
    refs.sort();
    assert_eq!(refs, [7, 9], "{jobs:?}");

    // WHEN even deferring fails (the queue does not exist) THEN 503: the
    // registry keeps the event and retries, nothing is lost silently
    let broken = start_ingest(
        &stack,
        "stall-broken",
        &[
            ("INGEST_TOKEN", TOKEN),
            ("REGISTRY_URL", &registry.base()),
            (
                "REGISTRY_EVENTS_QUEUE_URL",
                &format!("{events_queue}-does-not-exist"),
            ),
            ("REGISTRY_EVENTS_DLQ_URL", &events_dlq),
        ],
    )
    .await;
    let down = sha256_digest(b"down").as_str().to_owned();
    registry.answer(
        &StubRegistry::path("alice/app", &down),
        Behaviour::status(503).with_body("{}"),
    );
    let (status, answer) = broken
        .authorized(&envelope(vec![event("st-down", &down)]))
        .await;
    assert_eq!(status, 503, "{answer}");
}

// ---------------------------------------------------------- 5 no panic

#[tokio::test]
async fn out_of_range_times_are_bad_input_never_a_crash() {
    let stack = Stack::new("trust-time").await;
    hook(&stack, "alice/app").await;
    let registry = StubRegistry::start().await.unwrap();
    let ingest = start_ingest(
        &stack,
        "time",
        &[("INGEST_TOKEN", TOKEN), ("REGISTRY_URL", &registry.base())],
    )
    .await;
    let pid = ingest.function.pid;
    let mut far = native("alice/app", "1.0", "far-1");
    far["pushed_at"] = json!("9999-12-31T23:00:00-01:00");

    // Native over HTTP: 400
    let (status, body) = ingest.authorized(&far.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("pushed_at"),
        "{body}"
    );
    // SQS: that record fails, the other goes through
    let answer = ingest
        .sqs(sqs_event(&[
            (Some("far"), far.to_string()),
            (
                Some("fine"),
                native("alice/app", "2.0", "fine-1").to_string(),
            ),
        ]))
        .await;
    assert_eq!(failed_ids(&answer), ["far"]);
    // Distribution: rejected, 2xx
    let digest = put_image(&registry, "alice/app", &[layer("t1", 1)]);
    let (status, body) = ingest
        .authorized(&envelope(vec![dist_event(
            "far-dist",
            &registry.url("alice/app", &digest),
            "alice/app",
            &digest,
            "9999-12-31T23:59:59-23:59",
        )]))
        .await;
    assert_eq!(
        (status, body["rejected"].as_u64()),
        (202, Some(1)),
        "{body}"
    );
    // The same process answered everything: nothing crashed
    assert_eq!(ingest.function.pid, pid);
    assert!(ingest.function.try_exit_status().unwrap().is_none());
    assert!(!ingest.log().contains("panicked"));
    assert_eq!(queued_jobs(&stack, 1).await.len(), 1);
}

// ------------------------------------------------------ 6 bounded memory

/// The template's ingest MemorySize, in MiB.
fn ingest_memory_size_mib() -> u64 {
    let template = devstack::moto::template().expect("template.yaml");
    devstack::moto::template_memory_size(&template, "IngestFunction")
        .expect("IngestFunction's MemorySize (its own or the Globals')")
}

#[tokio::test]
async fn a_hostile_index_of_large_manifests_stays_under_half_the_memory_size() {
    // GIVEN a registry serving a two-level index: 2 nested indexes of 4
    // platform manifests each, every manifest ~2.6 MiB (1000 layers with
    // large annotations), announced by 4 events in one SQS batch
    let stack = Stack::new("trust-memory").await;
    hook(&stack, "alice/app").await;
    let registry = StubRegistry::start().await.unwrap();
    let layers: Vec<(String, u64)> = (0..1000).map(|i| layer(&format!("m{i}"), 1)).collect();
    let leaf = registry.put("alice/app", OCI_MANIFEST, image_manifest(&layers, 2500));
    let mid = registry.put("alice/app", OCI_INDEX, index_manifest(&vec![leaf; 4]));
    let top = registry.put("alice/app", OCI_INDEX, index_manifest(&vec![mid; 2]));
    let ingest = start_ingest(
        &stack,
        "memory",
        &[("INGEST_TOKEN", TOKEN), ("REGISTRY_URL", &registry.base())],
    )
    .await;
    let records: Vec<(Option<&str>, String)> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|id| {
            (
                Some(id),
                envelope(vec![dist_event(
                    &format!("mem-{id}"),
                    &registry.url("alice/app", &top),
                    "alice/app",
                    &top,
                    "2026-11-28T08:41:13Z",
                )]),
            )
        })
        .collect();

    // WHEN ingest resolves them all
    let answer = ingest.sqs(sqs_event(&records)).await;

    // THEN every event became its job, and the peak RSS stayed under half of
    // the memory the template gives ingest
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    assert_eq!(queued_jobs(&stack, 4).await.len(), 4);
    assert_eq!(registry.seen().len(), 4 * (1 + 2 + 8));
    let peak_mib = ingest.function.peak_rss_kib().unwrap() / 1024;
    let limit = ingest_memory_size_mib() / 2;
    eprintln!("ingest peak RSS {peak_mib} MiB (limit {limit} MiB)");
    assert!(peak_mib < limit, "peak RSS {peak_mib} MiB >= {limit} MiB");
}

// --------------------------------------------------------- 8 smaller items

#[tokio::test]
async fn sqs_records_without_a_message_id_are_acknowledged_not_failing_the_batch() {
    let stack = Stack::new("trust-noid").await;
    hook(&stack, "alice/app").await;
    let ingest = start_ingest(&stack, "noid", &[("INGEST_TOKEN", TOKEN)]).await;
    let answer = ingest
        .sqs(sqs_event(&[
            (None, "not json".to_owned()),
            (
                Some("good"),
                native("alice/app", "1.0", "noid-1").to_string(),
            ),
            (Some("bad"), "{}".to_owned()),
        ]))
        .await;
    assert_eq!(failed_ids(&answer), ["bad"]);
    assert_eq!(queued_jobs(&stack, 1).await.len(), 1);
    assert!(ingest.log().contains("without a messageId"));
}

#[tokio::test]
async fn attacker_controlled_strings_are_cut_in_answers_and_logs() {
    let stack = Stack::new("trust-bounded").await;
    let ingest = start_ingest(&stack, "bounded", &[("INGEST_TOKEN", TOKEN)]).await;
    let long = "x".repeat(100_000);
    let mut push = native("alice/app", "1.0", "long-1");
    push["username"] = json!(long);
    let (status, body) = ingest.authorized(&push.to_string()).await;
    assert_eq!(status, 400);
    let error = body["error"].as_str().unwrap();
    assert!(error.len() < 1_000, "error of {} bytes", error.len());
    let mut sqs = native("alice/app", "1.0", "long-2");
    sqs["pushed_at"] = json!(format!("2026-{long}"));
    let answer = ingest
        .sqs(sqs_event(&[(Some("long"), sqs.to_string())]))
        .await;
    assert_eq!(failed_ids(&answer), ["long"]);
    let log = ingest.log();
    assert!(
        !log.contains(&"x".repeat(1_000)),
        "a long attacker string reached the log"
    );
}
