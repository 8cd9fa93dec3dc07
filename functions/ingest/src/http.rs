//! The Function URL trigger: method, bearer token and size checks, then one
//! input through the pipeline, answered as the crate docs' table says. A
//! registry retries every non-2xx answer forever, so only failures a retry
//! can fix are answered 5xx.

use std::time::Instant;

use shared::function_url::{BodyError, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use sha2::{Digest as _, Sha256};

use crate::formats::{parse_input, Channel};
use crate::summary::Summary;
use crate::{Ingest, IngestError, MAX_BODY_BYTES};

/// An HTTP answer and what the invocation did.
#[derive(Debug, Clone)]
pub struct HttpOutcome {
    pub response: HttpResponse,
    pub summary: Summary,
}

impl Ingest {
    /// Handles one Function URL request and logs the invocation's summary.
    pub async fn handle_http(&self, req: &HttpRequest) -> HttpOutcome {
        let started = Instant::now();
        let (response, mut summary) = self.http_inner(req).await;
        summary.duration = started.elapsed();
        summary.log("http");
        HttpOutcome { response, summary }
    }

    /// True when no token is configured or the request carries it.
    fn authorized(&self, req: &HttpRequest) -> bool {
        let Some(expected) = &self.token_hash else {
            return true;
        };
        let Some((scheme, token)) = req
            .header("authorization")
            .and_then(|h| h.trim().split_once(' '))
        else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let given: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        given.ct_eq(expected).into()
    }

    async fn http_inner(&self, req: &HttpRequest) -> (HttpResponse, Summary) {
        let refused = |response: HttpResponse| {
            let summary = Summary {
                failed_inputs: 1,
                ..Summary::default()
            };
            (response, summary)
        };
        if !req.method().eq_ignore_ascii_case("POST") {
            return refused(
                HttpResponse::error(405, "only POST is accepted").with_header("allow", "POST"),
            );
        }
        if !self.authorized(req) {
            tracing::warn!(
                has_authorization = req.header("authorization").is_some(),
                "request refused: missing or wrong bearer token"
            );
            return refused(
                HttpResponse::error(401, "missing or invalid bearer token")
                    .with_header("www-authenticate", "Bearer"),
            );
        }
        let body = match req.body_bytes(MAX_BODY_BYTES) {
            Ok(body) => body,
            Err(e @ BodyError::TooLarge(_)) => {
                return refused(HttpResponse::error(413, e.to_string()))
            }
            Err(e @ BodyError::Base64) => {
                let (r, mut s) = refused(HttpResponse::error(400, e.to_string()));
                s.malformed = 1;
                return (r, s);
            }
        };
        let parsed = parse_input(&body, Channel::Http);
        let mut processed = self.process(vec![parsed]).await;
        let failure = processed.failures.pop().flatten();
        let response = match failure {
            None => HttpResponse::json(202, &processed.summary.http_body()),
            Some(e @ IngestError::Malformed(_)) => {
                tracing::warn!(
                    content_type = req.header("content-type").unwrap_or(""),
                    error = %e,
                    "request refused as malformed"
                );
                HttpResponse::error(400, e.to_string())
            }
            Some(e) => {
                tracing::error!(
                    error = %e,
                    retryable = e.is_retryable(),
                    "request failed; the registry will retry"
                );
                HttpResponse::error(500, "temporarily unable to process the event; retry later")
            }
        };
        (response, processed.summary)
    }
}
