//! The settings handler on arbitrary Function URL requests: the first byte
//! chooses the method and whether the body is base64; the rest is
//! `path 0xFF body`, or (when the second byte says so) the whole raw
//! invocation payload as JSON, to reach the lenient request parsing.
//! Memory store (with one webhook), memory queue, an offline resolver.
//!
//! Properties: never a panic; never a 5xx (nothing here can fail
//! transiently); every non-2xx answer is JSON `{"error": …}`; a PUT that is
//! accepted stored a URL that passes the address rule, and never one whose
//! name resolves to a private address; an accepted PUT shows a known
//! `format` and header names only (≤ 10, none the service owns), and the
//! values it stored appear nowhere in the answer.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::Arc;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{validate_webhook_url, RepositoryName};
use shared::ports::WebhookStore;

const METHODS: [&str; 8] = [
    "PUT", "PUT", "GET", "DELETE", "POST", "POST", "PATCH", "get",
];

fuzz_target!(|data: &[u8]| {
    let (f0, f1) = (common::pick(data, 0, 256), common::pick(data, 1, 256));
    let rest = data.get(2..).unwrap_or(&[]);
    let raw_mode = f1 % 8 == 0;
    let method = METHODS[f0 % METHODS.len()];
    let event = if raw_mode {
        match serde_json::from_slice::<Value>(rest) {
            Ok(v) => v,
            Err(_) => return,
        }
    } else {
        let p = common::parts(rest, 2);
        let path = common::text(p.first().copied().unwrap_or(&[]));
        let body = p.get(1).copied().unwrap_or(&[]);
        let b64 = (f0 / 8) % 4 == 0;
        let body = if b64 {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            common::text(body)
        };
        json!({
            "version": "2.0", "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": method, "path": path}, "requestId": "fuzz"},
            "body": body, "isBase64Encoded": b64,
        })
    };

    common::runtime().block_on(async move {
        let store = Arc::new(MemoryStore::default());
        let repo = RepositoryName::parse("alice/app").unwrap();
        let url = validate_webhook_url("https://hooks.example.com/h?token=x", false).unwrap();
        store
            .put_url(
                &repo,
                &url,
                "2026-11-28T08:00:00Z",
            )
            .await
            .unwrap();
        let api = settings::Settings::new(
            store.clone(),
            Arc::new(MemoryQueue::default()),
            Arc::new(common::OfflineLookup),
            false,
        );
        let response = api.handle_event(event).await;
        let status = response.status_code;
        assert!(status < 500, "answered {status}: {response:?}");
        let body = response.body_json();
        match status {
            200 => {
                assert!(
                    body["repository"].is_string() && body["url"].is_string(),
                    "{body}"
                );
                let stored = body["url"].as_str().unwrap_or_default();
                let parsed = validate_webhook_url(stored, false)
                    .unwrap_or_else(|e| panic!("a stored URL breaks the rule ({e}): {stored}"));
                let host = parsed
                    .as_url()
                    .host_str()
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                assert!(
                    host != "hooks.test" && !host.ends_with(".hooks.test"),
                    "a name resolving to a private address was accepted: {stored}"
                );
                check_headers(&store, &repo, &body, response.body.as_deref().unwrap_or("")).await;
            }
            202 => assert_eq!(body["queued"], json!(true), "{body}"),
            204 => assert!(response.body.is_none()),
            400 | 404 | 405 | 413 => {
                assert!(
                    body["error"].is_string(),
                    "{status} without a reason: {response:?}"
                )
            }
            other => panic!("unexpected status {other}: {response:?}"),
        }
    });
});

/// An accepted answer's `format` and `headers` (names only), against what
/// the store holds: values never leave it.
async fn check_headers(store: &MemoryStore, repo: &RepositoryName, body: &Value, text: &str) {
    let format = body["format"].as_str().unwrap_or_default();
    assert!(
        shared::webhook::PayloadFormat::parse(format).is_ok(),
        "unknown format shown: {body}"
    );
    let names = body["headers"].as_array().cloned().unwrap_or_default();
    assert!(names.len() <= 10, "{body}");
    let Some(webhook) = store.get(repo).await.ok().flatten().and_then(|r| r.webhook) else {
        panic!("a 200 without a stored webhook")
    };
    let stored: Vec<&str> = webhook.headers.names().collect();
    assert_eq!(names, stored, "the answer shows the stored names, in order");
    for (name, value) in webhook.headers.iter() {
        assert!(!shared::webhook::headers::is_service_owned(name), "{name}");
        // Short values may occur in the answer by chance (a name, a date).
        if value.len() >= 12 {
            assert!(!text.contains(value), "a header value is in the answer");
        }
    }
}
