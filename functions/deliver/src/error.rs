//! The one error type of `deliver`: why a webhook attempt failed, and why an
//! invocation or a cold start failed, split into retryable (SQS brings the
//! job back with backoff) and permanent (acknowledged, or the function cannot
//! start). Its `Display` is the short reason kept in `last_delivery.error`,
//! `disabled_reason` and the logs, so it never carries a URL path or query.

use shared::domain::UrlError;
use shared::ports::{QueueError, StoreError};

/// Why something in `deliver` failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The receiver answered with a status that is not 2xx (410 included).
    #[error("HTTP {0}")]
    Status(u16),
    /// No complete answer within `DELIVERY_TIMEOUT_SECS`.
    #[error("timeout")]
    Timeout,
    /// Could not connect, or the connection broke before a complete answer.
    #[error("connection error")]
    Connection,
    /// The stored URL, or the addresses its name resolved to, break the
    /// address rule: never sent, never retried.
    #[error("refused: {}", refusal_reason(.0))]
    Refused(UrlError),
    /// The request could not be built (a header value a client would refuse).
    #[error("request could not be built: {0}")]
    Request(String),
    /// Reading repositories' webhooks failed: the whole batch is retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Changing message visibility failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Cold start: the HTTP client could not be built.
    #[error("webhook HTTP client could not be built: {0}")]
    Client(#[source] shared::net::ClientError),
}

/// Longest text from outside (a job body's parse error, a header value,
/// a resolver's message) kept in an error or a log line.
pub const MAX_OUTSIDE_TEXT: usize = 200;

/// `text` cut to [`MAX_OUTSIDE_TEXT`] characters (on a character boundary,
/// marked with `…`), so a hostile value cannot bloat logs or records.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_OUTSIDE_TEXT) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

fn refusal_reason(e: &UrlError) -> String {
    match e {
        UrlError::Forbidden { class, .. } => format!("forbidden address ({class})"),
        UrlError::NoAllowedAddress(_) => "no allowed address".to_owned(),
        other => format!("invalid url ({})", other.code()),
    }
}

impl DeliverError {
    /// Whether trying again later can succeed (the outcomes policy: 429, 5xx,
    /// timeouts and connection errors are retried; other statuses are not).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status(code) => *code == 429 || (500..=599).contains(code),
            Self::Timeout | Self::Connection => true,
            Self::Refused(_) | Self::Request(_) | Self::Client(_) => false,
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
        }
    }

    /// The HTTP status, when the receiver answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(code) => Some(*code),
            _ => None,
        }
    }

    /// A transport failure (no HTTP answer) that says the host itself is in
    /// trouble, as opposed to one URL on it.
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, Self::Timeout | Self::Connection)
    }
}

/// What Lambda reports when an invocation fails as a whole.
impl From<DeliverError> for lambda_runtime::Diagnostic {
    fn from(e: DeliverError) -> Self {
        let error_type = if e.is_retryable() {
            "DeliverError.Retryable"
        } else {
            "DeliverError.Permanent"
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::validate_webhook_url;

    #[test]
    fn retryable_per_contract() {
        for code in [429, 500, 502, 503, 504, 599] {
            assert!(DeliverError::Status(code).is_retryable(), "{code}");
        }
        for code in [300, 301, 302, 307, 400, 401, 403, 404, 408, 410, 413, 422] {
            assert!(!DeliverError::Status(code).is_retryable(), "{code}");
        }
        assert!(DeliverError::Timeout.is_retryable());
        assert!(DeliverError::Connection.is_retryable());
        let refused = validate_webhook_url("http://127.0.0.1/x?token=s3cr3t", false).unwrap_err();
        let e = DeliverError::Refused(refused);
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "refused: forbidden address (loopback)");
        assert_eq!(DeliverError::Status(503).to_string(), "HTTP 503");
    }

    #[test]
    fn outside_text_is_bounded() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(5000);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_OUTSIDE_TEXT + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(
            bounded(&"x".repeat(MAX_OUTSIDE_TEXT)).len(),
            MAX_OUTSIDE_TEXT
        );
    }
}
