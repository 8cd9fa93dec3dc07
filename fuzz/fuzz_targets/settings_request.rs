//! The settings handler on arbitrary Function URL requests: the first byte
//! chooses the method and whether the body is base64; the rest is
//! `path 0xFF body`, or (when the second byte says so) the whole raw
//! invocation payload as JSON, to reach the lenient request parsing.
//! Memory store (with one webhook), memory queue, an offline resolver.
//!
//! Properties: never a panic; never a 5xx (nothing here can fail
//! transiently); every non-2xx answer is JSON `{"error": …}`; a PUT that is
//! accepted stored a URL that passes the address rule, and never one whose
//! name resolves to a private address.
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
        let store = Arc::new(MemoryStore::new());
        let url = validate_webhook_url("https://hooks.example.com/h?token=x", false).unwrap();
        store
            .put_url(
                &RepositoryName::parse("alice/app").unwrap(),
                &url,
                "2026-11-28T08:00:00Z",
            )
            .await
            .unwrap();
        let api = settings::Settings::new(
            store,
            Arc::new(MemoryQueue::new()),
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
