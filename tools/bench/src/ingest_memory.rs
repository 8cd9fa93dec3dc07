//! ingest's peak memory on a hostile registry: a local HTTP server acting as
//! the Distribution registry serves a multi-level index whose platform
//! manifests are all as large as ingest accepts (~4 MiB: 1000 layers with
//! large annotations), and one SQS batch announces it several times. The
//! release `ingest` binary resolves every event under its per-invocation
//! budget of manifest bytes in flight; the figure is its peak RSS (VmHWM of
//! the process, read by devstack) against the template's ingest MemorySize.
//! Self-contained: its own stack, registry and function.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use devstack::registry::sha256;
use serde_json::{json, Value};
use shared::adapters::DynamoStore;
use shared::domain::RepositoryName;

use crate::stack::{self, function_env, start_function, ManifestServer, Stack};
use crate::{Ctx, Res};

/// Events in the SQS batch (ingest resolves up to 8 pushes at once).
const EVENTS: usize = 8;
/// Nested indexes under the top index, and platform manifests under each.
const MIDS: usize = 3;
const LEAVES: usize = 4;
/// Layers per platform manifest and annotation bytes per layer: ~3.9 MiB.
const LAYERS: usize = 1000;
const PAD: usize = 3800;

/// What the measurement found.
#[derive(Debug, Clone)]
pub struct IngestMemory {
    /// Peak resident memory of the ingest process, MiB.
    pub peak_rss_mib: f64,
    /// The template's ingest MemorySize, MiB (the target is under half).
    pub memory_size_mib: u64,
    pub events: usize,
    /// Manifest requests the registry served, and their bytes.
    pub manifests_fetched: u64,
    pub manifest_bytes: u64,
    pub jobs_failed: usize,
    pub duration: Duration,
}

impl IngestMemory {
    /// The figures for the results file.
    pub fn to_json(&self) -> Value {
        json!({
            "peak_rss_mib": self.peak_rss_mib,
            "memory_size_mib": self.memory_size_mib,
            "peak_rss_percent": 100.0 * self.peak_rss_mib / self.memory_size_mib as f64,
            "events": self.events,
            "manifests_fetched": self.manifests_fetched,
            "manifest_bytes": self.manifest_bytes,
            "jobs_failed": self.jobs_failed,
            "seconds": self.duration.as_secs_f64(),
        })
    }
}

/// Runs the measurement.
pub async fn run(ctx: &Ctx) -> Res<IngestMemory> {
    let stack = Stack::create(&ctx.moto, "mem").await?;
    let chain = stack::proxy(ctx.moto.endpoint()).await?;
    let sdk = devstack::sdk_config(&chain.endpoint()).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &stack.table);
    let repo = RepositoryName::parse("alice/app").map_err(|e| e.to_string())?;
    stack::seed(&store, std::slice::from_ref(&repo), |_| {
        "https://hooks.example.com/mem".to_owned()
    })
    .await?;

    let registry = HostileRegistry::start().await?;
    let env = function_env(
        &ctx.moto,
        &stack,
        &chain.endpoint(),
        &[
            ("INGEST_TOKEN", crate::latency::BENCH_INGEST_TOKEN),
            ("REGISTRY_URL", &registry.server.base),
        ],
    );
    let (function, log) = start_function(
        "ingest",
        &env,
        &ctx.logs,
        "ingest-memory",
        Duration::from_secs(300),
    )
    .await?;
    let records: Vec<Value> = (0..EVENTS)
        .map(|i| {
            let url = format!(
                "{}/v2/alice/app/manifests/{}",
                registry.server.base, registry.top
            );
            let body = json!({"events": [{"id": format!("mem-{i}"),
                "timestamp": "2026-11-28T08:41:13Z", "action": "push",
                "target": {"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": registry.top, "repository": "alice/app", "url": url,
                           "tag": format!("m{i}")}}]});
            json!({"messageId": format!("m{i}"), "receiptHandle": format!("rh{i}"),
                   "body": body.to_string(), "attributes": {}, "messageAttributes": {},
                   "eventSource": "aws:sqs"})
        })
        .collect();
    let started = Instant::now();
    let inv = function
        .invoke(json!({ "Records": records }), Duration::from_secs(300))
        .await
        .map_err(|e| format!("invoking ingest: {e}; log:\n{}", stack::tail(&log, 20)))?;
    let duration = started.elapsed();
    let answer = inv.ok().ok_or_else(|| {
        format!(
            "ingest failed: {:?}; log:\n{}",
            inv.error(),
            stack::tail(&log, 20)
        )
    })?;
    let jobs_failed = answer["batchItemFailures"]
        .as_array()
        .map_or(EVENTS, Vec::len);
    let peak_kib = function
        .peak_rss_kib()
        .ok_or("cannot read the ingest process's peak RSS")?;
    let _ = function.stop().await;
    Ok(IngestMemory {
        peak_rss_mib: peak_kib as f64 / 1024.0,
        memory_size_mib: ingest_memory_size(&ctx.root)?,
        events: EVENTS,
        manifests_fetched: registry.server.requests.load(Ordering::Relaxed),
        manifest_bytes: registry.server.bytes.load(Ordering::Relaxed),
        jobs_failed,
        duration,
    })
}

/// The template's `MemorySize` of IngestFunction.
fn ingest_memory_size(root: &std::path::Path) -> Res<u64> {
    let template = std::fs::read_to_string(root.join("template.yaml"))
        .map_err(|e| format!("reading template.yaml: {e}"))?;
    devstack::stack::template_memory_size(&template, "IngestFunction")
        .ok_or_else(|| "no MemorySize for IngestFunction".to_owned())
}

/// The registry: three manifests by digest (top index, nested index, leaf).
struct HostileRegistry {
    server: ManifestServer,
    top: String,
}

fn index(children: &[String]) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|d| {
            json!({"mediaType": MANIFEST, "digest": d, "size": 1,
                   "platform": {"os": "linux", "architecture": "amd64"}})
        })
        .collect();
    json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})
        .to_string()
        .into_bytes()
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl HostileRegistry {
    async fn start() -> Res<HostileRegistry> {
        let pad = "p".repeat(PAD);
        let layers: Vec<Value> = (0..LAYERS)
            .map(|i| {
                json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": sha256(format!("layer {i}").as_bytes()), "size": 1024,
                       "annotations": {"org.example.pad": pad}})
            })
            .collect();
        let leaf = json!({"schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(b"{}"), "size": 2},
            "layers": layers})
        .to_string()
        .into_bytes();
        let leaf_digest = sha256(&leaf);
        let mid = index(&vec![leaf_digest.clone(); LEAVES]);
        let mid_digest = sha256(&mid);
        let top = index(&vec![mid_digest.clone(); MIDS]);
        let top_digest = sha256(&top);
        let path = |d: &str| format!("/v2/alice/app/manifests/{d}");
        let routes = HashMap::from([
            (path(&leaf_digest), (MANIFEST, leaf)),
            (path(&mid_digest), (INDEX, mid)),
            (path(&top_digest), (INDEX, top)),
        ]);
        Ok(HostileRegistry {
            server: ManifestServer::start(routes).await?,
            top: top_digest,
        })
    }
}
