//! The hot repository: 8 clients POST 200 Distribution envelopes of one
//! repository (shared base layers, one new layer each) to a pool of 8 ingest
//! processes, so every push updates one record in a transaction. Reported:
//! 5xx answers, answer times, conflicts retried, jobs queued, exact size.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use devstack::function_url::FunctionUrl;
use devstack::registry::StubRegistry;
use futures::StreamExt as _;
use serde_json::{json, Value};
use shared::domain::RepositoryName;
use shared::ports::WebhookStore as _;

use crate::stack::{self, tally, Pool, Stack, BENCH_INGEST_TOKEN};
use crate::stats::{ms, percentile};
use crate::workload::digest;
use crate::Context as _;
use crate::{Ctx, Res};

const CLIENTS: usize = 8;
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ENVELOPES: &str = "application/vnd.docker.distribution.events.v1+json";
const BASE_LAYERS: [(u64, u64); 2] = [(1, 30_000_000), (2, 5_000_000)];
const REPO: &str = "bench/hot";

fn layer(n: u64, size: u64) -> Value {
    json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(n), "size": size})
}

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let pushes = if ctx.sizes.small { 40 } else { 200 };
    let stack = Stack::create(&ctx.moto, "hot").await?;
    let repo = RepositoryName::parse(REPO).map_err(|e| e.to_string())?;
    let hook = |_| "https://hooks.example.com/hot".to_owned();
    stack.seed(std::slice::from_ref(&repo), hook).await?;

    // Image i: the base layers and layer 1000 + i of 1000 + i bytes.
    let registry = StubRegistry::start().await.ctx("registry")?;
    let images: Vec<String> = (0..pushes as u64)
        .map(|i| {
            let mut layers: Vec<Value> = BASE_LAYERS.iter().map(|&(n, s)| layer(n, s)).collect();
            layers.push(layer(1000 + i, 1000 + i));
            let body = json!({"schemaVersion": 2, "mediaType": MANIFEST,
                "config": layer(999_999, 2), "layers": layers});
            stack::serve_manifest(&registry, REPO, MANIFEST, body.to_string().into_bytes())
        })
        .collect();
    let expected_size: u64 = BASE_LAYERS.iter().map(|l| l.1).sum::<u64>()
        + (0..pushes as u64).map(|i| 1000 + i).sum::<u64>();

    let base = registry.base();
    let extra = [
        ("INGEST_TOKEN", BENCH_INGEST_TOKEN),
        ("REGISTRY_URL", &base),
        ("REGISTRY_EVENTS_QUEUE_URL", &stack.registry_queue_url),
    ];
    let env = stack.env(&stack.proxy.endpoint(), &extra);
    let timeout = Duration::from_secs(30);
    let pool = Pool::start(ctx, "ingest", "hot-ingest", CLIENTS, &env, timeout).await?;
    let function_url = FunctionUrl::serve(pool.clone()).await.ctx("function url")?;
    let url = function_url.url();
    stack.proxy.reset_counts();
    ctx.progress(&format!(
        "hot repository: {pushes} pushes to one repository, {CLIENTS} at once"
    ));

    let http = stack::http_client()?;
    let envelope = |i: usize| {
        let target = json!({"mediaType": MANIFEST, "digest": images[i], "repository": REPO,
            "tag": format!("ci-{i}"), "url": registry.url(REPO, &images[i])});
        json!({"events": [{"id": format!("hot-{i}"), "timestamp": "2026-11-29T08:00:00Z",
            "action": "push", "target": target}]})
        .to_string()
    };
    let post = |i: usize| {
        let post = http.post(format!("{url}/")).bearer_auth(BENCH_INGEST_TOKEN);
        let post = post.header("content-type", ENVELOPES).body(envelope(i));
        async move {
            let sent = Instant::now();
            let (status, summary) = match post.send().await {
                Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
                Err(_) => (0, Value::Null),
            };
            (status, ms(sent.elapsed()), summary)
        }
    };
    // CLIENTS requests in flight at any time, as many clients would keep.
    let started = Instant::now();
    let answers: Vec<(u16, f64, Value)> = futures::stream::iter(0..pushes)
        .map(post)
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let wall = started.elapsed();
    let calls = stack.proxy.take_calls();
    let transactions = calls
        .iter()
        .filter(|c| c.op == "dynamodb:TransactWriteItems");
    let cancelled = transactions.clone().filter(|c| c.status != 200).count();
    let count = |key: &str| {
        answers
            .iter()
            .filter_map(|a| a.2[key].as_u64())
            .sum::<u64>()
    };
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    answers
        .iter()
        .for_each(|a| *statuses.entry(a.0).or_default() += 1);
    let times: Vec<f64> = answers.iter().map(|a| a.1).collect();
    let size = stack
        .store
        .get(&repo)
        .await
        .ctx("reading the record")?
        .map(|r| r.repository_size);
    Ok(json!({
        "pushes": pushes, "clients": CLIENTS, "wall_s": wall.as_secs_f64(),
        "statuses": statuses, "server_errors": answers.iter().filter(|a| a.0 >= 500 || a.0 == 0).count(),
        "answer_ms": {"p50": percentile(&times, 50.0), "p99": percentile(&times, 99.0), "max": percentile(&times, 100.0)},
        "transactions": transactions.count(), "conflicts_retried": cancelled,
        "queued": count("queued"), "deferred": count("deferred"), "rejected": count("rejected"),
        "repository_size": size, "expected_repository_size": expected_size,
        "size_exact_n": u8::from(size == Some(expected_size)),
        "aws": tally(&calls),
    }))
}
