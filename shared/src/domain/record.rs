//! A repository's record as the store keeps it (webhook config, failure
//! count, repository size) and the outcome of one delivery batch for it.

use serde::{Deserialize, Serialize};

use super::names::{Digest, RepositoryName};
use crate::webhook::{CustomHeaders, PayloadFormat, WebhookSecret};

/// What the last delivery attempt did; kept on the record as history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastDelivery {
    pub webhook_id: String,
    pub event: String,
    pub tag: String,
    pub at: String,
    pub outcome: DeliveryOutcome,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub attempt: u32,
}

/// Attempts kept in a webhook's delivery history (newest first).
pub const HISTORY_LEN: usize = 25;

/// One attempt in a webhook's delivery history, as the settings API shows it
/// (`GET …/webhook/deliveries`) and as the record stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub webhook_id: String,
    pub event: String,
    pub tag: String,
    pub attempt: u32,
    /// RFC 3339 start of the attempt.
    pub at: String,
    pub duration_ms: u64,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why there is no 2xx, as a class (`timeout`, `connection`, `refused`,
    /// `request`), when the receiver did not answer.
    pub error: Option<String>,
    pub kind: AttemptKind,
    /// What the body needs besides the repository and tag, kept on the
    /// newest entry of each event so it can be redelivered; stored, not
    /// shown by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<EventPayload>,
}

/// The parts of a delivered event's body the history keeps for redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPayload {
    pub image_size: u64,
    pub layers: Vec<Digest>,
    pub repository_size: u64,
}

/// Whether an attempt was an event's first, a retry of it, or the first
/// attempt of an event sent again (a redelivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptKind {
    First,
    Retry,
    Redelivery,
}

/// How the last attempt ended, as the settings API shows it: stored and
/// served as its lowercase name (`delivered`, `failed`, `retrying`, `gone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOutcome {
    /// Answered 2xx.
    Delivered,
    /// Failed and not retried (a non-retryable status, a refusal, or the
    /// last attempt).
    Failed,
    /// Failed and scheduled for another attempt.
    Retrying,
    /// Answered 410 Gone: the webhook is disabled.
    Gone,
}

impl DeliveryOutcome {
    /// The name stored and shown by the settings API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Retrying => "retrying",
            Self::Gone => "gone",
        }
    }
}

impl std::fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So checks read `outcome == "delivered"`, as the API shows it.
impl PartialEq<&str> for DeliveryOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for DeliveryOutcome {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// A repository's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The URL as stored (normalised by the URL parser, query kept).
    pub url: String,
    pub secret: WebhookSecret,
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    pub last_delivery: Option<LastDelivery>,
    pub created_at: String,
    pub updated_at: String,
    /// Bumped on every URL change so that outcomes recorded against an old
    /// URL never count against the new one.
    pub url_version: u64,
    /// How the request is shaped (`alin` for records written before formats).
    pub format: PayloadFormat,
    /// Sent after the service's headers; values are secrets (write-only).
    pub headers: CustomHeaders,
    /// The last [`HISTORY_LEN`] attempts, newest first.
    pub deliveries: Vec<DeliveryAttempt>,
}

/// Everything the store keeps for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRecord {
    pub repository: RepositoryName,
    pub webhook: Option<WebhookConfig>,
    /// Sum of the sizes of the distinct layers ever pushed (docs/events.md#native-push-event).
    pub repository_size: u64,
}

impl RepoRecord {
    /// The webhook, when there is one and it is enabled.
    pub fn active_webhook(&self) -> Option<&WebhookConfig> {
        self.webhook.as_ref().filter(|w| w.enabled)
    }

    /// The settings API's config JSON (docs/settings-api.md#the-config-json), keys in its order.
    pub fn api_json(&self) -> Option<serde_json::Value> {
        let w = self.webhook.as_ref()?;
        let mut m = serde_json::Map::new();
        m.insert("repository".into(), self.repository.as_str().into());
        m.insert("url".into(), w.url.clone().into());
        m.insert("enabled".into(), w.enabled.into());
        m.insert("consecutive_failures".into(), w.consecutive_failures.into());
        m.insert("disabled_at".into(), w.disabled_at.clone().into());
        m.insert("disabled_reason".into(), w.disabled_reason.clone().into());
        m.insert("secret".into(), w.secret.expose().into());
        m.insert(
            "last_delivery".into(),
            serde_json::to_value(&w.last_delivery).unwrap_or(serde_json::Value::Null),
        );
        m.insert("created_at".into(), w.created_at.clone().into());
        m.insert("updated_at".into(), w.updated_at.clone().into());
        m.insert("format".into(), w.format.as_str().into());
        // Names only: the values are write-only secrets.
        m.insert(
            "headers".into(),
            w.headers.names().collect::<Vec<_>>().into(),
        );
        Some(serde_json::Value::Object(m))
    }
}

/// How a batch went for one repository, reduced to what the record needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    /// At least one webhook was accepted (2xx): the count goes back to 0.
    Delivered,
    /// Every attempt failed: the count goes up by one (once per batch).
    Failed { reason: String },
    /// The receiver answered 410 Gone: disable at once.
    Gone,
}

/// One batch's outcome for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The URL version the batch delivered to (from the record it read).
    pub url_version: u64,
    pub kind: OutcomeKind,
    pub last_delivery: LastDelivery,
    /// RFC 3339 time of recording.
    pub now: String,
    /// The delivery history after this batch (newest first, bounded),
    /// written by the same write; `None` leaves it as it is.
    pub history: Option<Vec<DeliveryAttempt>>,
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeApplied {
    /// Written; `disabled_now` is true only for the write that disabled it.
    Applied {
        consecutive_failures: u32,
        disabled_now: bool,
    },
    /// The webhook was deleted or its URL replaced since the batch read it:
    /// nothing was written.
    Stale,
}
