//! Coalescing: several pushes of one `repository:tag` in a batch send one
//! webhook, the newest; the others are acknowledged as superseded.

use std::collections::HashMap;

use shared::domain::time::parse_rfc3339;
use shared::domain::JobKind;
use time::OffsetDateTime;

use crate::parse::Job;

/// Marks the jobs another job of the batch supersedes: for pushes of the
/// same `repository:tag`, every one but the newest by `pushed_at` (a job
/// without one is older than a job with one), then `SentTimestamp`, then
/// position. Pings are never coalesced, nor jobs whose attempts are used up
/// (they are not sent, so they must not stand in for a newer push).
pub(crate) fn superseded(jobs: &[Job], max_attempts: u32) -> Vec<bool> {
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
        if j.job.kind != JobKind::Push || j.record.spent(max_attempts) {
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
    use crate::parse::parse;
    use crate::parse::tests::{body, event, msg};

    #[test]
    fn newest_push_of_a_tag_wins() {
        let t = |s: &str| format!("2026-11-28T08:00:{s}Z");
        let push = |id: &str, event: &str, tag: &str, at: Option<&str>, sent: &str| {
            let body = body(event, "alice/app", tag, "push", at);
            msg(id, &body, &[("SentTimestamp", sent)])
        };
        let (jobs, _) = parse(event(vec![
            // pushed_at decides
            push("a1", "e1", "1.0", Some(&t("05")), "9"),
            push("a2", "e2", "1.0", Some(&t("10")), "1"),
            push("a3", "e3", "1.0", None, "99"),
            // no pushed_at: SentTimestamp, then position
            push("b1", "e4", "2.0", None, "5"),
            push("b2", "e5", "2.0", None, "4"),
            push("b3", "e6", "2.0", None, "5"),
            // pings are never coalesced, not even with a push tagged "ping"
            msg("p1", &body("e7", "alice/app", "ping", "ping", None), &[]),
            msg("p2", &body("e8", "alice/app", "ping", "ping", None), &[]),
            msg("p3", &body("e9", "alice/app", "ping", "push", None), &[]),
            // other repository, same tag
            msg("c1", &body("e10", "bob/app", "1.0", "push", None), &[]),
        ]));
        let s = superseded(&jobs, u32::MAX);
        let kept: Vec<&str> = jobs
            .iter()
            .zip(&s)
            .filter(|(_, s)| !**s)
            .map(|(j, _)| j.record.message_id.as_str())
            .collect();
        assert_eq!(kept, ["a2", "b3", "p1", "p2", "p3", "c1"]);
    }
}
