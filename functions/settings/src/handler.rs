//! The settings service: one Function URL request in, one JSON response
//! out, with the store, the queue and the name resolver injected so the
//! same code runs against DynamoDB/SQS in Lambda and memory in unit tests.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use shared::domain::job::{random_webhook_id, JOB_VERSION};
use shared::domain::time::rfc3339;
use shared::domain::{
    validate_webhook_url, DeliveryAttempt, DeliveryJob, JobKind, RepoRecord, RepositoryName, Tag,
    WebhookUrl,
};
use shared::function_url::{BodyError, HttpRequest, HttpResponse};
use shared::net::{check_resolved, NameLookup};
use shared::ports::{DeliveryQueue, WebhookStore, WebhookUpdate};
use shared::webhook::{CustomHeaders, HeaderError, PayloadFormat};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::route::{self, Endpoint, Operation};

/// Largest request body accepted (docs/settings-api.md#errors: over 16 KiB is a 413).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long the set-time DNS check may take. A lookup that does not answer
/// in time counts as "does not resolve": the URL is accepted and delivery,
/// which resolves again at connect time, enforces the address rule.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The fields of the PUT body.
const URL_FIELD: &str = "url";
const FORMAT_FIELD: &str = "format";
const HEADERS_FIELD: &str = "headers";

/// The settings API with its dependencies, built once per cold start.
#[derive(Clone)]
pub struct Settings {
    store: Arc<dyn WebhookStore>,
    queue: Arc<dyn DeliveryQueue>,
    lookup: Arc<dyn NameLookup>,
    allow_private: bool,
    resolve_timeout: Duration,
}

/// What one served request did, for the request log.
struct Served {
    response: HttpResponse,
    /// `origin_for_logs()` of the URL set by a PUT.
    target: Option<String>,
    /// The webhook id of a queued test delivery.
    webhook_id: Option<String>,
}

impl From<HttpResponse> for Served {
    fn from(response: HttpResponse) -> Self {
        Self {
            response,
            target: None,
            webhook_id: None,
        }
    }
}

impl Settings {
    /// `allow_private` is `ALLOW_PRIVATE_TARGETS`: it lifts the address rule
    /// at set time exactly as it does at delivery time.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        queue: Arc<dyn DeliveryQueue>,
        lookup: Arc<dyn NameLookup>,
        allow_private: bool,
    ) -> Self {
        Self {
            store,
            queue,
            lookup,
            allow_private,
            resolve_timeout: RESOLVE_TIMEOUT,
        }
    }

    /// Changes how long the set-time lookup may take (default [`RESOLVE_TIMEOUT`]).
    pub fn with_resolve_timeout(mut self, timeout: Duration) -> Self {
        self.resolve_timeout = timeout;
        self
    }

    /// Serves a raw invocation payload. Anything that is not a Function URL
    /// request gets a JSON 400, never a panic or a function error.
    pub async fn handle_event(&self, event: Value) -> HttpResponse {
        if !HttpRequest::matches(&event) {
            let e = ApiError::NotAnHttpEvent("requestContext.http is missing".into());
            tracing::warn!(
                status = e.status(),
                error_kind = e.kind(),
                "refused invocation"
            );
            return e.to_response();
        }
        match serde_json::from_value::<HttpRequest>(event) {
            Ok(request) => self.handle(&request).await,
            Err(err) => {
                // The detail may quote a field's value: answered, not logged.
                let e = ApiError::NotAnHttpEvent(err.to_string());
                tracing::warn!(
                    status = e.status(),
                    error_kind = e.kind(),
                    "refused invocation"
                );
                e.to_response()
            }
        }
    }

    /// Serves one request and logs it: method, route, repository, status
    /// (never the webhook URL's path or query, never the secret).
    pub async fn handle(&self, request: &HttpRequest) -> HttpResponse {
        let method = request.method();
        let request_id = request.request_context.request_id.as_str();
        let mut route = "unknown";
        let mut repository: Option<RepositoryName> = None;
        let result = self.dispatch(request, &mut route, &mut repository).await;
        let repository = repository.as_ref().map(RepositoryName::as_str);
        match result {
            Ok(served) => {
                tracing::info!(
                    method,
                    route,
                    repository,
                    status = served.response.status_code,
                    request_id,
                    target = served.target.as_deref(),
                    webhook_id = served.webhook_id.as_deref(),
                    "settings request"
                );
                served.response
            }
            Err(e) => {
                let status = e.status();
                if status >= 500 {
                    tracing::error!(
                        method, route, repository, status, request_id,
                        error_kind = e.kind(), retryable = e.is_retryable(), error = %e,
                        "settings request failed"
                    );
                } else {
                    tracing::info!(
                        method, route, repository, status, request_id,
                        error_kind = e.kind(), error = %e,
                        "settings request refused"
                    );
                }
                e.to_response()
            }
        }
    }

    async fn dispatch(
        &self,
        request: &HttpRequest,
        route_out: &mut &'static str,
        repository_out: &mut Option<RepositoryName>,
    ) -> Result<Served, ApiError> {
        if let Some((raw_name, id)) = route::match_redeliver(request.path()) {
            *route_out = Endpoint::Redeliver.template();
            *route_out = Endpoint::Redeliver.operation(request.method())?.route();
            let repo = route::parse_name(raw_name)?;
            *repository_out = Some(repo.clone());
            return self.redeliver(repo, id).await;
        }
        let (endpoint, raw_name) = route::match_path(request.path()).ok_or(ApiError::NoRoute)?;
        *route_out = endpoint.template();
        let op = endpoint.operation(request.method())?;
        *route_out = op.route();
        let body = request.body_bytes(MAX_BODY_BYTES).map_err(|e| match e {
            BodyError::TooLarge(_) => ApiError::BodyTooLarge,
            BodyError::Base64 => ApiError::BadBody(e.to_string()),
        })?;
        let repo = route::parse_name(raw_name)?;
        *repository_out = Some(repo.clone());
        match op {
            Operation::Get => self.get(&repo).await,
            Operation::Put => self.put(&repo, &body).await,
            Operation::Delete => self.delete(&repo).await,
            Operation::Enable => self.enable(&repo).await,
            Operation::Test => self.test(repo).await,
            Operation::Deliveries => self.deliveries(&repo).await,
            // Routed by `match_redeliver` above.
            Operation::Redeliver => Err(ApiError::NoRoute),
        }
    }

    async fn get(&self, repo: &RepositoryName) -> Result<Served, ApiError> {
        let record = self.store.get(repo).await?;
        Ok(config_response(repo, record.as_ref())?.into())
    }

    async fn put(&self, repo: &RepositoryName, body: &[u8]) -> Result<Served, ApiError> {
        let put = put_body(body)?;
        let url = self.validate_url(&put.url).await?;
        if put.headers.is_none() && !put.format.own_headers().is_empty() {
            self.check_kept_headers(repo, put.format).await?;
        }
        let update = WebhookUpdate {
            url,
            format: put.format,
            headers: put.headers,
        };
        let record = self.store.put_webhook(repo, &update, &now()).await?;
        let url = update.url;
        let mut served: Served = config_response(repo, Some(&record))?.into();
        served.target = Some(url.origin_for_logs());
        Ok(served)
    }

    /// A PUT that keeps the stored headers must not switch to a format that
    /// owns one of them (an `Accept` kept into `github-dispatch`).
    async fn check_kept_headers(
        &self,
        repo: &RepositoryName,
        format: PayloadFormat,
    ) -> Result<(), ApiError> {
        let kept = self.store.get(repo).await?.and_then(|r| r.webhook);
        if let Some(w) = kept {
            w.headers
                .check_format(format)
                .map_err(|e| ApiError::BadBody(format!("{e}; send \"headers\" without it")))?;
        }
        Ok(())
    }

    async fn delete(&self, repo: &RepositoryName) -> Result<Served, ApiError> {
        if self.store.delete(repo).await? {
            Ok(HttpResponse::empty(204).into())
        } else {
            Err(ApiError::NoWebhook(repo.clone()))
        }
    }

    async fn enable(&self, repo: &RepositoryName) -> Result<Served, ApiError> {
        let record = self.store.enable(repo, &now()).await?;
        Ok(config_response(repo, record.as_ref())?.into())
    }

    /// The delivery history, newest first (docs/settings-api.md#delivery-history).
    async fn deliveries(&self, repo: &RepositoryName) -> Result<Served, ApiError> {
        let record = self.store.get(repo).await?;
        let Some(webhook) = record.and_then(|r| r.webhook) else {
            return Err(ApiError::NoWebhook(repo.clone()));
        };
        // The payload kept for redelivery is the store's business.
        let deliveries: Vec<Value> = webhook
            .deliveries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.remove("payload");
                }
                v
            })
            .collect();
        let body = json!({
            "repository": repo.as_str(),
            "deliveries": deliveries,
        });
        Ok(HttpResponse::json(200, &body).into())
    }

    /// Queues an event of the history again through the delivery queue:
    /// same body and webhook id; the timestamp and signature are those of
    /// the new attempt (docs/settings-api.md#redelivery).
    async fn redeliver(&self, repo: RepositoryName, id: &str) -> Result<Served, ApiError> {
        let record = self.store.get(&repo).await?;
        let Some(webhook) = record.and_then(|r| r.webhook) else {
            return Err(ApiError::NoWebhook(repo));
        };
        let not_found = || ApiError::NoDelivery {
            repo: repo.clone(),
            id: id.chars().take(64).collect(),
        };
        let entry = webhook
            .deliveries
            .iter()
            .find(|e| e.webhook_id == id && e.payload.is_some())
            .ok_or_else(not_found)?;
        let job = redelivery_job(&repo, entry).ok_or_else(not_found)?;
        if job.kind == JobKind::Push && !webhook.enabled {
            return Err(ApiError::Disabled(repo));
        }
        self.queue_one(&job, "redelivery").await?;
        let body = json!({
            "queued": true,
            "event": job.kind.as_str(),
            "repository": repo.as_str(),
            "tag": job.tag.as_str(),
            "webhook_id": job.webhook_id,
        });
        Ok(Served {
            response: HttpResponse::json(202, &body),
            target: None,
            webhook_id: Some(job.webhook_id),
        })
    }

    /// Sends one job; a job the queue refuses is a 503 naming `what` (the
    /// caller may try again).
    async fn queue_one(&self, job: &DeliveryJob, what: &str) -> Result<(), ApiError> {
        let report = self.queue.send_jobs(std::slice::from_ref(job)).await?;
        match report.failed.first() {
            Some((_, reason)) => Err(ApiError::Unavailable(format!(
                "delivery queue did not accept the {what}: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// Queues a ping through the delivery queue, so it takes the same path,
    /// address rule, policy and signature as a real push.
    async fn test(&self, repo: RepositoryName) -> Result<Served, ApiError> {
        let record = self.store.get(&repo).await?;
        let Some((record, webhook)) = record
            .as_ref()
            .and_then(|r| r.webhook.as_ref().map(|w| (r, w)))
        else {
            return Err(ApiError::NoWebhook(repo));
        };
        let webhook_id = random_webhook_id();
        let job = DeliveryJob::ping(repo.clone(), record.repository_size, webhook_id.clone());
        self.queue_one(&job, "test delivery").await?;
        let body = json!({
            "queued": true,
            "event": "ping",
            "repository": repo.as_str(),
            "webhook_id": webhook_id,
            "enabled": webhook.enabled,
        });
        Ok(Served {
            response: HttpResponse::json(202, &body),
            target: None,
            webhook_id: Some(webhook_id),
        })
    }

    /// The URL rule of docs/settings-api.md#webhook-urls: syntax and literal addresses first, then
    /// the addresses the name resolves to now (if it resolves at all).
    async fn validate_url(&self, raw: &str) -> Result<WebhookUrl, ApiError> {
        let url = validate_webhook_url(raw, self.allow_private)?;
        let checked = tokio::time::timeout(
            self.resolve_timeout,
            check_resolved(&url, self.lookup.as_ref(), self.allow_private),
        )
        .await;
        match checked {
            Ok(result) => result?,
            Err(_) => tracing::warn!(
                target_origin = %url.origin_for_logs(),
                "webhook host did not resolve in time; accepted, delivery checks again"
            ),
        }
        Ok(url)
    }
}

/// The job that sends `entry`'s event again, or `None` when the entry
/// cannot be one (no payload kept, a stored value that no longer parses).
fn redelivery_job(repo: &RepositoryName, entry: &DeliveryAttempt) -> Option<DeliveryJob> {
    let payload = entry.payload.as_ref()?;
    let kind = match entry.event.as_str() {
        "push" => JobKind::Push,
        "ping" => JobKind::Ping,
        _ => return None,
    };
    let job = DeliveryJob {
        v: JOB_VERSION,
        webhook_id: entry.webhook_id.clone(),
        kind,
        repository: repo.clone(),
        tag: Tag::parse(&entry.tag).ok()?,
        digest: None,
        image_size: payload.image_size,
        layers: payload.layers.clone(),
        repository_size: payload.repository_size,
        pushed_at: None,
    };
    job.validate().ok()?;
    Some(job)
}

/// The config's keys in the order of docs/settings-api.md#the-config-json. `RepoRecord::api_json` builds a
/// `serde_json::Map`, which sorts keys unless serde_json's `preserve_order`
/// is on, so the body is written in this order here.
pub const CONFIG_KEYS: [&str; 12] = [
    "repository",
    "url",
    "enabled",
    "consecutive_failures",
    "disabled_at",
    "disabled_reason",
    "secret",
    "last_delivery",
    "created_at",
    "updated_at",
    "format",
    "headers",
];

/// The 200 config answer, or 404 when the repository has no webhook.
fn config_response(
    repo: &RepositoryName,
    record: Option<&RepoRecord>,
) -> Result<HttpResponse, ApiError> {
    let config = record
        .and_then(RepoRecord::api_json)
        .ok_or_else(|| ApiError::NoWebhook(repo.clone()))?;
    let mut response = HttpResponse::json(200, &config);
    response.body = Some(ordered_json(&config, &CONFIG_KEYS));
    Ok(response)
}

/// Serialises an object with `order`'s keys first, any others after.
fn ordered_json(value: &Value, order: &[&str]) -> String {
    let Value::Object(map) = value else {
        return value.to_string();
    };
    let keys = order
        .iter()
        .copied()
        .filter(|k| map.contains_key(*k))
        .chain(
            map.keys()
                .map(String::as_str)
                .filter(|k| !order.contains(k)),
        );
    let mut out = String::from("{");
    for (key, field) in keys.filter_map(|k| map.get(k).map(|v| (k, v))) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&Value::from(key).to_string());
        out.push(':');
        out.push_str(&field.to_string());
    }
    out.push('}');
    out
}

/// A PUT body, read: the URL (validated later), the format, and the custom
/// headers when the body gives them.
struct PutBody {
    url: String,
    format: PayloadFormat,
    headers: Option<CustomHeaders>,
}

/// A PUT body: a JSON object with a string `url`, an optional `format`
/// (default `alin`) and optional `headers` (an object of strings). Unknown
/// fields are refused rather than ignored: a caller sending `enabled` or
/// `secret` would otherwise believe they had been applied. No message
/// quotes a header value.
fn put_body(body: &[u8]) -> Result<PutBody, ApiError> {
    const EXPECTED: &str = "expected {\"url\": \"https://...\"}";
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadBody(format!(
            "request body is empty; {EXPECTED}"
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadBody(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::BadBody(format!(
            "request body must be a JSON object; {EXPECTED}"
        )));
    };
    let url = fields.remove(URL_FIELD);
    let format = fields.remove(FORMAT_FIELD);
    let headers = fields.remove(HEADERS_FIELD);
    if let Some(unknown) = first_key(&fields) {
        return Err(ApiError::BadBody(format!(
            "unknown field {unknown:?} in request body; only \"url\", \"format\" and \"headers\" are accepted"
        )));
    }
    let url = match url {
        Some(Value::String(url)) => url,
        Some(_) => return Err(ApiError::BadBody("\"url\" must be a string".into())),
        None => {
            return Err(ApiError::BadBody(format!(
                "request body has no \"url\"; {EXPECTED}"
            )))
        }
    };
    let format = match format {
        None => PayloadFormat::Alin,
        Some(Value::String(name)) => {
            PayloadFormat::parse(&name).map_err(|e| ApiError::BadBody(e.to_string()))?
        }
        Some(_) => {
            return Err(ApiError::BadBody(
                shared::webhook::UnknownFormat.to_string(),
            ))
        }
    };
    let headers = match headers {
        None => None,
        Some(h) => Some(custom_headers(h, format)?),
    };
    Ok(PutBody {
        url,
        format,
        headers,
    })
}

/// `"headers"`: an object of string values, in the order given.
fn custom_headers(value: Value, format: PayloadFormat) -> Result<CustomHeaders, ApiError> {
    let Value::Object(fields) = value else {
        return Err(ApiError::BadBody(
            "\"headers\" must be an object of header names to string values".into(),
        ));
    };
    let mut pairs = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        match value {
            Value::String(v) => pairs.push((name, v)),
            _ => {
                let name: String = name.chars().take(64).collect();
                return Err(ApiError::BadBody(HeaderError::NotString(name).to_string()));
            }
        }
    }
    CustomHeaders::new(pairs, format).map_err(|e| ApiError::BadBody(e.to_string()))
}

fn first_key(fields: &Map<String, Value>) -> Option<String> {
    fields.keys().next().map(|k| k.chars().take(64).collect())
}

fn now() -> String {
    rfc3339(OffsetDateTime::now_utc())
}
