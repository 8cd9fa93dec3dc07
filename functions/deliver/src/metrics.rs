//! The figures of one invocation and their one log line, in CloudWatch
//! Embedded Metric Format: CloudWatch turns the line into metrics in the
//! `AlinWebhooks` namespace (dimension `Function`) with no API call and no
//! extra latency.
//!
//! EMF is recognised only when the whole log line is the JSON object, so it
//! cannot go through `tracing`: the formatter prefixes text lines and, with
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, nests the message inside its own object.
//! [`emit`] is therefore the one place in this crate that writes to stdout
//! directly (one `println!`, one line, holding the stdout lock, so it never
//! interleaves with tracing's lines).

use serde_json::{json, Map, Value};

/// Namespace of every metric.
pub const NAMESPACE: &str = "AlinWebhooks";
/// Value of the `Function` dimension.
pub const FUNCTION: &str = "deliver";

/// What one invocation did with its records. Each record is counted in
/// exactly one of `malformed`, `superseded`, `dropped`, `delivered`,
/// `failed`, `not_started` and `deferred`; `gone`, `retried` and
/// `dead_lettered` break `failed` down, `requeued` breaks `not_started` and
/// `deferred` down.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records in the batch.
    pub received: u64,
    /// Not a delivery job: reported failed, on their way to the DLQ.
    pub malformed: u64,
    /// Older pushes of a tag also pushed later in the batch: acknowledged.
    pub superseded: u64,
    /// No webhook, or a disabled one: acknowledged.
    pub dropped: u64,
    /// Answered 2xx.
    pub delivered: u64,
    /// Attempted (or refused by the address rule) and not answered 2xx.
    pub failed: u64,
    /// Failed with 410 Gone.
    pub gone: u64,
    /// Failed, and scheduled for another attempt.
    pub retried: u64,
    /// Failed on the last attempt: reported failed so SQS moves it to the DLQ.
    pub dead_lettered: u64,
    /// Not started before the deadline: back in a few seconds, not counted.
    pub not_started: u64,
    /// Not started because their host kept failing in this batch: back with
    /// backoff, not counted against their webhooks.
    pub deferred: u64,
    /// Of `not_started` and `deferred`: re-queued as new messages with their
    /// attempt counts (the rest came back through their visibility).
    pub requeued: u64,
    /// Webhooks this invocation disabled.
    pub disabled: u64,
    /// Outcome writes that failed (the deliveries themselves stand).
    pub store_errors: u64,
    /// Visibility changes that failed (those jobs come back after the
    /// queue's visibility timeout instead).
    pub queue_errors: u64,
    /// Wall time of the invocation.
    pub duration_ms: u64,
}

impl Summary {
    fn counts(&self) -> [(&'static str, u64); 15] {
        [
            ("received", self.received),
            ("malformed", self.malformed),
            ("superseded", self.superseded),
            ("dropped", self.dropped),
            ("delivered", self.delivered),
            ("failed", self.failed),
            ("gone", self.gone),
            ("retried", self.retried),
            ("dead_lettered", self.dead_lettered),
            ("not_started", self.not_started),
            ("deferred", self.deferred),
            ("requeued", self.requeued),
            ("disabled", self.disabled),
            ("store_errors", self.store_errors),
            ("queue_errors", self.queue_errors),
        ]
    }

    /// The EMF document: `_aws` metadata, the `Function` dimension, one
    /// member per metric, and the request id as a searchable property.
    pub fn to_emf(&self, timestamp_ms: i64, request_id: &str) -> Value {
        let mut metrics: Vec<Value> = self
            .counts()
            .iter()
            .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
            .collect();
        metrics.push(json!({"Name": "duration_ms", "Unit": "Milliseconds"}));
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": metrics,
                }],
            }),
        );
        doc.insert("Function".into(), FUNCTION.into());
        for (name, value) in self.counts() {
            doc.insert(name.into(), value.into());
        }
        doc.insert("duration_ms".into(), self.duration_ms.into());
        doc.insert("request_id".into(), request_id.into());
        Value::Object(doc)
    }
}

/// Prints the invocation's EMF line on stdout (see the module docs for why
/// this is a `println!`).
pub fn emit(summary: &Summary, request_id: &str) {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let doc = summary.to_emf(i64::try_from(now_ms).unwrap_or(i64::MAX), request_id);
    println!("{doc}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let f = Summary {
            received: 10,
            delivered: 7,
            failed: 3,
            retried: 2,
            dead_lettered: 1,
            duration_ms: 1234,
            ..Summary::default()
        };
        let doc = f.to_emf(1_795_852_800_000, "req-1");
        let line = doc.to_string();
        assert!(!line.contains('\n'));
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_795_852_800_000i64);
        let cwm = &aws["CloudWatchMetrics"][0];
        assert_eq!(cwm["Namespace"], "AlinWebhooks");
        assert_eq!(cwm["Dimensions"], json!([["Function"]]));
        assert_eq!(doc["Function"], "deliver");
        let metrics = cwm["Metrics"].as_array().unwrap();
        // Every declared metric has a numeric member of the same name.
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(doc[name].is_u64(), "{name}");
            assert!(matches!(m["Unit"].as_str(), Some("Count" | "Milliseconds")));
        }
        for name in [
            "received",
            "malformed",
            "superseded",
            "dropped",
            "delivered",
            "failed",
            "retried",
            "dead_lettered",
            "not_started",
            "duration_ms",
        ] {
            assert!(metrics.iter().any(|m| m["Name"] == name), "{name}");
        }
        assert_eq!(doc["delivered"], 7);
        assert_eq!(doc["duration_ms"], 1234);
        assert_eq!(doc["request_id"], "req-1");
    }
}
