//! Secrets never reach the logs, over a full run of all three binaries
//! (devstack `LocalFunction`s, the ingest and settings Function URLs, the
//! deliver event source mapping) against moto:
//!
//! settings sets two webhooks whose URLs carry a token in the path and in
//! the query (answers carry the `whsec_` secrets), reads one back, replaces
//! it, re-enables it, queues a test ping, refuses a bad URL that carries a
//! token; ingest (with `INGEST_TOKEN` and `REGISTRY_AUTH`) takes native
//! pushes and a Distribution push whose manifest it fetches from a stub
//! registry with `REGISTRY_AUTH` (and a query token in the manifest URL),
//! and refuses a push with a wrong token; deliver sends them to a receiver
//! that answers 503 first (failure, retry) and to one that answers 410
//! (disable).
//!
//! Then none of the three log files holds: a webhook secret (`whsec_…` or
//! its base64 part), the ingest token (nor the wrong one tried), the
//! `REGISTRY_AUTH` value or its token, a webhook URL's path token or query
//! string, the manifest URL's query token. Run at the default log level
//! (what Lambda runs) and again at DEBUG. Needs `cargo build -p ingest -p
//! deliver -p settings` first.

use std::sync::Arc;
use std::time::Duration;

use alin_tests::Stack;
use devstack::esm::EventSourceMapping;
use devstack::function_url::FunctionUrl;
use devstack::receiver::{Behaviour, Receiver};
use ingest::manifest::{sha256_digest, OCI_MANIFEST};
use serde_json::{json, Value};

use crate::reliability_common as common;
use common::{native_push, start, wait_until_empty, INGEST_TOKEN};

const REGISTRY_AUTH: &str = "Bearer reg-auth-secret-4be1d0c9";
const REGISTRY_AUTH_TOKEN: &str = "reg-auth-secret-4be1d0c9";
const WRONG_TOKEN: &str = "wrong-token-e3a1f7";
const PATH_TOKEN: &str = "pathtok-71c4aa09e2";
const QUERY_TOKEN: &str = "querytok-5d8e31b7";
const QUERY_TOKEN_2: &str = "querytok2-a0b9c8d7";
const BAD_URL_TOKEN: &str = "badurltok-66f0e2";
const MANIFEST_QUERY_TOKEN: &str = "mqtok-19d2c4e8";

async fn settings_call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn full_run_logs_nothing_secret(level: Option<&str>) {
    let hint = if level.is_some() {
        "sec-logs-debug"
    } else {
        "sec-logs"
    };
    let stack = Stack::new(hint).await;
    let alice_rx = Receiver::start(Behaviour::sequence(vec![
        Behaviour::status(503),
        Behaviour::ok(),
    ]))
    .await
    .unwrap();
    let bob_rx = Receiver::start(Behaviour::status(410)).await.unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", "c".repeat(64)), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": format!("sha256:{}", "d".repeat(64)), "size": 126}]})
    .to_string();
    let digest = sha256_digest(manifest.as_bytes()).as_str().to_owned();
    let registry = Receiver::start(
        Behaviour::ok()
            .with_header("content-type", OCI_MANIFEST)
            .with_body(manifest),
    )
    .await
    .unwrap();

    // Manifests are fetched only from REGISTRY_URL's origin.
    let registry_url: &'static str =
        Box::leak(format!("http://{}", registry.addr()).into_boxed_str());
    let mut log_env: Vec<(&str, &str)> = Vec::new();
    if let Some(l) = level {
        log_env.push(("AWS_LAMBDA_LOG_LEVEL", l));
        log_env.push(("RUST_LOG", l));
    }
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut v = log_env.clone();
        v.extend_from_slice(extra);
        v
    };
    let (settings_fn, settings_log) = start(
        &stack,
        hint,
        "settings",
        0,
        &with(&[("ALLOW_PRIVATE_TARGETS", "true")]),
        Duration::from_secs(30),
    )
    .await;
    let (ingest_fn, ingest_log) = start(
        &stack,
        hint,
        "ingest",
        0,
        &with(&[
            ("INGEST_TOKEN", INGEST_TOKEN),
            ("REGISTRY_AUTH", REGISTRY_AUTH),
            ("REGISTRY_URL", registry_url),
        ]),
        Duration::from_secs(30),
    )
    .await;
    let (deliver_fn, deliver_log) = start(
        &stack,
        hint,
        "deliver",
        0,
        &with(&[
            ("ALLOW_PRIVATE_TARGETS", "true"),
            ("RETRY_BASE_DELAY_SECS", "1"),
            ("DELIVERY_TIMEOUT_SECS", "2"),
        ]),
        Duration::from_secs(30),
    )
    .await;
    let settings_url = FunctionUrl::serve(settings_fn).await.unwrap();
    let ingest_url = FunctionUrl::serve(ingest_fn).await.unwrap();
    let esm = EventSourceMapping::start(
        stack.sqs.clone(),
        &stack.queue_url,
        &stack.queue_arn,
        Arc::new(deliver_fn),
        100,
        Duration::from_millis(300),
    );
    let http = reqwest::Client::new();
    let base = settings_url.url();
    use reqwest::Method;

    // settings: set, read, replace, enable, test, refuse
    let alice_url = alice_rx.url(&format!("/hooks/{PATH_TOKEN}/alin?token={QUERY_TOKEN}&x=1"));
    let bob_url = bob_rx.url(&format!("/hook?token={QUERY_TOKEN_2}"));
    let put = |url: &str| Some(json!({ "url": url }));
    let alice_path = "/repositories/alice/app/webhook";
    let (s, alice) = settings_call(&http, &base, Method::PUT, alice_path, put(&alice_url)).await;
    assert_eq!(s, 200, "{alice}");
    let bob_path = "/repositories/bob/app/webhook";
    let (s, bob) = settings_call(&http, &base, Method::PUT, bob_path, put(&bob_url)).await;
    assert_eq!(s, 200, "{bob}");
    let bad = format!("ftp://ci.example.com/hook?token={BAD_URL_TOKEN}");
    let steps = [
        (Method::GET, alice_path.to_owned(), None, 200),
        (Method::PUT, alice_path.to_owned(), put(&alice_url), 200),
        (Method::POST, format!("{alice_path}/enable"), None, 200),
        (Method::POST, format!("{alice_path}/test"), None, 202),
        (
            Method::PUT,
            "/repositories/carol/app/webhook".to_owned(),
            put(&bad),
            400,
        ),
    ];
    for (method, path, body, expected) in steps {
        let (s, answer) = settings_call(&http, &base, method.clone(), &path, body).await;
        assert_eq!(s, expected, "{method} {path}: {answer}");
    }
    let secrets: Vec<String> = [&alice, &bob]
        .iter()
        .map(|c| c["secret"].as_str().unwrap().to_owned())
        .collect();

    // ingest: native pushes, a Distribution push (manifest fetched with
    // REGISTRY_AUTH), a push with a wrong token
    let iurl = format!("{}/", ingest_url.url());
    for (name, tag) in [
        ("alice/app", "1.0"),
        ("alice/app", "1.1"),
        ("bob/app", "2.0"),
        ("bob/app", "2.1"),
    ] {
        let a = common::push(&http, &iurl, &native_push(name, tag), 5).await;
        assert_eq!(a.status, 202, "{a:?}");
    }
    let envelope = json!({"events": [{"id": "sec-dist-1", "timestamp": "2026-11-28T08:41:13Z", "action": "push",
        "target": {"mediaType": OCI_MANIFEST, "size": 1, "digest": digest, "length": 1, "repository": "alice/app",
                   "url": registry.url(&format!("/v2/alice/app/manifests/{digest}?access={MANIFEST_QUERY_TOKEN}")), "tag": "3.0"},
        "request": {"id": "r", "addr": "127.0.0.1:1", "host": "127.0.0.1", "method": "PUT", "useragent": "skopeo"},
        "actor": {}, "source": {"addr": "vm:5000"}}]});
    let a = common::push(&http, &iurl, &envelope.to_string(), 5).await;
    assert_eq!((a.status, a.queued()), (202, 1), "{a:?}");
    let refused = http
        .post(&iurl)
        .header("authorization", format!("Bearer {WRONG_TOKEN}"))
        .body(native_push("alice/app", "9.9"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(
        registry.requests()[0].header("authorization"),
        Some(REGISTRY_AUTH),
        "REGISTRY_AUTH was used"
    );

    // deliver: ping + 3 pushes to alice (first answer 503, then retried),
    // 2 pushes to bob (410: disabled).
    alice_rx.wait_for(5, Duration::from_secs(60)).await.unwrap();
    wait_until_empty(&stack.sqs, &stack.queue_url, Duration::from_secs(60)).await;
    let stats = esm.stop().await.unwrap();
    assert!(stats.failed >= 1, "a retry happened: {stats:?}");
    assert!(bob_rx.count() >= 1);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut forbidden: Vec<(String, String)> = vec![
        ("INGEST_TOKEN".into(), INGEST_TOKEN.into()),
        ("the wrong bearer token".into(), WRONG_TOKEN.into()),
        ("REGISTRY_AUTH".into(), REGISTRY_AUTH.into()),
        ("REGISTRY_AUTH's token".into(), REGISTRY_AUTH_TOKEN.into()),
        ("a webhook URL's path token".into(), PATH_TOKEN.into()),
        ("a webhook URL's query token".into(), QUERY_TOKEN.into()),
        ("a webhook URL's query string".into(), "token=".into()),
        (
            "another webhook URL's query token".into(),
            QUERY_TOKEN_2.into(),
        ),
        ("a refused URL's query token".into(), BAD_URL_TOKEN.into()),
        (
            "the manifest URL's query token".into(),
            MANIFEST_QUERY_TOKEN.into(),
        ),
    ];
    for s in &secrets {
        forbidden.push(("a webhook secret".into(), s.clone()));
        forbidden.push((
            "a webhook secret's base64".into(),
            s.trim_start_matches("whsec_").to_owned(),
        ));
    }
    let mut leaks = Vec::new();
    for (function, log) in [
        ("settings", &settings_log),
        ("ingest", &ingest_log),
        ("deliver", &deliver_log),
    ] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.lines().count() > 3,
            "{function} logged almost nothing: {text}"
        );
        for (what, value) in &forbidden {
            for (n, line) in text.lines().enumerate() {
                if line.contains(value.as_str()) {
                    leaks.push(format!(
                        "{function} log line {} holds {what}: {}",
                        n + 1,
                        line.chars().take(400).collect::<String>()
                    ));
                }
            }
        }
    }
    // Proof that the logs are about this run.
    let ingest_text = std::fs::read_to_string(&ingest_log).unwrap();
    assert!(ingest_text.contains("ingest invocation"), "{ingest_text}");
    assert!(std::fs::read_to_string(&deliver_log)
        .unwrap()
        .contains("\"_aws\""));
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// At the default level (INFO), as deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_secret() {
    full_run_logs_nothing_secret(None).await;
}

/// At DEBUG, as an operator chasing a problem would run it
/// (`SECRETS_TEST_LOG_LEVEL` picks another level, e.g. `trace`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_no_secret_at_debug_level() {
    let level = std::env::var("SECRETS_TEST_LOG_LEVEL").unwrap_or_else(|_| "debug".into());
    full_run_logs_nothing_secret(Some(Box::leak(level.into_boxed_str()))).await;
}
