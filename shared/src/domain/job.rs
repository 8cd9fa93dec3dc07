//! The delivery job: the SQS message `ingest` and `settings` send and `deliver`
//! consumes. Versioned (`v`) so the format can change while old messages are
//! still in flight; validated on parse so a bad message fails alone.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::names::{Digest, RepositoryName, Tag};

/// The job format this code writes and reads.
pub const JOB_VERSION: u8 = 1;
/// Longest `webhook-id` we send; ids travel in an HTTP header.
const MAX_WEBHOOK_ID_LEN: usize = 128;
/// More layers than any real image has; bounds message size and work.
const MAX_LAYERS: usize = 1024;

/// What a job announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Push,
    Ping,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Ping => "ping",
        }
    }
}

/// Why a message body is not a delivery job. Always permanent: the same
/// bytes will never parse, so the message belongs in the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("delivery job is not valid JSON of the expected shape: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("delivery job version {0} is not supported (expected {JOB_VERSION})")]
    Version(u8),
    #[error(
        "delivery job webhook_id must be 1..={MAX_WEBHOOK_ID_LEN} characters of [A-Za-z0-9_-.]"
    )]
    WebhookId,
    #[error("delivery job has {0} layers (at most {MAX_LAYERS})")]
    TooManyLayers(usize),
}

/// One webhook to send: everything the body needs except the send time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryJob {
    pub v: u8,
    pub webhook_id: String,
    pub kind: JobKind,
    pub repository: RepositoryName,
    pub tag: Tag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    pub image_size: u64,
    pub layers: Vec<Digest>,
    pub repository_size: u64,
    /// RFC 3339; used to keep the newest of several pushes of one tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
}

impl DeliveryJob {
    /// Parses and validates an SQS message body.
    pub fn parse(body: &str) -> Result<Self, JobError> {
        let job: Self = serde_json::from_str(body)?;
        job.validate()?;
        Ok(job)
    }

    pub fn validate(&self) -> Result<(), JobError> {
        if self.v != JOB_VERSION {
            return Err(JobError::Version(self.v));
        }
        if !is_valid_webhook_id(&self.webhook_id) {
            return Err(JobError::WebhookId);
        }
        if self.layers.len() > MAX_LAYERS {
            return Err(JobError::TooManyLayers(self.layers.len()));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A test delivery (CONTRACT §4): tag `ping`, no layers, size 0.
    pub fn ping(repository: RepositoryName, repository_size: u64, webhook_id: String) -> Self {
        Self {
            v: JOB_VERSION,
            webhook_id,
            kind: JobKind::Ping,
            repository,
            tag: Tag::parse("ping").unwrap_or_else(|_| unreachable!("ping is a valid tag")),
            digest: None,
            image_size: 0,
            layers: Vec::new(),
            repository_size,
            pushed_at: None,
        }
    }

    /// `<username>/<repository>:<tag>`, the `x-alin-webhook` value and the
    /// coalescing key.
    pub fn image_ref(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

fn is_valid_webhook_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_WEBHOOK_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A stable webhook id from the parts that identify one registry event, so a
/// redelivered event keeps its id (the receiver's idempotency key).
pub fn derive_webhook_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut s = String::with_capacity(4 + 32);
    s.push_str("evt_");
    for b in &d[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A fresh random webhook id (for test deliveries, which have no registry event).
pub fn random_webhook_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut s = String::from("evt_");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        format!(
            r#"{{"v":1,"webhook_id":"evt_0123","kind":"push","repository":"alice/app","tag":"1.0","digest":"sha256:{d}","image_size":126,"layers":["sha256:{d}"],"repository_size":126,"pushed_at":"2026-11-28T08:41:13Z"}}"#,
            d = "b".repeat(64)
        )
    }

    #[test]
    fn round_trips() {
        let job = DeliveryJob::parse(&sample()).unwrap();
        assert_eq!(job.image_ref(), "alice/app:1.0");
        assert_eq!(job.to_json(), sample());
    }

    #[test]
    fn refuses_bad_jobs() {
        let s = sample();
        for bad in [
            s.replace("\"v\":1", "\"v\":2"),
            s.replace("evt_0123", "evt 0123"),
            s.replace("evt_0123", ""),
            s.replace("alice/app", "Alice"),
            s.replace("\"1.0\"", "\".bad\""),
            s.replace("\"push\"", "\"pull\""),
            s.replace("\"image_size\":126", "\"image_size\":-1"),
            s.replace("\"v\":1,", "\"v\":1,\"extra\":true,"),
            s[..s.len() - 1].to_owned(),
            "null".to_owned(),
        ] {
            assert!(DeliveryJob::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn webhook_ids_are_stable_and_distinct() {
        let a = derive_webhook_id(&["dist", "66208069"]);
        assert_eq!(a, derive_webhook_id(&["dist", "66208069"]));
        assert_ne!(a, derive_webhook_id(&["dist", "66208070"]));
        assert_ne!(
            derive_webhook_id(&["ab", "c"]),
            derive_webhook_id(&["a", "bc"])
        );
        assert!(is_valid_webhook_id(&a) && a.len() == 36);
        assert!(is_valid_webhook_id(&random_webhook_id()));
    }
}
