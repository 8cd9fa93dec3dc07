//! Helpers shared by the ingest integration tests (`ingest_*`, `trust_ingest`):
//! webhooks in the stack's table, the delivery queue's jobs, OCI manifests
//! for devstack's stub registry, and the `ingest` binary.
#![allow(dead_code)]

use std::time::Duration;

use alin_tests::{repo_root, Stack};
use devstack::registry::StubRegistry;
use devstack::runtime_api::workspace_binary;
use ingest::manifest::{sha256_digest, OCI_INDEX, OCI_MANIFEST};
use serde_json::{json, Value};
use shared::domain::{validate_webhook_url, DeliveryJob, RepositoryName};
use shared::ports::WebhookStore;

/// Gives `repo` an enabled webhook.
pub async fn hook(stack: &Stack, repo: &str) {
    let url = validate_webhook_url("https://hooks.example.com/alin?token=x", false).unwrap();
    stack
        .store()
        .put_url(
            &RepositoryName::parse(repo).unwrap(),
            &url,
            "2026-11-28T08:00:00Z",
        )
        .await
        .unwrap();
}

/// A layer descriptor: a digest made from `seed`, and `size`.
pub fn layer(seed: &str, size: u64) -> (String, u64) {
    (sha256_digest(seed.as_bytes()).as_str().to_owned(), size)
}

/// An OCI image manifest; `pad` bytes of annotation on each layer make it large.
pub fn image_manifest(layers: &[(String, u64)], pad: usize) -> Vec<u8> {
    let filler = "p".repeat(pad);
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, s)| {
            let mut l = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                               "digest": d, "size": s});
            if pad > 0 {
                l["annotations"] = json!({"org.example.pad": filler});
            }
            l
        })
        .collect();
    json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": sha256_digest(b"{}").as_str(), "size": 2},
           "layers": layers})
    .to_string()
    .into_bytes()
}

/// An OCI image index of amd64 children.
pub fn index_manifest(children: &[String]) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|d| {
            json!({"mediaType": OCI_MANIFEST, "digest": d, "size": 1,
                        "platform": {"os": "linux", "architecture": "amd64"}})
        })
        .collect();
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        .to_string()
        .into_bytes()
}

/// Serves an image manifest with these layers in `registry`; its digest.
pub fn put_image(registry: &StubRegistry, repo: &str, layers: &[(String, u64)]) -> String {
    registry.put(repo, OCI_MANIFEST, image_manifest(layers, 0))
}

/// The `Authorization` each request to `registry` presented, in order.
pub fn authorizations(registry: &StubRegistry) -> Vec<Option<String>> {
    registry.seen().into_iter().map(|(_, auth)| auth).collect()
}

/// The repository size DynamoDB holds for `repo` (0 without a record).
pub async fn size_of(stack: &Stack, repo: &str) -> u64 {
    stack
        .store()
        .get(&RepositoryName::parse(repo).unwrap())
        .await
        .unwrap()
        .map_or(0, |r| r.repository_size)
}

/// Receives the jobs on the delivery queue, waiting up to ~2 s for
/// `expected` of them; received messages stay invisible, so each job is
/// returned once.
pub async fn queued_jobs(stack: &Stack, expected: usize) -> Vec<DeliveryJob> {
    let mut jobs = Vec::new();
    for _ in 0..20 {
        for m in stack.drain(&stack.queue_url, expected.max(10)).await {
            jobs.push(DeliveryJob::parse(m.body().unwrap_or_default()).expect("a valid job"));
        }
        if jobs.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    jobs
}

/// The `ingest` binary. Built here only when it is missing or older than the
/// sources it is made of (scripts/test.sh builds every binary beforehand, so
/// in CI this never builds), so a stale binary is never what gets tested.
pub fn ingest_binary() -> std::path::PathBuf {
    let binary = workspace_binary("ingest");
    let built_at = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let newest_source = ["functions/ingest", "shared"]
        .iter()
        .filter_map(|dir| newest_mtime(&repo_root().join(dir)))
        .max();
    let stale = match (built_at, newest_source) {
        (Some(b), Some(s)) => s > b,
        (None, _) => true,
        (Some(_), None) => false,
    };
    if stale {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "ingest", "--bin", "ingest"])
            .current_dir(repo_root())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "building the ingest binary failed ({status:?}); run `cargo build -p ingest`"
        );
    }
    assert!(binary.is_file(), "{} is missing", binary.display());
    binary
}

fn newest_mtime(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}
