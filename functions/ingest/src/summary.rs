//! What one invocation did, counted once and reported twice: as the single
//! structured log line per invocation (operators graph it) and as the HTTP
//! 202 body (the registry's only feedback). Keeping the counts in one struct
//! is what keeps the two from disagreeing.

use std::time::Duration;

use serde_json::{json, Value};

/// Why a registry event was acknowledged without making a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// A layer or config blob was pushed, not a manifest.
    Blob,
    /// A manifest pushed by digest only (no tag), e.g. a platform manifest of an index.
    Untagged,
    Pull,
    Mount,
    Delete,
    /// Another Distribution action, native event or ECR action type.
    OtherAction,
    /// An EventBridge event that is not an "ECR Image Action".
    OtherEvent,
    /// An ECR action whose `result` is not `SUCCESS`.
    NotSuccessful,
    /// The manifest is gone or unusable (404, not found, unsupported, too large).
    ManifestUnusable,
}

impl IgnoreReason {
    /// Every reason, in log-field order.
    pub const ALL: [IgnoreReason; 9] = [
        Self::Blob,
        Self::Untagged,
        Self::Pull,
        Self::Mount,
        Self::Delete,
        Self::OtherAction,
        Self::OtherEvent,
        Self::NotSuccessful,
        Self::ManifestUnusable,
    ];

    /// The snake_case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blob => "blob",
            Self::Untagged => "untagged",
            Self::Pull => "pull",
            Self::Mount => "mount",
            Self::Delete => "delete",
            Self::OtherAction => "other_action",
            Self::OtherEvent => "other_event",
            Self::NotSuccessful => "not_successful",
            Self::ManifestUnusable => "manifest_unusable",
        }
    }

    /// Maps a registry action name (Distribution `action`, native `event`,
    /// ECR `action-type`, any case) other than push to its reason.
    pub fn for_action(action: &str) -> Self {
        match action.to_ascii_lowercase().as_str() {
            "pull" => Self::Pull,
            "mount" => Self::Mount,
            "delete" => Self::Delete,
            _ => Self::OtherAction,
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Ignored events by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoredCounts([usize; 9]);

impl IgnoredCounts {
    pub fn add(&mut self, reason: IgnoreReason) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: IgnoreReason) -> usize {
        self.0[reason.index()]
    }

    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }
}

/// The counts of one invocation. Events are counted individually (an
/// envelope of three events counts three); `malformed` and `failed_inputs`
/// count inputs (HTTP bodies or SQS records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Registry events read from well-formed inputs.
    pub received: usize,
    /// Pushes of a manifest or index by tag whose layers are known: the
    /// events that deserve a webhook (`dropped_no_webhook` + jobs).
    pub accepted: usize,
    pub ignored: IgnoredCounts,
    /// Accepted events for repositories without an enabled webhook.
    pub dropped_no_webhook: usize,
    pub jobs_sent: usize,
    pub jobs_failed: usize,
    /// SendMessageBatch calls made (the queue's `SendReport.calls`).
    pub queue_calls: usize,
    /// `get_many` calls made on the store (0 or 1 per invocation).
    pub store_lookups: usize,
    /// Inputs refused whole as malformed.
    pub malformed: usize,
    /// Inputs reported failed (HTTP 4xx/5xx or SQS batch item failures).
    pub failed_inputs: usize,
    /// Distribution events over HTTP that can never be processed (malformed,
    /// refused origin, manifest gone or unusable): answered 2xx, logged and
    /// kept in the registry events dead-letter queue.
    pub rejected: usize,
    /// Distribution events over HTTP that could not be processed now and were
    /// put on the registry events queue for the SQS door to retry.
    pub deferred: usize,
    /// Messages put on the registry events dead-letter queue.
    pub dead_lettered: usize,
    pub duration: Duration,
}

impl Summary {
    /// The HTTP 202 body (see the crate docs for its meaning).
    pub fn http_body(&self) -> Value {
        json!({
            "accepted": self.accepted,
            "ignored": self.ignored.total(),
            "dropped": self.dropped_no_webhook,
            "queued": self.jobs_sent,
            "rejected": self.rejected,
            "deferred": self.deferred,
        })
    }

    /// Emits the invocation's one structured log line.
    pub fn log(&self, trigger: &'static str) {
        let i = |r| self.ignored.get(r);
        tracing::info!(
            trigger,
            received = self.received,
            accepted = self.accepted,
            ignored = self.ignored.total(),
            ignored_blob = i(IgnoreReason::Blob),
            ignored_untagged = i(IgnoreReason::Untagged),
            ignored_pull = i(IgnoreReason::Pull),
            ignored_mount = i(IgnoreReason::Mount),
            ignored_delete = i(IgnoreReason::Delete),
            ignored_other_action = i(IgnoreReason::OtherAction),
            ignored_other_event = i(IgnoreReason::OtherEvent),
            ignored_not_successful = i(IgnoreReason::NotSuccessful),
            ignored_manifest_unusable = i(IgnoreReason::ManifestUnusable),
            dropped_no_webhook = self.dropped_no_webhook,
            jobs_sent = self.jobs_sent,
            jobs_failed = self.jobs_failed,
            queue_calls = self.queue_calls,
            store_lookups = self.store_lookups,
            malformed = self.malformed,
            failed_inputs = self.failed_inputs,
            rejected = self.rejected,
            deferred = self.deferred,
            dead_lettered = self.dead_lettered,
            duration_ms = self.duration.as_millis() as u64,
            "ingest invocation"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_renders_the_http_body() {
        let mut s = Summary::default();
        s.ignored.add(IgnoreReason::Blob);
        s.ignored.add(IgnoreReason::Blob);
        s.ignored.add(IgnoreReason::ManifestUnusable);
        s.accepted = 3;
        s.dropped_no_webhook = 1;
        s.jobs_sent = 2;
        assert_eq!(s.ignored.get(IgnoreReason::Blob), 2);
        assert_eq!(
            s.http_body(),
            json!({"accepted": 3, "ignored": 3, "dropped": 1, "queued": 2, "rejected": 0, "deferred": 0})
        );
        assert_eq!(IgnoreReason::for_action("DELETE"), IgnoreReason::Delete);
        assert_eq!(IgnoreReason::for_action("scan"), IgnoreReason::OtherAction);
        let names: std::collections::HashSet<_> =
            IgnoreReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), IgnoreReason::ALL.len());
    }
}
