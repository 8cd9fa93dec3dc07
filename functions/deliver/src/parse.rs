//! From an SQS event to delivery work: each record parsed on its own (a bad
//! one fails alone). A record without a `messageId` cannot be named in
//! `batchItemFailures` (an empty identifier fails the whole batch) and never
//! comes from real SQS: it is acknowledged, logged at ERROR and counted
//! malformed, whatever its body (ingest applies the same rule).

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde::Deserialize;
use shared::domain::{DeliveryJob, QueuedJob};

use crate::error::bounded;

/// The SQS event as deliver reads it: each record's message id, receipt
/// handle, body and two attributes; every other field is skipped unread.
/// Written here rather than taken from `aws_lambda_events` (whose
/// `SqsEvent` it converts from, for callers that hold one): that type
/// builds every field and attribute map of every record, 25–48 ms for a
/// batch of 10,000 and 8 ms more to free them, against 12–18 ms and 1 ms
/// for this one, all of it before the first read can start.
#[derive(Debug, Default, Deserialize)]
pub struct SqsBatch {
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsRecord>,
}

/// One record of an [`SqsBatch`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    pub message_id: Option<String>,
    pub receipt_handle: Option<String>,
    pub body: Option<String>,
    pub attributes: Option<SqsAttributes>,
}

/// The system attributes deliver uses.
#[derive(Debug, Default, Deserialize)]
pub struct SqsAttributes {
    #[serde(rename = "ApproximateReceiveCount")]
    pub approximate_receive_count: Option<String>,
    #[serde(rename = "SentTimestamp")]
    pub sent_timestamp: Option<String>,
}

impl From<SqsEvent> for SqsBatch {
    fn from(event: SqsEvent) -> Self {
        let records = event.records.into_iter().map(SqsRecord::from).collect();
        Self { records }
    }
}

impl From<SqsMessage> for SqsRecord {
    fn from(mut m: SqsMessage) -> Self {
        Self {
            message_id: m.message_id,
            receipt_handle: m.receipt_handle,
            body: m.body,
            attributes: Some(SqsAttributes {
                approximate_receive_count: m.attributes.remove("ApproximateReceiveCount"),
                sent_timestamp: m.attributes.remove("SentTimestamp"),
            }),
        }
    }
}

/// What we keep of an SQS record besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Never empty for a [`Job`] (see the module docs).
    pub message_id: String,
    pub receipt_handle: Option<String>,
    /// The real attempt this receive is (≥ 1): the attempts the job made
    /// before its message was queued (0 for a version-1 job) plus
    /// `ApproximateReceiveCount`. Every receive of a message is an attempt
    /// because jobs that are not sent are re-queued as a new message rather
    /// than released (see [`crate::account`]).
    pub attempt: u32,
    /// Re-queued by `deliver` (a version-2 job carrying its attempt count).
    pub requeued: bool,
    /// `SentTimestamp`, epoch milliseconds (0 when absent).
    pub sent_at_ms: u64,
    /// Position in the batch.
    pub position: usize,
}

impl Record {
    /// A re-queued job whose real attempts are used up: it is not sent
    /// again (see [`crate::account`]). A version-1 job is sent whatever its
    /// receive count: the redrive policy bounds those.
    pub fn spent(&self, max_attempts: u32) -> bool {
        self.requeued && self.attempt > max_attempts
    }
}

/// A record whose body is a valid delivery job.
#[derive(Debug)]
pub(crate) struct Job {
    pub record: Record,
    pub job: DeliveryJob,
}

/// A record whose body is not a delivery job.
#[derive(Debug)]
pub(crate) struct Malformed {
    pub record: Record,
    pub error: String,
}

/// Parses every record; never fails as a whole. Bodies are dropped as soon
/// as they are parsed, so a 10,000-record batch is not held twice.
pub(crate) fn parse(event: SqsBatch) -> (Vec<Job>, Vec<Malformed>) {
    let mut jobs = Vec::with_capacity(event.records.len());
    let mut malformed = Vec::new();
    for (position, msg) in event.records.into_iter().enumerate() {
        let (record, body) = split(msg, position);
        if record.message_id.is_empty() {
            malformed.push(Malformed {
                record,
                error: "record has no messageId".to_owned(),
            });
            continue;
        }
        match body.as_deref().map(QueuedJob::parse) {
            Some(Ok(queued)) => {
                let mut record = record;
                let before = queued.attempts.unwrap_or(0);
                record.attempt = before.saturating_add(record.attempt);
                record.requeued = queued.attempts.is_some();
                jobs.push(Job {
                    record,
                    job: queued.job,
                })
            }
            Some(Err(e)) => malformed.push(Malformed {
                record,
                // serde's message quotes the offending text: keep it short.
                error: bounded(&e.to_string()),
            }),
            None => malformed.push(Malformed {
                record,
                error: "record has no body".to_owned(),
            }),
        }
    }
    (jobs, malformed)
}

fn split(msg: SqsRecord, position: usize) -> (Record, Option<String>) {
    let attrs = msg.attributes.unwrap_or_default();
    let attempt = (attrs.approximate_receive_count.as_deref())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let sent_at_ms = (attrs.sent_timestamp.as_deref())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let record = Record {
        message_id: msg.message_id.unwrap_or_default(),
        receipt_handle: msg.receipt_handle.filter(|h| !h.is_empty()),
        attempt,
        requeued: false,
        sent_at_ms,
        position,
    };
    (record, msg.body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn msg(id: &str, body: &str, attrs: &[(&str, &str)]) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(body.to_owned());
        m.attributes = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>();
        m
    }

    pub(crate) fn body(
        id: &str,
        repo: &str,
        tag: &str,
        kind: &str,
        pushed_at: Option<&str>,
    ) -> String {
        let pushed = pushed_at
            .map(|p| format!(r#","pushed_at":"{p}""#))
            .unwrap_or_default();
        format!(
            r#"{{"v":1,"webhook_id":"{id}","kind":"{kind}","repository":"{repo}","tag":"{tag}","image_size":1,"layers":[],"repository_size":1{pushed}}}"#
        )
    }

    pub(crate) fn event(msgs: Vec<SqsMessage>) -> SqsBatch {
        let mut e = SqsEvent::default();
        e.records = msgs;
        e.into()
    }

    /// The lean event reads what `aws_lambda_events` reads of the sample
    /// event (the shape `sam local invoke` and real SQS send), and takes
    /// null or absent fields as `SqsEvent` does.
    #[test]
    fn the_lean_event_reads_what_sqs_event_reads() {
        let sample = include_str!("../../../events/deliver/sqs-batch.json");
        let full: SqsEvent = serde_json::from_str(sample).unwrap();
        let lean: SqsBatch = serde_json::from_str(sample).unwrap();
        assert!(!full.records.is_empty());
        assert_eq!(full.records.len(), lean.records.len());
        for (f, l) in full.records.iter().zip(&lean.records) {
            let a = l.attributes.as_ref().unwrap();
            assert_eq!(
                (&f.message_id, &f.receipt_handle, &f.body),
                (&l.message_id, &l.receipt_handle, &l.body)
            );
            assert_eq!(
                f.attributes.get("ApproximateReceiveCount"),
                a.approximate_receive_count.as_ref()
            );
            assert_eq!(f.attributes.get("SentTimestamp"), a.sent_timestamp.as_ref());
        }
        let sparse = r#"{"Records":[{"messageId":"m1","body":null,"attributes":null},{}]}"#;
        let lean: SqsBatch = serde_json::from_str(sparse).unwrap();
        let (jobs, bad) = parse(lean);
        assert!(jobs.is_empty());
        let errors: Vec<&str> = bad.iter().map(|m| m.error.as_str()).collect();
        assert_eq!(errors, ["record has no body", "record has no messageId"]);
    }

    #[test]
    fn bad_records_fail_alone() {
        let good = body("evt_1", "alice/app", "1.0", "push", None);
        let (jobs, bad) = parse(event(vec![
            msg("m1", &good, &[("ApproximateReceiveCount", "3")]),
            msg("m2", "{not json", &[]),
            msg("m3", &good.replace("\"v\":1", "\"v\":9"), &[]),
            {
                let mut m = msg("m4", "", &[]);
                m.body = None;
                m
            },
            msg("m5", &good, &[("ApproximateReceiveCount", "x")]),
        ]));
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].record.attempt, 3);
        assert_eq!(jobs[0].record.receipt_handle.as_deref(), Some("rh-m1"));
        assert_eq!(jobs[1].record.attempt, 1);
        let ids: Vec<&str> = bad.iter().map(|m| m.record.message_id.as_str()).collect();
        assert_eq!(ids, ["m2", "m3", "m4"]);
        assert!(bad[1].error.contains("version"), "{}", bad[1].error);
    }

    #[test]
    fn a_hostile_body_gives_a_bounded_error() {
        let huge = format!(r#"{{"v":1,"{}":1}}"#, "A".repeat(100_000));
        let (_, bad) = parse(event(vec![msg("m", &huge, &[])]));
        assert!(bad[0].error.contains("unknown field"), "{}", bad[0].error);
        assert!(bad[0].error.chars().count() <= crate::error::MAX_OUTSIDE_TEXT + 1);
    }
}
