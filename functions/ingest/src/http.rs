//! The Function URL trigger: the closed door, method, bearer token and size
//! checks, then the body through the pipeline, answered as the crate docs'
//! table says.
//!
//! A Distribution registry retries every answer outside 200–399 forever and
//! sends nothing else meanwhile, so once the token is right a Distribution
//! envelope is always answered 202: each of its events is processed now,
//! deferred to the registry events queue (could not be processed now), or
//! rejected and kept in its dead-letter queue (can never be processed). Only
//! when even deferring fails is the answer a 5xx, so nothing is lost
//! silently. Native events keep their answers (400 for bad input, 500 when a
//! retry can fix it).

use std::time::Instant;

use serde_json::Value;
use shared::function_url::{BodyError, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use sha2::{Digest as _, Sha256};

use crate::bounded::bounded;
use crate::formats::{parse_input, Channel};
use crate::pipeline::Unusable;
use crate::registry_events::SetAside;
use crate::summary::Summary;
use crate::{Ingest, IngestError, CLOSED_DOOR, MAX_BODY_BYTES};

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

    /// The answer to every request while no token is set.
    pub(crate) fn closed_door() -> HttpResponse {
        HttpResponse::error(401, CLOSED_DOOR).with_header("www-authenticate", "Bearer")
    }

    /// True when the request carries the configured token (never when none
    /// is configured: the door is closed).
    fn authorized(&self, req: &HttpRequest) -> bool {
        let Some(expected) = &self.token_hash else {
            return false;
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
        if !self.http_door_open() {
            // Logged once at cold start; per request it would be noise an
            // attacker controls.
            return refused(Self::closed_door());
        }
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
        if let Some(events) = distribution_events(&body) {
            return self.distribution(events).await;
        }
        let parsed = parse_input(&body, Channel::Http);
        let mut processed = self.process(vec![parsed], Unusable::Ignore).await;
        let failure = processed.failures.pop().flatten();
        let response = match failure {
            None => HttpResponse::json(202, &processed.summary.http_body()),
            Some(e @ IngestError::Malformed(_)) => {
                tracing::warn!(
                    content_type = %bounded(req.header("content-type").unwrap_or("")),
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

    /// A Distribution envelope: each event alone through the pipeline, then
    /// deferred or kept as its fate says. Always 202 unless setting an event
    /// aside failed.
    async fn distribution(&self, events: Result<Vec<Value>, String>) -> (HttpResponse, Summary) {
        // Each event as the one-event envelope the SQS door reads, so a
        // deferred or kept event is exactly what it was.
        let singles: Vec<String> = match events {
            Ok(events) => events
                .into_iter()
                .map(|e| serde_json::json!({ "events": [e] }).to_string())
                .collect(),
            Err(whole) => {
                // `events` is not an array: keep the whole body.
                let reason = "Distribution envelope: `events` must be an array".to_owned();
                let aside = vec![SetAside {
                    body: whole,
                    reason,
                }];
                let mut summary = Summary {
                    received: 1,
                    malformed: 1,
                    failed_inputs: 1,
                    ..Summary::default()
                };
                return self.set_aside(Vec::new(), aside, &mut summary).await;
            }
        };
        let inputs = singles
            .iter()
            .map(|s| parse_input(s.as_bytes(), Channel::Http))
            .collect();
        let processed = self.process(inputs, Unusable::Fail).await;
        let mut summary = processed.summary;
        summary.received = singles.len();
        let mut deferred = Vec::new();
        let mut rejected = Vec::new();
        for (body, failure) in singles.into_iter().zip(processed.failures) {
            let Some(e) = failure else { continue };
            let reason = bounded(&e.to_string()).into_owned();
            if e.is_retryable() {
                tracing::warn!(error = %reason, "Distribution event deferred to the registry events queue");
                deferred.push(SetAside { body, reason });
            } else {
                tracing::warn!(error = %reason, kind = e.kind(), "Distribution event rejected");
                rejected.push(SetAside { body, reason });
            }
        }
        self.set_aside(deferred, rejected, &mut summary).await
    }

    /// Puts deferred events on the registry events queue and rejected ones
    /// in its dead-letter queue; 202 when both went well, else 503 so the
    /// registry sends the envelope again (its events are idempotent).
    async fn set_aside(
        &self,
        deferred: Vec<SetAside>,
        rejected: Vec<SetAside>,
        summary: &mut Summary,
    ) -> (HttpResponse, Summary) {
        summary.deferred = deferred.len();
        summary.rejected = rejected.len();
        let retry_later = |summary: &Summary| {
            (
                HttpResponse::error(503, "temporarily unable to process the event; retry later")
                    .with_header("retry-after", "5"),
                summary.clone(),
            )
        };
        if !deferred.is_empty() {
            let sent = match &self.registry_events {
                Some(q) => q.defer(&deferred).await,
                None => Err(crate::RegistryEventsError::NotConfigured(
                    "REGISTRY_EVENTS_QUEUE_URL",
                )),
            };
            if let Err(e) = sent {
                tracing::error!(error = %e, events = deferred.len(),
                    "deferring Distribution events failed; the registry will retry");
                return retry_later(summary);
            }
        }
        if !rejected.is_empty() {
            let kept = match &self.registry_events {
                Some(q) => q.keep_rejected(&rejected).await,
                None => Ok(false),
            };
            match kept {
                Ok(true) => summary.dead_lettered = rejected.len(),
                Ok(false) => {
                    for r in &rejected {
                        tracing::error!(
                            event = %bounded(&r.body),
                            reason = %r.reason,
                            "rejected Distribution event not kept: REGISTRY_EVENTS_DLQ_URL is not set"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, events = rejected.len(),
                        "keeping rejected Distribution events failed; the registry will retry");
                    return retry_later(summary);
                }
            }
        }
        (
            HttpResponse::json(202, &summary.http_body()),
            summary.clone(),
        )
    }
}

/// `Some` when the body is a Distribution envelope (a JSON object with
/// `events`): its events, or the body itself when `events` is not an array.
fn distribution_events(body: &[u8]) -> Option<Result<Vec<Value>, String>> {
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    match obj.remove("events")? {
        Value::Array(events) => Some(Ok(events)),
        _ => Some(Err(String::from_utf8_lossy(body).into_owned())),
    }
}
