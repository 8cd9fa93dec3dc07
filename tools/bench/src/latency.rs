//! Push → webhook latency through the whole local stack: the ingest Function
//! URL (a pool of ingest processes), the delivery queue, the event source
//! mapping (1 s window), deliver and a receiver matching `x-alin-webhook`,
//! pushes at a steady rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use devstack::esm::EventSourceMapping;
use devstack::function_url::FunctionUrl;
use devstack::receiver::{Behaviour, Receiver};
use serde_json::{json, Value};

use crate::stack::{self, tally, Pool, Stack, BENCH_INGEST_TOKEN};
use crate::stats::{median, ms, percentile};
use crate::Context as _;
use crate::{workload, Ctx, Res};

/// The emulated mapping's batching window (the template's is longer).
pub const WINDOW: Duration = Duration::from_secs(1);
/// Ingest execution environments behind the Function URL (Lambda scales
/// one out; `BENCH_INGEST_POOL` overrides this). Fewer queue pushes at the
/// URL once ingest's invocation passes ~60 ms against a loaded moto; more
/// make every moto call slower still on 2 CPUs.
const INGEST_POOL: usize = 4;

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let (pushes, repos_n, rate) = (ctx.sizes.pushes, ctx.sizes.push_repos, ctx.sizes.push_rate);
    let pool_size = crate::env_or("BENCH_INGEST_POOL", INGEST_POOL);
    // A moto of its own: the earlier measurements leave tens of thousands
    // of messages and items in the shared one, which made every call here
    // slower (ReceiveMessage 5 → 28 ms median) and the result depend on
    // what ran before.
    let moto = &devstack::moto::Moto::start().await.ctx("moto")?;
    let stack = Stack::create(moto, "lt").await?;
    let (deliver_proxy, esm_proxy) = (stack.new_proxy().await?, stack.new_proxy().await?);
    // deliver's outcome writes paced like DynamoDB and applied after the run:
    // 32 in flight at moto (which applies DynamoDB calls one at a time) made
    // each ingest call wait behind them, a queue DynamoDB has not.
    deliver_proxy.set_write_behind(Some(crate::deliver_bench::DYNAMODB_WRITE_LATENCY));
    let receiver = Receiver::start(Behaviour::status(204))
        .await
        .ctx("receiver")?;
    let repos = workload::repos("lt", repos_n)?;
    ctx.progress(&format!("latency: seeding {repos_n} webhooks"));
    stack
        .seed(&repos, |i| receiver.url(&format!("/hook/{i}")))
        .await?;

    let extra = [("INGEST_TOKEN", BENCH_INGEST_TOKEN)];
    let env = stack.env(&stack.proxy.endpoint(), &extra);
    let timeout = Duration::from_secs(30);
    let ingest = Pool::start(ctx, "ingest", "latency-ingest", pool_size, &env, timeout).await?;
    let extra = [("ALLOW_PRIVATE_TARGETS", "true")];
    let env = stack.env(&deliver_proxy.endpoint(), &extra);
    let deliver = Pool::start(ctx, "deliver", "latency-deliver", 1, &env, 2 * timeout).await?;
    let url = FunctionUrl::serve(ingest.clone())
        .await
        .ctx("function url")?;
    let sqs = aws_sdk_sqs::Client::new(&devstack::sdk_config(&esm_proxy.endpoint()).await);
    let (queue, arn, batch) = (
        stack.queue_url.clone(),
        stack.queue_arn.clone(),
        stack.deliver_batch_size,
    );
    let esm = EventSourceMapping::start(sqs, queue, arn, deliver.clone(), batch, WINDOW);
    let proxies = [&stack.proxy, &deliver_proxy, &esm_proxy];
    proxies.iter().for_each(|p| p.reset_counts());

    ctx.progress(&format!(
        "latency: {pushes} pushes at {rate:.0}/s through ingest → queue → mapping → deliver"
    ));
    let http = stack::http_client()?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (t0, started) = (Instant::now() + Duration::from_millis(100), Instant::now());
    let mut tasks = Vec::with_capacity(pushes);
    for i in 0..pushes {
        tokio::time::sleep_until((t0 + interval * i as u32).into()).await;
        let (tag, id) = (format!("l{i}"), format!("lat-{i}"));
        let body = workload::native_push(&repos[i % repos_n], &tag, &id, i as u64);
        let req = stack::post_push(&http, &url.url(), &body);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let status = req.send().await.map_or(0, |r| r.status().as_u16());
            (sent, ms(sent.elapsed()), status)
        }));
    }
    let sent = futures::future::try_join_all(tasks)
        .await
        .ctx("push task")?;
    let refused = sent.iter().filter(|(_, _, s)| *s != 202).count();
    if refused > 0 {
        return Err(format!(
            "latency: ingest refused {refused} of {pushes} pushes"
        ));
    }
    let deliver_log = || devstack::paths::log_tail(&ctx.logs.join("latency-deliver-0.log"), 20);
    let got = receiver.wait_for(pushes, Duration::from_secs(120)).await;
    let got = got.map_err(|e| format!("latency: {e}; deliver log:\n{}", deliver_log()))?;
    let wall = started.elapsed();
    let esm_stats = esm.stop().await.map_err(|e| e.to_string())?;
    if esm_stats.function_errors > 0 || esm_stats.failed > 0 {
        return Err(format!(
            "latency: the event source mapping saw failures: {esm_stats:?}"
        ));
    }
    let refused = deliver_proxy.settle().await;
    if refused > 0 {
        return Err(format!("latency: moto refused {refused} paced writes"));
    }
    let mut latencies = vec![f64::NAN; pushes];
    for r in &got {
        let id = r.header("x-alin-webhook");
        match id.and_then(|h| h.rsplit_once(":l")?.1.parse::<usize>().ok()) {
            Some(i) if i < pushes && latencies[i].is_nan() => {
                latencies[i] = ms(r.received_at.saturating_duration_since(sent[i].0));
            }
            _ => return Err(format!("unexpected or repeated webhook {id:?}")),
        }
    }
    if latencies.iter().any(|l| l.is_nan()) {
        return Err("latency: some pushes were never delivered".into());
    }
    let pct = |v: &[f64]| json!({ "p50": percentile(v, 50.0), "p90": percentile(v, 90.0), "p99": percentile(v, 99.0), "max": percentile(v, 100.0), "min": percentile(v, 0.0) });
    let http_ms: Vec<f64> = sent.iter().map(|s| s.1).collect();
    let deliver_samples = deliver.samples();
    let roles = ["ingest", "deliver", "event source mapping"]
        .into_iter()
        .zip(proxies);
    let calls: BTreeMap<&str, Value> = roles.map(|(r, p)| (r, tally(&p.take_calls()))).collect();
    Ok(json!({
        "pushes": pushes, "repos": repos_n, "rate": rate, "ingest_pool": pool_size,
        "batch_size": stack.deliver_batch_size, "window_ms": ms(WINDOW), "template_window_s": stack.deliver_window_secs,
        "latency_ms": pct(&latencies), "latencies_ms": latencies,
        "ingest_http_ms": pct(&http_ms),
        "ingest_invocation_median_ms": median(&ingest.durations_ms()),
        "deliver_invocations": deliver_samples.len(),
        "deliver_mean_jobs": deliver_samples.iter().map(|s| s.records).sum::<usize>() as f64 / deliver_samples.len().max(1) as f64,
        "deliver_median_ms": median(&deliver.durations_ms()),
        "aws_by_role": calls, "wall_s": wall.as_secs_f64(),
    }))
}
