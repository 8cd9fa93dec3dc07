//! The ingest handler behind its Function URL, on arbitrary requests: the
//! first two bytes choose the method, the Authorization header, the content
//! type, base64 body encoding and the manifest the (fake) registry serves;
//! the rest is `body [0xFF manifest]`. Memory store and queue, no network.
//!
//! Properties: never a panic; never a 5xx; a Distribution envelope is a
//! 202 (its bad events counted `rejected`) once the token is right (nothing here can fail in a way a
//! retry fixes, so a 5xx would make the registry retry bad input forever);
//! every refusal is a JSON `{"error": …}`; a 202 counts consistently
//! (`accepted = dropped + queued`) and every queued job parses again.
#![no_main]

#[path = "common.rs"]
mod common;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use shared::config::Sensitive;
use shared::domain::DeliveryJob;

const TOKEN: &str = "fuzz-ingest-token";
const METHODS: [&str; 6] = ["POST", "POST", "POST", "GET", "PUT", "post"];
const CONTENT_TYPES: [&str; 5] = [
    "application/json",
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "text/plain",
    "",
];

fuzz_target!(|data: &[u8]| {
    let (f0, f1) = (common::pick(data, 0, 256), common::pick(data, 1, 256));
    let rest = data.get(2..).unwrap_or(&[]);
    let p = common::parts(rest, 2);
    let body = p.first().copied().unwrap_or(&[]);
    let manifest = p.get(1).map(|m| common::manifest(f1, m));
    let method = METHODS[f0 % METHODS.len()];
    let auth = match (f0 / 8) % 4 {
        0 => Some(format!("Bearer {TOKEN}")),
        1 => Some(format!("bearer {TOKEN}")),
        2 => None,
        _ => Some("Bearer wrong".to_owned()),
    };
    let base64_body = (f0 / 32) % 4 == 0;
    let mut headers = json!({});
    let ct = CONTENT_TYPES[(f1 / 8) % CONTENT_TYPES.len()];
    if !ct.is_empty() {
        headers["content-type"] = json!(ct);
    }
    if let Some(a) = &auth {
        headers["authorization"] = json!(a);
    }
    let body_text = if base64_body {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        common::text(body)
    };
    let event = json!({
        "version": "2.0", "rawPath": "/", "rawQueryString": "", "headers": headers,
        "requestContext": {"http": {"method": method, "path": "/"}, "requestId": "fuzz"},
        "body": body_text, "isBase64Encoded": base64_body,
    });

    common::runtime().block_on(async move {
        let (ingest, queue) = common::ingest_with(manifest).await;
        let ingest = ingest.with_token(Some(&Sensitive(TOKEN.into())));
        let answer = ingest
            .handle(event)
            .await
            .expect("an HTTP event always gets an HTTP answer");
        let status = answer["statusCode"].as_u64().expect("a status code");
        assert!(status < 500, "bad input answered {status}: {answer}");
        let body: Value = answer["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        match status {
            202 => {
                let n = |k: &str| body[k].as_u64().unwrap_or_else(|| panic!("{k} in {body}"));
                assert_eq!(n("accepted"), n("dropped") + n("queued"), "{body}");
                assert_eq!(n("queued") as usize, queue.jobs().len());
                // Nothing here fails transiently, so nothing is deferred; a
                // bad Distribution event is counted, never a 4xx.
                assert_eq!(n("deferred"), 0, "{body}");
                let _ = n("rejected");
                for job in queue.jobs() {
                    DeliveryJob::parse(&job.to_json()).expect("a queued job parses again");
                }
            }
            400 | 401 | 405 | 413 => {
                assert!(
                    body["error"].is_string(),
                    "{status} without a reason: {answer}"
                );
                assert!(queue.jobs().is_empty(), "a refused request queued jobs");
            }
            other => panic!("unexpected status {other}: {answer}"),
        }
        if method != "POST" && method != "post" {
            assert_eq!(status, 405);
        } else if auth.as_deref().is_none_or(|a| a.ends_with("wrong")) {
            assert_eq!(status, 401, "no valid token but {status}");
        }
    });
});
