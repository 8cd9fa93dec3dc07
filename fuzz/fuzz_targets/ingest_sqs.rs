//! The ingest handler behind its SQS trigger, on batches of arbitrary
//! message bodies (`body 0xFF body … [0xFF manifest]`; the first byte says
//! whether the last part is the manifest the fake registry serves).
//!
//! Properties: never a panic, never a failed invocation for a well-formed
//! SQS event; exactly the records whose body does not parse
//! (`formats::parse_input`) are reported as batch item failures (so they
//! reach the DLQ) — nothing else can fail here, as the memory adapters and
//! the fake registry never fail retryably; every queued job parses again.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::BTreeSet;

use ingest::formats::{parse_input, Channel};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use shared::domain::DeliveryJob;

fuzz_target!(|data: &[u8]| {
    let f0 = common::pick(data, 0, 256);
    let rest = data.get(1..).unwrap_or(&[]);
    let mut p = common::parts(rest, 9);
    let manifest = if f0 % 2 == 1 && p.len() > 1 {
        p.pop().map(|m| common::manifest(f0 / 2, m))
    } else {
        None
    };
    let bodies: Vec<String> = p.iter().map(|b| common::text(b)).collect();
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({"messageId": format!("m{i}"), "receiptHandle": format!("rh{i}"), "body": b,
                   "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                   "eventSource": "aws:sqs"})
        })
        .collect();
    let malformed: BTreeSet<String> = bodies
        .iter()
        .enumerate()
        .filter(|(_, b)| parse_input(b.as_bytes(), Channel::Sqs).is_err())
        .map(|(i, _)| format!("m{i}"))
        .collect();

    common::runtime().block_on(async move {
        let (ingest, queue) = common::ingest_with(manifest).await;
        let answer = ingest
            .handle(json!({ "Records": records }))
            .await
            .expect("a well-formed SQS event is answered with a partial batch response");
        let failed: BTreeSet<String> = answer["batchItemFailures"]
            .as_array()
            .expect("batchItemFailures")
            .iter()
            .map(|f| f["itemIdentifier"].as_str().expect("an id").to_owned())
            .collect();
        assert_eq!(
            failed, malformed,
            "failed records must be exactly the malformed ones"
        );
        for job in queue.jobs() {
            DeliveryJob::parse(&job.to_json()).expect("a queued job parses again");
        }
    });
});
