//! The settings API through `settings::Settings` against moto with the real
//! DynamoDB store and SQS queue: every route, every error (client errors
//! refused before any AWS call; store and queue faults as 503 or 500), and
//! the address rule holding at set time and again at delivery time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use alin_tests::Stack;
use devstack::aws_proxy::{Fault, FaultKind};
use devstack::receiver::{Behaviour, Receiver};
use serde_json::{json, Value};
use settings::Settings;
use shared::adapters::{DynamoStore, SqsQueue};
use shared::domain::{DeliveryJob, JobKind, RepositoryName};
use shared::function_url::HttpResponse;
use shared::net::{webhook_client, ClientOptions, NameLookup, StaticLookup};
use shared::webhook::WebhookSecret;

const PUBLIC_IP: &str = "93.184.215.14";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lookup() -> StaticLookup {
    StaticLookup::new()
        .with("ci.example.com", &[ip(PUBLIC_IP)])
        .with("other.example.com", &[ip(PUBLIC_IP)])
        .with("internal.example.test", &[ip("10.1.2.3")])
        .with("meta.example.test", &[ip("169.254.169.254")])
}

fn settings_for(stack: &Stack) -> Settings {
    Settings::new(
        Arc::new(stack.store()),
        Arc::new(stack.queue()),
        Arc::new(lookup()),
        false,
    )
}

fn event(method: &str, path: &str, body: Option<&str>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "requestId": "it-request"
        },
        "body": body,
        "isBase64Encoded": false
    })
}

async fn call(s: &Settings, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
    let r = s.handle_event(event(method, path, body)).await;
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "{method} {path}"
    );
    r
}

fn put_body(url: &str) -> String {
    json!({ "url": url }).to_string()
}

#[track_caller]
fn assert_error(r: &HttpResponse, status: u16, reason_part: &str) {
    assert_eq!(r.status_code, status, "{:?}", r.body);
    let reason = r.body_json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains(reason_part),
        "reason {reason:?} should mention {reason_part:?}"
    );
}

#[tokio::test]
async fn every_route_against_dynamodb_and_sqs() {
    let stack = Stack::new("settings-routes").await;
    let api = settings_for(&stack);
    let name = "alice/team/app";
    let base = format!("/repositories/{name}/webhook");

    // PUT creates.
    let created = call(
        &api,
        "PUT",
        &base,
        Some(&put_body("https://ci.example.com/h?token=abc")),
    )
    .await;
    assert_eq!(created.status_code, 200, "{:?}", created.body);
    let config = created.body_json();
    let keys: Vec<&str> = config
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        settings::handler::CONFIG_KEYS,
        "contract keys in contract order"
    );
    assert_eq!(config["repository"], name);
    assert_eq!(config["url"], "https://ci.example.com/h?token=abc");
    assert_eq!(config["enabled"], true);
    assert_eq!(config["consecutive_failures"], 0);
    assert_eq!(config["disabled_at"], Value::Null);
    assert_eq!(config["disabled_reason"], Value::Null);
    assert_eq!(config["last_delivery"], Value::Null);
    let secret = config["secret"].as_str().unwrap().to_owned();
    WebhookSecret::parse(&secret).expect("whsec_ + base64 of 32 bytes");
    assert_eq!(secret.len(), 6 + 44);

    // GET reads it back from DynamoDB, byte for byte.
    let got = call(&api, "GET", &base, None).await;
    assert_eq!(got.status_code, 200);
    assert_eq!(got.body, created.body);
    // The percent-encoded name is the same repository.
    let encoded = call(
        &api,
        "GET",
        "/repositories/alice%2Fteam%2Fapp/webhook",
        None,
    )
    .await;
    assert_eq!(encoded.body, created.body);

    // PUT replaces the URL and keeps the secret.
    let replaced = call(
        &api,
        "PUT",
        &base,
        Some(&put_body("https://other.example.com/new")),
    )
    .await;
    assert_eq!(replaced.status_code, 200);
    let replaced = replaced.body_json();
    assert_eq!(replaced["url"], "https://other.example.com/new");
    assert_eq!(replaced["secret"], secret.as_str());
    assert_eq!(replaced["created_at"], config["created_at"]);

    // Enable answers the config, enabled with a count of 0.
    let enabled = call(&api, "POST", &format!("{base}/enable"), None).await;
    assert_eq!(enabled.status_code, 200);
    assert_eq!(enabled.body_json()["enabled"], true);
    assert_eq!(enabled.body_json()["consecutive_failures"], 0);
    assert_eq!(enabled.body_json()["secret"], secret.as_str());

    // Test queues a ping on the real delivery queue.
    stack.proxy.reset_counts();
    let tested = call(&api, "POST", &format!("{base}/test"), None).await;
    assert_eq!(tested.status_code, 202, "{:?}", tested.body);
    let answer = tested.body_json();
    assert_eq!(answer["queued"], true);
    assert_eq!(answer["event"], "ping");
    assert_eq!(answer["repository"], name);
    assert_eq!(answer["enabled"], true);
    let webhook_id = answer["webhook_id"].as_str().unwrap().to_owned();
    assert_eq!(
        stack.proxy.count("dynamodb:GetItem"),
        1,
        "{:?}",
        stack.proxy.counts()
    );
    assert_eq!(
        stack.proxy.count("sqs:SendMessageBatch"),
        1,
        "{:?}",
        stack.proxy.counts()
    );
    let messages = stack.drain(&stack.queue_url, 10).await;
    assert_eq!(messages.len(), 1);
    let job = DeliveryJob::parse(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        job,
        DeliveryJob::ping(RepositoryName::parse(name).unwrap(), 0, webhook_id)
    );
    assert_eq!(job.kind, JobKind::Ping);
    assert_eq!(job.tag.as_str(), "ping");

    // DELETE, then every route is a 404.
    let deleted = call(&api, "DELETE", &base, None).await;
    assert_eq!(deleted.status_code, 204);
    assert_eq!(deleted.body, None);
    assert_error(&call(&api, "GET", &base, None).await, 404, "has no webhook");
    assert_error(
        &call(&api, "DELETE", &base, None).await,
        404,
        "has no webhook",
    );
    assert_error(
        &call(&api, "POST", &format!("{base}/enable"), None).await,
        404,
        "has no webhook",
    );
    assert_error(
        &call(&api, "POST", &format!("{base}/test"), None).await,
        404,
        "has no webhook",
    );
    assert!(stack.drain(&stack.queue_url, 10).await.is_empty());

    // Creating again makes a new secret.
    let again = call(
        &api,
        "PUT",
        &base,
        Some(&put_body("https://ci.example.com/h")),
    )
    .await;
    assert_eq!(again.status_code, 200);
    assert_ne!(again.body_json()["secret"], secret.as_str());
}

#[tokio::test]
async fn client_errors_are_answered_without_touching_aws() {
    let stack = Stack::new("settings-errors").await;
    let api = settings_for(&stack);
    let base = "/repositories/alice/app/webhook";
    let big = format!(
        "{{\"url\":\"https://ci.example.com/\"}}{}",
        " ".repeat(16 * 1024)
    );
    let long_url = format!("https://ci.example.com/{}", "a".repeat(2048));
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        ("GET", "/".into(), None, 404, "no such resource"),
        (
            "GET",
            "/repositories/alice/app".into(),
            None,
            404,
            "no such resource",
        ),
        ("GET", format!("{base}/"), None, 404, "no such resource"),
        ("POST", base.into(), None, 405, "allowed: GET, PUT, DELETE"),
        ("GET", format!("{base}/test"), None, 405, "allowed: POST"),
        ("PUT", base.into(), Some(big), 413, "larger than 16384"),
        ("PUT", base.into(), Some("{".into()), 400, "not valid JSON"),
        (
            "PUT",
            base.into(),
            Some("[]".into()),
            400,
            "must be a JSON object",
        ),
        ("PUT", base.into(), Some("{}".into()), 400, "has no \"url\""),
        (
            "PUT",
            base.into(),
            Some("{\"url\":1}".into()),
            400,
            "must be a string",
        ),
        (
            "PUT",
            base.into(),
            Some("{\"url\":\"https://ci.example.com\",\"x\":1}".into()),
            400,
            "unknown field \"x\"",
        ),
        (
            "GET",
            "/repositories/app/webhook".into(),
            None,
            400,
            "<username>/<repository>",
        ),
        (
            "GET",
            "/repositories/Alice/app/webhook".into(),
            None,
            400,
            "is not valid",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("ftp://ci.example.com/")),
            400,
            "scheme",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("https://:80/")),
            400,
            "not a valid URL",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://./")),
            400,
            "no host",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("https://u:p@ci.example.com/")),
            400,
            "credentials",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body(&long_url)),
            400,
            "longer than 2048",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://127.0.0.1/")),
            400,
            "loopback",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://192.168.1.1/")),
            400,
            "private",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://169.254.169.254/")),
            400,
            "link-local",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://100.64.0.1/")),
            400,
            "CGNAT",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://224.0.0.1/")),
            400,
            "multicast",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://0.0.0.0/")),
            400,
            "unspecified",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://240.0.0.1/")),
            400,
            "reserved",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("http://[::ffff:10.0.0.1]/")),
            400,
            "IPv4-mapped",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("https://internal.example.test/")),
            400,
            "internal.example.test is a private address",
        ),
        (
            "PUT",
            base.into(),
            Some(put_body("https://meta.example.test/")),
            400,
            "link-local",
        ),
    ];
    for (method, path, body, status, reason) in &cases {
        let r = call(&api, method, path, body.as_deref()).await;
        assert_error(&r, *status, reason);
        if *status == 405 {
            assert!(r.headers.contains_key("allow"));
        }
    }
    let r = api.handle_event(json!({"Records": [{"body": "{}"}]})).await;
    assert_error(&r, 400, "not a Lambda Function URL");

    assert_eq!(
        stack.proxy.counts().len(),
        0,
        "refused before any AWS call: {:?}",
        stack.proxy.counts()
    );
    let items = stack
        .dynamodb
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    assert_eq!(items.count(), 0);
}

#[tokio::test]
async fn retryable_store_failures_are_503_and_permanent_ones_500() {
    let stack = Stack::new("settings-faults").await;
    // One attempt per SDK call, so the faults are answered at once (the
    // mapping does not depend on how often the SDK retried first).
    let once = aws_config::retry::RetryConfig::standard().with_max_attempts(1);
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
            .retry_config(once.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.sdk)
            .retry_config(once)
            .build(),
    );
    let api = Settings::new(
        Arc::new(DynamoStore::new(dynamodb.clone(), &stack.table)),
        Arc::new(SqsQueue::new(sqs.clone(), &stack.queue_url)),
        Arc::new(lookup()),
        false,
    );
    let base = "/repositories/alice/app/webhook";
    assert_eq!(
        call(
            &api,
            "PUT",
            base,
            Some(&put_body("https://ci.example.com/"))
        )
        .await
        .status_code,
        200
    );

    // DynamoDB throttles every call: the SDK retries, then it is a 503.
    stack.proxy.set_faults(vec![Fault {
        operation_prefix: "dynamodb:".into(),
        kind: FaultKind::Throttle,
        every: 1,
    }]);
    for (method, path) in [
        ("GET", base.to_owned()),
        ("DELETE", base.to_owned()),
        ("POST", format!("{base}/enable")),
        ("POST", format!("{base}/test")),
    ] {
        let r = call(&api, method, &path, None).await;
        assert_error(&r, 503, "try again");
        assert_eq!(r.headers["retry-after"], "1");
    }
    let r = call(
        &api,
        "PUT",
        base,
        Some(&put_body("https://other.example.com/")),
    )
    .await;
    assert_error(&r, 503, "try again");
    assert!(stack.proxy.injected() > 0);

    // SQS failing every send: the test delivery is a 503 and nothing is queued.
    stack.proxy.set_faults(vec![Fault {
        operation_prefix: "sqs:".into(),
        kind: FaultKind::ServerError,
        every: 1,
    }]);
    let r = call(&api, "POST", &format!("{base}/test"), None).await;
    assert_error(&r, 503, "try again");
    stack.proxy.set_faults(Vec::new());
    assert!(stack.drain(&stack.queue_url, 10).await.is_empty());
    // The webhook survived the faults untouched.
    let r = call(&api, "GET", base, None).await;
    assert_eq!(r.body_json()["url"], "https://ci.example.com/");

    // A table that does not exist is permanent: 500, and internals stay in the log.
    let broken = Settings::new(
        Arc::new(DynamoStore::new(dynamodb, "no-such-table")),
        Arc::new(SqsQueue::new(sqs, &stack.queue_url)),
        Arc::new(lookup()),
        false,
    );
    let r = call(&broken, "GET", base, None).await;
    assert_error(&r, 500, "internal error");
    assert!(!r.body.unwrap().contains("no-such-table"));
}

#[tokio::test]
async fn a_url_accepted_at_set_time_is_refused_at_delivery_once_it_resolves_inside() {
    let stack = Stack::new("settings-rebind").await;
    let receiver = Receiver::start(Behaviour::ok()).await.unwrap();
    let port = receiver.addr().port();
    let url = format!("http://hooks.example.test:{port}/x");

    // GIVEN hooks.example.test resolves to a public address at set time
    let at_set_time = StaticLookup::new().with("hooks.example.test", &[ip(PUBLIC_IP)]);
    let api = Settings::new(
        Arc::new(stack.store()),
        Arc::new(stack.queue()),
        Arc::new(at_set_time),
        false,
    );
    let r = call(
        &api,
        "PUT",
        "/repositories/alice/app/webhook",
        Some(&put_body(&url)),
    )
    .await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    assert_eq!(r.body_json()["url"], url.as_str());

    // WHEN it later resolves to 127.0.0.1, the delivery client (allow_private=false)
    let now_inside: Arc<dyn NameLookup> =
        Arc::new(StaticLookup::new().with("hooks.example.test", &[ip("127.0.0.1")]));
    let client = |allow_private| {
        webhook_client(ClientOptions {
            timeout: Duration::from_secs(5),
            allow_private,
            lookup: now_inside.clone(),
            max_idle_per_host: 1,
        })
        .unwrap()
    };
    let err = client(false)
        .post(&url)
        .body("{}")
        .send()
        .await
        .unwrap_err();
    // THEN refuses before connecting, naming the rule, and the receiver got nothing
    assert!(err.is_connect(), "{err:?}");
    let detail = format!("{err:?}").to_lowercase();
    assert!(
        detail.contains("forbidden") && detail.contains("loopback"),
        "{detail}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.count(), 0);

    // ... although the receiver is there and answers when the rule is lifted.
    let ok = client(true).post(&url).body("{}").send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(receiver.count(), 1);

    // And the settings API asked now refuses the same URL.
    let api_now = Settings::new(
        Arc::new(stack.store()),
        Arc::new(stack.queue()),
        now_inside.clone(),
        false,
    );
    let r = call(
        &api_now,
        "PUT",
        "/repositories/alice/app/webhook",
        Some(&put_body(&url)),
    )
    .await;
    assert_error(&r, 400, "hooks.example.test is a loopback address");
}
