//! Handler-level unit tests: the whole function (both triggers) over the
//! memory store and queue and a fake manifest source, fed the real captures
//! in tests/fixtures (real captures) and hand-made events for every other case.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::config::Sensitive;
use shared::domain::job::derive_webhook_id;
use shared::domain::{validate_webhook_url, DeliveryJob, RepositoryName};
use shared::function_url::HttpRequest;
use shared::ports::{LayerSize, StoreError, WebhookStore};

use crate::manifest::{sha256_digest, EcrReference, OCI_INDEX, OCI_MANIFEST};
use crate::{IgnoreReason, Ingest, IngestError, ManifestLocation, ManifestSource, RawManifest};

// ------------------------------------------------------------------ fakes

#[derive(Clone)]
enum Answer {
    Manifest(RawManifest),
    /// The registry is down: retryable.
    Down,
}

/// A registry (and ECR) in a map; unknown locations are 404s.
#[derive(Default)]
struct FakeRegistry {
    answers: Mutex<HashMap<ManifestLocation, Answer>>,
    fetched: Mutex<Vec<ManifestLocation>>,
}

impl FakeRegistry {
    fn put(&self, location: ManifestLocation, body: &[u8], media_type: &str) {
        self.answers.lock().unwrap().insert(
            location,
            Answer::Manifest(RawManifest {
                media_type: Some(media_type.into()),
                body: body.to_vec(),
            }),
        );
    }

    fn down(&self, location: ManifestLocation) {
        self.answers.lock().unwrap().insert(location, Answer::Down);
    }

    fn fetches(&self) -> usize {
        self.fetched.lock().unwrap().len()
    }
}

#[async_trait]
impl ManifestSource for FakeRegistry {
    async fn fetch(&self, location: &ManifestLocation) -> Result<RawManifest, IngestError> {
        self.fetched.lock().unwrap().push(location.clone());
        match self.answers.lock().unwrap().get(location).cloned() {
            Some(Answer::Manifest(m)) => Ok(m),
            Some(Answer::Down) => Err(IngestError::ManifestFetch("HTTP 503".into())),
            None => Err(IngestError::ManifestUnusable(format!(
                "GET {location}: HTTP 404"
            ))),
        }
    }
}

/// A store whose every call fails retryably (DynamoDB throttling).
struct DownStore;

#[async_trait]
impl WebhookStore for DownStore {
    async fn get(
        &self,
        _: &RepositoryName,
    ) -> Result<Option<shared::domain::RepoRecord>, StoreError> {
        Err(StoreError::Retryable("throttled".into()))
    }
    async fn get_many(
        &self,
        _: &[RepositoryName],
    ) -> Result<HashMap<RepositoryName, shared::domain::RepoRecord>, StoreError> {
        Err(StoreError::Retryable("throttled".into()))
    }
    async fn put_webhook(
        &self,
        _: &RepositoryName,
        _: &shared::ports::WebhookUpdate,
        _: &str,
    ) -> Result<shared::domain::RepoRecord, StoreError> {
        Err(StoreError::Retryable("throttled".into()))
    }
    async fn delete(&self, _: &RepositoryName) -> Result<bool, StoreError> {
        Err(StoreError::Retryable("throttled".into()))
    }
    async fn enable(
        &self,
        _: &RepositoryName,
        _: &str,
    ) -> Result<Option<shared::domain::RepoRecord>, StoreError> {
        Err(StoreError::Retryable("throttled".into()))
    }
    async fn record_outcome(
        &self,
        _: &RepositoryName,
        _: &shared::domain::BatchOutcome,
        _: u32,
    ) -> Result<shared::domain::OutcomeApplied, StoreError> {
        Err(StoreError::Retryable("throttled".into()))
    }
    async fn add_layers(&self, _: &RepositoryName, _: &[LayerSize]) -> Result<u64, StoreError> {
        Err(StoreError::Retryable("throttled".into()))
    }
}

// ---------------------------------------------------------------- harness

const TOKEN: &str = "secret-token";
const REGISTRY: &str = "http://127.0.0.1:5000";

struct Harness {
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    registry: Arc<FakeRegistry>,
    ingest: Ingest,
}

fn harness() -> Harness {
    let store = Arc::new(MemoryStore::default());
    let queue = Arc::new(MemoryQueue::default());
    let registry = Arc::new(FakeRegistry::default());
    let ingest = Ingest::new(store.clone(), queue.clone(), registry.clone())
        .with_token(Some(&Sensitive(TOKEN.into())));
    Harness {
        store,
        queue,
        registry,
        ingest,
    }
}

impl Harness {
    async fn hook(&self, repo: &str) {
        let url = validate_webhook_url("https://hooks.example.com/alin?token=x", false).unwrap();
        self.store
            .put_url(
                &RepositoryName::parse(repo).unwrap(),
                &url,
                "2026-11-28T08:00:00Z",
            )
            .await
            .unwrap();
    }

    async fn size_of(&self, repo: &str) -> u64 {
        self.store
            .get(&RepositoryName::parse(repo).unwrap())
            .await
            .unwrap()
            .map_or(0, |r| r.repository_size)
    }

    /// POSTs `body` with the right token; returns (status, body JSON).
    async fn post(&self, body: &str) -> (u16, Value) {
        let r = self
            .ingest
            .handle(http_event("POST", body, Some(&format!("Bearer {TOKEN}"))))
            .await
            .unwrap();
        let status = r["statusCode"].as_u64().unwrap() as u16;
        let body = r["body"]
            .as_str()
            .map_or(Value::Null, |b| serde_json::from_str(b).unwrap());
        (status, body)
    }

    /// Runs an SQS batch; returns the failed message ids.
    async fn sqs(&self, records: &[(&str, String)]) -> Vec<String> {
        let r = self.ingest.handle(sqs_event(records)).await.unwrap();
        r["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn http_event(method: &str, body: &str, authorization: Option<&str>) -> Value {
    let mut headers = json!({"content-type": "application/vnd.docker.distribution.events.v1+json"});
    if let Some(a) = authorization {
        headers["authorization"] = json!(a);
    }
    json!({
        "version": "2.0", "rawPath": "/", "rawQueryString": "", "headers": headers,
        "requestContext": {"http": {"method": method, "path": "/"}, "requestId": "r-1"},
        "body": body, "isBase64Encoded": false
    })
}

fn sqs_event(records: &[(&str, String)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                   "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"})
        })
        .collect();
    json!({ "Records": records })
}

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The three captured envelopes: (Authorization header, body).
fn fixture_envelopes() -> Vec<(String, String)> {
    fixture("distribution-2.8-push-envelopes.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["authorization"].as_str().unwrap().to_owned(),
                v["body"].to_string(),
            )
        })
        .collect()
}

const FIXTURE_DIGEST: &str =
    "sha256:4efb9572a88a346a86b79761a7ea7f41fd9b93f49deecf6bd9c7e9161d808ab7";
const FIXTURE_LAYER: &str =
    "sha256:b1387840bec18458d9bb3bd9cff80b0839e9e2adca42e2269fe6bff32b0b9b52";

fn manifest_url(repo_path: &str, reference: &str) -> String {
    format!("{REGISTRY}/v2/{repo_path}/manifests/{reference}")
}

/// The location a Distribution manifest URL names (as an event's
/// `target.url` would): its origin, repository path and digest.
fn url_location(url: &str) -> ManifestLocation {
    let url = url::Url::parse(url).unwrap();
    let path = url.path().strip_prefix("/v2/").unwrap();
    let (repository, digest) = path.rsplit_once("/manifests/").unwrap();
    ManifestLocation::Distribution {
        origin: crate::bounded::origin_url(&url),
        repository: repository.to_owned(),
        digest: shared::domain::Digest::parse(digest).unwrap(),
    }
}

/// A layer of `size` bytes whose digest is derived from `seed`.
fn layer(seed: &str, size: u64) -> (String, u64) {
    (sha256_digest(seed.as_bytes()).as_str().to_owned(), size)
}

fn image_manifest(layers: &[(String, u64)]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, s)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}))
        .collect();
    json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": sha256_digest(b"config").as_str(), "size": 7},
           "layers": layers})
    .to_string()
    .into_bytes()
}

/// Registers an image manifest under its digest in `repo_path`; returns the digest.
fn put_image(reg: &FakeRegistry, repo_path: &str, layers: &[(String, u64)]) -> String {
    let body = image_manifest(layers);
    let digest = sha256_digest(&body).as_str().to_owned();
    reg.put(
        url_location(&manifest_url(repo_path, &digest)),
        &body,
        OCI_MANIFEST,
    );
    digest
}

fn dist_event(id: &str, action: &str, target: Value) -> Value {
    json!({"id": id, "timestamp": "2026-11-28T08:41:13.197274592Z", "action": action,
           "target": target, "request": {"method": "PUT"}, "actor": {}, "source": {}})
}

/// A Distribution envelope with one manifest push of `repo_path:tag`.
fn manifest_push(id: &str, repo_path: &str, tag: Option<&str>, digest: &str) -> String {
    let mut target = json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": 1,
                            "repository": repo_path, "url": manifest_url(repo_path, digest)});
    if let Some(t) = tag {
        target["tag"] = json!(t);
    }
    json!({"events": [dist_event(id, "push", target)]}).to_string()
}

fn native(repo: &str, tag: &str, id: Option<&str>) -> String {
    let (user, name) = repo.split_once('/').unwrap();
    let mut v = json!({"event": "push", "username": user, "repository": name, "tag": tag,
                       "digest": FIXTURE_DIGEST, "image_size": 126, "layers": [FIXTURE_LAYER],
                       "repository_size": 4242, "pushed_at": "2026-11-28T08:00:00Z"});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v.to_string()
}

fn ecr_event(id: &str, action: &str, repo: &str, digest: &str, tag: Option<&str>) -> String {
    let mut v = json!({"version": "0", "id": id, "detail-type": "ECR Image Action",
        "source": "aws.ecr", "account": "123456789012", "time": "2026-11-28T08:41:13Z",
        "region": "us-east-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": repo, "image-digest": digest,
                   "action-type": action}});
    if let Some(t) = tag {
        v["detail"]["image-tag"] = json!(t);
    }
    v.to_string()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn captured_distribution_push_makes_one_job_from_the_manifest() {
    // GIVEN the real docker-registry 2.8 + skopeo capture and its manifest
    let h = harness();
    h.hook("alice/app").await;
    h.registry.put(
        url_location(&manifest_url("alice/app", FIXTURE_DIGEST)),
        fixture("distribution-2.8-push-manifest.json").as_bytes(),
        OCI_MANIFEST,
    );
    let envelopes = fixture_envelopes();
    assert_eq!(envelopes.len(), 3);
    // WHEN the three envelopes arrive as the registry sent them
    let mut answers = Vec::new();
    for (authorization, body) in &envelopes {
        assert_eq!(authorization, &format!("Bearer {TOKEN}"));
        let r = h
            .ingest
            .handle(http_event("POST", body, Some(authorization)))
            .await
            .unwrap();
        answers.push((r["statusCode"].clone(), r["body"].clone()));
    }
    // THEN the two blob pushes are ignored and the manifest push makes one job
    let body = |i: usize| serde_json::from_str::<Value>(answers[i].1.as_str().unwrap()).unwrap();
    for (i, (status, _)) in answers.iter().enumerate().take(2) {
        assert_eq!(status, 202);
        assert_eq!(
            body(i),
            json!({"accepted": 0, "ignored": 1, "dropped": 0, "queued": 0, "rejected": 0, "deferred": 0})
        );
    }
    assert_eq!(answers[2].0, 202);
    assert_eq!(
        body(2),
        json!({"accepted": 1, "ignored": 0, "dropped": 0, "queued": 1, "rejected": 0, "deferred": 0})
    );
    let jobs = h.queue.jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.repository.as_str(), "alice/app");
    assert_eq!(job.tag.as_str(), "1.0");
    assert_eq!(job.digest.as_ref().unwrap().as_str(), FIXTURE_DIGEST);
    assert_eq!(
        job.layers.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        [FIXTURE_LAYER]
    );
    assert_eq!(job.image_size, 126);
    assert_eq!(job.repository_size, 126);
    assert_eq!(job.pushed_at.as_deref(), Some("2026-11-28T08:41:13Z"));
    assert_eq!(
        job.webhook_id,
        derive_webhook_id(&["distribution", "3651adfb-47d2-41f4-b3dc-c12e57476fc2"])
    );
    assert_eq!(job.kind, shared::domain::JobKind::Push);
    assert_eq!(job.v, shared::domain::job::JOB_VERSION);
    assert!(job.validate().is_ok());
}

#[tokio::test]
async fn fixture_envelopes_also_work_through_sqs() {
    let h = harness();
    h.hook("alice/app").await;
    h.registry.put(
        url_location(&manifest_url("alice/app", FIXTURE_DIGEST)),
        fixture("distribution-2.8-push-manifest.json").as_bytes(),
        OCI_MANIFEST,
    );
    let records: Vec<(&str, String)> = fixture_envelopes()
        .into_iter()
        .zip(["m1", "m2", "m3"])
        .map(|((_, body), id)| (id, body))
        .collect();
    assert!(h.sqs(&records).await.is_empty());
    assert_eq!(h.queue.jobs().len(), 1);
    assert_eq!(h.queue.jobs()[0].image_size, 126);
}

#[tokio::test]
async fn index_push_takes_distinct_layers_in_first_seen_order() {
    let h = harness();
    h.hook("alice/multi").await;
    let (a, b, c) = (layer("a", 10), layer("b", 20), layer("c", 40));
    let amd64 = put_image(&h.registry, "alice/multi", &[a.clone(), b.clone()]);
    let arm64 = put_image(
        &h.registry,
        "alice/multi",
        &[b.clone(), c.clone(), a.clone()],
    );
    let attestation = layer("attestation", 1000);
    let att = put_image(&h.registry, "alice/multi", &[attestation]);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd64, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": arm64, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": OCI_MANIFEST, "digest": att, "size": 1, "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    ]})
    .to_string();
    let index_digest = sha256_digest(index.as_bytes()).as_str().to_owned();
    h.registry.put(
        url_location(&manifest_url("alice/multi", &index_digest)),
        index.as_bytes(),
        OCI_INDEX,
    );
    let (status, body) = h
        .post(&manifest_push(
            "idx-1",
            "alice/multi",
            Some("2.0"),
            &index_digest,
        ))
        .await;
    assert_eq!(status, 202, "{body}");
    let job = &h.queue.jobs()[0];
    assert_eq!(
        job.layers.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        [a.0.as_str(), b.0.as_str(), c.0.as_str()]
    );
    assert_eq!(job.image_size, 70);
    assert_eq!(job.repository_size, 70);
    assert_eq!(job.digest.as_ref().unwrap().as_str(), index_digest);
    // index + two platforms; the attestation is never fetched
    assert_eq!(h.registry.fetches(), 3);
}

#[tokio::test]
async fn non_pushes_and_untagged_pushes_are_acknowledged_and_ignored() {
    let h = harness();
    h.hook("alice/app").await;
    let digest = put_image(&h.registry, "alice/app", &[layer("x", 5)]);
    let blob_url = format!("{REGISTRY}/v2/alice/app/blobs/{FIXTURE_LAYER}");
    let cases = [
        (
            "blob",
            json!({"events": [dist_event("e1", "push", json!({"mediaType": "application/octet-stream", "digest": FIXTURE_LAYER, "repository": "alice/app", "url": blob_url}))]}).to_string(),
            IgnoreReason::Blob,
        ),
        (
            "pull",
            json!({"events": [dist_event("e2", "pull", json!({"mediaType": OCI_MANIFEST, "digest": digest, "repository": "alice/app", "url": manifest_url("alice/app", &digest), "tag": "1.0"}))]}).to_string(),
            IgnoreReason::Pull,
        ),
        (
            "delete",
            json!({"events": [dist_event("e3", "delete", json!({"digest": digest, "repository": "alice/app"}))]}).to_string(),
            IgnoreReason::Delete,
        ),
        (
            "mount",
            json!({"events": [dist_event("e4", "mount", json!({"mediaType": "application/octet-stream", "digest": FIXTURE_LAYER, "repository": "alice/app", "fromRepository": "bob/base", "url": blob_url}))]}).to_string(),
            IgnoreReason::Mount,
        ),
        (
            "digest-only push",
            manifest_push("e5", "alice/app", None, &digest),
            IgnoreReason::Untagged,
        ),
        (
            "native delete",
            json!({"event": "delete", "username": "alice", "repository": "app", "tag": "1.0"}).to_string(),
            IgnoreReason::Delete,
        ),
    ];
    for (name, body, reason) in cases {
        let outcome = h
            .ingest
            .handle_http(
                &serde_json::from_value::<HttpRequest>(http_event(
                    "POST",
                    &body,
                    Some(&format!("Bearer {TOKEN}")),
                ))
                .unwrap(),
            )
            .await;
        assert_eq!(outcome.response.status_code, 202, "{name}");
        assert_eq!(
            outcome.response.body_json(),
            json!({"accepted": 0, "ignored": 1, "dropped": 0, "queued": 0, "rejected": 0, "deferred": 0}),
            "{name}"
        );
        assert_eq!(outcome.summary.ignored.get(reason), 1, "{name}");
    }
    assert!(h.queue.jobs().is_empty());
    // Nothing was fetched, counted or looked up for ignored events.
    assert_eq!(h.registry.fetches(), 0);
    assert_eq!(h.size_of("alice/app").await, 0);
}

#[tokio::test]
async fn single_segment_repository_means_library() {
    let h = harness();
    h.hook("library/hello-world").await;
    let digest = put_image(&h.registry, "hello-world", &[layer("hw", 13)]);
    let (status, body) = h
        .post(&manifest_push(
            "hw-1",
            "hello-world",
            Some("latest"),
            &digest,
        ))
        .await;
    assert_eq!(status, 202, "{body}");
    let job = &h.queue.jobs()[0];
    assert_eq!(job.repository.as_str(), "library/hello-world");
    assert_eq!(job.image_ref(), "library/hello-world:latest");
    assert_eq!(job.repository_size, 13);
}

#[tokio::test]
async fn malformed_bodies_are_400_and_never_5xx() {
    let h = harness();
    let valid = native("alice/app", "1.0", Some("n1"));
    let cases = [
        ("unknown JSON", r#"{"hello": "world"}"#.to_owned()),
        ("truncated JSON", valid[..valid.len() / 2].to_owned()),
        ("array", "[1,2]".to_owned()),
        ("empty", String::new()),
        ("bad repository", native("alice/App", "1.0", None)),
        ("bad tag", native("alice/app", "-x", None)),
        (
            "ECR over HTTP",
            ecr_event("x", "PUSH", "my-repo", FIXTURE_DIGEST, Some("1")),
        ),
    ];
    for (name, body) in cases {
        let (status, answer) = h.post(&body).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}"
        );
    }
    assert!(h.queue.jobs().is_empty());
}

#[tokio::test]
async fn token_is_required_when_configured() {
    let h = harness();
    h.hook("alice/app").await;
    let body = native("alice/app", "1.0", Some("n1"));
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer secret-token-and-more"),
        Some("Basic c2VjcmV0LXRva2Vu"),
        Some("secret-token"),
        Some("Bearer "),
    ] {
        let r = h
            .ingest
            .handle(http_event("POST", &body, auth))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], 401, "{auth:?}");
        assert_eq!(r["headers"]["www-authenticate"], "Bearer");
        assert!(r["body"].as_str().unwrap().contains("error"));
    }
    assert!(h.queue.jobs().is_empty());
    // The scheme is case-insensitive, as RFC 7235 says.
    let r = h
        .ingest
        .handle(http_event("POST", &body, Some("bearer secret-token")))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 202);
    // Without a configured token (or a blank one) the door is closed: every
    // request is 401 with a JSON error saying why, whatever it carries.
    for token in [None, Some(Sensitive("  ".into()))] {
        let closed = Ingest::new(
            Arc::new(MemoryStore::default()),
            Arc::new(MemoryQueue::default()),
            Arc::new(FakeRegistry::default()),
        )
        .with_token(token.as_ref());
        for (method, auth) in [
            ("POST", None),
            ("POST", Some("Bearer ")),
            ("GET", Some("Bearer x")),
        ] {
            let r = closed
                .handle(http_event(method, &body, auth))
                .await
                .unwrap();
            assert_eq!(r["statusCode"], 401, "{method} {auth:?}");
            let answer: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            assert_eq!(answer["error"], crate::CLOSED_DOOR);
        }
        // The SQS door is unaffected.
        let r = closed
            .handle(sqs_event(&[("m", native("alice/app", "1", None))]))
            .await
            .unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    // The configured token is trimmed like the presented one.
    let padded = Ingest::new(
        h.store.clone(),
        Arc::new(MemoryQueue::default()),
        Arc::new(FakeRegistry::default()),
    )
    .with_token(Some(&Sensitive(format!(" {TOKEN}\n"))));
    let r = padded
        .handle(http_event("POST", &body, Some(&format!("Bearer {TOKEN}"))))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 202);
}

#[tokio::test]
async fn huge_bodies_are_413_and_other_methods_405() {
    let h = harness();
    let huge = format!(
        r#"{{"events": [], "pad": "{}"}}"#,
        "x".repeat(crate::MAX_BODY_BYTES)
    );
    let (status, body) = h.post(&huge).await;
    assert_eq!(status, 413, "{body}");
    let r = h
        .ingest
        .handle(http_event("GET", "", Some(&format!("Bearer {TOKEN}"))))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 405);
    assert_eq!(r["headers"]["allow"], "POST");
    // A base64 body is decoded like any other.
    let mut ev = http_event("POST", "", Some(&format!("Bearer {TOKEN}")));
    ev["body"] = json!(STANDARD.encode(r#"{"events": []}"#));
    ev["isBase64Encoded"] = json!(true);
    let r = h.ingest.handle(ev).await.unwrap();
    assert_eq!(r["statusCode"], 202);
}

#[tokio::test]
async fn native_events_pass_sizes_through_without_layer_counting() {
    let h = harness();
    h.hook("alice/app").await;
    let (status, _) = h.post(&native("alice/app", "1.0", Some("n1"))).await;
    assert_eq!(status, 202);
    let job = &h.queue.jobs()[0];
    assert_eq!(job.repository_size, 4242);
    assert_eq!(job.image_size, 126);
    assert_eq!(job.webhook_id, derive_webhook_id(&["native", "n1"]));
    // No add_layers: the store's size is untouched and no fetch happened.
    assert_eq!(h.size_of("alice/app").await, 0);
    assert_eq!(h.registry.fetches(), 0);
}

#[tokio::test]
async fn ecr_push_makes_a_job_and_ecr_delete_is_ignored() {
    let h = harness();
    h.hook("library/my-repo").await;
    let body = image_manifest(&[layer("e1", 300), layer("e2", 700)]);
    let digest = sha256_digest(&body);
    h.registry.put(
        ManifestLocation::Ecr {
            registry_id: "123456789012".into(),
            repository: "my-repo".into(),
            reference: EcrReference::Digest(digest.clone()),
        },
        &body,
        OCI_MANIFEST,
    );
    let failed = h
        .sqs(&[
            (
                "push",
                ecr_event("eb-1", "PUSH", "my-repo", digest.as_str(), Some("latest")),
            ),
            (
                "delete",
                ecr_event("eb-2", "DELETE", "my-repo", digest.as_str(), Some("latest")),
            ),
        ])
        .await;
    assert!(failed.is_empty(), "{failed:?}");
    let jobs = h.queue.jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.image_ref(), "library/my-repo:latest");
    assert_eq!(job.image_size, 1000);
    assert_eq!(job.layers.len(), 2);
    assert_eq!(job.repository_size, 1000);
    assert_eq!(job.webhook_id, derive_webhook_id(&["ecr", "eb-1"]));
    assert_eq!(job.pushed_at.as_deref(), Some("2026-11-28T08:41:13Z"));
}

#[tokio::test]
async fn redelivered_events_keep_their_webhook_id_and_count_layers_once() {
    let h = harness();
    h.hook("alice/app").await;
    h.hook("bob/tools").await;
    let digest = put_image(&h.registry, "alice/app", &[layer("r", 50)]);
    let dist = manifest_push("dist-1", "alice/app", Some("1.0"), &digest);
    let native_no_id = native("bob/tools", "2.0", None);
    for _ in 0..2 {
        assert_eq!(h.post(&dist).await.0, 202);
        assert_eq!(h.post(&native_no_id).await.0, 202);
    }
    let jobs = h.queue.jobs();
    assert_eq!(jobs.len(), 4);
    assert_eq!(jobs[0].webhook_id, jobs[2].webhook_id);
    assert_eq!(jobs[1].webhook_id, jobs[3].webhook_id);
    assert_ne!(jobs[0].webhook_id, jobs[1].webhook_id);
    // The layer is counted once: the redelivery reports the same size.
    assert_eq!(jobs[0].repository_size, 50);
    assert_eq!(jobs[2].repository_size, 50);
    // A different event of the same push gets a different id.
    assert_eq!(
        h.post(&manifest_push("dist-2", "alice/app", Some("1.0"), &digest))
            .await
            .0,
        202
    );
    assert_ne!(h.queue.jobs()[4].webhook_id, jobs[0].webhook_id);
}

#[tokio::test]
async fn repositories_without_an_enabled_webhook_are_dropped_but_sized() {
    let h = harness();
    let digest = put_image(&h.registry, "carol/app", &[layer("c", 77)]);
    let (status, body) = h
        .post(&manifest_push("c-1", "carol/app", Some("1"), &digest))
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        body,
        json!({"accepted": 1, "ignored": 0, "dropped": 1, "queued": 0, "rejected": 0, "deferred": 0})
    );
    assert!(h.queue.jobs().is_empty());
    // The size is kept even without a webhook, for when one is set.
    assert_eq!(h.size_of("carol/app").await, 77);
    // A deleted webhook drops too.
    h.hook("dave/app").await;
    h.store
        .delete(&RepositoryName::parse("dave/app").unwrap())
        .await
        .unwrap();
    let (_, body) = h.post(&native("dave/app", "1", Some("d"))).await;
    assert_eq!(body["dropped"], 1);
}

#[tokio::test]
async fn sqs_batch_with_one_malformed_record_fails_only_it() {
    let h = harness();
    h.hook("alice/app").await;
    h.hook("bob/tools").await;
    let digest = put_image(&h.registry, "alice/app", &[layer("s", 9)]);
    let failed = h
        .sqs(&[
            ("ok-native", native("bob/tools", "1", Some("a"))),
            ("bad-json", "{\"event\": \"push\", ".to_owned()),
            (
                "ok-dist",
                manifest_push("s-1", "alice/app", Some("1"), &digest),
            ),
            ("bad-name", native("bob/Tools", "1", Some("b"))),
            ("unknown", r#"{"type": "PUSH_ARTIFACT"}"#.to_owned()),
        ])
        .await;
    assert_eq!(failed, ["bad-json", "bad-name", "unknown"]);
    assert_eq!(h.queue.jobs().len(), 2);
    // One lookup for both repositories, one send for both jobs.
    assert_eq!(h.queue.send_calls(), 1);
}

#[tokio::test]
async fn one_lookup_and_one_send_per_invocation() {
    let h = harness();
    for i in 0..30 {
        h.hook(&format!("user{i}/app")).await;
    }
    let (reads_before, _) = h.store.calls();
    let records: Vec<(String, String)> = (0..45)
        .map(|i| {
            (
                format!("m{i}"),
                native(
                    &format!("user{}/app", i % 30),
                    &format!("t{i}"),
                    Some(&format!("n{i}")),
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = records
        .iter()
        .map(|(id, b)| (id.as_str(), b.clone()))
        .collect();
    let outcome = h
        .ingest
        .handle_sqs(serde_json::from_value(sqs_event(&refs)).unwrap())
        .await
        .unwrap();
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.summary.jobs_sent, 45);
    assert_eq!(outcome.summary.queue_calls, 5);
    assert_eq!(outcome.summary.store_lookups, 1);
    assert_eq!(h.store.calls().0 - reads_before, 1);
    assert_eq!(h.queue.send_calls(), 5);
}

#[tokio::test]
async fn retryable_failures_are_500_or_failed_records() {
    // A registry that is down: HTTP 500 so the registry retries, SQS record failed.
    let h = harness();
    h.hook("alice/app").await;
    let digest = FIXTURE_DIGEST;
    h.registry
        .down(url_location(&manifest_url("alice/app", digest)));
    let body = manifest_push("down-1", "alice/app", Some("1"), digest);
    // No registry events queue to defer to: 503, so the registry retries.
    let (status, answer) = h.post(&body).await;
    assert_eq!(status, 503, "{answer}");
    let failed = h
        .sqs(&[
            ("down", body),
            ("fine", native("alice/app", "2", Some("f"))),
        ])
        .await;
    assert_eq!(failed, ["down"]);
    assert_eq!(h.queue.jobs().len(), 1);

    // A queue that refuses a job fails that job's record only.
    let h = harness();
    h.hook("alice/app").await;
    h.queue.fail_next_sends(1);
    let failed = h
        .sqs(&[
            ("refused", native("alice/app", "1", Some("x"))),
            ("queued", native("alice/app", "2", Some("y"))),
        ])
        .await;
    assert_eq!(failed, ["refused"]);

    // A store that is down: 500 for HTTP, every record failed for SQS.
    let down = Ingest::new(
        Arc::new(DownStore),
        Arc::new(MemoryQueue::default()),
        Arc::new(FakeRegistry::default()),
    )
    .with_token(Some(&Sensitive(TOKEN.into())));
    let r = down
        .handle(http_event(
            "POST",
            &native("alice/app", "1", None),
            Some(&format!("Bearer {TOKEN}")),
        ))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 500);
    let r = down
        .handle(sqs_event(&[
            ("a", native("alice/app", "1", None)),
            ("b", "not json".to_owned()),
        ]))
        .await
        .unwrap();
    assert_eq!(r["batchItemFailures"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn gone_manifests_are_ignored_not_retried() {
    let h = harness();
    h.hook("alice/app").await;
    // Not registered in the fake: a 404.
    let (status, body) = h
        .post(&manifest_push(
            "gone-1",
            "alice/app",
            Some("1"),
            FIXTURE_DIGEST,
        ))
        .await;
    assert_eq!(status, 202);
    // Over HTTP a Distribution event whose manifest is gone is rejected
    // (kept in the dead-letter queue when there is one), never retried.
    assert_eq!(
        body,
        json!({"accepted": 0, "ignored": 0, "dropped": 0, "queued": 0, "rejected": 1, "deferred": 0})
    );
    // A manifest whose bytes do not match the digest in its URL is unusable too.
    let wrong = image_manifest(&[layer("w", 1)]);
    h.registry.put(
        url_location(&manifest_url("alice/app", FIXTURE_DIGEST)),
        &wrong,
        OCI_MANIFEST,
    );
    let (status, body) = h
        .post(&manifest_push(
            "gone-2",
            "alice/app",
            Some("1"),
            FIXTURE_DIGEST,
        ))
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["rejected"], 1);
    assert!(h.queue.jobs().is_empty());
    // Through SQS (e.g. a deferred event whose manifest has since gone) it
    // is acknowledged and ignored, not retried.
    let failed = h
        .sqs(&[(
            "gone",
            manifest_push("gone-3", "alice/app", Some("1"), FIXTURE_DIGEST),
        )])
        .await;
    assert!(failed.is_empty());
}

#[tokio::test]
async fn other_invocations_are_errors_not_panics() {
    let h = harness();
    for event in [json!({}), json!([1]), json!({"Records": "x"}), json!(null)] {
        let e = h.ingest.handle(event.clone()).await.unwrap_err();
        assert!(
            matches!(e, IngestError::UnsupportedInvocation(_)),
            "{event}: {e}"
        );
    }
    // A record without a message id cannot be named as failed: it is
    // acknowledged (and logged) instead of failing the whole batch.
    let r = h
        .ingest
        .handle(json!({"Records": [{"body": "nope"}, {"messageId": "", "body": "x"}]}))
        .await
        .unwrap();
    assert_eq!(r["batchItemFailures"], json!([]));
    let outcome = h
        .ingest
        .handle_sqs(serde_json::from_value(json!({"Records": [{"body": "nope"}]})).unwrap())
        .await
        .unwrap();
    assert_eq!(outcome.summary.malformed, 1);
    // An empty batch is fine.
    let r = h.ingest.handle(json!({"Records": []})).await.unwrap();
    assert_eq!(r["batchItemFailures"], json!([]));
}

#[test]
fn jobs_round_trip_through_the_queue_format() {
    let job: DeliveryJob = DeliveryJob::parse(
        &json!({"v": 1, "webhook_id": derive_webhook_id(&["x"]), "kind": "push",
                "repository": "alice/app", "tag": "1", "image_size": 1, "layers": [],
                "repository_size": 1})
        .to_string(),
    )
    .unwrap();
    assert_eq!(job.image_ref(), "alice/app:1");
}

#[tokio::test]
async fn sample_events_in_the_events_folder_are_handled() {
    // The files `cargo lambda invoke` and `sam local invoke` use (events/ingest).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/ingest");
    let read = |name: &str| -> Value {
        let path = dir.join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    };
    let store = Arc::new(MemoryStore::default());
    let queue = Arc::new(MemoryQueue::default());
    let registry = Arc::new(FakeRegistry::default());
    let ingest = Ingest::new(store.clone(), queue.clone(), registry.clone())
        .with_token(Some(&Sensitive("local-ingest-token".into())));
    let url = validate_webhook_url("https://hooks.example.com/x", false).unwrap();
    for repo in ["alice/app", "bob/team/tools"] {
        store
            .put_url(
                &RepositoryName::parse(repo).unwrap(),
                &url,
                "2026-11-28T08:00:00Z",
            )
            .await
            .unwrap();
    }
    let fixture_manifest = fixture("distribution-2.8-push-manifest.json");
    registry.put(
        url_location(&manifest_url("alice/app", FIXTURE_DIGEST)),
        fixture_manifest.as_bytes(),
        OCI_MANIFEST,
    );
    registry.put(
        ManifestLocation::Ecr {
            registry_id: "123456789012".into(),
            repository: "alice/app".into(),
            reference: EcrReference::Digest(
                shared::domain::Digest::parse(
                    "sha256:f25396e3000e0b2b93f366525c82c90d2ba8d48980fb7550273e7eb5323ef851",
                )
                .unwrap(),
            ),
        },
        fixture_manifest.as_bytes(),
        OCI_MANIFEST,
    );
    for name in ["http-native-push.json", "http-distribution-envelope.json"] {
        let r = ingest.handle(read(name)).await.unwrap();
        assert_eq!(r["statusCode"], 202, "{name}: {r}");
    }
    for name in ["sqs-native-push.json", "sqs-ecr-push.json"] {
        let r = ingest.handle(read(name)).await.unwrap();
        assert_eq!(r["batchItemFailures"], json!([]), "{name}: {r}");
    }
    let jobs = queue.jobs();
    assert_eq!(
        jobs.iter().map(DeliveryJob::image_ref).collect::<Vec<_>>(),
        [
            "alice/app:1.0",
            "alice/app:1.0",
            "alice/app:latest",
            "bob/team/tools:2.3.1",
            "alice/app:1.0"
        ]
    );
    assert!(jobs.iter().all(|j| j.validate().is_ok()));
}

#[tokio::test]
async fn too_many_layers_is_ignored_for_manifests_and_refused_for_native_events() {
    let h = harness();
    h.hook("alice/app").await;
    let layers: Vec<(String, u64)> = (0..1100).map(|i| layer(&format!("l{i}"), 1)).collect();
    let digest = put_image(&h.registry, "alice/app", &layers);
    let (status, body) = h
        .post(&manifest_push("big-1", "alice/app", Some("1"), &digest))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["rejected"], 1);
    let mut native: Value = serde_json::from_str(&native("alice/app", "1", Some("big"))).unwrap();
    native["layers"] = json!(layers.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>());
    let (status, _) = h.post(&native.to_string()).await;
    assert_eq!(status, 400);
    assert!(h.queue.jobs().is_empty());
}

/// The registry events queues in memory; `fail` makes every send fail.
#[derive(Default)]
struct MemoryRegistryEvents {
    deferred: Mutex<Vec<crate::SetAside>>,
    kept: Mutex<Vec<crate::SetAside>>,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl crate::RegistryEvents for MemoryRegistryEvents {
    async fn defer(&self, events: &[crate::SetAside]) -> Result<(), crate::RegistryEventsError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::RegistryEventsError::Retryable("throttled".into()));
        }
        self.deferred.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
    async fn keep_rejected(
        &self,
        events: &[crate::SetAside],
    ) -> Result<bool, crate::RegistryEventsError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::RegistryEventsError::Retryable("throttled".into()));
        }
        self.kept.lock().unwrap().extend_from_slice(events);
        Ok(true)
    }
}

#[tokio::test]
async fn distribution_envelopes_are_always_202_with_each_event_processed_deferred_or_kept() {
    // GIVEN a registry with one manifest, one that is down, one that is gone
    let store = Arc::new(MemoryStore::default());
    let queue = Arc::new(MemoryQueue::default());
    let registry = Arc::new(FakeRegistry::default());
    let events = Arc::new(MemoryRegistryEvents::default());
    let ingest = Ingest::new(store.clone(), queue.clone(), registry.clone())
        .with_token(Some(&Sensitive(TOKEN.into())))
        .with_registry_events(events.clone());
    let url = validate_webhook_url("https://hooks.example.com/x", false).unwrap();
    store
        .put_url(
            &RepositoryName::parse("alice/app").unwrap(),
            &url,
            "2026-11-28T08:00:00Z",
        )
        .await
        .unwrap();
    let ok = put_image(&registry, "alice/app", &[layer("ok", 5)]);
    let down = sha256_digest(b"down").as_str().to_owned();
    registry.down(url_location(&manifest_url("alice/app", &down)));
    let gone = sha256_digest(b"gone").as_str().to_owned();
    let event = |id: &str, digest: &str, timestamp: &str| {
        let mut e: Value =
            serde_json::from_str::<Value>(&manifest_push(id, "alice/app", Some("1"), digest))
                .unwrap()["events"][0]
                .clone();
        e["timestamp"] = json!(timestamp);
        e
    };
    let envelope = json!({"events": [
        event("e-ok", &ok, "2026-11-28T08:41:13Z"),
        event("e-down", &down, "2026-11-28T08:41:13Z"),
        event("e-gone", &gone, "2026-11-28T08:41:13Z"),
        event("e-far", &ok, "9999-12-31T23:00:00-01:00"),
        {"action": "push", "target": "not an object"},
    ]})
    .to_string();
    let post = || async {
        let r = ingest
            .handle(http_event(
                "POST",
                &envelope,
                Some(&format!("Bearer {TOKEN}")),
            ))
            .await
            .unwrap();
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        (r["statusCode"].as_u64().unwrap(), body)
    };

    // WHEN the envelope arrives
    let (status, body) = post().await;

    // THEN 202: one queued, one deferred, three rejected and kept
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 1, "ignored": 0, "dropped": 0, "queued": 1, "rejected": 3, "deferred": 1})
    );
    assert_eq!(queue.jobs().len(), 1);
    let deferred = events.deferred.lock().unwrap().clone();
    assert_eq!(deferred.len(), 1);
    // A deferred event is a one-event envelope the SQS door reads.
    let d: Value = serde_json::from_str(&deferred[0].body).unwrap();
    assert_eq!(d["events"][0]["id"], "e-down");
    let kept = events.kept.lock().unwrap().clone();
    let kept_ids: Vec<Value> = kept
        .iter()
        .map(|k| serde_json::from_str::<Value>(&k.body).unwrap()["events"][0]["id"].clone())
        .collect();
    assert_eq!(kept_ids, [json!("e-gone"), json!("e-far"), Value::Null]);
    assert!(kept[1].reason.contains("RFC 3339"), "{}", kept[1].reason);

    // AND when even setting events aside fails, 503 so the registry retries
    events.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, _) = post().await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn far_future_times_are_bad_input_not_panics() {
    let h = harness();
    h.hook("alice/app").await;
    let mut far: Value = serde_json::from_str(&native("alice/app", "1", Some("far"))).unwrap();
    far["pushed_at"] = json!("9999-12-31T23:00:00-01:00");
    let (status, body) = h.post(&far.to_string()).await;
    assert_eq!(status, 400, "{body}");
    let failed = h.sqs(&[("far", far.to_string())]).await;
    assert_eq!(failed, ["far"]);
    assert!(h.queue.jobs().is_empty());
}
