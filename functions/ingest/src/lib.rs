//! # ingest: registry push notifications → delivery jobs
//!
//! One Lambda function, two triggers, told apart by the raw event's shape:
//!
//! * **Function URL** (payload format 2.0, [`shared::function_url`]): a
//!   registry POSTs a native push event (CONTRACT §3) or a CNCF Distribution
//!   notification envelope (`application/vnd.docker.distribution.events.v1+json`,
//!   `...v2+json` or `application/json`; the body's shape decides, not the
//!   content type).
//! * **SQS** (`Records`): each message body is a native push event, a
//!   Distribution envelope, or an EventBridge "ECR Image Action" event.
//!
//! Only a successful push of a manifest or index **by tag** makes a
//! [`DeliveryJob`](shared::domain::DeliveryJob). Blob pushes, pulls, mounts,
//! deletes, digest-only pushes, unsuccessful ECR actions and manifests that
//! are gone (404) are acknowledged and ignored. For Distribution and ECR the
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
//! | 202 | processed (also when everything was ignored) | `{"accepted":N,"ignored":M,"dropped":K,"queued":Q}` |
//! | 400 | not JSON, unknown format, invalid name/tag/digest, ECR event over HTTP, bad base64 | `{"error":"<reason>"}` |
//! | 401 | `INGEST_TOKEN` set and no matching `Authorization: Bearer <token>` | `{"error":"..."}` + `www-authenticate: Bearer` |
//! | 405 | method other than POST | `{"error":"..."}` + `allow: POST` |
//! | 413 | body over 1 MiB ([`MAX_BODY_BYTES`]) | `{"error":"..."}` |
//! | 500 | the store or queue failed, or a manifest fetch failed in a way a retry can fix | `{"error":"..."}` |
//!
//! In the 202 body, events are counted one by one (an envelope of three
//! blob pushes and a manifest push counts four): `accepted` = pushes by tag
//! whose layers are known (they deserve a webhook), `ignored` = events that
//! never make one, `dropped` = accepted events for repositories without an
//! enabled webhook, `queued` = delivery jobs sent (`accepted = dropped +
//! queued`). Registries retry non-2xx answers forever, so nothing a retry
//! cannot fix is ever answered 5xx.
//!
//! ## SQS answers
//!
//! A partial batch response: a malformed record (bad JSON, unknown format,
//! invalid names) fails alone and ends in the dead-letter queue; a record
//! whose manifest fetch or store call failed retryably, or whose jobs the
//! queue refused, fails too and is retried. All records are processed
//! together (one `get_many`, one `send_jobs`).
//!
//! ## Environment (read once by `main`, see [`shared::Config`])
//!
//! `WEBHOOKS_TABLE`, `DELIVERY_QUEUE_URL` (required), `INGEST_TOKEN`
//! (optional bearer token for HTTP), `REGISTRY_AUTH` (optional
//! `Authorization` value for manifest fetches), and the SDK's own
//! (`AWS_ENDPOINT_URL`, region, credentials).
//!
//! ## Logs
//!
//! One line per invocation with `trigger`, `received`, `accepted`, `ignored`
//! and `ignored_<reason>`, `dropped_no_webhook`, `jobs_sent`, `jobs_failed`,
//! `queue_calls`, `store_lookups`, `malformed`, `failed_inputs`,
//! `duration_ms` ([`Summary::log`]); one warning per failed input (with the
//! SQS `message_id`) or unusable manifest. Tokens are never logged.

pub mod distribution;
pub mod ecr;
pub mod error;
pub mod formats;
mod http;
pub mod manifest;
mod pipeline;
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
pub use manifest::{ManifestLocation, ManifestSource, ManifestSources, RawManifest};
pub use sqs::SqsOutcome;
pub use summary::{IgnoreReason, Summary};

/// Largest HTTP body accepted (413 above). Distribution sends one event per
/// POST, a few hundred bytes; an envelope of thousands still fits.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The function: its ports and its one setting. Built once per cold start.
pub struct Ingest {
    store: Arc<dyn WebhookStore>,
    queue: Arc<dyn DeliveryQueue>,
    manifests: Arc<dyn ManifestSource>,
    /// SHA-256 of `INGEST_TOKEN`: comparing fixed-size hashes in constant
    /// time does not even leak the token's length.
    token_hash: Option<[u8; 32]>,
}

impl Ingest {
    /// An open (token-less) ingest over these ports.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        queue: Arc<dyn DeliveryQueue>,
        manifests: Arc<dyn ManifestSource>,
    ) -> Self {
        Self {
            store,
            queue,
            manifests,
            token_hash: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on HTTP requests when set.
    pub fn with_token(mut self, token: Option<&Sensitive>) -> Self {
        self.token_hash = token.map(|t| Sha256::digest(t.0.as_bytes()).into());
        self
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
                        format!("unreadable request: {e}"),
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
