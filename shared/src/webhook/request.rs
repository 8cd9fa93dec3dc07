//! Builds the webhook request of docs/webhook.md#the-request: the seed's headers in the
//! seed's order, Standard Webhooks headers after them, and the JSON body with
//! its keys in contract order (serde keeps struct field order).

use serde::Serialize;
use time::OffsetDateTime;

use super::signing::WebhookSecret;
use crate::domain::job::DeliveryJob;
use crate::domain::time::rfc3339;
use crate::domain::Digest;

pub const USER_AGENT: &str = "Alin.io WebHook Handler";

/// The body, field order = key order on the wire.
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

/// A fully built webhook request, ready for any HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Every header of the contract, in contract order, `Content-Length`
    /// included (clients that compute it themselves skip it).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub timestamp: i64,
}

impl WebhookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Builds the request for `job` as sent at `now`, signed with `secret`.
pub fn build_request(
    job: &DeliveryJob,
    registry_host: &str,
    secret: &WebhookSecret,
    now: OffsetDateTime,
) -> WebhookRequest {
    let timestamp = now.unix_timestamp();
    let image_ref = job.image_ref();
    let body = Body {
        image: format!("{registry_host}/{image_ref}"),
        image_size: job.image_size,
        layers: &job.layers,
        repository: format!("{registry_host}/{}", job.repository),
        repository_size: job.repository_size,
        event: job.kind.as_str(),
        timestamp: rfc3339(now),
    };
    // A struct of strings, integers and digests always serialises.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let signature = secret.sign(&job.webhook_id, timestamp, &body);
    let headers = vec![
        ("User-Agent", USER_AGENT.to_owned()),
        ("Accept-Encoding", "gzip, deflate".to_owned()),
        ("Accept", "*/*".to_owned()),
        ("Connection", "keep-alive".to_owned()),
        ("x-alin-webhook", image_ref),
        ("Content-Length", body.len().to_string()),
        ("Content-Type", "application/json".to_owned()),
        ("webhook-id", job.webhook_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    WebhookRequest {
        headers,
        body,
        timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(
            names,
            [
                "User-Agent",
                "Accept-Encoding",
                "Accept",
                "Connection",
                "x-alin-webhook",
                "Content-Length",
                "Content-Type",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature"
            ]
        );
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
}
