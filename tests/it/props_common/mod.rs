//! What the property and security tests share (a module of the `it` binary):
//! arbitrary JSON, mutations of valid events, a resolver and a
//! manifest source that never touch the network, and Function URL / SQS
//! event builders.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;

use ingest::{IngestError, ManifestLocation, ManifestSource, RawManifest};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shared::net::NameLookup;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A resolver with no DNS traffic: names under `.internal.test` resolve to a
/// private address, every other name to one public address (never connected
/// to by these tests).
pub struct OfflineLookup;

impl NameLookup for OfflineLookup {
    // The `async_trait` expansion, written out (the test crate does not
    // depend on the macro crate).
    fn lookup<'a, 'b, 'async_trait>(
        &'a self,
        host: &'b str,
    ) -> BoxFut<'async_trait, io::Result<Vec<SocketAddr>>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host.is_empty() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "empty name"));
            }
            let ip = if host == "internal.test" || host.ends_with(".internal.test") {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))
            } else {
                IpAddr::V4(Ipv4Addr::new(93, 184, 215, 14))
            };
            Ok(vec![SocketAddr::new(ip, 0)])
        })
    }
}

/// Serves manifests from a list by the digest (or tag) at the end of the
/// location; unknown ones are 404 (unusable, never retryable).
#[derive(Default)]
pub struct FakeManifests {
    pub manifests: Mutex<Vec<(String, RawManifest)>>,
}

impl FakeManifests {
    pub fn put(&self, reference: &str, manifest: RawManifest) {
        self.manifests
            .lock()
            .unwrap()
            .push((reference.to_owned(), manifest));
    }
}

impl ManifestSource for FakeManifests {
    fn fetch<'a, 'b, 'async_trait>(
        &'a self,
        location: &'b ManifestLocation,
    ) -> BoxFut<'async_trait, Result<RawManifest, IngestError>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        let shown = location.to_string();
        let found = self
            .manifests
            .lock()
            .unwrap()
            .iter()
            .find(|(r, _)| {
                shown.ends_with(&format!("/{r}"))
                    || shown.ends_with(&format!("@{r}"))
                    || shown.ends_with(&format!(":{r}"))
            })
            .map(|(_, m)| m.clone());
        Box::pin(async move {
            found.ok_or_else(|| IngestError::ManifestUnusable(format!("GET {shown}: HTTP 404")))
        })
    }
}

// ------------------------------------------------------------- strategies

/// Strings that break parsers: empty, whitespace, unicode, control
/// characters, huge numbers as text, path tricks, percent escapes.
pub fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("\u{0}".to_owned()),
        Just("ü/ß/€".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("%2F%2e%2E%00".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("sha256:".to_owned()),
        Just(format!("sha256:{}", "g".repeat(64))),
        Just("A".repeat(5000)),
        Just("push".to_owned()),
        Just("2026-13-45T99:99:99Z".to_owned()),
        "\\PC{0,40}",
        "[a-z0-9._/-]{0,40}",
        any::<String>(),
    ]
}

/// Any JSON value, a few levels deep.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((nasty_string(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// One change to a JSON document.
#[derive(Debug, Clone)]
pub enum Mutation {
    Remove,
    Replace(Value),
    Null,
    EmptyString,
    WrongType,
    AddField(String, Value),
}

pub fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Remove),
        arb_json().prop_map(Mutation::Replace),
        Just(Mutation::Null),
        Just(Mutation::EmptyString),
        Just(Mutation::WrongType),
        (nasty_string(), arb_json()).prop_map(|(k, v)| Mutation::AddField(k, v)),
        nasty_string().prop_map(|s| Mutation::Replace(Value::String(s))),
    ]
}

/// Every path (object keys / array indexes) in `v`, the root included.
fn paths(v: &Value, here: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Value::String(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Value::from(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn apply_at(v: &mut Value, path: &[Value], m: &Mutation) {
    if path.len() == 1 || path.is_empty() {
        let key = path.first();
        match (v, key) {
            (Value::Object(map), Some(Value::String(k))) => match m {
                Mutation::Remove => {
                    map.remove(k);
                }
                other => {
                    if let Some(slot) = map.get_mut(k) {
                        change(slot, other);
                    }
                }
            },
            (Value::Array(arr), Some(Value::Number(n))) => {
                let i = n.as_u64().unwrap_or(0) as usize;
                match m {
                    Mutation::Remove if i < arr.len() => {
                        arr.remove(i);
                    }
                    other => {
                        if let Some(slot) = arr.get_mut(i) {
                            change(slot, other);
                        }
                    }
                }
            }
            (root, None) => change(root, m),
            _ => {}
        }
        return;
    }
    let child = match (&path[0], v) {
        (Value::String(k), Value::Object(map)) => map.get_mut(k),
        (Value::Number(n), Value::Array(arr)) => arr.get_mut(n.as_u64().unwrap_or(0) as usize),
        _ => None,
    };
    if let Some(c) = child {
        apply_at(c, &path[1..], m);
    }
}

fn change(slot: &mut Value, m: &Mutation) {
    match m {
        Mutation::Remove => *slot = Value::Null,
        Mutation::Replace(v) => *slot = v.clone(),
        Mutation::Null => *slot = Value::Null,
        Mutation::EmptyString => *slot = Value::String(String::new()),
        Mutation::WrongType => {
            *slot = match slot {
                Value::String(s) => Value::Array(vec![Value::String(s.clone())]),
                Value::Number(_) => Value::String(slot.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                Value::Null => json!({}),
                Value::Array(_) => json!({"0": 1}),
                Value::Object(_) => json!([]),
            }
        }
        Mutation::AddField(k, v) => {
            if let Value::Object(map) = slot {
                map.insert(k.clone(), v.clone());
            } else {
                *slot = json!({ k.clone(): v.clone() });
            }
        }
    }
}

/// Applies each `(selector, mutation)` to the path `selector % paths` of
/// the document as it is at that moment.
pub fn mutate(mut doc: Value, muts: &[(usize, Mutation)]) -> Value {
    for (sel, m) in muts {
        let mut all = Vec::new();
        paths(&doc, &mut Vec::new(), &mut all);
        let path = all[sel % all.len()].clone();
        apply_at(&mut doc, &path, m);
    }
    doc
}

pub fn arb_mutations() -> impl Strategy<Value = Vec<(usize, Mutation)>> {
    prop::collection::vec((any::<usize>(), arb_mutation()), 1..4)
}

// ----------------------------------------------------------------- events

/// A Function URL (payload 2.0) request event.
pub fn http_event(method: &str, path: &str, headers: Value, body: Option<&str>) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": path}, "requestId": "props"},
        "body": body, "isBase64Encoded": false,
    })
}

/// An SQS event with one record per body, message ids `m0`, `m1`, …
pub fn sqs_event(bodies: &[String], receive_count: u32) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({"messageId": format!("m{i}"), "receiptHandle": format!("rh-{i}"), "body": b,
                   "attributes": {"ApproximateReceiveCount": receive_count.to_string(),
                                  "SentTimestamp": (1_795_855_273_000u64 + i as u64).to_string()},
                   "messageAttributes": {}, "eventSource": "aws:sqs",
                   "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({ "Records": records })
}

/// The ids of `batchItemFailures` in a partial batch response.
pub fn failed_ids(response: &Value) -> std::collections::BTreeSet<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn d64(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A current-thread runtime for one property case.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
