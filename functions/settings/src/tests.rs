//! Unit tests of the settings API through `Settings::handle_event`, with the
//! in-memory store and queue: routing, every error, and each operation's
//! effect on the store and the queue.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{BatchOutcome, LastDelivery, OutcomeKind, RepoRecord, RepositoryName};
use shared::function_url::HttpResponse;
use shared::net::{webhook_client, ClientOptions, NameLookup, StaticLookup};
use shared::ports::{LayerSize, StoreError, WebhookStore};
use shared::webhook::WebhookSecret;

use crate::handler::CONFIG_KEYS;
use crate::Settings;

const PUBLIC_IP: &str = "93.184.215.14";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Every name the tests use resolves without the network.
fn lookup() -> StaticLookup {
    StaticLookup::new()
        .with("ci.example.com", &[ip(PUBLIC_IP)])
        .with("hooks.example.test", &[ip(PUBLIC_IP)])
        .with("other.example.com", &[ip("2606:4700::1111")])
        .with("nothing.example.test", &[])
        .with("internal.example.test", &[ip("10.0.0.5")])
        .with("loop.example.test", &[ip("127.0.0.1")])
        .with("meta.example.test", &[ip("169.254.169.254")])
        .with("mixed.example.test", &[ip(PUBLIC_IP), ip("192.168.1.10")])
        .with("v6local.example.test", &[ip("fd00::1")])
        .with("cgnat.example.test", &[ip("100.64.1.1")])
}

struct App {
    settings: Settings,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
}

fn app_with(lookup: impl NameLookup, allow_private: bool) -> App {
    let store = Arc::new(MemoryStore::default());
    let queue = Arc::new(MemoryQueue::default());
    let settings = Settings::new(
        store.clone(),
        queue.clone(),
        Arc::new(lookup),
        allow_private,
    );
    App {
        settings,
        store,
        queue,
    }
}

fn app() -> App {
    app_with(lookup(), false)
}

fn event(method: &str, path: &str, body: Option<&str>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "accept": "application/json"},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "requestId": "test-request"
        },
        "body": body,
        "isBase64Encoded": false
    })
}

fn put_body(url: &str) -> String {
    json!({ "url": url }).to_string()
}

impl App {
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        let r = self.settings.handle_event(event(method, path, body)).await;
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{method} {path}: every answer declares JSON"
        );
        r
    }

    async fn put(&self, name: &str, url: &str) -> HttpResponse {
        let path = format!("/repositories/{name}/webhook");
        self.call("PUT", &path, Some(&put_body(url))).await
    }

    async fn record(&self, name: &str) -> Option<RepoRecord> {
        self.store
            .get(&RepositoryName::parse(name).unwrap())
            .await
            .unwrap()
    }
}

fn error_of(r: &HttpResponse) -> String {
    r.body_json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error reason in {:?}", r.body))
        .to_owned()
}

#[track_caller]
fn assert_error(r: &HttpResponse, status: u16, reason_part: &str) {
    assert_eq!(r.status_code, status, "{:?}", r.body);
    let reason = error_of(r);
    assert!(
        reason.contains(reason_part),
        "reason {reason:?} should mention {reason_part:?}"
    );
}

// ------------------------------------------------------------------ routing

#[tokio::test]
async fn unknown_routes_are_404_json() {
    let app = app();
    for (method, path) in [
        ("GET", "/"),
        ("GET", ""),
        ("GET", "/repositories"),
        ("GET", "/repositories/alice/app"),
        ("GET", "/repositories/alice/app/webhook/"),
        ("GET", "/repositories/alice/app/webhooks"),
        ("POST", "/repositories/alice/app/webhook/ping"),
        ("POST", "/repositories/alice/app/webhook%2Ftest"),
        ("GET", "/v1/repositories/alice/app/webhook"),
        ("PUT", "/webhook"),
    ] {
        let r = app.call(method, path, None).await;
        assert_error(&r, 404, "no such resource");
    }
}

#[tokio::test]
async fn wrong_methods_on_known_routes_are_405_with_allow() {
    let app = app();
    for (method, path, allow) in [
        (
            "POST",
            "/repositories/alice/app/webhook",
            "GET, PUT, DELETE",
        ),
        (
            "PATCH",
            "/repositories/alice/app/webhook",
            "GET, PUT, DELETE",
        ),
        (
            "HEAD",
            "/repositories/alice/app/webhook",
            "GET, PUT, DELETE",
        ),
        (
            "OPTIONS",
            "/repositories/alice/app/webhook",
            "GET, PUT, DELETE",
        ),
        ("get", "/repositories/alice/app/webhook", "GET, PUT, DELETE"),
        ("GET", "/repositories/alice/app/webhook/enable", "POST"),
        ("PUT", "/repositories/alice/app/webhook/enable", "POST"),
        ("GET", "/repositories/alice/app/webhook/test", "POST"),
        ("DELETE", "/repositories/alice/app/webhook/test", "POST"),
    ] {
        let r = app.call(method, path, None).await;
        assert_error(&r, 405, "is not allowed");
        assert_eq!(r.headers["allow"], allow, "{method} {path}");
    }
    // The method is checked before the name: a 405 even for a bad name.
    let r = app.call("POST", "/repositories/BAD/webhook", None).await;
    assert_eq!(r.status_code, 405);
}

#[tokio::test]
async fn bodies_over_16_kib_are_413() {
    let app = app();
    let path = "/repositories/alice/app/webhook";
    // Exactly 16 KiB is read (and refused only for what it says).
    let url = format!("https://ci.example.com/{}", "a".repeat(100));
    let padded = format!("{{\"url\":\"{url}\"}}{}", " ".repeat(16 * 1024));
    let exact = &padded[..16 * 1024];
    assert_eq!(app.call("PUT", path, Some(exact)).await.status_code, 200);

    let over = format!("{exact} ");
    assert_error(
        &app.call("PUT", path, Some(&over)).await,
        413,
        "larger than 16384 bytes",
    );
    // Any route refuses a huge body, and base64 bodies are measured decoded.
    assert_eq!(
        app.call("POST", "/repositories/alice/app/webhook/test", Some(&over))
            .await
            .status_code,
        413
    );
    let mut e = event("PUT", path, None);
    e["isBase64Encoded"] = json!(true);
    e["body"] = json!(base64_of(&vec![b' '; 16 * 1024 + 1]));
    let r = app.settings.handle_event(e).await;
    assert_error(&r, 413, "larger than");
    assert!(app.queue.jobs().is_empty());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn base64_bodies_are_decoded() {
    let app = app();
    let mut e = event("PUT", "/repositories/alice/app/webhook", None);
    e["isBase64Encoded"] = json!(true);
    e["body"] = json!(base64_of(put_body("https://ci.example.com/b64").as_bytes()));
    let r = app.settings.handle_event(e.clone()).await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    assert_eq!(r.body_json()["url"], "https://ci.example.com/b64");

    e["body"] = json!("not base64 ***");
    assert_error(&app.settings.handle_event(e).await, 400, "not valid base64");
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_reason() {
    let app = app();
    let path = "/repositories/alice/app/webhook";
    for (body, reason) in [
        (None, "request body is empty"),
        (Some(""), "request body is empty"),
        (Some("  \n"), "request body is empty"),
        (Some("{"), "not valid JSON"),
        (
            Some("{\"url\": \"https://ci.example.com\",}"),
            "not valid JSON",
        ),
        (Some("url=https://ci.example.com"), "not valid JSON"),
        (Some("\"https://ci.example.com\""), "must be a JSON object"),
        (
            Some("[\"https://ci.example.com\"]"),
            "must be a JSON object",
        ),
        (Some("null"), "must be a JSON object"),
        (Some("{}"), "has no \"url\""),
        (
            Some("{\"URL\": \"https://ci.example.com\"}"),
            "unknown field \"URL\"",
        ),
        (Some("{\"url\": 42}"), "\"url\" must be a string"),
        (Some("{\"url\": null}"), "\"url\" must be a string"),
        (
            Some("{\"url\": [\"https://ci.example.com\"]}"),
            "\"url\" must be a string",
        ),
        (
            Some("{\"url\": \"https://ci.example.com\", \"enabled\": false}"),
            "unknown field \"enabled\"",
        ),
        (
            Some("{\"url\": \"https://ci.example.com\", \"secret\": \"whsec_x\"}"),
            "unknown field \"secret\"",
        ),
    ] {
        let r = app.call("PUT", path, body).await;
        assert_error(&r, 400, reason);
    }
    assert!(
        app.record("alice/app").await.is_none(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn bad_repository_names_are_400_with_the_reason() {
    let app = app();
    for (name, reason) in [
        ("app", "must be <username>/<repository>"),
        ("Alice/app", "is not valid"),
        ("alice/App", "is not valid"),
        ("alice//app", "is not valid"),
        ("alice/app%20x", "is not valid"),
        ("alice/a..b", "is not valid"),
        ("alice/%zz", "invalid percent-escape"),
        ("alice%252Fapp", "\"alice%2Fapp\" is not valid"),
        ("", "repository name is empty"),
    ] {
        let path = format!("/repositories/{name}/webhook");
        for method in ["GET", "DELETE"] {
            assert_error(&app.call(method, &path, None).await, 400, reason);
        }
        let r = app
            .call("PUT", &path, Some(&put_body("https://ci.example.com/")))
            .await;
        assert_error(&r, 400, reason);
        for action in ["enable", "test"] {
            let r = app.call("POST", &format!("{path}/{action}"), None).await;
            assert_error(&r, 400, reason);
        }
    }
    let long = format!("alice/{}", "a".repeat(300));
    let r = app
        .call("GET", &format!("/repositories/{long}/webhook"), None)
        .await;
    assert_error(&r, 400, "longer than 255");
}

#[tokio::test]
async fn each_bad_url_class_is_400_with_the_rule_that_failed() {
    let app = app();
    let long = format!("https://ci.example.com/{}", "a".repeat(2048));
    for (url, reason) in [
        ("ftp://ci.example.com/hook", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("ci.example.com/hook", "not a valid URL"),
        ("", "not a valid URL"),
        ("http://", "not a valid URL"),
        ("http://./", "url has no host"),
        (
            "http://user:pw@ci.example.com/",
            "must not contain credentials",
        ),
        (
            "http://token@ci.example.com/",
            "must not contain credentials",
        ),
        (long.as_str(), "longer than 2048 characters"),
        ("http://localhost:8080/", "loopback"),
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://192.0.2.10/", "reserved"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
    ] {
        let r = app.put("alice/app", url).await;
        assert_error(&r, 400, reason);
        assert!(error_of(&r).starts_with("url "), "{}", error_of(&r));
    }
    assert!(
        app.record("alice/app").await.is_none(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn names_resolving_to_forbidden_addresses_are_refused() {
    let app = app();
    for (host, class) in [
        ("internal.example.test", "private"),
        ("loop.example.test", "loopback"),
        ("meta.example.test", "link-local"),
        ("mixed.example.test", "private"),
        ("v6local.example.test", "private"),
        ("cgnat.example.test", "CGNAT"),
    ] {
        let r = app.put("alice/app", &format!("https://{host}/hook")).await;
        assert_error(&r, 400, &format!("url host {host} is a {class} address"));
    }
    assert!(app.record("alice/app").await.is_none());
    // Public names, and names that resolve to nothing, are accepted.
    for url in [
        "https://ci.example.com/hook?token=abc",
        "https://other.example.com/hook",
        "https://nothing.example.test/hook",
    ] {
        assert_eq!(app.put("alice/app", url).await.status_code, 200, "{url}");
    }
}

/// A resolver with no answers at all: the name "does not exist (yet)".
struct NoSuchName;

#[async_trait]
impl NameLookup for NoSuchName {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host}: no such name"),
        ))
    }
}

/// A resolver that never answers.
struct Hangs;

#[async_trait]
impl NameLookup for Hangs {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<SocketAddr>> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn names_that_do_not_resolve_are_accepted_for_delivery_to_check() {
    let app = app_with(NoSuchName, false);
    let r = app
        .put("alice/app", "https://not-yet.example.com/hook")
        .await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    // Literal addresses are still refused without any lookup.
    assert_error(
        &app.put("alice/app", "http://10.0.0.1/").await,
        400,
        "private",
    );

    let app = app_with(Hangs, false);
    let settings = app
        .settings
        .clone()
        .with_resolve_timeout(Duration::from_millis(50));
    let r = settings
        .handle_event(event(
            "PUT",
            "/repositories/alice/app/webhook",
            Some(&put_body("https://slow.example.com/hook")),
        ))
        .await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
}

#[tokio::test]
async fn allow_private_targets_lifts_only_the_address_rule() {
    let app = app_with(lookup(), true);
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://internal.example.test/hook",
        "http://[::1]/",
    ] {
        assert_eq!(app.put("alice/app", url).await.status_code, 200, "{url}");
    }
    assert_error(
        &app.put("alice/app", "ftp://127.0.0.1/").await,
        400,
        "scheme",
    );
    assert_error(
        &app.put("alice/app", "http://a:b@127.0.0.1/").await,
        400,
        "credentials",
    );
}

// --------------------------------------------------------------- operations

#[tokio::test]
async fn put_answers_the_contract_config_in_contract_order() {
    let app = app();
    let r = app
        .put("alice/app", "https://ci.example.com/hooks/alin?token=abc")
        .await;
    assert_eq!(r.status_code, 200);
    let config = r.body_json();
    let keys: Vec<&str> = config
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys, CONFIG_KEYS,
        "exactly the contract's keys, in its order"
    );
    // The body text itself is in the contract's order.
    let body = r.body.as_deref().unwrap();
    let positions: Vec<usize> = CONFIG_KEYS
        .iter()
        .map(|k| body.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{body}");

    assert_eq!(config["repository"], "alice/app");
    assert_eq!(config["url"], "https://ci.example.com/hooks/alin?token=abc");
    assert_eq!(config["enabled"], true);
    assert_eq!(config["consecutive_failures"], 0);
    assert_eq!(config["disabled_at"], Value::Null);
    assert_eq!(config["disabled_reason"], Value::Null);
    assert_eq!(config["last_delivery"], Value::Null);
    let created = config["created_at"].as_str().unwrap();
    assert!(
        shared::domain::time::parse_rfc3339(created).is_some(),
        "{created}"
    );
    assert_eq!(config["updated_at"], config["created_at"]);
    let secret = config["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let parsed = WebhookSecret::parse(secret).unwrap();
    assert_eq!(parsed.expose(), secret);
    assert_eq!(secret.len(), "whsec_".len() + 44, "base64 of 32 bytes");

    // GET answers the same document.
    let got = app
        .call("GET", "/repositories/alice/app/webhook", None)
        .await;
    assert_eq!(got.status_code, 200);
    assert_eq!(got.body, r.body);
}

#[tokio::test]
async fn secret_is_kept_on_replace_and_new_after_delete_and_create() {
    let app = app();
    let first = app
        .put("alice/app", "https://ci.example.com/one")
        .await
        .body_json();
    let replaced = app
        .put("alice/app", "https://other.example.com/two")
        .await
        .body_json();
    assert_eq!(replaced["url"], "https://other.example.com/two");
    assert_eq!(
        replaced["secret"], first["secret"],
        "replacing keeps the secret"
    );
    assert_eq!(replaced["created_at"], first["created_at"]);

    let del = app
        .call("DELETE", "/repositories/alice/app/webhook", None)
        .await;
    assert_eq!(del.status_code, 204);
    assert_eq!(del.body, None);
    let gone = app
        .call("GET", "/repositories/alice/app/webhook", None)
        .await;
    assert_error(&gone, 404, "repository alice/app has no webhook");

    let recreated = app
        .put("alice/app", "https://ci.example.com/one")
        .await
        .body_json();
    assert_ne!(
        recreated["secret"], first["secret"],
        "a new webhook gets a new secret"
    );
    assert!(recreated["secret"].as_str().unwrap().starts_with("whsec_"));
}

#[tokio::test]
async fn put_resets_a_disabled_webhook() {
    let app = app();
    app.put("alice/app", "https://ci.example.com/one").await;
    disable(&app, "alice/app").await;
    let r = app
        .put("alice/app", "https://ci.example.com/two")
        .await
        .body_json();
    assert_eq!(r["enabled"], true);
    assert_eq!(r["consecutive_failures"], 0);
    assert_eq!(r["disabled_at"], Value::Null);
    assert_eq!(r["disabled_reason"], Value::Null);
}

#[tokio::test]
async fn missing_webhooks_are_404_on_every_route() {
    let app = app();
    let base = "/repositories/alice/app/webhook";
    assert_error(&app.call("GET", base, None).await, 404, "has no webhook");
    assert_error(&app.call("DELETE", base, None).await, 404, "has no webhook");
    assert_error(
        &app.call("POST", &format!("{base}/enable"), None).await,
        404,
        "has no webhook",
    );
    assert_error(
        &app.call("POST", &format!("{base}/test"), None).await,
        404,
        "has no webhook",
    );
    assert!(app.queue.jobs().is_empty());
    // A repository known only for its size still has no webhook.
    let repo = RepositoryName::parse("alice/app").unwrap();
    app.store
        .add_layers(
            &repo,
            &[LayerSize {
                digest: format!("sha256:{}", "a".repeat(64)),
                size: 10,
            }],
        )
        .await
        .unwrap();
    assert_error(&app.call("GET", base, None).await, 404, "has no webhook");
    assert_error(
        &app.call("POST", &format!("{base}/test"), None).await,
        404,
        "has no webhook",
    );
}

#[tokio::test]
async fn multi_slash_names_work_on_every_route() {
    let app = app();
    let name = "alice/team/sub/app";
    let base = format!("/repositories/{name}/webhook");
    let r = app.put(name, "https://ci.example.com/deep").await;
    assert_eq!(r.status_code, 200);
    assert_eq!(r.body_json()["repository"], name);
    assert_eq!(
        app.call("GET", &base, None).await.body_json()["repository"],
        name
    );
    // The encoded form names the same repository.
    let encoded = "/repositories/alice%2Fteam%2Fsub%2Fapp/webhook";
    assert_eq!(
        app.call("GET", encoded, None).await.body_json()["repository"],
        name
    );
    assert_eq!(
        app.call("POST", &format!("{base}/enable"), None)
            .await
            .status_code,
        200
    );
    assert_eq!(
        app.call("POST", &format!("{base}/test"), None)
            .await
            .status_code,
        202
    );
    assert_eq!(app.queue.jobs()[0].repository.as_str(), name);
    // Repositories named like the route's words.
    for tricky in [
        "alice/webhook",
        "alice/webhook/enable",
        "alice/test/webhook/test",
    ] {
        assert_eq!(
            app.put(tricky, "https://ci.example.com/x")
                .await
                .status_code,
            200
        );
        let r = app
            .call("GET", &format!("/repositories/{tricky}/webhook"), None)
            .await;
        assert_eq!(r.body_json()["repository"], tricky);
    }
    // Other repositories were not touched.
    assert!(app.record("alice/team").await.is_none());
    assert_eq!(app.call("DELETE", &base, None).await.status_code, 204);
    assert_eq!(app.call("GET", &base, None).await.status_code, 404);
    assert_eq!(
        app.call("GET", "/repositories/alice/webhook/webhook", None)
            .await
            .status_code,
        200
    );
}

async fn disable(app: &App, name: &str) {
    let repo = RepositoryName::parse(name).unwrap();
    let rec = app.store.get(&repo).await.unwrap().unwrap();
    let w = rec.webhook.unwrap();
    let outcome = BatchOutcome {
        url_version: w.url_version,
        kind: OutcomeKind::Failed {
            reason: "HTTP 500".into(),
        },
        last_delivery: LastDelivery {
            webhook_id: "evt_1".into(),
            event: "push".into(),
            tag: "1.0".into(),
            at: "2026-11-28T08:00:00Z".into(),
            outcome: shared::domain::DeliveryOutcome::Failed,
            status: Some(500),
            error: None,
            duration_ms: 12,
            attempt: 1,
        },
        now: "2026-11-28T08:00:00Z".into(),
        history: None,
    };
    for _ in 0..3 {
        app.store.record_outcome(&repo, &outcome, 3).await.unwrap();
    }
    let w = app
        .store
        .get(&repo)
        .await
        .unwrap()
        .unwrap()
        .webhook
        .unwrap();
    assert!(!w.enabled && w.consecutive_failures == 3);
}

#[tokio::test]
async fn enable_resets_the_count_and_the_disabled_state() {
    let app = app();
    let created = app
        .put("alice/app", "https://ci.example.com/one")
        .await
        .body_json();
    disable(&app, "alice/app").await;
    let before = app
        .call("GET", "/repositories/alice/app/webhook", None)
        .await
        .body_json();
    assert_eq!(before["enabled"], false);
    assert_eq!(before["consecutive_failures"], 3);
    assert_eq!(before["disabled_reason"], "HTTP 500");
    assert_eq!(before["disabled_at"], "2026-11-28T08:00:00Z");
    assert_eq!(before["last_delivery"]["status"], 500);

    let r = app
        .call("POST", "/repositories/alice/app/webhook/enable", None)
        .await;
    assert_eq!(r.status_code, 200);
    let after = r.body_json();
    assert_eq!(after["enabled"], true);
    assert_eq!(after["consecutive_failures"], 0);
    assert_eq!(after["disabled_at"], Value::Null);
    assert_eq!(after["disabled_reason"], Value::Null);
    assert_eq!(
        after["secret"], created["secret"],
        "enabling keeps the secret"
    );
    assert_eq!(after["url"], created["url"]);
    assert_eq!(after["last_delivery"]["status"], 500, "history is kept");
    // Enabling an enabled webhook is harmless.
    let again = app
        .call("POST", "/repositories/alice/app/webhook/enable", None)
        .await;
    assert_eq!(again.status_code, 200);
}

#[tokio::test]
async fn test_queues_one_ping_job_with_the_right_shape() {
    let app = app();
    app.put("alice/team/app", "https://ci.example.com/hook")
        .await;
    let repo = RepositoryName::parse("alice/team/app").unwrap();
    app.store
        .add_layers(
            &repo,
            &[LayerSize {
                digest: format!("sha256:{}", "b".repeat(64)),
                size: 4242,
            }],
        )
        .await
        .unwrap();

    let r = app
        .call("POST", "/repositories/alice/team/app/webhook/test", None)
        .await;
    assert_eq!(r.status_code, 202, "{:?}", r.body);
    let answer = r.body_json();
    let webhook_id = answer["webhook_id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer,
        json!({"queued": true, "event": "ping", "repository": "alice/team/app",
               "webhook_id": webhook_id, "enabled": true})
    );
    assert!(
        webhook_id.starts_with("evt_") && webhook_id.len() == 36,
        "{webhook_id}"
    );

    let jobs = app.queue.jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    job.validate().unwrap();
    assert_eq!(
        job,
        &shared::domain::DeliveryJob::ping(repo.clone(), 4242, webhook_id.clone())
    );
    let wire: Value = serde_json::from_str(&job.to_json()).unwrap();
    assert_eq!(
        wire,
        json!({"v": 1, "webhook_id": webhook_id, "kind": "ping", "repository": "alice/team/app",
               "tag": "ping", "image_size": 0, "layers": [], "repository_size": 4242})
    );

    // Each test is its own event with its own id.
    app.call("POST", "/repositories/alice/team/app/webhook/test", None)
        .await;
    let jobs = app.queue.jobs();
    assert_eq!(jobs.len(), 2);
    assert_ne!(jobs[0].webhook_id, jobs[1].webhook_id);
}

#[tokio::test]
async fn test_on_a_disabled_webhook_is_queued_and_says_so() {
    let app = app();
    app.put("alice/app", "https://ci.example.com/hook").await;
    disable(&app, "alice/app").await;
    let r = app
        .call("POST", "/repositories/alice/app/webhook/test", None)
        .await;
    assert_eq!(r.status_code, 202);
    assert_eq!(r.body_json()["enabled"], false);
    assert_eq!(app.queue.jobs().len(), 1);
}

#[tokio::test]
async fn a_queue_that_refuses_the_test_is_a_503() {
    let app = app();
    app.put("alice/app", "https://ci.example.com/hook").await;
    app.queue.fail_next_sends(1);
    let r = app
        .call("POST", "/repositories/alice/app/webhook/test", None)
        .await;
    assert_error(&r, 503, "try again");
    assert_eq!(r.headers["retry-after"], "1");
    assert!(app.queue.jobs().is_empty());
}

/// A store whose every call fails the same way.
struct FailingStore(bool);

impl FailingStore {
    fn err(&self) -> StoreError {
        if self.0 {
            StoreError::Retryable("ProvisionedThroughputExceededException: slow down".into())
        } else {
            StoreError::Permanent("ResourceNotFoundException: table webhooks-x missing".into())
        }
    }
}

#[async_trait]
impl WebhookStore for FailingStore {
    async fn get(&self, _: &RepositoryName) -> Result<Option<RepoRecord>, StoreError> {
        Err(self.err())
    }
    async fn get_many(
        &self,
        _: &[RepositoryName],
    ) -> Result<HashMap<RepositoryName, RepoRecord>, StoreError> {
        Err(self.err())
    }
    async fn put_webhook(
        &self,
        _: &RepositoryName,
        _: &shared::ports::WebhookUpdate,
        _: &str,
    ) -> Result<RepoRecord, StoreError> {
        Err(self.err())
    }
    async fn delete(&self, _: &RepositoryName) -> Result<bool, StoreError> {
        Err(self.err())
    }
    async fn enable(&self, _: &RepositoryName, _: &str) -> Result<Option<RepoRecord>, StoreError> {
        Err(self.err())
    }
    async fn record_outcome(
        &self,
        _: &RepositoryName,
        _: &BatchOutcome,
        _: u32,
    ) -> Result<shared::domain::OutcomeApplied, StoreError> {
        Err(self.err())
    }
    async fn add_layers(&self, _: &RepositoryName, _: &[LayerSize]) -> Result<u64, StoreError> {
        Err(self.err())
    }
}

#[tokio::test]
async fn store_failures_are_503_when_retryable_and_500_when_not() {
    for (retryable, status) in [(true, 503), (false, 500)] {
        let settings = Settings::new(
            Arc::new(FailingStore(retryable)),
            Arc::new(MemoryQueue::default()),
            Arc::new(lookup()),
            false,
        );
        let base = "/repositories/alice/app/webhook";
        let body = put_body("https://ci.example.com/hook");
        for (method, path, body) in [
            ("GET", base.to_owned(), None),
            ("PUT", base.to_owned(), Some(body.as_str())),
            ("DELETE", base.to_owned(), None),
            ("POST", format!("{base}/enable"), None),
            ("POST", format!("{base}/test"), None),
        ] {
            let r = settings.handle_event(event(method, &path, body)).await;
            assert_eq!(r.status_code, status, "{method} {path}");
            assert_eq!(r.headers["content-type"], "application/json");
            let reason = error_of(&r);
            assert!(
                !reason.contains("webhooks-x"),
                "internals stay in the log: {reason}"
            );
            assert_eq!(r.headers.contains_key("retry-after"), retryable);
        }
    }
}

#[tokio::test]
async fn events_that_are_not_function_url_requests_are_400() {
    let app = app();
    for e in [
        json!({"Records": [{"body": "{}"}]}),
        json!(null),
        json!("GET /"),
        json!(42),
        json!({}),
        json!({"requestContext": {}}),
        json!({"requestContext": {"http": {"method": "GET"}}, "headers": {"x": 1}}),
        json!({"requestContext": {"http": {"method": 7}}}),
    ] {
        let r = app.settings.handle_event(e.clone()).await;
        assert_error(&r, 400, "not a Lambda Function URL");
        assert_eq!(r.headers["content-type"], "application/json", "{e}");
    }
}

#[tokio::test]
async fn the_sample_events_are_served() {
    let app = app();
    let load = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    let put = load(include_str!("../../../events/settings/put-webhook.json"));
    let get = load(include_str!("../../../events/settings/get-webhook.json"));
    let enable = load(include_str!("../../../events/settings/enable-webhook.json"));
    let test = load(include_str!("../../../events/settings/test-webhook.json"));
    let delete = load(include_str!("../../../events/settings/delete-webhook.json"));

    let r = app.settings.handle_event(put).await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    assert_eq!(
        r.body_json()["url"],
        "https://ci.example.com/hooks/alin?token=abc"
    );
    assert_eq!(
        app.settings.handle_event(get.clone()).await.status_code,
        200
    );
    assert_eq!(app.settings.handle_event(enable).await.status_code, 200);
    assert_eq!(app.settings.handle_event(test).await.status_code, 202);
    assert_eq!(app.queue.jobs().len(), 1);
    assert_eq!(
        app.settings.handle_event(delete.clone()).await.status_code,
        204
    );
    assert_eq!(app.settings.handle_event(get).await.status_code, 404);
    assert_eq!(app.settings.handle_event(delete).await.status_code, 404);
}

// ------------------------------------------------- one rule, set and delivery

/// A plain HTTP server on 127.0.0.1 that answers 200 and counts connections.
fn local_receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, hits)
}

#[tokio::test]
async fn a_url_accepted_at_set_time_is_refused_at_delivery_when_it_resolves_inside() {
    let (port, hits) = local_receiver();
    let url = format!("http://hooks.example.test:{port}/x");

    // GIVEN the name resolves to a public address when the URL is set
    let app = app();
    let r = app.put("alice/app", &url).await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    let stored = app.record("alice/app").await.unwrap().webhook.unwrap().url;
    assert_eq!(stored, url);

    // WHEN it later resolves to loopback, the delivery client refuses to connect
    let rebound: Arc<dyn NameLookup> =
        Arc::new(StaticLookup::new().with("hooks.example.test", &[ip("127.0.0.1")]));
    let guarded = webhook_client(ClientOptions {
        timeout: Duration::from_secs(5),
        allow_private: false,
        lookup: rebound.clone(),
        max_idle_per_host: 1,
    })
    .unwrap();
    let err = guarded.post(&stored).body("{}").send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let chain = format!("{err:?}").to_lowercase();
    assert!(
        chain.contains("forbidden") && chain.contains("loopback"),
        "the refusal names the class: {chain}"
    );
    // THEN the receiver got nothing
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // ... though it would have answered: the same client with the rule lifted gets through.
    let open = webhook_client(ClientOptions {
        timeout: Duration::from_secs(5),
        allow_private: true,
        lookup: rebound,
        max_idle_per_host: 1,
    })
    .unwrap();
    let ok = open.post(&stored).body("{}").send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // And the settings API, asked again now, refuses the same URL.
    let app_now = app_with(
        StaticLookup::new().with("hooks.example.test", &[ip("127.0.0.1")]),
        false,
    );
    assert_error(&app_now.put("alice/app", &url).await, 400, "loopback");
}

async fn put_json(app: &App, name: &str, body: Value) -> HttpResponse {
    let path = format!("/repositories/{name}/webhook");
    app.call("PUT", &path, Some(&body.to_string())).await
}

/// GIVEN a PUT with a format and custom headers
/// THEN the record keeps both, the answer shows the format and the header
/// names only, a PUT without "headers" keeps them (the format defaults to
/// alin again), and `"headers": {}` clears them.
#[tokio::test]
async fn formats_and_write_only_headers_are_kept_and_cleared() {
    let app = app();
    let url = "https://ci.example.com/hook";
    let r = put_json(
        &app,
        "alice/app",
        json!({"url": url, "format": "github-dispatch",
               "headers": {"Authorization": "Bearer s3cr3t-token", "X-Team": "blue"}}),
    )
    .await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    let body = r.body.clone().unwrap();
    assert!(!body.contains("s3cr3t-token"), "{body}");
    let config = r.body_json();
    assert_eq!(config["format"], "github-dispatch");
    assert_eq!(config["headers"], json!(["Authorization", "X-Team"]));
    let w = app.record("alice/app").await.unwrap().webhook.unwrap();
    assert_eq!(
        w.headers.iter().collect::<Vec<_>>(),
        [("Authorization", "Bearer s3cr3t-token"), ("X-Team", "blue")]
    );
    let got = app
        .call("GET", "/repositories/alice/app/webhook", None)
        .await;
    assert!(!got.body.clone().unwrap().contains("s3cr3t-token"));
    assert_eq!(
        got.body_json()["headers"],
        json!(["Authorization", "X-Team"])
    );

    // A new URL without "headers" keeps them; no "format" means alin.
    let r = app.put("alice/app", "https://other.example.com/hook").await;
    assert_eq!(r.body_json()["format"], "alin");
    assert_eq!(r.body_json()["headers"], json!(["Authorization", "X-Team"]));

    let r = put_json(&app, "alice/app", json!({"url": url, "headers": {}})).await;
    assert_eq!(r.body_json()["headers"], json!([]));
    assert!(app
        .record("alice/app")
        .await
        .unwrap()
        .webhook
        .unwrap()
        .headers
        .is_empty());
}

/// Every refusal is a 400 naming the rule and the header, never its value.
#[tokio::test]
async fn bad_formats_and_headers_are_400_without_the_value() {
    let app = app();
    let url = "https://ci.example.com/hook";
    let r = put_json(&app, "alice/app", json!({"url": url, "format": "xml"})).await;
    assert_error(&r, 400, "\"alin\", \"github-dispatch\", \"cloudevents\"");
    let r = put_json(&app, "alice/app", json!({"url": url, "format": 1})).await;
    assert_error(&r, 400, "\"format\" must be one of");
    let r = put_json(&app, "alice/app", json!({"url": url, "headers": ["a"]})).await;
    assert_error(&r, 400, "\"headers\" must be an object");
    let cases = [
        (
            json!({"Host": "s3cr3t"}),
            "alin",
            "Host is set by the service",
        ),
        (
            json!({"webhook-signature": "s3cr3t"}),
            "alin",
            "set by the service",
        ),
        (
            json!({"X-Alin-Webhook": "s3cr3t"}),
            "alin",
            "set by the service",
        ),
        (
            json!({"accept": "s3cr3t"}),
            "github-dispatch",
            "set by the github-dispatch format",
        ),
        (
            json!({"X-A": "s3cr3t\r\nX-B: y"}),
            "alin",
            "control character",
        ),
        (json!({"X-A": 5}), "alin", "must be a string"),
        (
            json!({"bad name": "s3cr3t"}),
            "alin",
            "not a valid HTTP header name",
        ),
        (
            json!({"X-A": "s3cr3t".repeat(400)}),
            "alin",
            "longer than 2048 bytes",
        ),
    ];
    for (headers, format, why) in cases {
        let r = put_json(
            &app,
            "alice/app",
            json!({"url": url, "format": format, "headers": headers}),
        )
        .await;
        assert_error(&r, 400, why);
        assert!(!error_of(&r).contains("s3cr3t"), "{}", error_of(&r));
    }
    let many: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("X-{i}"), json!("v"))).collect();
    let r = put_json(&app, "alice/app", json!({"url": url, "headers": many})).await;
    assert_error(&r, 400, "at most 10 custom headers");
    assert!(
        app.record("alice/app").await.is_none(),
        "nothing was stored"
    );

    // An Accept kept from an alin webhook cannot ride into github-dispatch.
    let r = put_json(
        &app,
        "alice/app",
        json!({"url": url, "headers": {"Accept": "text/plain"}}),
    )
    .await;
    assert_eq!(r.status_code, 200);
    let r = put_json(
        &app,
        "alice/app",
        json!({"url": url, "format": "github-dispatch"}),
    )
    .await;
    assert_error(&r, 400, "Accept is set by the github-dispatch format");
    assert!(!error_of(&r).contains("text/plain"));
}

/// GIVEN a webhook whose history holds one delivered push (with its payload)
/// THEN GET …/deliveries lists it without the payload, a redelivery queues
/// the same job (202), an unknown id is a 404, and a disabled webhook's push
/// is a 409.
#[tokio::test]
async fn deliveries_are_listed_and_redelivered_from_the_history() {
    use shared::domain::{AttemptKind, DeliveryAttempt, DeliveryJob, EventPayload};
    let app = app();
    assert_eq!(
        app.put("alice/app", "https://ci.example.com/h")
            .await
            .status_code,
        200
    );
    let repo = RepositoryName::parse("alice/app").unwrap();
    let w = app.record("alice/app").await.unwrap().webhook.unwrap();
    let digest = format!("sha256:{}", "e".repeat(64));
    let entry = DeliveryAttempt {
        webhook_id: "evt_h".into(),
        event: "push".into(),
        tag: "1.0".into(),
        attempt: 1,
        at: "2026-11-28T08:00:00Z".into(),
        duration_ms: 5,
        status: Some(200),
        error: None,
        kind: AttemptKind::First,
        payload: Some(EventPayload {
            image_size: 9,
            layers: vec![shared::domain::Digest::parse(&digest).unwrap()],
            repository_size: 99,
        }),
    };
    let outcome = BatchOutcome {
        url_version: w.url_version,
        kind: OutcomeKind::Delivered,
        last_delivery: LastDelivery {
            webhook_id: "evt_h".into(),
            event: "push".into(),
            tag: "1.0".into(),
            at: "2026-11-28T08:00:00Z".into(),
            outcome: shared::domain::DeliveryOutcome::Delivered,
            status: Some(200),
            error: None,
            duration_ms: 5,
            attempt: 1,
        },
        now: "2026-11-28T08:00:00Z".into(),
        history: Some(vec![entry]),
    };
    app.store.record_outcome(&repo, &outcome, 3).await.unwrap();

    let r = app
        .call("GET", "/repositories/alice/app/webhook/deliveries", None)
        .await;
    assert_eq!(r.status_code, 200);
    assert_eq!(
        r.body_json(),
        json!({"repository": "alice/app", "deliveries": [{
            "webhook_id": "evt_h", "event": "push", "tag": "1.0", "attempt": 1,
            "at": "2026-11-28T08:00:00Z", "duration_ms": 5, "status": 200, "error": null,
            "kind": "first"}]})
    );

    let path = "/repositories/alice/app/webhook/deliveries/evt_h/redeliver";
    let r = app.call("POST", path, None).await;
    assert_eq!(r.status_code, 202, "{:?}", r.body);
    let sent = app.queue.jobs();
    assert_eq!(sent.len(), 1);
    let want = format!(
        r#"{{"v":1,"webhook_id":"evt_h","kind":"push","repository":"alice/app","tag":"1.0","image_size":9,"layers":["{digest}"],"repository_size":99}}"#
    );
    assert_eq!(sent[0], DeliveryJob::parse(&want).unwrap());

    let r = app
        .call(
            "POST",
            "/repositories/alice/app/webhook/deliveries/evt_x/redeliver",
            None,
        )
        .await;
    assert_error(&r, 404, "no delivery \"evt_x\"");
    let r = app
        .call(
            "POST",
            "/repositories/bob/app/webhook/deliveries/evt_h/redeliver",
            None,
        )
        .await;
    assert_error(&r, 404, "has no webhook");
    disable(&app, "alice/app").await;
    let r = app.call("POST", path, None).await;
    assert_error(&r, 409, "disabled");
    assert_eq!(app.queue.jobs().len(), 1, "nothing more queued");
}
