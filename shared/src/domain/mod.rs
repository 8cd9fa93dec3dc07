//! Domain types: validated names, the webhook URL rule, push events, delivery
//! jobs and the per-repository webhook record. No I/O lives here.

pub mod job;
pub mod names;
pub mod record;
pub mod target;
pub mod time;

pub use job::{DeliveryJob, JobError, JobKind, QueuedJob};
pub use names::{Digest, NameError, RepositoryName, Tag};
pub use record::{
    AttemptKind, BatchOutcome, DeliveryAttempt, DeliveryOutcome, EventPayload, LastDelivery,
    OutcomeApplied, OutcomeKind, RepoRecord, WebhookConfig,
};
pub use target::{classify_ip, validate_webhook_url, UrlError, WebhookUrl};
