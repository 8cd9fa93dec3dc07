//! Reading what registries say: one input (an HTTP body or an SQS message
//! body) becomes the registry events it holds, each either a [`Push`] worth
//! a webhook or an [`IgnoreReason`]. Three formats, told apart by shape:
//!
//! * native push event (the contract's native event): an object with `event`;
//! * CNCF Distribution envelope: an object with `events` (an array);
//! * EventBridge "ECR Image Action": an object with `source` `aws.ecr` /
//!   `detail-type` (SQS only: EventBridge cannot call a Function URL).
//!
//! Anything invalid in an input fails the whole input as
//! [`IngestError::Malformed`]: a registry never sends invalid names, so such
//! input comes from a broken sender, and half-accepting it would hide that.

use serde::Deserialize;
use serde_json::{Map, Value};
use shared::domain::job::derive_webhook_id;
use shared::domain::time::normalize_rfc3339;
use shared::domain::{Digest, RepositoryName, Tag};

use crate::bounded::{bounded, MAX_SHOWN_CHARS};
use crate::error::IngestError;
use crate::manifest::{EcrReference, ManifestLocation};
use crate::summary::IgnoreReason;

/// Which trigger an input came through; ECR events only arrive via SQS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Http,
    Sqs,
}

/// The first part of each `webhook-id` derivation: the event's source.
const SOURCE_NATIVE: &str = "native";
const SOURCE_DISTRIBUTION: &str = "distribution";
const SOURCE_ECR: &str = "ecr";

/// Distribution's media type for blobs (2.8 labels layers and configs so).
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// A push of a manifest or index by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Stable across redeliveries of the same registry event.
    pub webhook_id: String,
    pub repository: RepositoryName,
    pub tag: Tag,
    pub digest: Option<Digest>,
    /// RFC 3339 UTC, seconds.
    pub pushed_at: Option<String>,
    pub content: PushContent,
}

/// What is known about the pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushContent {
    /// Native events carry it all; `repository_size` is passed through.
    Known {
        image_size: u64,
        layers: Vec<Digest>,
        repository_size: u64,
    },
    /// Distribution and ECR: the manifest must be fetched.
    Manifest(ManifestLocation),
}

/// What one input holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Registry events in the input.
    pub received: usize,
    pub pushes: Vec<Push>,
    pub ignored: Vec<IgnoreReason>,
}

impl Parsed {
    fn one_ignored(reason: IgnoreReason) -> Self {
        Self {
            received: 1,
            pushes: Vec::new(),
            ignored: vec![reason],
        }
    }

    fn one_push(push: Push) -> Self {
        Self {
            received: 1,
            pushes: vec![push],
            ignored: Vec::new(),
        }
    }
}

/// A malformed-input error; its text is bounded (it quotes input, and serde's
/// messages can too).
fn malformed(why: impl Into<String>) -> IngestError {
    let why = why.into();
    IngestError::Malformed(crate::bounded::bounded_to(&why, 2 * MAX_SHOWN_CHARS).into_owned())
}

/// Parses one input body, telling the format by its shape.
pub fn parse_input(body: &[u8], channel: Channel) -> Result<Parsed, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("empty body"));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("body is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(malformed("body is not a JSON object"));
    };
    if obj.contains_key("events") {
        parse_distribution(obj)
    } else if obj.get("source").and_then(Value::as_str) == Some("aws.ecr")
        || obj.contains_key("detail-type")
    {
        if channel == Channel::Http {
            return Err(malformed(
                "EventBridge events are accepted only through the SQS queue",
            ));
        }
        parse_ecr(obj)
    } else if obj.contains_key("event") {
        parse_native(obj)
    } else {
        Err(malformed(
            "unknown event format (expected a native push event, a Distribution envelope or an ECR event)",
        ))
    }
}

fn parse_repository(raw: &str) -> Result<RepositoryName, IngestError> {
    RepositoryName::from_registry_path(raw)
        .map_err(|e| malformed(format!("repository {:?}: {e}", bounded(raw))))
}

fn parse_tag(raw: &str) -> Result<Tag, IngestError> {
    Tag::parse(raw).map_err(|e| malformed(e.to_string()))
}

fn parse_digest(raw: &str) -> Result<Digest, IngestError> {
    Digest::parse(raw).map_err(|e| malformed(e.to_string()))
}

/// Normalises a registry timestamp to RFC 3339 UTC seconds, the form
/// webhooks and records use. A time whose UTC instant is out of range
/// (`9999-12-31T23:00:00-01:00`) is malformed input, never a panic.
fn timestamp(raw: &str, field: &str) -> Result<String, IngestError> {
    normalize_rfc3339(raw).ok_or_else(|| {
        malformed(format!(
            "{field} {:?} is not an RFC 3339 time between years 0000 and 9999 UTC",
            bounded(raw)
        ))
    })
}

/// `None` for absent, null or empty strings (registries differ).
/// A push's webhook id, stable across redeliveries: derived from the
/// registry's event id, or without one from what the push names (a registry
/// resending it resends the same fields).
fn push_id(
    source: &str,
    event_id: Option<String>,
    (repository, tag, digest): (&RepositoryName, &Tag, Option<&Digest>),
    pushed_at: Option<&str>,
) -> String {
    match non_empty(event_id) {
        Some(id) => derive_webhook_id(&[source, &id]),
        None => derive_webhook_id(&[
            source,
            repository.as_str(),
            tag.as_str(),
            digest.map_or("", Digest::as_str),
            pushed_at.unwrap_or(""),
        ]),
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

// ---------------------------------------------------------------- native

#[derive(Deserialize)]
struct NativePush {
    username: String,
    repository: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    image_size: u64,
    layers: Vec<String>,
    repository_size: u64,
    #[serde(default)]
    pushed_at: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

fn parse_native(obj: Map<String, Value>) -> Result<Parsed, IngestError> {
    let event = obj
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("native event: `event` must be a string"))?;
    if event != "push" {
        // Only the event name is needed to ignore it; the rest may differ.
        return Ok(Parsed::one_ignored(IgnoreReason::for_action(event)));
    }
    let n: NativePush = serde_json::from_value(Value::Object(obj))
        .map_err(|e| malformed(format!("native push event: {e}")))?;
    let repository = RepositoryName::from_parts(&n.username, &n.repository).map_err(|e| {
        malformed(format!(
            "repository {:?}/{:?}: {e}",
            bounded(&n.username),
            bounded(&n.repository)
        ))
    })?;
    let Some(raw_tag) = non_empty(n.tag) else {
        return Ok(Parsed::one_ignored(IgnoreReason::Untagged));
    };
    let tag = parse_tag(&raw_tag)?;
    let digest = non_empty(n.digest).map(|d| parse_digest(&d)).transpose()?;
    let layers = n
        .layers
        .iter()
        .map(|l| parse_digest(l))
        .collect::<Result<Vec<_>, _>>()?;
    let pushed_at = non_empty(n.pushed_at)
        .map(|t| timestamp(&t, "pushed_at"))
        .transpose()?;
    let named = (&repository, &tag, digest.as_ref());
    let webhook_id = push_id(SOURCE_NATIVE, n.id, named, pushed_at.as_deref());
    Ok(Parsed::one_push(Push {
        webhook_id,
        repository,
        tag,
        digest,
        pushed_at,
        content: PushContent::Known {
            image_size: n.image_size,
            layers,
            repository_size: n.repository_size,
        },
    }))
}

// ---------------------------------------------------------- Distribution

#[derive(Deserialize)]
struct DistEvent {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    target: Option<DistTarget>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DistTarget {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

fn parse_distribution(mut obj: Map<String, Value>) -> Result<Parsed, IngestError> {
    let Some(Value::Array(events)) = obj.remove("events") else {
        return Err(malformed(
            "Distribution envelope: `events` must be an array",
        ));
    };
    let mut parsed = Parsed::default();
    for (i, raw) in events.into_iter().enumerate() {
        let event: DistEvent = serde_json::from_value(raw)
            .map_err(|e| malformed(format!("Distribution event {i}: {e}")))?;
        parsed.received += 1;
        match distribution_event(event).map_err(|e| match e {
            IngestError::Malformed(why) => malformed(format!("Distribution event {i}: {why}")),
            other => other,
        })? {
            Ok(push) => parsed.pushes.push(push),
            Err(reason) => parsed.ignored.push(reason),
        }
    }
    Ok(parsed)
}

/// One Distribution event: a push to resolve, or why it is ignored.
fn distribution_event(e: DistEvent) -> Result<Result<Push, IgnoreReason>, IngestError> {
    let action = e.action.unwrap_or_default();
    if action != "push" {
        return Ok(Err(IgnoreReason::for_action(&action)));
    }
    let t = e
        .target
        .ok_or_else(|| malformed("push event without `target`"))?;
    let url = non_empty(t.url);
    // 2.8 labels blobs application/octet-stream; later versions may label
    // them with the layer type, but their URL always says /blobs/.
    let is_blob = t.media_type.as_deref() == Some(BLOB_MEDIA_TYPE)
        || url.as_deref().is_some_and(|u| u.contains("/blobs/"));
    if is_blob {
        return Ok(Err(IgnoreReason::Blob));
    }
    let Some(raw_tag) = non_empty(t.tag) else {
        return Ok(Err(IgnoreReason::Untagged));
    };
    let raw_repository = non_empty(t.repository)
        .ok_or_else(|| malformed("push event without `target.repository`"))?;
    let repository = parse_repository(&raw_repository)?;
    let tag = parse_tag(&raw_tag)?;
    let digest = non_empty(t.digest)
        .ok_or_else(|| malformed("manifest push without `target.digest`"))
        .and_then(|d| parse_digest(&d))?;
    let url = url.ok_or_else(|| malformed("manifest push without `target.url`"))?;
    let url = url::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| malformed("`target.url` is not an http(s) URL"))?;
    let pushed_at = non_empty(e.timestamp)
        .map(|t| timestamp(&t, "timestamp"))
        .transpose()?;
    let named = (&repository, &tag, Some(&digest));
    let webhook_id = push_id(SOURCE_DISTRIBUTION, e.id, named, pushed_at.as_deref());
    // The URL is only compared by origin; the request is built from the
    // repository and digest (see `DistributionFetcher`).
    let content = PushContent::Manifest(ManifestLocation::Distribution {
        origin: crate::bounded::origin_url(&url),
        repository: raw_repository,
        digest: digest.clone(),
    });
    Ok(Ok(Push {
        webhook_id,
        repository,
        tag,
        digest: Some(digest),
        pushed_at,
        content,
    }))
}

// -------------------------------------------------------------------- ECR

/// The "ECR Image Action" detail-type.
const ECR_IMAGE_ACTION: &str = "ECR Image Action";

#[derive(Deserialize)]
struct EcrEvent {
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    account: String,
    #[serde(default)]
    time: Option<String>,
    detail: EcrDetail,
}

#[derive(Deserialize)]
struct EcrDetail {
    #[serde(default)]
    result: Option<String>,
    #[serde(rename = "repository-name")]
    repository_name: String,
    #[serde(rename = "image-digest", default)]
    image_digest: Option<String>,
    #[serde(rename = "action-type")]
    action_type: String,
    #[serde(rename = "image-tag", default)]
    image_tag: Option<String>,
}

fn parse_ecr(obj: Map<String, Value>) -> Result<Parsed, IngestError> {
    if obj.get("detail-type").and_then(Value::as_str) != Some(ECR_IMAGE_ACTION) {
        // Other ECR events (scans, replication) reach the queue when the
        // EventBridge rule is wider than ours; they are not pushes.
        return Ok(Parsed::one_ignored(IgnoreReason::OtherEvent));
    }
    let e: EcrEvent = serde_json::from_value(Value::Object(obj))
        .map_err(|e| malformed(format!("ECR event: {e}")))?;
    debug_assert_eq!(e.detail_type, ECR_IMAGE_ACTION);
    let d = e.detail;
    if !d.action_type.eq_ignore_ascii_case("push") {
        return Ok(Parsed::one_ignored(IgnoreReason::for_action(
            &d.action_type,
        )));
    }
    if d.result.as_deref() != Some("SUCCESS") {
        return Ok(Parsed::one_ignored(IgnoreReason::NotSuccessful));
    }
    let Some(raw_tag) = non_empty(d.image_tag) else {
        return Ok(Parsed::one_ignored(IgnoreReason::Untagged));
    };
    // ECR names have no username segment: `my-repo` is `library/my-repo`,
    // `team/app` is user `team`'s `app` (Distribution's rule).
    let repository = parse_repository(&d.repository_name)?;
    let tag = parse_tag(&raw_tag)?;
    let digest = non_empty(d.image_digest)
        .map(|x| parse_digest(&x))
        .transpose()?;
    let pushed_at = non_empty(e.time)
        .map(|t| timestamp(&t, "time"))
        .transpose()?;
    if e.account.is_empty() || !e.account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("ECR event: `account` must be an account id"));
    }
    let reference = match &digest {
        Some(d) => EcrReference::Digest(d.clone()),
        None => EcrReference::Tag(tag.as_str().to_owned()),
    };
    Ok(Parsed::one_push(Push {
        webhook_id: derive_webhook_id(&[SOURCE_ECR, &e.id]),
        repository,
        tag,
        digest,
        pushed_at,
        content: PushContent::Manifest(ManifestLocation::Ecr {
            registry_id: e.account,
            repository: d.repository_name,
            reference,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn parse(v: Value, ch: Channel) -> Result<Parsed, IngestError> {
        parse_input(v.to_string().as_bytes(), ch)
    }

    #[test]
    fn native_push_with_and_without_optional_fields() {
        let p = parse(
            json!({"event":"push","username":"bob","repository":"team/tools","tag":"2.3.1",
                   "image_size":5,"layers":[d('a')],"repository_size":9}),
            Channel::Sqs,
        )
        .unwrap();
        assert_eq!(p.received, 1);
        let push = &p.pushes[0];
        assert_eq!(push.repository.as_str(), "bob/team/tools");
        assert_eq!(push.digest, None);
        assert_eq!(push.pushed_at, None);
        assert_eq!(
            push.content,
            PushContent::Known {
                image_size: 5,
                layers: vec![Digest::parse(&d('a')).unwrap()],
                repository_size: 9
            }
        );
        let with = parse(
            json!({"event":"push","username":"bob","repository":"app","tag":"1","digest":d('b'),
                   "image_size":5,"layers":[],"repository_size":9,
                   "pushed_at":"2026-11-28T09:00:00.5+01:00","id":"e1"}),
            Channel::Http,
        )
        .unwrap();
        let push = &with.pushes[0];
        assert_eq!(push.pushed_at.as_deref(), Some("2026-11-28T08:00:00Z"));
        assert_eq!(push.webhook_id, derive_webhook_id(&["native", "e1"]));
    }

    #[test]
    fn native_non_push_and_untagged_are_ignored() {
        let p = parse(json!({"event":"delete","username":"a"}), Channel::Http).unwrap();
        assert_eq!(p.ignored, vec![IgnoreReason::Delete]);
        let p = parse(
            json!({"event":"push","username":"a","repository":"b","digest":d('a'),
                   "image_size":1,"layers":[],"repository_size":1}),
            Channel::Http,
        )
        .unwrap();
        assert_eq!(p.ignored, vec![IgnoreReason::Untagged]);
    }

    #[test]
    fn invalid_input_is_malformed() {
        let ok = json!({"event":"push","username":"a","repository":"b","tag":"1",
                        "image_size":1,"layers":[],"repository_size":1});
        let mut cases = vec![];
        for (k, v) in [
            ("username", json!("A")),
            ("repository", json!("B")),
            ("tag", json!(".x")),
            ("digest", json!("md5:1")),
            ("layers", json!(["nope"])),
            ("image_size", json!(-1)),
            ("pushed_at", json!("yesterday")),
            ("event", json!(7)),
        ] {
            let mut c = ok.clone();
            c[k] = v;
            cases.push(c.to_string());
        }
        cases.extend(
            [
                "",
                "  ",
                "{",
                "[]",
                "{}",
                r#"{"foo":1}"#,
                r#"{"events":{}}"#,
                r#"{"events":[{"action":"push"}]}"#,
                r#"{"events":[{"action":"push","target":{"tag":"1","repository":"a/b","url":"ftp://x/y"}}]}"#,
            ]
            .map(String::from),
        );
        for c in cases {
            let e = parse_input(c.as_bytes(), Channel::Sqs).unwrap_err();
            assert!(matches!(e, IngestError::Malformed(_)), "{c}: {e}");
        }
        assert!(parse(ok, Channel::Sqs).is_ok());
    }

    #[test]
    fn distribution_events_are_classified() {
        let ev = |action: &str, target: Value| json!({"id":"i","action":action,"target":target});
        let url = |kind: &str| format!("http://r:5000/v2/alice/app/{kind}/{}", d('a'));
        let p = parse(
            json!({"events":[
                ev("pull", json!({"mediaType":"application/vnd.oci.image.manifest.v1+json"})),
                ev("mount", json!({})),
                ev("delete", json!({})),
                ev("push", json!({"mediaType":"application/octet-stream","url":url("blobs")})),
                ev("push", json!({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","url":url("blobs"),"tag":"x"})),
                ev("push", json!({"mediaType":"application/vnd.oci.image.manifest.v1+json","url":url("manifests"),"repository":"alice/app","digest":d('a')})),
                ev("push", json!({"mediaType":"application/vnd.oci.image.manifest.v1+json","url":url("manifests"),"repository":"hello-world","digest":d('a'),"tag":"1.0"})),
            ]}),
            Channel::Http,
        )
        .unwrap();
        assert_eq!(p.received, 7);
        assert_eq!(
            p.ignored,
            vec![
                IgnoreReason::Pull,
                IgnoreReason::Mount,
                IgnoreReason::Delete,
                IgnoreReason::Blob,
                IgnoreReason::Blob,
                IgnoreReason::Untagged
            ]
        );
        let push = &p.pushes[0];
        assert_eq!(push.repository.as_str(), "library/hello-world");
        assert_eq!(push.webhook_id, derive_webhook_id(&["distribution", "i"]));
        assert!(
            matches!(&push.content, PushContent::Manifest(ManifestLocation::Distribution { origin, repository, digest })
                if origin.as_str() == "http://r:5000/" && repository == "hello-world" && digest.as_str() == d('a'))
        );
    }

    fn ecr(action: &str, result: &str, tag: Option<&str>) -> Value {
        let mut v = json!({"version":"0","id":"ev-1","detail-type":"ECR Image Action","source":"aws.ecr",
            "account":"123456789012","time":"2026-11-28T08:41:13Z","region":"us-east-1","resources":[],
            "detail":{"result":result,"repository-name":"my-repo","image-digest":d('c'),"action-type":action}});
        if let Some(t) = tag {
            v["detail"]["image-tag"] = json!(t);
        }
        v
    }

    #[test]
    fn ecr_events() {
        let p = parse(ecr("PUSH", "SUCCESS", Some("latest")), Channel::Sqs).unwrap();
        let push = &p.pushes[0];
        assert_eq!(push.repository.as_str(), "library/my-repo");
        assert_eq!(push.webhook_id, derive_webhook_id(&["ecr", "ev-1"]));
        assert_eq!(
            push.content,
            PushContent::Manifest(ManifestLocation::Ecr {
                registry_id: "123456789012".into(),
                repository: "my-repo".into(),
                reference: EcrReference::Digest(Digest::parse(&d('c')).unwrap())
            })
        );
        for (v, reason) in [
            (ecr("DELETE", "SUCCESS", Some("x")), IgnoreReason::Delete),
            (
                ecr("PUSH", "FAILURE", Some("x")),
                IgnoreReason::NotSuccessful,
            ),
            (ecr("PUSH", "SUCCESS", None), IgnoreReason::Untagged),
        ] {
            assert_eq!(parse(v, Channel::Sqs).unwrap().ignored, vec![reason]);
        }
        let mut scan = ecr("PUSH", "SUCCESS", Some("x"));
        scan["detail-type"] = json!("ECR Image Scan");
        assert_eq!(
            parse(scan, Channel::Sqs).unwrap().ignored,
            vec![IgnoreReason::OtherEvent]
        );
        let e = parse(ecr("PUSH", "SUCCESS", Some("x")), Channel::Http).unwrap_err();
        assert!(matches!(e, IngestError::Malformed(_)));
    }
}
