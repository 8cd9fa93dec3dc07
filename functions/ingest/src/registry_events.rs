//! The registry events queue as seen by the HTTP door: where Distribution
//! events go when they cannot be answered by processing them now. A
//! Distribution registry retries every answer outside 200–399 forever and
//! sends nothing else meanwhile, so the door answers 2xx and instead
//!
//! * **defers** an event it could not process now (manifest fetch or AWS
//!   failed transiently) to `REGISTRY_EVENTS_QUEUE_URL`, ingest's own SQS
//!   trigger, whose retries and dead-letter queue then own it; and
//! * **keeps** an event it can never process (malformed, refused origin,
//!   manifest gone) in `REGISTRY_EVENTS_DLQ_URL`, that queue's dead-letter
//!   queue, with the reason as a message attribute, for an operator.
//!
//! Each message body is one Distribution event wrapped in an envelope
//! (`{"events":[<event>]}`), exactly what the SQS door reads.

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageAttributeValue;

use crate::bounded::bounded;

/// SQS's message size limit (the classic one, safe everywhere).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Sends in flight at once.
const PARALLEL_SENDS: usize = 8;

/// Why an event could not be put on a registry events queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryEventsError {
    /// The queue's URL is not configured: nothing can be put there.
    #[error("{0} is not set")]
    NotConfigured(&'static str),
    /// SQS failed in a way a later try may not (throttling, 5xx, network).
    #[error("registry events queue temporarily failed: {0}")]
    Retryable(String),
    /// SQS refused the message for good (access denied, no such queue).
    #[error("registry events queue failed: {0}")]
    Permanent(String),
}

impl RegistryEventsError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// An event the door will not process now, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// `{"events":[<event>]}`.
    pub body: String,
    /// Bounded reason (kept as the `reason` attribute of a dead letter).
    pub reason: String,
}

/// The two queues of the registry events path.
#[async_trait]
pub trait RegistryEvents: Send + Sync {
    /// Puts each event on the registry events queue (the SQS door retries it).
    async fn defer(&self, events: &[SetAside]) -> Result<(), RegistryEventsError>;

    /// Keeps each event in the registry events dead-letter queue. `Ok(false)`
    /// when no dead-letter queue is configured (the events are then only
    /// logged).
    async fn keep_rejected(&self, events: &[SetAside]) -> Result<bool, RegistryEventsError>;
}

/// The SQS adapter.
#[derive(Clone, Debug)]
pub struct SqsRegistryEvents {
    client: aws_sdk_sqs::Client,
    queue_url: Option<String>,
    dlq_url: Option<String>,
}

impl SqsRegistryEvents {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: Option<String>,
        dlq_url: Option<String>,
    ) -> Self {
        Self {
            client,
            queue_url,
            dlq_url,
        }
    }

    async fn send_all(
        &self,
        queue_url: &str,
        events: &[SetAside],
        with_reason: bool,
    ) -> Result<(), RegistryEventsError> {
        let mut results = Vec::with_capacity(events.len());
        for chunk in events.chunks(PARALLEL_SENDS) {
            let sends = chunk
                .iter()
                .map(|e| self.send_one(queue_url, e, with_reason));
            results.extend(futures::future::join_all(sends).await);
        }
        // Report the worst failure: a retryable one lets the registry retry.
        let mut worst = None;
        for r in results {
            if let Err(e) = r {
                if worst.is_none() || e.is_retryable() {
                    worst = Some(e);
                }
            }
        }
        worst.map_or(Ok(()), Err)
    }
}

impl SqsRegistryEvents {
    async fn send_one(
        &self,
        queue_url: &str,
        e: &SetAside,
        with_reason: bool,
    ) -> Result<(), RegistryEventsError> {
        let mut req = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(fit_message(&e.body, &e.reason));
        if with_reason {
            if let Ok(attr) = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(bounded(&e.reason))
                .build()
            {
                req = req.message_attributes("reason", attr);
            }
        }
        req.send().await.map(|_| ()).map_err(classify)
    }
}

#[async_trait]
impl RegistryEvents for SqsRegistryEvents {
    async fn defer(&self, events: &[SetAside]) -> Result<(), RegistryEventsError> {
        let url = self
            .queue_url
            .as_deref()
            .ok_or(RegistryEventsError::NotConfigured(
                "REGISTRY_EVENTS_QUEUE_URL",
            ))?;
        self.send_all(url, events, false).await
    }

    async fn keep_rejected(&self, events: &[SetAside]) -> Result<bool, RegistryEventsError> {
        let Some(url) = self.dlq_url.as_deref() else {
            return Ok(false);
        };
        self.send_all(url, events, true).await.map(|()| true)
    }
}

/// The body as is when SQS can carry it, else a note saying what it was: an
/// event that large is not one a registry sends, and a dead letter that can
/// never be stored would make the registry retry it forever.
pub fn fit_message(body: &str, reason: &str) -> String {
    if body.len() <= MAX_MESSAGE_BYTES - 4096 {
        return body.to_owned();
    }
    serde_json::json!({
        "error": "event too large to keep whole",
        "reason": bounded(reason),
        "bytes": body.len(),
        "head": crate::bounded::bounded_to(body, 4096),
    })
    .to_string()
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> RegistryEventsError {
    let code = e.code().unwrap_or("").to_owned();
    let why = bounded(&DisplayErrorContext(&e).to_string()).into_owned();
    match &e {
        SdkError::ServiceError(_)
            if code.contains("NonExistentQueue")
                || code.contains("AccessDenied")
                || code.contains("InvalidParameterValue")
                || code.contains("InvalidMessageContents") =>
        {
            RegistryEventsError::Permanent(why)
        }
        SdkError::ConstructionFailure(_) => RegistryEventsError::Permanent(why),
        _ => RegistryEventsError::Retryable(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_bodies_become_a_bounded_note() {
        assert_eq!(fit_message("{\"events\":[]}", "r"), "{\"events\":[]}");
        let huge = "x".repeat(MAX_MESSAGE_BYTES);
        let note = fit_message(&huge, "too big");
        assert!(note.len() < 8 * 1024, "{}", note.len());
        let v: serde_json::Value = serde_json::from_str(&note).unwrap();
        assert_eq!(v["bytes"], MAX_MESSAGE_BYTES);
    }
}
