//! Measurement 5: push → webhook latency through the whole local stack:
//! POST into the ingest Function URL emulation (a small pool of ingest
//! processes, as Lambda scales a Function URL out), the delivery queue in
//! moto, the event source mapping emulation with a 1 s batching window, the
//! deliver binary, and a recording receiver. Pushes go out at a steady rate,
//! each with its own tag, matched at the receiver by `x-alin-webhook`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use devstack::esm::{EsmStats, EventSourceMapping};
use devstack::function_url::FunctionUrl;
use devstack::receiver::{Behaviour, Receiver};
use devstack::runtime_api::{Invocation, LocalFunction};
use devstack::{DevstackError, Invoker};
use serde_json::Value;
use shared::adapters::DynamoStore;
use tokio::sync::Semaphore;

use crate::meter::{units_of, Units};
use crate::stack::{self, function_env, start_function, Chain, Stack};

/// The bearer token the benchmark's ingest takes.
const BENCH_INGEST_TOKEN: &str = "bench-ingest-token-0123456789abcdef";
use crate::workload;
use crate::{Ctx, Res};

pub const WINDOW: Duration = Duration::from_secs(1);

/// One invocation as a pool saw it.
#[derive(Clone, Debug)]
pub struct Sample {
    pub records: usize,
    pub duration: Duration,
    pub ok: bool,
}

/// Several execution environments of one function behind one invoker: an
/// invocation takes whichever is free, as Lambda's concurrency does.
pub struct Pool {
    fns: Vec<LocalFunction>,
    free: Mutex<Vec<usize>>,
    permits: Semaphore,
    timeout: Duration,
    samples: Mutex<Vec<Sample>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    pub fn new(fns: Vec<LocalFunction>, timeout: Duration) -> Pool {
        let n = fns.len();
        Pool {
            fns,
            free: Mutex::new((0..n).collect()),
            permits: Semaphore::new(n),
            timeout,
            samples: Mutex::new(Vec::new()),
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).clone()
    }
}

impl Invoker for Pool {
    async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
        let records = event
            .get("Records")
            .and_then(Value::as_array)
            .map_or(1, Vec::len);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DevstackError::RuntimeApiStopped)?;
        let Some(idx) = lock(&self.free).pop() else {
            return Err(DevstackError::Task("pool: no free function".into()));
        };
        let result = self.fns[idx].invoke(event, self.timeout).await;
        lock(&self.free).push(idx);
        if let Ok(inv) = &result {
            lock(&self.samples).push(Sample {
                records,
                duration: inv.duration,
                ok: inv.is_ok(),
            });
        }
        result
    }
}

pub struct RoleCalls {
    pub counts: BTreeMap<String, u64>,
    pub units: Units,
}

pub struct Latency {
    pub pushes: usize,
    pub repos: usize,
    pub rate: f64,
    pub ingest_pool: usize,
    pub batch_size: usize,
    /// The template's batching window (the emulation uses [`WINDOW`]).
    pub template_window_secs: u64,
    /// Push sent → webhook received, per push, ms.
    pub latencies_ms: Vec<f64>,
    /// The ingest Function URL's answer time, ms.
    pub ingest_http_ms: Vec<f64>,
    pub ingest: Vec<Sample>,
    pub deliver: Vec<Sample>,
    pub esm: EsmStats,
    pub calls: BTreeMap<&'static str, RoleCalls>,
    pub wall: Duration,
}

pub async fn run(ctx: &Ctx, pushes: usize, repos_n: usize, rate: f64) -> Res<Latency> {
    let stack = Stack::create(&ctx.moto, &ctx.root, "lt").await?;
    let ingest_chain = Chain::start(&ctx.moto).await?;
    let deliver_chain = Chain::start(&ctx.moto).await?;
    let esm_chain = Chain::start(&ctx.moto).await?;
    let direct = stack::sdk(ctx.moto.endpoint()).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&direct), &stack.table);
    let receiver = Receiver::start(Behaviour::status(204))
        .await
        .map_err(|e| format!("receiver: {e}"))?;
    let repos = workload::repos("lt", repos_n)?;
    ctx.progress(&format!("latency: seeding {repos_n} webhooks"));
    stack::seed(&store, &repos, |i| receiver.url(&format!("/hook/{i}"))).await?;

    let ingest_pool = 4;
    // ingest's HTTP door is closed without a token.
    let ingest_env = function_env(
        &ctx.moto,
        &stack,
        &ingest_chain.endpoint(),
        &[("INGEST_TOKEN", BENCH_INGEST_TOKEN)],
    );
    let mut ingests = Vec::new();
    for k in 0..ingest_pool {
        let (f, _) = start_function(
            "ingest",
            &ingest_env,
            &ctx.logs,
            &format!("latency-ingest-{k}"),
            Duration::from_secs(30),
        )
        .await?;
        ingests.push(f);
    }
    let ingest = Arc::new(Pool::new(ingests, Duration::from_secs(30)));
    let deliver_env = function_env(
        &ctx.moto,
        &stack,
        &deliver_chain.endpoint(),
        &[("ALLOW_PRIVATE_TARGETS", "true")],
    );
    let (d, deliver_log) = start_function(
        "deliver",
        &deliver_env,
        &ctx.logs,
        "latency-deliver",
        Duration::from_secs(60),
    )
    .await?;
    let deliver = Arc::new(Pool::new(vec![d], Duration::from_secs(60)));
    let url = FunctionUrl::serve(ingest.clone())
        .await
        .map_err(|e| format!("function url: {e}"))?;
    let esm_sdk = stack::sdk(&esm_chain.endpoint()).await;
    let esm = EventSourceMapping::start(
        aws_sdk_sqs::Client::new(&esm_sdk),
        stack.queue_url.clone(),
        stack.queue_arn.clone(),
        deliver.clone(),
        stack.deliver_batch_size,
        WINDOW,
    );
    for c in [&ingest_chain, &deliver_chain, &esm_chain] {
        c.reset();
    }

    ctx.progress(&format!(
        "latency: {pushes} pushes at {rate:.0}/s through ingest → queue → mapping (window {}s) → deliver",
        WINDOW.as_secs()
    ));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let t0 = Instant::now() + Duration::from_millis(100);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(pushes);
    for i in 0..pushes {
        tokio::time::sleep_until((t0 + interval * i as u32).into()).await;
        let repo = &repos[i % repos_n];
        let body = workload::native_push(repo, &format!("l{i}"), &format!("lat-{i}"), i as u64)
            .to_string();
        let (http, target) = (http.clone(), format!("{}/", url.url()));
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let resp = http
                .post(target)
                .header("content-type", "application/json")
                .bearer_auth(BENCH_INGEST_TOKEN)
                .body(body)
                .send()
                .await;
            let answered = Instant::now();
            let status = match resp {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            (sent, answered, status)
        }));
    }
    let mut sent = Vec::with_capacity(pushes);
    for t in tasks {
        sent.push(t.await.map_err(|e| format!("push task: {e}"))?);
    }
    let refused = sent.iter().filter(|(_, _, s)| *s != 202).count();
    if refused > 0 {
        return Err(format!(
            "latency: ingest refused {refused} of {pushes} pushes"
        ));
    }
    let got = receiver
        .wait_for(pushes, Duration::from_secs(120))
        .await
        .map_err(|e| {
            format!(
                "latency: {e}; deliver log:\n{}",
                stack::tail(&deliver_log, 10)
            )
        })?;
    let wall = started.elapsed();
    let esm_stats = esm.stop().await.map_err(|e| e.to_string())?;

    let mut latencies = vec![f64::NAN; pushes];
    for r in &got {
        let Some(i) = r
            .header("x-alin-webhook")
            .and_then(|h| h.rsplit_once(":l"))
            .and_then(|(_, i)| i.parse::<usize>().ok())
        else {
            return Err(format!(
                "unexpected webhook {:?}",
                r.header("x-alin-webhook")
            ));
        };
        if i >= pushes || !latencies[i].is_nan() {
            return Err(format!("webhook {i} unexpected or received twice"));
        }
        latencies[i] = crate::stats::ms(r.received_at.saturating_duration_since(sent[i].0));
    }
    if latencies.iter().any(|l| l.is_nan()) || got.len() != pushes {
        return Err("latency: some pushes were never delivered".into());
    }
    if esm_stats.function_errors > 0 || esm_stats.failed > 0 {
        return Err(format!(
            "latency: the event source mapping saw failures: {esm_stats:?}"
        ));
    }
    let mut calls = BTreeMap::new();
    for (role, chain) in [
        ("ingest", &ingest_chain),
        ("deliver", &deliver_chain),
        ("event source mapping", &esm_chain),
    ] {
        let taken = chain.meter.take();
        calls.insert(
            role,
            RoleCalls {
                counts: chain.counts(&taken),
                units: units_of(&taken),
            },
        );
    }
    drop(url);
    Ok(Latency {
        pushes,
        repos: repos_n,
        rate,
        ingest_pool,
        batch_size: stack.deliver_batch_size,
        template_window_secs: stack.deliver_window_secs,
        latencies_ms: latencies,
        ingest_http_ms: sent
            .iter()
            .map(|(s, a, _)| crate::stats::ms(a.saturating_duration_since(*s)))
            .collect(),
        ingest: ingest.samples(),
        deliver: deliver.samples(),
        esm: esm_stats,
        calls,
        wall,
    })
}
