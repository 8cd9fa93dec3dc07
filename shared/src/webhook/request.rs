//! Builds the webhook request of docs/webhook.md: for each payload format
//! ([`PayloadFormat`]) its headers in their order, the webhook's custom
//! headers after them, and the JSON body with its keys in contract order
//! (serde keeps struct field order). Every format carries the alin body
//! (whole, or as its envelope's payload), the identifying headers and the
//! Standard Webhooks signature over the exact body bytes sent.

use serde::Serialize;
use time::OffsetDateTime;

use super::format::PayloadFormat;
use super::headers::{is_service_owned, CustomHeaders};
use super::signing::WebhookSecret;
use crate::domain::job::{DeliveryJob, JobKind};
use crate::domain::time::rfc3339;
use crate::domain::Digest;

pub const USER_AGENT: &str = "Alin.io WebHook Handler";
/// The GitHub REST API version the `github-dispatch` format speaks.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// The alin body, field order = key order on the wire.
#[derive(Serialize)]
struct Body<'a> {
    image: String,
    image_size: u64,
    layers: &'a [Digest],
    repository: String,
    repository_size: u64,
    event: &'static str,
    timestamp: String,
}

/// GitHub's `repository_dispatch` body.
#[derive(Serialize)]
struct Dispatch<'a> {
    event_type: &'static str,
    client_payload: &'a Body<'a>,
}

/// A CloudEvents 1.0 event in structured mode.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: String,
    #[serde(rename = "type")]
    kind: &'static str,
    subject: String,
    time: &'a str,
    datacontenttype: &'static str,
    data: &'a Body<'a>,
}

/// A fully built webhook request, ready for any HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Every header the service sets, in the format's order,
    /// `Content-Length` included (clients that compute it themselves skip it).
    pub headers: Vec<(&'static str, String)>,
    /// The webhook's custom headers, sent after `headers`, in their order.
    pub custom: CustomHeaders,
    pub body: Vec<u8>,
    pub timestamp: i64,
}

impl WebhookRequest {
    /// The first value of a header the service sets (not a custom one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The alin request for `job` as sent at `now`, signed with `secret`, with
/// no custom headers.
pub fn build_request(
    job: &DeliveryJob,
    registry_host: &str,
    secret: &WebhookSecret,
    now: OffsetDateTime,
) -> WebhookRequest {
    let plain = CustomHeaders::default();
    build_request_as(
        job,
        registry_host,
        (PayloadFormat::Alin, &plain),
        secret,
        now,
    )
}

/// The request for `job` in `format` with `custom` headers after the
/// service's, as sent at `now`, signed with `secret`.
pub fn build_request_as(
    job: &DeliveryJob,
    registry_host: &str,
    (format, custom): (PayloadFormat, &CustomHeaders),
    secret: &WebhookSecret,
    now: OffsetDateTime,
) -> WebhookRequest {
    let timestamp = now.unix_timestamp();
    let time = rfc3339(now);
    let repository = format!("{registry_host}/{}", job.repository);
    let body = Body {
        image: format!("{registry_host}/{}", job.image_ref()),
        image_size: job.image_size,
        layers: &job.layers,
        repository: repository.clone(),
        repository_size: job.repository_size,
        event: job.kind.as_str(),
        timestamp: time.clone(),
    };
    // Structs of strings, integers and digests always serialise.
    let body = match format {
        PayloadFormat::Alin => serde_json::to_vec(&body),
        PayloadFormat::GithubDispatch => serde_json::to_vec(&Dispatch {
            event_type: match job.kind {
                JobKind::Push => "alin-push",
                JobKind::Ping => "alin-ping",
            },
            client_payload: &body,
        }),
        PayloadFormat::CloudEvents => serde_json::to_vec(&CloudEvent {
            specversion: "1.0",
            id: &job.webhook_id,
            source: format!("https://{repository}"),
            kind: match job.kind {
                JobKind::Push => "io.alin.container.push",
                JobKind::Ping => "io.alin.container.ping",
            },
            subject: job.image_ref(),
            time: &time,
            datacontenttype: "application/json",
            data: &body,
        }),
    }
    .unwrap_or_default();
    let signature = secret.sign(&job.webhook_id, timestamp, &body);
    let headers = service_headers(format, job, body.len(), timestamp, signature);
    WebhookRequest {
        headers,
        custom: sendable(custom, format),
        body,
        timestamp,
    }
}

/// The service's headers in `format`'s order (docs/webhook.md).
fn service_headers(
    format: PayloadFormat,
    job: &DeliveryJob,
    length: usize,
    timestamp: i64,
    signature: String,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("User-Agent", USER_AGENT.to_owned()),
        ("Accept-Encoding", "gzip, deflate".to_owned()),
    ];
    match format {
        PayloadFormat::GithubDispatch => {
            headers.push(("Accept", "application/vnd.github+json".to_owned()));
            headers.push(("X-GitHub-Api-Version", GITHUB_API_VERSION.to_owned()));
        }
        PayloadFormat::Alin | PayloadFormat::CloudEvents => {
            headers.push(("Accept", "*/*".to_owned()));
        }
    }
    let content_type = match format {
        PayloadFormat::CloudEvents => "application/cloudevents+json",
        PayloadFormat::Alin | PayloadFormat::GithubDispatch => "application/json",
    };
    headers.extend([
        ("Connection", "keep-alive".to_owned()),
        ("x-alin-webhook", job.image_ref()),
        ("Content-Length", length.to_string()),
        ("Content-Type", content_type.to_owned()),
        ("webhook-id", job.webhook_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]);
    headers
}

/// The custom headers that may go out in `format`. The settings API already
/// refuses the others; this keeps a record written before a format change
/// (or by hand) from doubling a header the service sets.
fn sendable(custom: &CustomHeaders, format: PayloadFormat) -> CustomHeaders {
    if custom.is_empty() {
        return CustomHeaders::default();
    }
    let kept: Vec<(String, String)> = custom
        .iter()
        .filter(|(n, _)| !is_service_owned(n))
        .filter(|(n, _)| {
            !format
                .own_headers()
                .iter()
                .any(|o| o.eq_ignore_ascii_case(n))
        })
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    CustomHeaders::new(kept, format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's header order, then the Standard Webhooks headers.
    const ALIN_HEADER_ORDER: [&str; 10] = [
        "User-Agent",
        "Accept-Encoding",
        "Accept",
        "Connection",
        "x-alin-webhook",
        "Content-Length",
        "Content-Type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ];
    use crate::domain::job::DeliveryJob;

    fn job(kind: &str) -> DeliveryJob {
        DeliveryJob::parse(&format!(
            r#"{{"v":1,"webhook_id":"evt_abc","kind":"{kind}","repository":"alice/team/app","tag":"1.0","image_size":289,"layers":["sha256:{a}","sha256:{b}"],"repository_size":1000}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64)
        ))
        .unwrap()
    }

    #[test]
    fn exact_headers_and_body() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_795_852_800).unwrap();
        let req = build_request(&job("push"), "container.alin.io", &secret, now);
        let body = format!(
            r#"{{"image":"container.alin.io/alice/team/app:1.0","image_size":289,"layers":["sha256:{a}","sha256:{b}"],"repository":"container.alin.io/alice/team/app","repository_size":1000,"event":"push","timestamp":"2026-11-28T08:00:00Z"}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64)
        );
        assert_eq!(String::from_utf8(req.body.clone()).unwrap(), body);
        let names: Vec<&str> = req.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ALIN_HEADER_ORDER);
        assert_eq!(req.header("user-agent"), Some("Alin.io WebHook Handler"));
        assert_eq!(req.header("accept-encoding"), Some("gzip, deflate"));
        assert_eq!(req.header("accept"), Some("*/*"));
        assert_eq!(req.header("connection"), Some("keep-alive"));
        assert_eq!(req.header("x-alin-webhook"), Some("alice/team/app:1.0"));
        assert_eq!(
            req.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("webhook-id"), Some("evt_abc"));
        assert_eq!(req.header("webhook-timestamp"), Some("1795852800"));
        let sig = req.header("webhook-signature").unwrap();
        assert_eq!(sig, secret.sign("evt_abc", 1_795_852_800, body.as_bytes()));
    }

    #[test]
    fn ping_has_the_same_shape() {
        let secret = WebhookSecret::generate();
        let now = OffsetDateTime::from_unix_timestamp(1_795_852_800).unwrap();
        let ping = DeliveryJob::ping(
            crate::domain::RepositoryName::parse("alice/app").unwrap(),
            77,
            "evt_p".into(),
        );
        let req = build_request(&ping, "r.example", &secret, now);
        assert_eq!(
            String::from_utf8(req.body.clone()).unwrap(),
            r#"{"image":"r.example/alice/app:ping","image_size":0,"layers":[],"repository":"r.example/alice/app","repository_size":77,"event":"ping","timestamp":"2026-11-28T08:00:00Z"}"#
        );
        assert_eq!(req.header("x-alin-webhook"), Some("alice/app:ping"));
    }

    fn names(req: &WebhookRequest) -> Vec<&str> {
        req.headers.iter().map(|(n, _)| *n).collect()
    }

    /// GIVEN a push in each format THEN the envelope wraps the alin body
    /// byte for byte, the headers follow the format's order, and the
    /// signature covers the exact bytes sent.
    #[test]
    fn formats_wrap_the_alin_body_and_sign_what_they_send() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_795_852_800).unwrap();
        let push = job("push");
        let none = CustomHeaders::default();
        let alin = build_request(&push, "container.alin.io", &secret, now);
        let alin_body = String::from_utf8(alin.body.clone()).unwrap();

        let build_as =
            |format| build_request_as(&push, "container.alin.io", (format, &none), &secret, now);
        let gh = build_as(PayloadFormat::GithubDispatch);
        assert_eq!(
            String::from_utf8(gh.body.clone()).unwrap(),
            format!(r#"{{"event_type":"alin-push","client_payload":{alin_body}}}"#)
        );
        // GitHub's version header follows Accept; the rest keep their order.
        let mut github_order = ALIN_HEADER_ORDER.to_vec();
        github_order.insert(3, "X-GitHub-Api-Version");
        assert_eq!(names(&gh), github_order);
        assert_eq!(gh.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(gh.header("x-github-api-version"), Some("2022-11-28"));
        assert_eq!(gh.header("content-type"), Some("application/json"));
        assert!(secret.verify(
            "evt_abc",
            gh.timestamp,
            &gh.body,
            gh.header("webhook-signature").unwrap()
        ));

        let ce = build_as(PayloadFormat::CloudEvents);
        assert_eq!(
            String::from_utf8(ce.body.clone()).unwrap(),
            format!(
                r#"{{"specversion":"1.0","id":"evt_abc","source":"https://container.alin.io/alice/team/app","type":"io.alin.container.push","subject":"alice/team/app:1.0","time":"2026-11-28T08:00:00Z","datacontenttype":"application/json","data":{alin_body}}}"#
            )
        );
        assert_eq!(names(&ce), names(&alin));
        assert_eq!(
            ce.header("content-type"),
            Some("application/cloudevents+json")
        );
        assert_eq!(ce.header("accept"), Some("*/*"));
        assert_eq!(
            ce.header("content-length"),
            Some(ce.body.len().to_string().as_str())
        );
        assert!(secret.verify(
            "evt_abc",
            ce.timestamp,
            &ce.body,
            ce.header("webhook-signature").unwrap()
        ));
    }

    #[test]
    fn pings_name_their_event_in_every_envelope() {
        let secret = WebhookSecret::generate();
        let now = OffsetDateTime::from_unix_timestamp(1_795_852_800).unwrap();
        let ping = job("ping");
        let none = CustomHeaders::default();
        let build_as = |format| build_request_as(&ping, "r", (format, &none), &secret, now);
        let gh = build_as(PayloadFormat::GithubDispatch);
        assert!(gh
            .body
            .starts_with(br#"{"event_type":"alin-ping","client_payload":{"#));
        let ce = build_as(PayloadFormat::CloudEvents);
        let v: serde_json::Value = serde_json::from_slice(&ce.body).unwrap();
        assert_eq!(v["type"], "io.alin.container.ping");
        assert_eq!(v["data"]["event"], "ping");
    }

    /// Custom headers ride along in order; one the format owns (a record
    /// written before a format change) is left out rather than doubled.
    #[test]
    fn custom_headers_follow_in_order_and_never_double_ours() {
        let secret = WebhookSecret::generate();
        let now = OffsetDateTime::from_unix_timestamp(1_795_852_800).unwrap();
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let custom = CustomHeaders::new(
            pairs(&[("X-B", "2"), ("Accept", "text/plain"), ("X-A", "1")]),
            PayloadFormat::Alin,
        )
        .unwrap();
        let push = job("push");
        let build_as = |format| build_request_as(&push, "r", (format, &custom), &secret, now);
        let alin = build_as(PayloadFormat::Alin);
        assert_eq!(alin.custom, custom);
        let gh = build_as(PayloadFormat::GithubDispatch);
        assert_eq!(gh.custom.names().collect::<Vec<_>>(), ["X-B", "X-A"]);
        assert!(!format!("{gh:?}").contains("text/plain"));
    }
}
