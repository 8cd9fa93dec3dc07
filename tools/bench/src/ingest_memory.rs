//! ingest's peak RSS (VmHWM) against its MemorySize on a hostile registry:
//! a stub registry serves a multi-level index of ~4 MiB manifests (the most
//! ingest accepts), announced several times in one SQS batch.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use devstack::registry::{sha256, StubRegistry};
use serde_json::{json, Value};
use shared::domain::RepositoryName;

use crate::stack::{self, start_function, Stack, BENCH_INGEST_TOKEN};
use crate::workload::sqs_record;
use crate::Context as _;
use crate::{Ctx, Res};

/// Events in the SQS batch (ingest resolves up to 8 pushes at once).
const EVENTS: usize = 8;
/// Nested indexes under the top index, and platform manifests under each.
const MIDS: usize = 3;
const LEAVES: usize = 4;
/// Layers per platform manifest and annotation bytes per layer: ~3.9 MiB.
const LAYERS: usize = 1000;
const PAD: usize = 3800;
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REPO: &str = "alice/app";

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let stack = Stack::create(&ctx.moto, "mem").await?;
    let repo = RepositoryName::parse(REPO).map_err(|e| e.to_string())?;
    let hook = |_| "https://hooks.example.com/mem".to_owned();
    stack.seed(&[repo], hook).await?;

    let registry = StubRegistry::start().await.ctx("registry")?;
    let (top, sizes) = hostile_index(&registry);
    let base = registry.base();
    let extra = [
        ("INGEST_TOKEN", BENCH_INGEST_TOKEN),
        ("REGISTRY_URL", &base),
    ];
    let timeout = Duration::from_secs(300);
    let env = stack.env(&stack.proxy.endpoint(), &extra);
    let (function, log) = start_function(ctx, "ingest", "ingest-memory", &env, timeout).await?;
    let records = (0..EVENTS).map(|i| {
        let target = json!({"mediaType": INDEX, "digest": top, "repository": REPO,
                            "url": registry.url(REPO, &top), "tag": format!("m{i}")});
        let body = json!({"events": [{"id": format!("mem-{i}"), "timestamp": "2026-11-28T08:41:13Z",
                                      "action": "push", "target": target}]});
        sqs_record("mem", i, body.to_string(), &stack.registry_queue_arn)
    });
    let started = Instant::now();
    let inv = function
        .invoke(json!({ "Records": records.collect::<Vec<_>>() }), timeout)
        .await;
    let tail = || devstack::paths::log_tail(&log, 20);
    let inv = inv.map_err(|e| format!("invoking ingest: {e}; log:\n{}", tail()))?;
    let duration = started.elapsed();
    let failed = || format!("ingest failed: {:?}; log:\n{}", inv.error(), tail());
    let answer = inv.ok().ok_or_else(failed)?;
    let jobs_failed = answer["batchItemFailures"]
        .as_array()
        .map_or(EVENTS, Vec::len);
    let peak_kib = function
        .peak_rss_kib()
        .ok_or("cannot read the ingest process's peak RSS")?;
    let _ = function.stop().await;
    let template = devstack::moto::template().ctx("template.yaml")?;
    let memory_size = devstack::moto::template_memory_size(&template, "IngestFunction")
        .ok_or("no MemorySize for IngestFunction")?;
    let (peak_rss_mib, served) = (peak_kib as f64 / 1024.0, registry.requests());
    Ok(json!({
        "peak_rss_mib": peak_rss_mib, "memory_size_mib": memory_size,
        "peak_rss_percent": 100.0 * peak_rss_mib / memory_size as f64, "events": EVENTS,
        "manifests_fetched": served.len(), "manifest_bytes": served.iter().filter_map(|r| sizes.get(&r.path)).sum::<usize>(),
        "jobs_failed": jobs_failed, "seconds": duration.as_secs_f64(),
    }))
}

/// Puts the top index, a nested index and a leaf into `registry`; returns
/// the top index's digest and each manifest path's size.
fn hostile_index(registry: &StubRegistry) -> (String, HashMap<String, usize>) {
    let pad = "p".repeat(PAD);
    let layer = |i: usize| {
        json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
               "digest": sha256(format!("layer {i}").as_bytes()), "size": 1024,
               "annotations": {"org.example.pad": pad}})
    };
    let layers: Vec<Value> = (0..LAYERS).map(layer).collect();
    let leaf = json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(b"{}"), "size": 2},
        "layers": layers});
    let index = |child: &str, n: usize| {
        let manifest = json!({"mediaType": MANIFEST, "digest": child, "size": 1,
                              "platform": {"os": "linux", "architecture": "amd64"}});
        json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": vec![manifest; n]})
    };
    let mut sizes = HashMap::new();
    let mut put = |media_type: &str, manifest: Value| {
        let bytes = manifest.to_string().into_bytes();
        let len = bytes.len();
        let digest = stack::serve_manifest(registry, REPO, media_type, bytes);
        sizes.insert(StubRegistry::path(REPO, &digest), len);
        digest
    };
    let leaf = put(MANIFEST, leaf);
    let mid = put(INDEX, index(&leaf, LEAVES));
    let top = put(INDEX, index(&mid, MIDS));
    (top, sizes)
}
