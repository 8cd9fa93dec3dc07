//! Payload formats and custom headers end to end, through the real
//! binaries: `settings` behind an emulated Function URL sets each webhook
//! (format, write-only headers), `deliver` runs a real SQS batch through the
//! Runtime API, and real receivers on 127.0.0.1 see the requests. Checked:
//! the exact request of every format (headers in order, body bytes), the
//! signature with PyPI `standardwebhooks`, the CloudEvents body with the
//! Python `cloudevents` SDK, a GitHub-API stand-in that only accepts a well
//! formed dispatch, and that header values never reach a GET answer or
//! either function's log. Needs `cargo build -p settings -p deliver` first.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alin_tests::{repo_root, Stack};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use devstack::function_url::FunctionUrl;
use devstack::receiver::{Behaviour, Receiver, RecordedRequest};
use devstack::runtime_api::{workspace_binary, LocalFunction};
use serde_json::{json, Value};

use crate::deliver_binary::{config, push};

const TIMEOUT: Duration = Duration::from_secs(30);
const REGISTRY: &str = "registry.test";
/// Our crates at debug, so a leak in any debug line would show.
const LOG_FILTER: &str = "info,deliver=debug,settings=debug,shared=debug";

/// The settings binary behind a Function URL, and the deliver binary, on
/// one stack; both log to files the tests read.
pub(crate) struct Services {
    pub stack: Stack,
    _settings: Arc<LocalFunction>,
    pub settings_url: FunctionUrl,
    pub settings_log: PathBuf,
    pub deliver: LocalFunction,
    pub deliver_log: PathBuf,
    pub http: reqwest::Client,
}

impl Services {
    pub async fn start(hint: &str) -> Services {
        Self::start_with(hint, &[]).await
    }

    /// Like [`Services::start`], with more environment for both functions.
    pub async fn start_with(hint: &str, extra: &[(&str, &str)]) -> Services {
        let stack = Stack::new(hint).await;
        let logs = repo_root().join(".devstack").join("logs");
        let settings_log = logs.join(format!("settings-{}.log", stack.table));
        let deliver_log = logs.join(format!("deliver-{}.log", stack.table));
        let mut env = stack.function_env();
        env.push(("ALLOW_PRIVATE_TARGETS".into(), "true".into()));
        env.push(("REGISTRY_HOST".into(), REGISTRY.into()));
        env.push(("RUST_LOG".into(), LOG_FILTER.into()));
        env.push(("RETRY_BASE_DELAY_SECS".into(), "1".into()));
        env.push(("DELIVERY_TIMEOUT_SECS".into(), "3".into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = Arc::new(
            LocalFunction::start(&binary("settings"), &env, &settings_log)
                .await
                .expect("settings starts")
                .with_timeout(TIMEOUT),
        );
        let settings_url = FunctionUrl::serve(settings.clone()).await.unwrap();
        let deliver = LocalFunction::start(&binary("deliver"), &env, &deliver_log)
            .await
            .expect("deliver starts")
            .with_timeout(TIMEOUT);
        Services {
            stack,
            _settings: settings,
            settings_url,
            settings_log,
            deliver,
            deliver_log,
            http: reqwest::Client::new(),
        }
    }

    /// A settings request; the answer's status and JSON (`null` when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.settings_url.url());
        let mut req = self
            .http
            .request(method.parse().unwrap(), url)
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        (status, value)
    }

    pub async fn put(&self, name: &str, body: Value) -> Value {
        let (status, config) = self
            .call("PUT", &format!("/repositories/{name}/webhook"), Some(body))
            .await;
        assert_eq!(status, 200, "{config}");
        config
    }

    /// Receives what is on the delivery queue and hands it to `deliver` as
    /// one SQS batch; the function's response.
    pub async fn deliver_queued(&self, expect: usize) -> Value {
        let mut msgs = Vec::new();
        // Retried jobs become visible again after their backoff (seconds).
        let until = std::time::Instant::now() + Duration::from_secs(15);
        while msgs.len() < expect && std::time::Instant::now() < until {
            msgs.extend(
                self.stack
                    .drain(&self.stack.queue_url, expect - msgs.len())
                    .await,
            );
            if msgs.len() < expect {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        assert_eq!(msgs.len(), expect, "jobs on the queue");
        let event = devstack::esm::event::event(&msgs, &self.stack.queue_arn);
        let inv = self.deliver.invoke(event, TIMEOUT).await.unwrap();
        inv.ok()
            .unwrap_or_else(|| panic!("function error: {:?}", inv.error()))
            .clone()
    }

    /// Both functions' logs so far.
    pub fn logs(&self) -> String {
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}\n{}", read(&self.settings_log), read(&self.deliver_log))
    }
}

/// Sends each body to the delivery queue as its own message.
pub(crate) async fn enqueue(stack: &Stack, bodies: &[String]) {
    for body in bodies {
        stack
            .sqs
            .send_message()
            .queue_url(&stack.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
}

/// The requests `rx` recorded for `path` (query excluded), in order.
pub(crate) fn requests_for(rx: &Receiver, path: &str) -> Vec<RecordedRequest> {
    rx.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// The project venv's Python (where the `cloudevents` SDK is installed).
fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv").join("bin").join("python");
    if python.is_file() {
        python
    } else {
        PathBuf::from("python3")
    }
}

fn binary(name: &str) -> PathBuf {
    let b = workspace_binary(name);
    assert!(
        b.is_file(),
        "{} is missing: run `cargo build -p {name}` first",
        b.display()
    );
    b
}

/// The received header names in order, without `host` (hyper adds it).
fn names(r: &RecordedRequest) -> Vec<&str> {
    r.headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "host")
        .collect()
}

/// The alin body this test's pushes produce at `r`'s timestamp.
fn alin_body(r: &RecordedRequest, repository: &str, tag: &str) -> String {
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    let when =
        shared::domain::time::rfc3339(time::OffsetDateTime::from_unix_timestamp(ts).unwrap());
    format!(
        r#"{{"image":"{REGISTRY}/{repository}:{tag}","image_size":126,"layers":["sha256:{d}"],"repository":"{REGISTRY}/{repository}","repository_size":4096,"event":"push","timestamp":"{when}"}}"#,
        d = "d".repeat(64)
    )
}

fn time_of(r: &RecordedRequest) -> String {
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    shared::domain::time::rfc3339(time::OffsetDateTime::from_unix_timestamp(ts).unwrap())
}

/// Parses a structured-mode CloudEvent with the Python `cloudevents` SDK;
/// its attributes and data as JSON.
fn cloudevent_with_python(headers: &[(String, String)], body: &[u8]) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
req = json.load(sys.stdin)
event = from_http_event(HTTPMessage(headers=req["headers"], body=req["body"].encode()))
print(json.dumps({"specversion": event.get_specversion(), "id": event.get_id(),
    "source": event.get_source(), "type": event.get_type(), "subject": event.get_subject(),
    "time": event.get_time().isoformat(), "datacontenttype": event.get_datacontenttype(),
    "data": event.get_data()}))
"#;
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(n, v)| (n.clone(), Value::from(v.as_str())))
        .collect();
    let input = json!({"headers": headers, "body": String::from_utf8_lossy(body)}).to_string();
    let mut child = std::process::Command::new(venv_python())
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the cloudevents SDK refused the event: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// GIVEN three webhooks set through the settings binary, one per format,
/// each with two custom headers
/// WHEN deliver sends a push to each
/// THEN every receiver gets its format's exact request (headers in order,
/// custom ones last in the order given, body bytes), signed over the bytes
/// sent (standardwebhooks verifies), the CloudEvent parses with the Python
/// SDK, and no header value appears in a GET answer or in either log.
#[tokio::test]
async fn each_format_sends_its_exact_request_with_custom_headers() {
    let s = Services::start("formats").await;
    let formats = ["alin", "github-dispatch", "cloudevents"];
    let mut receivers = Vec::new();
    for (i, format) in formats.iter().enumerate() {
        let rx = Receiver::start(Behaviour::ok()).await.unwrap();
        let name = format!("alice/app{i}");
        let token = format!("Bearer tok-{format}-Zq81x");
        let config = s
            .put(
                &name,
                json!({"url": rx.url("/hook?token=q1"), "format": format,
                       "headers": {"Authorization": token, "X-Trace": "trace-Vb27"}}),
            )
            .await;
        assert_eq!(config["format"], *format);
        assert_eq!(config["headers"], json!(["Authorization", "X-Trace"]));
        let (status, got) = s
            .call("GET", &format!("/repositories/{name}/webhook"), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(got, config);
        assert!(!got.to_string().contains("Zq81x") && !got.to_string().contains("Vb27"));
        enqueue(&s.stack, &[push(&format!("evt_f{i}"), &name, "1.0")]).await;
        receivers.push((name, rx));
    }
    let response = s.deliver_queued(3).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let custom = ["authorization", "x-trace"];
    let mut requests = Vec::new();
    for (i, (name, rx)) in receivers.iter().enumerate() {
        let reqs = rx.requests();
        assert_eq!(reqs.len(), 1, "{name}");
        let r = reqs[0].clone();
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/hook?token=q1");
        assert_eq!(r.header("webhook-id"), Some(format!("evt_f{i}").as_str()));
        assert_eq!(r.header("user-agent"), Some("Alin.io WebHook Handler"));
        assert_eq!(
            r.header("x-alin-webhook"),
            Some(format!("{name}:1.0").as_str())
        );
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer tok-{}-Zq81x", formats[i]).as_str())
        );
        assert_eq!(r.header("x-trace"), Some("trace-Vb27"));
        assert_eq!(r.header_all("content-type").len(), 1);
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        let secret = config(&s.stack, name).await.secret;
        alin_tests::verify_with_standardwebhooks(secret.expose(), &r.headers, &r.body_text())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        requests.push(r);
    }

    let alin = &requests[0];
    let mut want = vec![
        "user-agent",
        "accept-encoding",
        "accept",
        "connection",
        "x-alin-webhook",
        "content-length",
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ];
    want.extend(custom);
    assert_eq!(names(alin), want);
    assert_eq!(alin.header("accept"), Some("*/*"));
    assert_eq!(alin.header("content-type"), Some("application/json"));
    assert_eq!(alin.body_text(), alin_body(alin, "alice/app0", "1.0"));

    let gh = &requests[1];
    let mut want = vec![
        "user-agent",
        "accept-encoding",
        "accept",
        "x-github-api-version",
        "connection",
        "x-alin-webhook",
        "content-length",
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ];
    want.extend(custom);
    assert_eq!(names(gh), want);
    assert_eq!(gh.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(gh.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(gh.header("content-type"), Some("application/json"));
    assert_eq!(
        gh.body_text(),
        format!(
            r#"{{"event_type":"alin-push","client_payload":{}}}"#,
            alin_body(gh, "alice/app1", "1.0")
        )
    );

    let ce = &requests[2];
    assert_eq!(names(ce), names(alin));
    assert_eq!(ce.header("accept"), Some("*/*"));
    assert_eq!(
        ce.header("content-type"),
        Some("application/cloudevents+json")
    );
    let data = alin_body(ce, "alice/app2", "1.0");
    let when = time_of(ce);
    assert_eq!(
        ce.body_text(),
        format!(
            r#"{{"specversion":"1.0","id":"evt_f2","source":"https://{REGISTRY}/alice/app2","type":"io.alin.container.push","subject":"alice/app2:1.0","time":"{when}","datacontenttype":"application/json","data":{data}}}"#
        )
    );
    let parsed = cloudevent_with_python(&ce.headers, &ce.body);
    assert_eq!(parsed["specversion"], "1.0");
    assert_eq!(parsed["id"], "evt_f2");
    assert_eq!(parsed["source"], format!("https://{REGISTRY}/alice/app2"));
    assert_eq!(parsed["type"], "io.alin.container.push");
    assert_eq!(parsed["subject"], "alice/app2:1.0");
    assert_eq!(parsed["datacontenttype"], "application/json");
    assert_eq!(
        parsed["data"],
        serde_json::from_str::<Value>(&data).unwrap()
    );
    assert_eq!(parsed["time"], when.replace('Z', "+00:00"));

    for (name, _) in &receivers {
        assert_eq!(
            config(&s.stack, name).await.last_delivery.unwrap().outcome,
            "delivered"
        );
    }
    let logs = s.logs();
    assert!(
        logs.contains("settings request"),
        "the settings log is read"
    );
    assert!(
        logs.contains("\"attempt\"") || logs.contains("attempt"),
        "the deliver log is read"
    );
    assert!(
        !logs.contains("Zq81x") && !logs.contains("Vb27"),
        "a header value was logged"
    );
}

/// What the GitHub stand-in saw.
#[derive(Default)]
struct GitHubSeen {
    accepted: Vec<Value>,
    refused: Vec<u16>,
}

const GITHUB_TOKEN: &str = "github_pat_11ABCDEF0123456789_standin";

/// `POST /repos/{owner}/{repo}/dispatches` as GitHub answers it: 401
/// without the right bearer token, 415/422 for the wrong media type or
/// body shape, 204 when it would start the workflows.
async fn dispatches(
    State(seen): State<Arc<Mutex<GitHubSeen>>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let status = judge(&owner, &repo, &headers, &body);
    let mut seen = seen.lock().unwrap();
    match status {
        StatusCode::NO_CONTENT => seen
            .accepted
            .push(serde_json::from_slice(&body).unwrap_or(Value::Null)),
        other => seen.refused.push(other.as_u16()),
    }
    status
}

fn judge(owner: &str, repo: &str, headers: &HeaderMap, body: &[u8]) -> StatusCode {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if (owner, repo) != ("octo-org", "deploy") {
        return StatusCode::NOT_FOUND;
    }
    if header("authorization") != format!("Bearer {GITHUB_TOKEN}") {
        return StatusCode::UNAUTHORIZED;
    }
    if header("accept") != "application/vnd.github+json"
        || header("x-github-api-version") != "2022-11-28"
        || header("user-agent").is_empty()
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(body) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    let event_ok = b["event_type"]
        .as_str()
        .is_some_and(|t| !t.is_empty() && t.len() <= 100);
    let payload_ok = b
        .get("client_payload")
        .is_none_or(|p| p.as_object().is_some_and(|o| o.len() <= 10));
    let only_known = b.keys().all(|k| k == "event_type" || k == "client_payload");
    if event_ok && payload_ok && only_known {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// GIVEN a GitHub-API stand-in that accepts a dispatch only with the right
/// path, headers, token and body shape
/// WHEN one webhook has the token and another a wrong one
/// THEN the first push is accepted (204 → delivered) with its alin body as
/// `client_payload`, and the second is refused 401 like GitHub (a
/// non-retried failure).
#[tokio::test]
async fn github_dispatch_triggers_a_github_api_stand_in() {
    let seen = Arc::new(Mutex::new(GitHubSeen::default()));
    let app = Router::new()
        .route("/repos/{owner}/{repo}/dispatches", post(dispatches))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = Services::start("formats-gh").await;
    let url = format!("{api}/repos/octo-org/deploy/dispatches");
    s.put(
        "alice/app",
        json!({"url": url, "format": "github-dispatch",
               "headers": {"Authorization": format!("Bearer {GITHUB_TOKEN}")}}),
    )
    .await;
    s.put(
        "bob/app",
        json!({"url": url, "format": "github-dispatch",
               "headers": {"Authorization": "Bearer wrong-token"}}),
    )
    .await;
    enqueue(
        &s.stack,
        &[
            push("evt_gh1", "alice/app", "2.0"),
            push("evt_gh2", "bob/app", "2.0"),
        ],
    )
    .await;
    let response = s.deliver_queued(2).await;
    assert_eq!(
        response["batchItemFailures"],
        json!([]),
        "a 401 is not retried"
    );

    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.refused, [401]);
        assert_eq!(seen.accepted.len(), 1);
        let dispatch = &seen.accepted[0];
        assert_eq!(dispatch["event_type"], "alin-push");
        assert_eq!(
            dispatch["client_payload"]["image"],
            format!("{REGISTRY}/alice/app:2.0")
        );
        assert_eq!(dispatch["client_payload"]["event"], "push");
    }
    let alice = config(&s.stack, "alice/app").await.last_delivery.unwrap();
    assert_eq!(
        (alice.outcome.as_str(), alice.status),
        ("delivered", Some(204))
    );
    let bob = config(&s.stack, "bob/app").await;
    assert_eq!(bob.last_delivery.unwrap().status, Some(401));
    assert_eq!(bob.consecutive_failures, 1);
    assert!(!s.logs().contains(GITHUB_TOKEN));
}

/// GIVEN a webhook with custom headers
/// WHEN its URL is replaced without "headers", then with `"headers": {}`
/// THEN the first replacement still sends them and the second sends none.
#[tokio::test]
async fn replacing_the_url_keeps_the_headers_until_cleared() {
    let s = Services::start("formats-keep").await;
    let rx = Receiver::start(Behaviour::ok()).await.unwrap();
    s.put(
        "alice/app",
        json!({"url": rx.url("/a"), "headers": {"X-Api-Key": "key-Lm40"}}),
    )
    .await;
    let config = s.put("alice/app", json!({"url": rx.url("/b")})).await;
    assert_eq!(config["headers"], json!(["X-Api-Key"]));
    assert_eq!(config["format"], "alin");
    enqueue(&s.stack, &[push("evt_k1", "alice/app", "1.0")]).await;
    s.deliver_queued(1).await;
    let config = s
        .put("alice/app", json!({"url": rx.url("/c"), "headers": {}}))
        .await;
    assert_eq!(config["headers"], json!([]));
    enqueue(&s.stack, &[push("evt_k2", "alice/app", "1.1")]).await;
    s.deliver_queued(1).await;

    let b = requests_for(&rx, "/b");
    let c = requests_for(&rx, "/c");
    assert_eq!((b.len(), c.len()), (1, 1));
    assert_eq!(b[0].header("x-api-key"), Some("key-Lm40"));
    assert_eq!(c[0].header("x-api-key"), None);
    assert_eq!(names(&c[0]).last(), Some(&"webhook-signature"));
    assert!(!s.logs().contains("Lm40"));
}
