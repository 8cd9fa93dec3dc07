//! The delivery job: the SQS message `ingest` and `settings` send and `deliver`
//! consumes. Versioned (`v`) so the format can change while old messages are
//! still in flight; validated on parse so a bad message fails alone.
//!
//! Formats: version 1 is the job as `ingest` and `settings` write it;
//! version 2 ([`QueuedJob`]) is version 1 plus `attempts`, the real delivery
//! attempts made before the message was queued, written by `deliver` when it
//! re-queues a job it did not send (so a job reaches the dead-letter queue
//! after `MAX_ATTEMPTS` attempts, not after `MAX_ATTEMPTS` receives). A
//! version-1 job has made no attempt before this message.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::names::{Digest, RepositoryName, Tag};

/// The job format `ingest` and `settings` write, and [`DeliveryJob`] reads.
pub const JOB_VERSION: u8 = 1;
/// The format of a job re-queued with its attempt count ([`QueuedJob`]).
pub const JOB_VERSION_WITH_ATTEMPTS: u8 = 2;
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
    #[error("delivery job version {0} is not supported (expected {JOB_VERSION} or {JOB_VERSION_WITH_ATTEMPTS})")]
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

    /// A test delivery (the contract's ping): tag `ping`, no layers, size 0.
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

/// A job as it travels on the delivery queue: the job, and the real attempts
/// made before this message was queued (`None` for a version-1 message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub job: DeliveryJob,
    pub attempts: Option<u32>,
}

impl QueuedJob {
    /// Parses a version-1 or version-2 message body.
    pub fn parse(body: &str) -> Result<Self, JobError> {
        /// Just the version, whatever else the body holds.
        #[derive(Deserialize)]
        struct Version {
            v: u8,
        }
        match DeliveryJob::parse(body) {
            Ok(job) => Ok(Self {
                job,
                attempts: None,
            }),
            Err(e) => match serde_json::from_str::<Version>(body) {
                Ok(Version {
                    v: JOB_VERSION_WITH_ATTEMPTS,
                }) => Self::parse_v2(body),
                _ => Err(e),
            },
        }
    }

    fn parse_v2(body: &str) -> Result<Self, JobError> {
        let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body)?;
        let attempts: u32 =
            serde_json::from_value(map.remove("attempts").unwrap_or(serde_json::Value::Null))?;
        map.insert("v".to_owned(), JOB_VERSION.into());
        let job: DeliveryJob = serde_json::from_value(serde_json::Value::Object(map))?;
        job.validate()?;
        Ok(Self {
            job,
            attempts: Some(attempts),
        })
    }

    /// The message body: version 2 when it carries an attempt count.
    pub fn to_json(&self) -> String {
        let Some(attempts) = self.attempts else {
            return self.job.to_json();
        };
        let mut value = serde_json::to_value(&self.job).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("v".to_owned(), JOB_VERSION_WITH_ATTEMPTS.into());
            map.insert("attempts".to_owned(), attempts.into());
        }
        value.to_string()
    }
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

    #[test]
    fn queued_jobs_carry_their_attempts() {
        let v1 = QueuedJob::parse(&sample()).unwrap();
        assert_eq!(v1.attempts, None);
        assert_eq!(v1.to_json(), sample());
        let v2 = QueuedJob {
            job: v1.job.clone(),
            attempts: Some(4),
        };
        let body = v2.to_json();
        assert!(
            body.contains("\"v\":2") && body.contains("\"attempts\":4"),
            "{body}"
        );
        assert_eq!(QueuedJob::parse(&body).unwrap(), v2);
        // A version-2 body is not a version-1 job (an old reader refuses it
        // whole rather than losing the count).
        assert!(DeliveryJob::parse(&body).is_err());
        let s = sample();
        // Version 2 without a usable count, with an extra field, or version 3.
        for v in [
            r#"2"#,
            r#"2,"attempts":-1"#,
            r#"2,"attempts":"x""#,
            r#"2,"attempts":1,"extra":0"#,
            r#"3,"attempts":1"#,
        ] {
            let bad = s.replace("\"v\":1", &format!("\"v\":{v}"));
            assert!(QueuedJob::parse(&bad).is_err(), "{bad}");
        }
    }
}
