//! Property tests of every ingest parser (proptest, CI-sized case counts):
//! `formats::parse_input` on arbitrary JSON and bytes, and the whole handler
//! (`Ingest::handle`, memory store and queue, a fake manifest source) on
//! arbitrary and mutated native events, Distribution envelopes and ECR
//! events, over both triggers, and on manifests with any layer sizes.
//!
//! What must hold for any input: no panic; over HTTP every malformed native
//! input is a 400 with a reason, every Distribution envelope a 202 whose bad
//! events are counted `rejected` (never a 5xx: the registry would retry bad
//! input forever, and never a 4xx for an envelope: Distribution would stall),
//! and a 202 counts consistently; over SQS exactly the malformed records are
//! reported as batch item failures (so they reach the DLQ). Any RFC 3339
//! time at any offset is either normalised or bad input, never a panic.

use std::collections::BTreeSet;
use std::sync::Arc;

use ingest::formats::{parse_input, Channel};
use ingest::manifest::{sha256_digest, OCI_INDEX, OCI_MANIFEST};
use ingest::{Ingest, RawManifest};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::config::Sensitive;
use shared::domain::{validate_webhook_url, DeliveryJob, RepositoryName};
use shared::ports::WebhookStore;

use crate::props_common as common;
use common::*;

const TOKEN: &str = "props-ingest-token";
const REPOS: [&str; 3] = ["alice/app", "team/app", "library/hello-world"];

/// A valid image manifest and its digest.
fn image_manifest(layers: &[(String, u64)]) -> (String, Vec<u8>) {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, s)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}))
        .collect();
    let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d64('c'), "size": 2},
        "layers": layers})
    .to_string()
    .into_bytes();
    (sha256_digest(&body).as_str().to_owned(), body)
}

fn native() -> Value {
    json!({"event": "push", "username": "alice", "repository": "app", "tag": "1.0",
           "digest": d64('a'), "image_size": 12345, "layers": [d64('b')],
           "repository_size": 67890, "pushed_at": "2026-11-28T08:00:00Z", "id": "evt-1"})
}

fn envelope(digest: &str) -> Value {
    json!({"events": [{"id": "66208069-15c6", "timestamp": "2026-11-28T08:41:13.197274592Z",
        "action": "push", "target": {"mediaType": OCI_MANIFEST, "size": 1, "digest": digest,
        "length": 1, "repository": "alice/app",
        "url": format!("http://registry.example:5000/v2/alice/app/manifests/{digest}"), "tag": "1.0"},
        "request": {"id": "r", "addr": "198.51.100.1:1", "host": "registry.example", "method": "PUT",
                    "useragent": "skopeo/1.9.3"},
        "actor": {}, "source": {"addr": "vm:5000", "instanceID": "i"}}]})
}

fn ecr(digest: &str) -> Value {
    json!({"version": "0", "id": "d6aefa5c-faaf", "detail-type": "ECR Image Action",
           "source": "aws.ecr", "account": "123456789012", "time": "2026-11-28T08:41:13Z",
           "region": "us-east-1", "resources": [],
           "detail": {"result": "SUCCESS", "repository-name": "team/app", "image-digest": digest,
                      "action-type": "PUSH", "image-tag": "1.0",
                      "manifest-media-type": OCI_MANIFEST}})
}

/// The handler over memory adapters, with webhooks for [`REPOS`] and the
/// standard manifest (two small layers) served under its digest.
async fn ingest(manifests: FakeManifests) -> (Ingest, Arc<MemoryQueue>) {
    let store = Arc::new(MemoryStore::default());
    for r in REPOS {
        let url = validate_webhook_url("https://hooks.example.com/h?token=x", false).unwrap();
        store
            .put_url(
                &RepositoryName::parse(r).unwrap(),
                &url,
                "2026-11-28T08:00:00Z",
            )
            .await
            .unwrap();
    }
    let queue = Arc::new(MemoryQueue::default());
    let ingest = Ingest::new(store, queue.clone(), Arc::new(manifests))
        .with_token(Some(&Sensitive(TOKEN.into())));
    (ingest, queue)
}

fn standard_manifests() -> (String, FakeManifests) {
    let (digest, body) = image_manifest(&[(d64('d'), 126), (d64('e'), 9)]);
    let m = FakeManifests::default();
    m.put(
        &digest,
        RawManifest {
            media_type: Some(OCI_MANIFEST.into()),
            body,
        },
    );
    (digest, m)
}

/// A document: a mutated valid event of each format, or arbitrary JSON.
fn arb_document() -> impl Strategy<Value = Value> {
    let (digest, _) = standard_manifests();
    let (d1, d2) = (digest.clone(), digest);
    prop_oneof![
        3 => arb_mutations().prop_map(|m| mutate(native(), &m)),
        3 => arb_mutations().prop_map(move |m| mutate(envelope(&d1), &m)),
        3 => arb_mutations().prop_map(move |m| mutate(ecr(&d2), &m)),
        1 => Just(native()),
        1 => arb_json(),
    ]
}

/// A body: a document's JSON text, or arbitrary text.
fn arb_body() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => arb_document().prop_map(|d| d.to_string()),
        1 => nasty_string(),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Checks one HTTP answer for `body` against the properties.
fn check_http(body: &str, answer: &Value, queued: usize) -> Result<(), TestCaseError> {
    let status = answer["statusCode"].as_u64().unwrap_or(0);
    let reply: Value = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    prop_assert!(
        status < 500,
        "bad input answered {}: {} for {}",
        status,
        answer,
        body
    );
    let malformed = parse_input(body.as_bytes(), Channel::Http).is_err();
    let is_envelope = serde_json::from_str::<Value>(body)
        .ok()
        .is_some_and(|v| v.is_object() && v.get("events").is_some());
    if is_envelope {
        prop_assert_eq!(status, 202, "an envelope is always accepted: {}", answer);
        let n = |k: &str| reply[k].as_u64().unwrap_or(u64::MAX);
        prop_assert_eq!(n("accepted"), n("dropped") + n("queued"), "{}", reply);
        prop_assert_eq!(n("queued") as usize, queued);
        prop_assert_eq!(
            n("deferred"),
            0,
            "nothing here fails transiently: {}",
            reply
        );
        if malformed {
            prop_assert!(n("rejected") >= 1, "a bad event is rejected: {}", reply);
        }
    } else if malformed {
        prop_assert_eq!(status, 400, "malformed input must be a 400: {}", answer);
        prop_assert!(reply["error"].is_string(), "a 400 says why: {}", answer);
        prop_assert_eq!(queued, 0);
    } else {
        prop_assert_eq!(status, 202, "{}", answer);
        let n = |k: &str| reply[k].as_u64().unwrap_or(u64::MAX);
        prop_assert_eq!(n("accepted"), n("dropped") + n("queued"), "{}", reply);
        prop_assert_eq!(n("queued") as usize, queued);
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(1000))]

    /// `parse_input` on arbitrary JSON and bytes, both channels: never a
    /// panic; ECR events are refused over HTTP only.
    #[test]
    fn parse_input_never_panics(doc in arb_json(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = doc.to_string();
        let http = parse_input(text.as_bytes(), Channel::Http);
        let sqs = parse_input(text.as_bytes(), Channel::Sqs);
        if let (Err(_), Ok(_)) = (&http, &sqs) {
            // Only an EventBridge-shaped event may differ between channels.
            prop_assert!(doc.get("detail-type").is_some() || doc.get("source") == Some(&json!("aws.ecr")), "{}", text);
        }
        let _ = parse_input(&bytes, Channel::Http);
        let _ = parse_input(&bytes, Channel::Sqs);
    }
}

proptest! {
    #![proptest_config(cases(512))]

    /// The handler behind the Function URL on mutated and arbitrary events:
    /// malformed ⇒ 400 with a reason; valid ⇒ 202 with consistent counts;
    /// never 5xx, never a panic; every queued job parses again.
    #[test]
    fn http_handler_answers_bad_input_4xx_never_5xx(body in arb_body()) {
        rt().block_on(async {
            let (_, manifests) = standard_manifests();
            let (ingest, queue) = ingest(manifests).await;
            let headers = json!({"content-type": "application/json", "authorization": format!("Bearer {TOKEN}")});
            let answer = ingest
                .handle(http_event("POST", "/", headers, Some(&body)))
                .await
                .map_err(|e| TestCaseError::fail(format!("HTTP event answered with a function error: {e}")))?;
            check_http(&body, &answer, queue.jobs().len())?;
            for job in queue.jobs() {
                prop_assert!(DeliveryJob::parse(&job.to_json()).is_ok());
            }
            Ok(())
        })?;
    }

    /// The handler behind SQS on batches of mutated and arbitrary bodies:
    /// exactly the malformed records fail (→ DLQ); the others are processed.
    #[test]
    fn sqs_handler_fails_exactly_the_malformed_records(bodies in prop::collection::vec(arb_body(), 1..6)) {
        rt().block_on(async {
            let (_, manifests) = standard_manifests();
            let (ingest, queue) = ingest(manifests).await;
            let answer = ingest
                .handle(sqs_event(&bodies, 1))
                .await
                .map_err(|e| TestCaseError::fail(format!("SQS batch failed as a whole: {e}")))?;
            let expected: BTreeSet<String> = bodies
                .iter()
                .enumerate()
                .filter(|(_, b)| parse_input(b.as_bytes(), Channel::Sqs).is_err())
                .map(|(i, _)| format!("m{i}"))
                .collect();
            prop_assert_eq!(failed_ids(&answer), expected, "{:?}", bodies);
            for job in queue.jobs() {
                prop_assert!(DeliveryJob::parse(&job.to_json()).is_ok());
            }
            Ok(())
        })?;
    }
}

/// Layer sizes are the registry's (the pusher's) numbers: any u64, and
/// especially the largest ones.
fn arb_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(u64::MAX),
        (u64::MAX - 1024)..=u64::MAX,
        (1u64 << 63)..=(1u64 << 63) + 16,
        0u64..1_000_000,
    ]
}

/// Runs one Distribution push of an image manifest with these layer sizes
/// through the HTTP handler and returns (status, reply, queued jobs).
async fn push_manifest_with(sizes: &[u64]) -> (u64, Value, Vec<DeliveryJob>) {
    let layers: Vec<(String, u64)> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                sha256_digest(format!("layer-{i}").as_bytes())
                    .as_str()
                    .to_owned(),
                *s,
            )
        })
        .collect();
    let (digest, body) = image_manifest(&layers);
    let manifests = FakeManifests::default();
    manifests.put(
        &digest,
        RawManifest {
            media_type: Some(OCI_MANIFEST.into()),
            body,
        },
    );
    let (ingest, queue) = ingest(manifests).await;
    let headers = json!({"content-type": "application/vnd.docker.distribution.events.v1+json",
                         "authorization": format!("Bearer {TOKEN}")});
    let answer = ingest
        .handle(http_event(
            "POST",
            "/",
            headers,
            Some(&envelope(&digest).to_string()),
        ))
        .await
        .expect("an HTTP answer");
    let status = answer["statusCode"].as_u64().unwrap_or(0);
    let reply = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, reply, queue.jobs())
}

proptest! {
    #![proptest_config(cases(256))]

    /// Manifests whose layer sizes add up past u64::MAX must not crash
    /// ingest or answer 5xx (a registry would retry the event forever): the
    /// push is either refused as unusable or counted without wrapping.
    #[test]
    fn any_layer_sizes_never_crash_ingest(sizes in prop::collection::vec(arb_size(), 1..5)) {
        let outcome = std::panic::catch_unwind(|| rt().block_on(push_manifest_with(&sizes)));
        let Ok((status, reply, jobs)) = outcome else {
            return Err(TestCaseError::fail(format!("ingest panicked on layer sizes {sizes:?}")));
        };
        prop_assert!(status < 500, "{} {}", status, reply);
        let total: u128 = sizes.iter().map(|s| u128::from(*s)).sum();
        for job in jobs {
            // Never a wrapped sum: either the exact total or nothing queued.
            prop_assert_eq!(u128::from(job.image_size), total, "image_size wrapped for {:?}", sizes);
        }
    }
}

/// The smallest case the property above finds, kept as a plain example: two
/// layers of 2^63 bytes. Today `manifest::image_size` sums with `+` (a
/// panic in debug builds, a silent wrap to 0 in release) — see
/// docs/reliability.md, "bugs found".
#[test]
fn two_layers_of_2_pow_63_bytes_do_not_crash_ingest() {
    let outcome =
        std::panic::catch_unwind(|| rt().block_on(push_manifest_with(&[1 << 63, 1 << 63])));
    let (status, reply, jobs) = outcome.expect("ingest must not panic on a manifest's layer sizes");
    assert!(status < 500, "{status} {reply}");
    for job in jobs {
        assert_ne!(job.image_size, 0, "image_size wrapped around");
    }
}

/// An index whose children are the same hostile manifest: bounded work, no
/// panic, and a 202 (layers counted once).
#[test]
fn an_index_of_many_children_is_bounded() {
    rt().block_on(async {
        let (child, child_body) = image_manifest(&[(d64('d'), 1)]);
        let children: Vec<Value> = (0..500)
            .map(|_| {
                json!({"mediaType": OCI_MANIFEST, "digest": child, "size": 1,
                            "platform": {"os": "linux", "architecture": "amd64"}})
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
            .to_string()
            .into_bytes();
        let digest = sha256_digest(&index).as_str().to_owned();
        let manifests = FakeManifests::default();
        manifests.put(
            &digest,
            RawManifest {
                media_type: Some(OCI_INDEX.into()),
                body: index,
            },
        );
        manifests.put(
            &child,
            RawManifest {
                media_type: Some(OCI_MANIFEST.into()),
                body: child_body,
            },
        );
        let (ingest, queue) = ingest(manifests).await;
        let headers = json!({"authorization": format!("Bearer {TOKEN}")});
        let answer = ingest
            .handle(http_event(
                "POST",
                "/",
                headers,
                Some(&envelope(&digest).to_string()),
            ))
            .await
            .unwrap();
        let status = answer["statusCode"].as_u64().unwrap();
        assert!(status < 500, "{answer}");
        for job in queue.jobs() {
            assert!(job.layers.len() <= 1, "layers counted once");
        }
    });
}

/// Any RFC 3339 date-time text, at any offset, including the edges of the
/// year range where the UTC instant leaves it.
fn arb_rfc3339() -> impl Strategy<Value = String> {
    (
        prop_oneof![0u32..=9999, Just(0u32), Just(9999u32)],
        1u32..=12,
        1u32..=31,
        0u32..=23,
        0u32..=59,
        0u32..=60,
        prop_oneof![
            Just("Z".to_owned()),
            (any::<bool>(), 0u32..=23, 0u32..=59)
                .prop_map(|(neg, h, m)| format!("{}{h:02}:{m:02}", if neg { '-' } else { '+' })),
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, off)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{off}")
        })
}

proptest! {
    #![proptest_config(cases(256))]

    /// A native push with any RFC 3339 `pushed_at`: 202 with the time in UTC
    /// seconds, or 400 (out of range, impossible date); never a panic or 5xx.
    /// The same time as a Distribution `timestamp` is a 202 either way.
    #[test]
    fn any_rfc3339_time_is_normalised_or_bad_input(t in arb_rfc3339()) {
        rt().block_on(async {
            let (digest, manifests) = standard_manifests();
            let (ingest, queue) = ingest(manifests).await;
            let headers = json!({"content-type": "application/json", "authorization": format!("Bearer {TOKEN}")});
            let mut push = native();
            push["pushed_at"] = json!(t);
            let answer = ingest
                .handle(http_event("POST", "/", headers.clone(), Some(&push.to_string())))
                .await
                .map_err(|e| TestCaseError::fail(format!("function error: {e}")))?;
            let status = answer["statusCode"].as_u64().unwrap_or(0);
            prop_assert!(status == 202 || status == 400, "{} for {}", answer, t);
            if status == 202 {
                let jobs = queue.jobs();
                let at = jobs[0].pushed_at.clone().unwrap_or_default();
                prop_assert!(at.ends_with('Z') && at.len() == 20, "{}", at);
            }
            let mut env = envelope(&digest);
            env["events"][0]["timestamp"] = json!(t);
            let answer = ingest
                .handle(http_event("POST", "/", headers, Some(&env.to_string())))
                .await
                .map_err(|e| TestCaseError::fail(format!("function error: {e}")))?;
            prop_assert_eq!(answer["statusCode"].as_u64(), Some(202), "{} for {}", answer, t);
            Ok(())
        })?;
    }
}
