//! The one error type of the ingest function. Every failure is either
//! permanent (retrying the same input can never help: it is answered 4xx,
//! sent to the dead-letter queue, or acknowledged and ignored) or retryable
//! (the registry or SQS should try again later: 500 or a failed batch item).
//! [`IngestError::is_retryable`] is the one place that decides which.

use shared::ports::{QueueError, StoreError};

/// Why ingest could not turn an input into delivery jobs.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Permanent: the input is not JSON, not a format we know, or names an
    /// invalid repository, tag or digest. HTTP 400; SQS: the record fails
    /// and ends in the dead-letter queue.
    #[error("malformed event: {0}")]
    Malformed(String),

    /// Permanent: the Lambda event is neither a Function URL request nor an
    /// SQS batch (a wiring mistake, not registry input).
    #[error("unsupported invocation: {0}")]
    UnsupportedInvocation(String),

    /// Permanent: the function's configuration is unusable (fails the cold start).
    #[error("configuration: {0}")]
    Config(String),

    /// Permanent: the pushed manifest cannot be used (404, image not found in
    /// ECR, not a manifest we understand, too large, digest mismatch). The
    /// event is acknowledged and ignored with a log line.
    #[error("manifest unusable: {0}")]
    ManifestUnusable(String),

    /// Permanent: the event names a manifest ingest may never fetch: its
    /// `target.url` has another origin than `REGISTRY_URL`, or `REGISTRY_URL`
    /// is not set. No request is made. HTTP (Distribution): counted
    /// `rejected` and kept in the registry events dead-letter queue; SQS: the
    /// record fails and ends in the dead-letter queue.
    #[error("event refused: {0}")]
    Refused(String),

    /// Retryable: the registry or ECR could not be asked (connection error,
    /// timeout, 5xx, throttling, auth refused for now).
    #[error("manifest fetch failed: {0}")]
    ManifestFetch(String),

    /// The webhook store failed; retryability is the store's own.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The delivery queue failed as a whole; retryability is the queue's own.
    #[error(transparent)]
    Queue(#[from] QueueError),

    /// Retryable: the queue took the batch but refused some of its jobs.
    #[error("delivery job not queued: {0}")]
    NotQueued(String),
}

impl IngestError {
    /// True when the same input may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_)
            | Self::UnsupportedInvocation(_)
            | Self::Config(_)
            | Self::ManifestUnusable(_)
            | Self::Refused(_) => false,
            Self::ManifestFetch(_) | Self::NotQueued(_) => true,
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
        }
    }

    /// A short stable name for logs and the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "Malformed",
            Self::UnsupportedInvocation(_) => "UnsupportedInvocation",
            Self::Config(_) => "Config",
            Self::ManifestUnusable(_) => "ManifestUnusable",
            Self::Refused(_) => "Refused",
            Self::ManifestFetch(_) => "ManifestFetch",
            Self::Store(_) => "Store",
            Self::Queue(_) => "Queue",
            Self::NotQueued(_) => "NotQueued",
        }
    }
}

impl From<IngestError> for lambda_runtime::Diagnostic {
    fn from(e: IngestError) -> Self {
        Self {
            error_type: format!("ingest::{}", e.kind()),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_and_permanent_are_explicit() {
        assert!(!IngestError::Malformed("x".into()).is_retryable());
        assert!(!IngestError::ManifestUnusable("x".into()).is_retryable());
        assert!(!IngestError::Refused("x".into()).is_retryable());
        assert!(!IngestError::UnsupportedInvocation("x".into()).is_retryable());
        assert!(IngestError::ManifestFetch("x".into()).is_retryable());
        assert!(IngestError::NotQueued("x".into()).is_retryable());
        assert!(IngestError::Store(StoreError::Retryable("x".into())).is_retryable());
        assert!(!IngestError::Store(StoreError::Permanent("x".into())).is_retryable());
        assert!(IngestError::Queue(QueueError::Retryable("x".into())).is_retryable());
        let d: lambda_runtime::Diagnostic = IngestError::Malformed("bad".into()).into();
        assert_eq!(d.error_type, "ingest::Malformed");
    }
}
