//! # ingest: registry push notifications → delivery jobs
//!
//! One Lambda function, two triggers, told apart by the raw event's shape:
//!
//! * **Function URL** (payload format 2.0, [`shared::function_url`]): a
//!   registry POSTs a native push event (the contract's native event) or a CNCF Distribution
//!   notification envelope (`application/vnd.docker.distribution.events.v1+json`,
//!   `...v2+json` or `application/json`; the body's shape decides, not the
//!   content type).
//! * **SQS** (`Records`): each message body is a native push event, a
//!   Distribution envelope, or an EventBridge "ECR Image Action" event.
//!
//! Only a successful push of a manifest or index **by tag** makes a
//! [`DeliveryJob`](shared::domain::DeliveryJob). Blob pushes, pulls, mounts,
//! deletes, digest-only pushes and unsuccessful ECR actions are acknowledged
//! and ignored; so are manifests that are gone (404) on the SQS door (over
//! HTTP such a Distribution event is rejected, see below). For Distribution and ECR the
//! manifest is fetched (an index: each platform manifest, attestations
//! skipped) and the distinct layers in first-seen order become `layers`,
//! their size sum `image_size`; every repository's layers are counted into
//! its size with `WebhookStore::add_layers` (idempotent), whose result is the
//! job's `repository_size`. Native events carry all three and are passed
//! through unchanged (no layer counting).
//!
//! Repository names: native `username` + `/` + `repository`; Distribution's
//! `target.repository` and ECR's `repository-name` by Distribution's rule
//! (first segment = username, a single segment means `library/<name>`: ECR's
//! `my-repo` is `library/my-repo`, ECR's `team/app` is user `team`'s `app`).
//!
//! Each invocation makes one `get_many` for all distinct repositories (jobs
//! for repositories without an enabled webhook are dropped here) and one
//! `send_jobs` for all jobs. `webhook_id`s are derived from the registry's
//! event id (Distribution `id`, EventBridge `id`, native `id`; a native event
//! without one uses repository, tag, digest and `pushed_at`), so a
//! redelivered event keeps its id.
//!
//! ## HTTP answers
//!
//! | status | when | body |
//! |---|---|---|
//! | 202 | processed (also when everything was ignored); a Distribution envelope always, once the token is right | `{"accepted":N,"ignored":M,"dropped":K,"queued":Q,"rejected":R,"deferred":D}` |
//! | 400 | a native body: not JSON, unknown format, invalid name/tag/digest/time, ECR event over HTTP, bad base64 | `{"error":"<reason>"}` |
//! | 401 | no `INGEST_TOKEN` configured ([`CLOSED_DOOR`], every request), or no matching `Authorization: Bearer <token>` | `{"error":"..."}` + `www-authenticate: Bearer` |
//! | 405 | method other than POST | `{"error":"..."}` + `allow: POST` |
//! | 413 | body over 1 MiB ([`MAX_BODY_BYTES`]) | `{"error":"..."}` |
//! | 500 | a native event: the store or queue failed in a way a retry can fix | `{"error":"..."}` |
//! | 503 | a Distribution envelope: an event could not be deferred to the registry events queue (or kept in its dead-letter queue) | `{"error":"..."}` + `retry-after` |
//!
//! In the 202 body, events are counted one by one (an envelope of three
//! blob pushes and a manifest push counts four): `accepted` = pushes by tag
//! whose layers are known (they deserve a webhook), `ignored` = events that
//! never make one, `dropped` = accepted events for repositories without an
//! enabled webhook, `queued` = delivery jobs sent (`accepted = dropped +
//! queued`), `rejected` = Distribution events that can never be processed
//! (malformed, bad time, another origin than `REGISTRY_URL`, manifest gone or
//! unusable; kept in the registry events dead-letter queue), `deferred` =
//! Distribution events put on the registry events queue because they could
//! not be processed now. A Distribution registry retries every answer outside
//! 200–399 forever and sends nothing else meanwhile, so an envelope is never
//! answered 4xx, and 5xx only when deferring failed (see [`registry_events`]).

//! ## SQS answers
//!
//! A partial batch response: a malformed record (bad JSON, unknown format,
//! invalid names or times) or one naming another registry origin fails alone
//! and ends in the dead-letter queue; a record without a `messageId` is
//! acknowledged and logged; a record
//! whose manifest fetch or store call failed retryably, or whose jobs the
//! queue refused, fails too and is retried. All records are processed
//! together (one `get_many`, one `send_jobs`).
//!
//! ## Environment (read once by `main`, see [`shared::Config`])
//!
//! `WEBHOOKS_TABLE`, `DELIVERY_QUEUE_URL` (required), `INGEST_TOKEN`
//! (bearer token for HTTP; unset closes the HTTP door), `REGISTRY_URL` (the
//! Distribution registry's origin; unset refuses Distribution events),
//! `REGISTRY_AUTH` (`Authorization` value for manifest fetches, only to
//! `REGISTRY_URL`; needs `INGEST_TOKEN`), `REGISTRY_EVENTS_QUEUE_URL` and
//! `REGISTRY_EVENTS_DLQ_URL` (where the HTTP door defers and keeps
//! Distribution events), and the SDK's own (`AWS_ENDPOINT_URL`, region,
//! credentials).
//!
//! ## Logs
//!
//! One line per invocation with `trigger`, `received`, `accepted`, `ignored`
//! and `ignored_<reason>`, `dropped_no_webhook`, `jobs_sent`, `jobs_failed`,
//! `queue_calls`, `store_lookups`, `malformed`, `failed_inputs`,
//! `duration_ms` ([`Summary::log`]); one warning per failed input (with the
//! SQS `message_id`) or unusable manifest. Tokens are never logged.

pub mod bounded;
pub mod distribution;
pub mod ecr;
pub mod error;
pub mod formats;
mod http;
pub mod manifest;
mod pipeline;
pub mod registry_events;
mod sqs;
pub mod summary;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use shared::config::Sensitive;
use shared::function_url::HttpRequest;
use shared::ports::{DeliveryQueue, WebhookStore};

pub use distribution::DistributionFetcher;
pub use ecr::EcrSource;
pub use error::IngestError;
pub use http::HttpOutcome;
pub use manifest::{ByteBudget, ManifestLocation, ManifestSource, ManifestSources, RawManifest};
pub use registry_events::{RegistryEvents, RegistryEventsError, SetAside, SqsRegistryEvents};
pub use sqs::SqsOutcome;
pub use summary::{IgnoreReason, Summary};

/// Largest HTTP body accepted (413 above). Distribution sends one event per
/// POST, a few hundred bytes; an envelope of thousands still fits.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The answer to every HTTP request while `INGEST_TOKEN` is unset.
pub const CLOSED_DOOR: &str = "ingest HTTP door is closed: INGEST_TOKEN is not set";

/// The function: its ports and its settings. Built once per cold start.
pub struct Ingest {
    store: Arc<dyn WebhookStore>,
    queue: Arc<dyn DeliveryQueue>,
    manifests: Arc<dyn ManifestSource>,
    /// Where the HTTP door defers and keeps Distribution events; `None`
    /// (tests, local runs without the queues): deferring fails (5xx) and
    /// rejected events are only logged.
    registry_events: Option<Arc<dyn RegistryEvents>>,
    /// SHA-256 of `INGEST_TOKEN`: comparing fixed-size hashes in constant
    /// time does not even leak the token's length. `None`: the HTTP door is
    /// closed.
    token_hash: Option<[u8; 32]>,
    /// Manifest bytes one invocation may hold at once.
    manifest_bytes: usize,
}

impl Ingest {
    /// An ingest over these ports whose HTTP door is closed until
    /// [`with_token`](Self::with_token) gives it a token.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        queue: Arc<dyn DeliveryQueue>,
        manifests: Arc<dyn ManifestSource>,
    ) -> Self {
        Self {
            store,
            queue,
            manifests,
            registry_events: None,
            token_hash: None,
            manifest_bytes: manifest::MANIFEST_BYTES_IN_FLIGHT,
        }
    }

    /// Opens the HTTP door to requests with `Authorization: Bearer <token>`
    /// (the token trimmed, as the presented one is). `None` or a blank token
    /// keeps it closed.
    pub fn with_token(mut self, token: Option<&Sensitive>) -> Self {
        self.token_hash = token
            .map(|t| t.0.trim())
            .filter(|t| !t.is_empty())
            .map(|t| Sha256::digest(t.as_bytes()).into());
        self
    }

    /// The registry events queue and its dead-letter queue, for the HTTP
    /// door's deferred and rejected Distribution events.
    pub fn with_registry_events(mut self, events: Arc<dyn RegistryEvents>) -> Self {
        self.registry_events = Some(events);
        self
    }

    /// Sets the manifest bytes one invocation may hold at once.
    pub fn with_manifest_budget(mut self, bytes: usize) -> Self {
        self.manifest_bytes = bytes;
        self
    }

    /// True when the HTTP door is open (a token is set).
    pub fn http_door_open(&self) -> bool {
        self.token_hash.is_some()
    }

    /// The Lambda entry point: dispatches on the raw event's shape and
    /// returns the trigger's response as JSON. Anything that is neither a
    /// Function URL request nor an SQS batch is an error result.
    pub async fn handle(&self, event: Value) -> Result<Value, IngestError> {
        let encode = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| IngestError::UnsupportedInvocation(format!("encoding the response: {e}")))
        };
        if HttpRequest::matches(&event) {
            let outcome = match serde_json::from_value::<HttpRequest>(event) {
                Ok(req) => self.handle_http(&req).await.response,
                Err(_) if !self.http_door_open() => Self::closed_door(),
                // The lenient request type only fails on wrongly typed fields.
                Err(e) => {
                    Summary {
                        malformed: 1,
                        failed_inputs: 1,
                        ..Summary::default()
                    }
                    .log("http");
                    shared::function_url::HttpResponse::error(
                        400,
                        format!("unreadable request: {}", bounded::bounded(&e.to_string())),
                    )
                }
            };
            return encode(serde_json::to_value(outcome));
        }
        if event.get("Records").is_some_and(Value::is_array) {
            let batch: SqsEvent = serde_json::from_value(event).map_err(|e| {
                IngestError::UnsupportedInvocation(format!("unreadable SQS event: {e}"))
            })?;
            let outcome = self.handle_sqs(batch).await?;
            return encode(serde_json::to_value(outcome.response));
        }
        Err(IngestError::UnsupportedInvocation(
            "expected a Function URL request or an SQS event".into(),
        ))
    }
}
