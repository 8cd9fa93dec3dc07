//! Every way a settings request can fail, and the HTTP answer for each.
//!
//! Client errors (4xx) carry the precise reason the caller needs. Server
//! errors are split the way the ports split them: a retryable store or queue
//! failure (throttling, timeouts, 5xx) is a 503 with `retry-after`, a
//! permanent one (missing table, corrupt item, access denied) a 500. Their
//! details go to the log; the response gives a reason without internals.

use shared::domain::{RepositoryName, UrlError};
use shared::function_url::HttpResponse;
use shared::ports::{QueueError, StoreError};

use crate::MAX_BODY_BYTES;

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// Why a settings request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The invocation payload is not a Function URL (payload 2.0) request.
    #[error("request is not a Lambda Function URL (payload format 2.0) event: {0}")]
    NotAnHttpEvent(String),
    #[error("no such resource; the API serves /repositories/{{name}}/webhook, /repositories/{{name}}/webhook/enable, /repositories/{{name}}/webhook/test, /repositories/{{name}}/webhook/deliveries and /repositories/{{name}}/webhook/deliveries/{{webhook-id}}/redeliver")]
    NoRoute,
    #[error("method {method:?} is not allowed on {route}; allowed: {}", allow.join(", "))]
    MethodNotAllowed {
        method: String,
        route: &'static str,
        allow: &'static [&'static str],
    },
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("{0}")]
    BadName(String),
    /// Malformed JSON, wrong shape, unknown fields, undecodable body.
    #[error("{0}")]
    BadBody(String),
    #[error("{0}")]
    BadUrl(#[from] UrlError),
    #[error("repository {0} has no webhook")]
    NoWebhook(RepositoryName),
    #[error("no delivery {id:?} in the delivery history of {repo}")]
    NoDelivery { repo: RepositoryName, id: String },
    #[error("the webhook of {0} is disabled: enable it (POST …/webhook/enable) before redelivering a push")]
    Disabled(RepositoryName),
    /// A failure that should pass: the caller may retry.
    #[error("{0}")]
    Unavailable(String),
    /// A failure retrying will not fix.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Retryable(_) => Self::Unavailable(e.to_string()),
            StoreError::Permanent(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Retryable(_) => Self::Unavailable(e.to_string()),
            QueueError::Permanent(_) => Self::Internal(e.to_string()),
        }
    }
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotAnHttpEvent(_) | Self::BadName(_) | Self::BadBody(_) | Self::BadUrl(_) => 400,
            Self::NoRoute | Self::NoWebhook(_) | Self::NoDelivery { .. } => 404,
            Self::Disabled(_) => 409,
            Self::MethodNotAllowed { .. } => 405,
            Self::BodyTooLarge => 413,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

    /// True when the same request may succeed later unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A short tag for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotAnHttpEvent(_) => "not_http_event",
            Self::NoRoute => "no_route",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::BodyTooLarge => "body_too_large",
            Self::BadName(_) => "bad_name",
            Self::BadBody(_) => "bad_body",
            Self::BadUrl(e) => e.code(),
            Self::NoWebhook(_) => "no_webhook",
            Self::NoDelivery { .. } => "no_delivery",
            Self::Disabled(_) => "disabled",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The JSON answer: `{"error": reason}`, plus `allow` on a 405 and
    /// `retry-after` on a 503.
    pub fn to_response(&self) -> HttpResponse {
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                HttpResponse::error(405, self.to_string()).with_header("allow", &allow.join(", "))
            }
            Self::Unavailable(_) => HttpResponse::error(
                503,
                "the settings store or delivery queue is temporarily unavailable; try again",
            )
            .with_header("retry-after", RETRY_AFTER_SECS),
            Self::Internal(_) => HttpResponse::error(
                500,
                "internal error in the settings store or delivery queue; it has been logged",
            ),
            _ => HttpResponse::error(self.status(), self.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_queue_failures_split_by_retryability() {
        let e = ApiError::from(StoreError::Retryable("ThrottlingException".into()));
        assert!(e.is_retryable());
        assert_eq!(e.status(), 503);
        let r = e.to_response();
        assert_eq!(r.headers["retry-after"], "1");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.body_json()["error"]
            .as_str()
            .unwrap()
            .contains("try again"));

        let e = ApiError::from(StoreError::Permanent(
            "ResourceNotFoundException: table".into(),
        ));
        assert!(!e.is_retryable());
        assert_eq!(e.to_response().status_code, 500);
        // Internals are logged, not answered.
        assert!(!e.to_response().body.unwrap().contains("ResourceNotFound"));

        assert_eq!(
            ApiError::from(QueueError::Retryable("x".into())).status(),
            503
        );
        assert_eq!(
            ApiError::from(QueueError::Permanent("x".into())).status(),
            500
        );
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let e = ApiError::MethodNotAllowed {
            method: "POST".into(),
            route: "/repositories/{name}/webhook",
            allow: &["GET", "PUT", "DELETE"],
        };
        let r = e.to_response();
        assert_eq!(r.status_code, 405);
        assert_eq!(r.headers["allow"], "GET, PUT, DELETE");
        assert_eq!(
            r.body_json()["error"],
            "method \"POST\" is not allowed on /repositories/{name}/webhook; allowed: GET, PUT, DELETE"
        );
    }
}
