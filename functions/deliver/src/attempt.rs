//! One webhook attempt: the contract's webhook request, in the webhook's
//! payload format with its custom headers after the service's, built by
//! `shared::webhook::build_request_as` at the time of this attempt, sent with the
//! shared keep-alive client (HTTP/1.1, no redirects, the guarded resolver),
//! and the answer reduced to what the outcomes policy needs: a status, or why
//! there is none.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use shared::domain::{DeliveryAttempt, DeliveryJob, UrlError, WebhookConfig};
use shared::webhook::{build_request_as, CustomHeaders, PayloadFormat, WebhookSecret};
use time::OffsetDateTime;

use crate::backoff::parse_retry_after;
use crate::error::{bounded, DeliverError};

/// Response body bytes read (and thrown away) so the connection can go back
/// to the pool; a longer body is cut off and its connection closed.
const MAX_DRAIN_BYTES: usize = 64 * 1024;

/// Where a repository's webhooks go and how they are shaped, prepared once
/// per batch.
pub(crate) struct Target {
    pub url: Url,
    pub secret: WebhookSecret,
    pub format: PayloadFormat,
    pub headers: CustomHeaders,
    /// The delivery history as read at the start of the batch: this
    /// batch's attempts go in front of it in the outcome write, which takes
    /// it (moved, not copied: with 1,000 repositories the histories are
    /// the largest thing a batch holds).
    pub history: Mutex<Vec<DeliveryAttempt>>,
}

impl Target {
    /// The target for `webhook`, sent to `url` (its URL, validated); the
    /// webhook's history moves into it.
    pub fn new(url: Url, webhook: &mut WebhookConfig) -> Self {
        Self {
            url,
            secret: webhook.secret.clone(),
            format: webhook.format,
            headers: webhook.headers.clone(),
            history: Mutex::new(std::mem::take(&mut webhook.deliveries)),
        }
    }

    /// The history read at the start of the batch, taken (empty after).
    pub fn take_history(&self) -> Vec<DeliveryAttempt> {
        std::mem::take(&mut *self.history.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What every attempt shares: one client per process.
pub(crate) struct SendContext {
    pub client: reqwest::Client,
    pub registry_host: String,
}

/// How one attempt went.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The 2xx status, or why the attempt failed (410 included).
    pub answer: Result<u16, DeliverError>,
    /// The receiver's `Retry-After`, when it sent a valid one.
    pub retry_after: Option<Duration>,
    /// When the request was built: its body `timestamp` and
    /// `webhook-timestamp`.
    pub started_at: OffsetDateTime,
    pub duration: Duration,
}

impl Attempt {
    /// An attempt that ended before any request was sent.
    pub fn refused(error: DeliverError) -> Self {
        Self {
            answer: Err(error),
            retry_after: None,
            started_at: OffsetDateTime::now_utc(),
            duration: Duration::ZERO,
        }
    }
}

/// Sends `job` to `target` once.
pub(crate) async fn send(ctx: &SendContext, target: &Target, job: &DeliveryJob) -> Attempt {
    let started = Instant::now();
    let started_at = OffsetDateTime::now_utc();
    let (answer, retry_after) = match request(ctx, target, job, started_at) {
        Ok(req) => match ctx.client.execute(req).await {
            Ok(resp) => answer(resp, started_at).await,
            Err(e) => (Err(classify(&e)), None),
        },
        Err(e) => (Err(e), None),
    };
    Attempt {
        answer,
        retry_after,
        started_at,
        duration: started.elapsed(),
    }
}

/// Builds the reqwest request: the URL exactly as stored (query included),
/// every header of `build_request_as` in its order — `Content-Length` included,
/// set in its contract position (hyper then uses it rather than appending
/// its own after the others) — then the custom headers in their order,
/// marked sensitive (hyper's `Debug` hides them), and the body bytes untouched.
fn request(
    ctx: &SendContext,
    target: &Target,
    job: &DeliveryJob,
    now: OffsetDateTime,
) -> Result<reqwest::Request, DeliverError> {
    let shape = (target.format, &target.headers);
    let built = build_request_as(job, &ctx.registry_host, shape, &target.secret, now);
    let mut headers = HeaderMap::with_capacity(built.headers.len() + built.custom.len());
    for (name, value) in built.headers {
        let name = header_name(name)?;
        let value = HeaderValue::try_from(value)
            .map_err(|e| DeliverError::Request(bounded(&e.to_string())))?;
        headers.append(name, value);
    }
    for (name, value) in built.custom.iter() {
        // The settings API validated both; the messages name neither value.
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| DeliverError::Request("a custom header name is invalid".to_owned()))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            DeliverError::Request(format!("custom header {name} has an invalid value"))
        })?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    let mut req = reqwest::Request::new(Method::POST, target.url.clone());
    *req.headers_mut() = headers;
    *req.body_mut() = Some(built.body.into());
    Ok(req)
}

/// The contract's header names without a parse or an allocation per request.
fn header_name(name: &'static str) -> Result<HeaderName, DeliverError> {
    Ok(match name {
        "User-Agent" => header::USER_AGENT,
        "Accept-Encoding" => header::ACCEPT_ENCODING,
        "Accept" => header::ACCEPT,
        "Connection" => header::CONNECTION,
        "Content-Length" => header::CONTENT_LENGTH,
        "Content-Type" => header::CONTENT_TYPE,
        "x-alin-webhook" => HeaderName::from_static("x-alin-webhook"),
        "X-GitHub-Api-Version" => HeaderName::from_static("x-github-api-version"),
        "webhook-id" => HeaderName::from_static("webhook-id"),
        "webhook-timestamp" => HeaderName::from_static("webhook-timestamp"),
        "webhook-signature" => HeaderName::from_static("webhook-signature"),
        other => HeaderName::from_bytes(other.as_bytes())
            .map_err(|e| DeliverError::Request(bounded(&e.to_string())))?,
    })
}

async fn answer(
    mut resp: reqwest::Response,
    now: OffsetDateTime,
) -> (Result<u16, DeliverError>, Option<Duration>) {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    // The status decides; the body is only read so the connection is reused.
    let mut left = MAX_DRAIN_BYTES;
    while let Ok(Some(chunk)) = resp.chunk().await {
        if chunk.len() >= left {
            break;
        }
        left -= chunk.len();
    }
    let answer = if (200..=299).contains(&status) {
        Ok(status)
    } else {
        Err(DeliverError::Status(status))
    };
    (answer, retry_after)
}

/// A reqwest failure as the outcomes policy sees it. The guarded resolver's refusal travels
/// inside the connect error; finding it makes the failure permanent.
fn classify(e: &reqwest::Error) -> DeliverError {
    if let Some(refusal) = shared::net::find_source::<UrlError>(e) {
        return DeliverError::Refused(refusal.clone());
    }
    if e.is_timeout() {
        DeliverError::Timeout
    } else if e.is_builder() {
        // Not `e.to_string()`: reqwest's message names the URL, query and all.
        DeliverError::Request("the HTTP client refused the request".to_owned())
    } else {
        DeliverError::Connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_header_has_a_static_name() {
        for name in [
            "User-Agent",
            "Accept-Encoding",
            "Accept",
            "Connection",
            "x-alin-webhook",
            "X-GitHub-Api-Version",
            "Content-Length",
            "Content-Type",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        ] {
            let h = header_name(name).unwrap();
            assert!(h.as_str().eq_ignore_ascii_case(name));
        }
        assert!(header_name("bad header").is_err());
    }
}
