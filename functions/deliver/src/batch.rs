//! From an SQS event to delivery work: each record parsed on its own (a bad
//! one fails alone), then coalesced so several pushes of one
//! `repository:tag` in a batch send one webhook, the newest.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use shared::domain::time::parse_rfc3339;
use shared::domain::{DeliveryJob, JobKind};
use std::collections::HashMap;
use time::OffsetDateTime;

/// What we keep of an SQS record besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Empty when SQS sent none; such a record can never be reported failed
    /// (an empty `itemIdentifier` fails the whole batch).
    pub message_id: String,
    pub receipt_handle: Option<String>,
    /// `ApproximateReceiveCount`: this is attempt number `attempt` (≥ 1).
    pub attempt: u32,
    /// `SentTimestamp`, epoch milliseconds (0 when absent).
    pub sent_at_ms: u64,
    /// Position in the batch.
    pub position: usize,
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
pub(crate) fn parse(event: SqsEvent) -> (Vec<Job>, Vec<Malformed>) {
    let mut jobs = Vec::with_capacity(event.records.len());
    let mut malformed = Vec::new();
    for (position, msg) in event.records.into_iter().enumerate() {
        let (record, body) = split(msg, position);
        match body.as_deref().map(DeliveryJob::parse) {
            Some(Ok(job)) => jobs.push(Job { record, job }),
            Some(Err(e)) => malformed.push(Malformed {
                record,
                error: e.to_string(),
            }),
            None => malformed.push(Malformed {
                record,
                error: "record has no body".to_owned(),
            }),
        }
    }
    (jobs, malformed)
}

fn split(msg: SqsMessage, position: usize) -> (Record, Option<String>) {
    let attr = |name: &str| msg.attributes.get(name).map(|v| v.trim());
    let attempt = attr("ApproximateReceiveCount")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let sent_at_ms = attr("SentTimestamp")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let record = Record {
        message_id: msg.message_id.unwrap_or_default(),
        receipt_handle: msg.receipt_handle.filter(|h| !h.is_empty()),
        attempt,
        sent_at_ms,
        position,
    };
    (record, msg.body)
}

/// Marks the jobs another job of the batch supersedes: for pushes of the
/// same `repository:tag`, every one but the newest by `pushed_at` (a job
/// without one is older than a job with one), then `SentTimestamp`, then
/// position. Pings are never coalesced.
pub(crate) fn superseded(jobs: &[Job]) -> Vec<bool> {
    let mut newest: HashMap<(&str, &str), usize> = HashMap::with_capacity(jobs.len());
    let mut out = vec![false; jobs.len()];
    let order = |i: usize| -> (Option<OffsetDateTime>, u64, usize) {
        let j = &jobs[i];
        (
            j.job.pushed_at.as_deref().and_then(parse_rfc3339),
            j.record.sent_at_ms,
            j.record.position,
        )
    };
    for (i, j) in jobs.iter().enumerate() {
        if j.job.kind != JobKind::Push {
            continue;
        }
        let key = (j.job.repository.as_str(), j.job.tag.as_str());
        match newest.get_mut(&key) {
            None => {
                newest.insert(key, i);
            }
            Some(best) => {
                if order(i) > order(*best) {
                    out[*best] = true;
                    *best = i;
                } else {
                    out[i] = true;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn msg(id: &str, body: &str, attrs: &[(&str, &str)]) -> SqsMessage {
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

    fn body(id: &str, repo: &str, tag: &str, kind: &str, pushed_at: Option<&str>) -> String {
        let pushed = pushed_at
            .map(|p| format!(r#","pushed_at":"{p}""#))
            .unwrap_or_default();
        format!(
            r#"{{"v":1,"webhook_id":"{id}","kind":"{kind}","repository":"{repo}","tag":"{tag}","image_size":1,"layers":[],"repository_size":1{pushed}}}"#
        )
    }

    fn event(msgs: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = msgs;
        e
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
    fn newest_push_of_a_tag_wins() {
        let t = |s: &str| format!("2026-11-28T08:00:{s}Z");
        let (jobs, _) = parse(event(vec![
            // pushed_at decides
            msg(
                "a1",
                &body("e1", "alice/app", "1.0", "push", Some(&t("05"))),
                &[("SentTimestamp", "9")],
            ),
            msg(
                "a2",
                &body("e2", "alice/app", "1.0", "push", Some(&t("10"))),
                &[("SentTimestamp", "1")],
            ),
            msg(
                "a3",
                &body("e3", "alice/app", "1.0", "push", None),
                &[("SentTimestamp", "99")],
            ),
            // no pushed_at: SentTimestamp, then position
            msg(
                "b1",
                &body("e4", "alice/app", "2.0", "push", None),
                &[("SentTimestamp", "5")],
            ),
            msg(
                "b2",
                &body("e5", "alice/app", "2.0", "push", None),
                &[("SentTimestamp", "4")],
            ),
            msg(
                "b3",
                &body("e6", "alice/app", "2.0", "push", None),
                &[("SentTimestamp", "5")],
            ),
            // pings are never coalesced, not even with a push tagged "ping"
            msg("p1", &body("e7", "alice/app", "ping", "ping", None), &[]),
            msg("p2", &body("e8", "alice/app", "ping", "ping", None), &[]),
            msg("p3", &body("e9", "alice/app", "ping", "push", None), &[]),
            // other repository, same tag
            msg("c1", &body("e10", "bob/app", "1.0", "push", None), &[]),
        ]));
        let s = superseded(&jobs);
        let kept: Vec<&str> = jobs
            .iter()
            .zip(&s)
            .filter(|(_, s)| !**s)
            .map(|(j, _)| j.record.message_id.as_str())
            .collect();
        assert_eq!(kept, ["a2", "b3", "p1", "p2", "p3", "c1"]);
    }
}
