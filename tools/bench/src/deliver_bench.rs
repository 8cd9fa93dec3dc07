//! deliver's measurements: one big batch against a fast sink, side by side
//! with a bare reqwest client sending the same requests and with the same
//! deliver against a DynamoDB stub (throughput, the sending phase at the sink,
//! CPU, peak memory, AWS calls); the same batch with 10% of the endpoints
//! failing (retries, visibility changes on real receipt handles); and
//! single-job invocations (the per-event cost of a design without batching).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use devstack::aws_proxy::{busy_time, AwsProxy, Call};
use devstack::receiver::{Behaviour, Receiver, Sink};
use devstack::runtime_api::workspace_binary;
use serde_json::{json, Value};
use shared::adapters::DynamoStore;
use shared::domain::{validate_webhook_url, DeliveryJob, RepositoryName};
use shared::ports::WebhookStore as _;
use shared::webhook::build_request;

use crate::stack::{function_env, start_function, tally, Stack};
use crate::stats::{self, median, ms};
use crate::{workload, Ctx, Res};

pub const REGISTRY_HOST: &str = "container.alin.io";
pub const HOSTS: usize = 16;
pub const CONCURRENCY: usize = 64;
pub const PER_HOST: usize = 4;
/// One repository in this many answers 503 in the failure workload.
const FAILING_EVERY: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(600);

/// The workload's fixed parts, shared by every contender.
struct Setup {
    stack: Stack,
    proxy: AwsProxy,
    store: DynamoStore,
    ddb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    sink: Arc<Sink>,
    repos: Vec<RepositoryName>,
    jobs: Vec<DeliveryJob>,
}

/// One deliver invocation on a fresh process.
struct Run {
    duration: Duration,
    started: Instant,
    calls: Vec<Call>,
    sink: Option<(Mark, Mark)>,
    sink_received: u64,
    cpu_ms: Option<f64>,
    machine_busy: Option<f64>,
    rss_kib: Option<u64>,
    rss_after_init_kib: Option<u64>,
    failures: usize,
    figures: Value,
}

impl Run {
    /// When each operation's calls and the webhook POSTs ran, from the event
    /// handed out, and the wall time with a call of that operation in flight.
    fn timeline(&self) -> Vec<Value> {
        let end = self.started + self.duration;
        let at = |t: Instant| ms(t.saturating_duration_since(self.started));
        let mut by_op: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
        for c in &self.calls {
            by_op.entry(&c.op).or_default().push(c);
        }
        let mut rows: Vec<Value> = by_op
            .iter()
            .map(|(op, cs)| {
                let from = cs.iter().map(|c| c.start).min().map_or(0.0, at);
                let to = cs.iter().map(|c| c.end).max().map_or(0.0, at);
                let busy = ms(busy_time(cs.iter().copied(), self.started, end));
                json!({ "what": format!("`{op}`"), "calls": cs.len(), "from_ms": from, "to_ms": to, "busy_ms": busy })
            })
            .collect();
        if let Some((a, b)) = &self.sink {
            rows.push(json!({ "what": "webhook POSTs at the sink", "from_ms": at(a.at), "to_ms": at(b.at) }));
        }
        rows.sort_by(|a, b| {
            a["from_ms"]
                .as_f64()
                .partial_cmp(&b["from_ms"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        rows
    }

    fn sink_ms(&self) -> Option<f64> {
        self.sink.map(|(a, b)| ms(b.at - a.at))
    }
}

async fn deliver_once(
    ctx: &Ctx,
    s: &Setup,
    proxy: &AwsProxy,
    event: Value,
    label: &str,
    expected: u64,
) -> Res<Run> {
    let extra = [
        ("ALLOW_PRIVATE_TARGETS", "true"),
        ("DELIVERY_CONCURRENCY", &CONCURRENCY.to_string()),
        ("PER_HOST_CONCURRENCY", &PER_HOST.to_string()),
    ];
    let env = function_env(&ctx.moto, &s.stack, &proxy.endpoint(), &extra);
    let (f, log) = start_function("deliver", &env, &ctx.logs, label, TIMEOUT).await?;
    proxy.reset_counts();
    let before = s.sink.count();
    let watch = watch_sink(s.sink.clone(), before, expected, Some(f.pid()));
    let rss_after_init_kib = f.peak_rss_kib();
    let (cpu0, jiffies0) = (stats::process_cpu_ms(f.pid()), stats::machine_jiffies());
    let inv = f
        .invoke(event, TIMEOUT)
        .await
        .map_err(|e| format!("invoking deliver: {e}"))?;
    let cpu_ms = stats::process_cpu_ms(f.pid()).zip(cpu0).map(|(a, b)| a - b);
    let machine_busy = stats::busy_share(jiffies0, stats::machine_jiffies());
    let rss_kib = f.peak_rss_kib();
    let sink_received = s.sink.count() - before;
    let sink = finish_watch(watch).await;
    let _ = f.stop().await;
    let response = inv
        .ok()
        .ok_or_else(|| format!("deliver failed: {:?}", inv.error()))?;
    Ok(Run {
        duration: inv.duration,
        started: inv.started_at,
        calls: proxy.take_calls(),
        sink,
        sink_received,
        cpu_ms,
        machine_busy,
        rss_kib,
        rss_after_init_kib,
        failures: response["batchItemFailures"].as_array().map_or(0, Vec::len),
        figures: crate::stack::last_emf(&log),
    })
}

/// The bare client's run: (round's JSON, its rate).
async fn bare_once(ctx: &Ctx, file: &Path, sink: &Arc<Sink>, jobs: usize) -> Res<Value> {
    let before = sink.count();
    let watch = watch_sink(sink.clone(), before, jobs as u64, None);
    let jiffies0 = stats::machine_jiffies();
    let out = tokio::process::Command::new(workspace_binary("bare-client"))
        .args([
            file.display().to_string(),
            CONCURRENCY.to_string(),
            PER_HOST.to_string(),
        ])
        .current_dir(&ctx.root)
        .output()
        .await
        .map_err(|e| format!("running bare-client: {e}"))?;
    let machine_busy = stats::busy_share(jiffies0, stats::machine_jiffies());
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "bare-client ({}): {e}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let got = sink.count() - before;
    let sink_ms = finish_watch(watch).await.map(|(a, b)| ms(b.at - a.at));
    if v["ok"].as_u64() != Some(jobs as u64) || got != jobs as u64 {
        return Err(format!(
            "bare-client: {} of {jobs} answered 2xx, the sink got {got}",
            v["ok"]
        ));
    }
    let elapsed_ms = v["elapsed_us"].as_f64().unwrap_or(0.0) / 1000.0;
    Ok(json!({
        "ms": elapsed_ms, "per_s": rate(jobs, Some(elapsed_ms)), "sink_ms": sink_ms,
        "sink_per_s": rate(jobs, sink_ms), "cpu_ms": v["cpu_ms"], "machine_busy": machine_busy,
        "peak_rss_kib": v["peak_rss_kib"],
    }))
}

/// DynamoDB write operations (every other DynamoDB call reads).
const WRITE_OPS: [&str; 5] = [
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:TransactWriteItems",
    "dynamodb:BatchWriteItem",
];

/// Calls in a tally whose operation starts with `prefix`.
fn count(aws: &Value, prefix: &str) -> u64 {
    let calls = aws["calls"].as_object().into_iter().flatten();
    calls
        .filter(|(op, _)| op.starts_with(prefix))
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

fn rate(n: usize, ms: Option<f64>) -> Option<f64> {
    ms.filter(|&m| m > 0.0).map(|m| n as f64 / m * 1000.0)
}

/// The requests deliver will send, built beforehand with the same code, for
/// the bare client. Returns the first body's size and header count.
fn write_bare_requests(
    file: &Path,
    s: &Setup,
    urls: &[String],
    secrets: &[shared::webhook::WebhookSecret],
) -> Res<(usize, usize)> {
    let now = time::OffsetDateTime::now_utc();
    let n = s.repos.len();
    let list: Vec<(Value, usize, usize)> = s
        .jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let req = build_request(job, REGISTRY_HOST, &secrets[i % n], now);
            let headers: Vec<(&str, &String)> = req
                .headers
                .iter()
                .filter(|(h, _)| !h.eq_ignore_ascii_case("content-length"))
                .map(|(h, v)| (*h, v))
                .collect();
            let body = String::from_utf8_lossy(&req.body);
            (
                json!({ "url": urls[i % n], "headers": headers, "body": body }),
                req.body.len(),
                req.headers.len(),
            )
        })
        .collect();
    let first = list.first().map_or((0, 0), |(_, b, h)| (*b, *h));
    let all: Vec<&Value> = list.iter().map(|(v, _, _)| v).collect();
    std::fs::write(file, serde_json::to_vec(&all).map_err(|e| e.to_string())?)
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(first)
}

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let (jobs_n, repos_n) = (ctx.sizes.jobs, ctx.sizes.repos);
    let stack = Stack::create(&ctx.moto, "tp").await?;
    let direct = ctx.moto.sdk_config().await;
    let sink = Arc::new(Sink::start(HOSTS).await.map_err(|e| format!("sink: {e}"))?);
    let repos = workload::repos("tp", repos_n)?;
    // Job j goes to repository j % repos, each with its own tag: nothing coalesces.
    let jobs = (0..jobs_n)
        .map(|j| workload::job(&repos[j % repos_n], j))
        .collect::<Res<_>>()?;
    let s = Setup {
        proxy: crate::stack::proxy(ctx.moto.endpoint()).await?,
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&direct), &stack.table),
        ddb: aws_sdk_dynamodb::Client::new(&direct),
        sqs: aws_sdk_sqs::Client::new(&direct),
        stack,
        sink,
        repos,
        jobs,
    };
    let urls: Vec<String> = (0..repos_n)
        .map(|i| s.sink.url(i % HOSTS, &format!("/hook/{i}")))
        .collect();
    ctx.progress(&format!(
        "deliver: seeding {repos_n} webhooks on {HOSTS} sink ports"
    ));
    let secrets = crate::stack::seed(&s.store, &s.repos, |i| urls[i].clone()).await?;
    let records = s
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| workload::sqs_record("tp", j, job.to_json(), &s.stack.queue_arn));
    let event = workload::sqs_event(records.collect());
    let bare_file = ctx.work.join("bare-requests.json");
    let (body_bytes, headers) = write_bare_requests(&bare_file, &s, &urls, &secrets)?;

    // The diagnostic contender: the same deliver against a DynamoDB stub
    // answering at once from a snapshot of the seeded table.
    let fake =
        crate::fake_dynamo::FakeDynamo::start(ctx.moto.endpoint(), &s.stack.table, repos_n).await?;
    let stub_proxy = crate::stack::proxy(&fake.endpoint()).await?;

    let mut rounds = Vec::new();
    let mut deliver_runs = Vec::new();
    for round in 0..ctx.sizes.rounds {
        let mut row = json!({ "round": round + 1 });
        // Rotate who goes first so none always runs on a warmer machine.
        for k in 0..3 {
            let which = ["bare", "deliver", "stub"][(k + round) % 3];
            if which == "bare" {
                row["bare"] = bare_once(ctx, &bare_file, &s.sink, jobs_n).await?;
                ctx.progress(&format!(
                    "round {}: bare {:.0}/s",
                    round + 1,
                    row["bare"]["per_s"].as_f64().unwrap_or(0.0)
                ));
                continue;
            }
            let proxy = if which == "deliver" {
                &s.proxy
            } else {
                &stub_proxy
            };
            let label = format!("deliver-{which}-{round}");
            let d = deliver_once(ctx, &s, proxy, event.clone(), &label, jobs_n as u64).await?;
            if d.sink_received != jobs_n as u64 || d.failures != 0 {
                return Err(format!(
                    "{label}: the sink got {} of {jobs_n}, {} records failed, figures {}",
                    d.sink_received, d.failures, d.figures
                ));
            }
            let dur = ms(d.duration);
            let end = d.started + d.duration;
            row[which] = json!({
                "ms": dur, "per_s": rate(jobs_n, Some(dur)), "sink_ms": d.sink_ms(),
                "sink_per_s": rate(jobs_n, d.sink_ms()), "cpu_ms": d.cpu_ms, "machine_busy": d.machine_busy,
                "aws_busy_ms": ms(busy_time(&d.calls, d.started, end)), "peak_rss_mib": mib(d.rss_kib),
                "sending": d.sink.map(|(a, b)| phase_cpu(&a, &b)),
            });
            ctx.progress(&format!(
                "round {}: {which} {:.0} ms, {:.0}/s",
                round + 1,
                dur,
                row[which]["per_s"].as_f64().unwrap_or(0.0)
            ));
            if which == "deliver" {
                deliver_runs.push(d);
            }
        }
        rounds.push(row);
    }
    drop((stub_proxy, fake));
    let _ = std::fs::remove_file(&bare_file);

    let med = |who: &str, what: &str| {
        median(
            &rounds
                .iter()
                .filter_map(|r| r[who][what].as_f64())
                .collect::<Vec<_>>(),
        )
    };
    let best = |who: &str| {
        rounds
            .iter()
            .filter_map(|r| r[who]["per_s"].as_f64())
            .fold(0.0, f64::max)
    };
    let per_post = |who: &str| med(who, "cpu_ms") * 1000.0 / jobs_n as f64;
    deliver_runs.sort_by_key(|d| d.duration);
    let median_run = deliver_runs
        .get((deliver_runs.len().max(1) - 1) / 2)
        .ok_or("no deliver round")?;
    let aws = tally(&median_run.calls);
    let writes = WRITE_OPS.iter().map(|op| count(&aws, op)).sum::<u64>();
    let throughput = json!({
        "jobs": jobs_n, "repos": repos_n, "hosts": HOSTS, "concurrency": CONCURRENCY, "per_host": PER_HOST,
        "body_bytes": body_bytes, "headers": headers, "event_bytes": event.to_string().len(),
        "rounds": rounds,
        "bare_per_s": med("bare", "per_s"), "deliver_per_s": med("deliver", "per_s"), "stub_per_s": med("stub", "per_s"),
        "ratio": med("deliver", "per_s") / med("bare", "per_s"),
        "ratio_best": best("deliver") / best("bare"),
        "bare_sink_per_s": med("bare", "sink_per_s"), "deliver_sink_per_s": med("deliver", "sink_per_s"),
        "sink_ratio": med("deliver", "sink_per_s") / med("bare", "sink_per_s"),
        "stub_ratio": med("stub", "per_s") / med("bare", "per_s"),
        "cpu_us_per_webhook": { "bare": per_post("bare"), "deliver": per_post("deliver"), "stub": per_post("stub") },
        "peak_rss_mib": mib(deliver_runs.iter().filter_map(|d| d.rss_kib).max()),
        "rss_after_init_mib": mib(median_run.rss_after_init_kib),
        "bare_peak_rss_mib": mib(rounds.iter().filter_map(|r| r["bare"]["peak_rss_kib"].as_u64()).max()),
        "per_job": {
            "reads": (count(&aws, "dynamodb:") - writes) as f64 / jobs_n as f64,
            "writes": writes as f64 / jobs_n as f64,
            "sqs": count(&aws, "sqs:") as f64 / jobs_n as f64,
        },
        "median_run": { "median_ms": ms(median_run.duration), "aws": aws, "timeline": median_run.timeline() },
        "record_bytes": record_bytes(&s).await,
    });
    ctx.progress("deliver: the same batch with 10% of endpoints answering 503");
    let failing = failure_workload(ctx, &s, &urls)
        .await
        .unwrap_or_else(|e| json!({ "error": e }));
    ctx.progress("deliver: single-job invocations (the unbatched design)");
    let single = single_jobs(ctx, &s)
        .await
        .unwrap_or_else(|e| json!({ "error": e }));
    Ok(json!({ "throughput": throughput, "failing": failing, "single": single }))
}

/// DynamoDB's item size of one repository record (attribute names plus
/// values), to check the ≤ 1 KB assumption behind 1 WRU per write.
async fn record_bytes(s: &Setup) -> Option<usize> {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use shared::adapters::dynamo::{PK, SK, SK_REPO};
    let out = s
        .ddb
        .get_item()
        .table_name(&s.stack.table)
        .consistent_read(true)
        .key(PK, A::S(format!("repo#{}", s.repos[0])))
        .key(SK, A::S(SK_REPO.into()))
        .send()
        .await
        .ok()?;
    let size = |v: &A| match v {
        A::S(x) => x.len(),
        A::N(n) => n.len().div_ceil(2) + 1,
        A::Bool(_) | A::Null(_) => 1,
        _ => 64,
    };
    Some(out.item?.iter().map(|(k, v)| k.len() + size(v)).sum())
}

/// The batch again with every 10th repository's endpoint answering 503. The
/// failing jobs go through the real delivery queue and come back with
/// ReceiveMessage, so deliver's ChangeMessageVisibilityBatch entries name real
/// in-flight messages that moto checks; the others keep synthetic handles,
/// which deliver never uses (queueing them all would only measure moto, whose
/// SendMessage is quadratic in the queue's length).
async fn failure_workload(ctx: &Ctx, s: &Setup, urls: &[String]) -> Res<Value> {
    let receiver = Receiver::start(Behaviour::status(503))
        .await
        .map_err(|e| format!("receiver: {e}"))?;
    let failing: Vec<usize> = (0..s.repos.len()).step_by(FAILING_EVERY).collect();
    set_urls(s, &failing, |i| receiver.url(&format!("/hook/{i}"))).await?;
    let failing_jobs: Vec<&DeliveryJob> = s
        .jobs
        .iter()
        .enumerate()
        .filter(|(j, _)| (j % s.repos.len()).is_multiple_of(FAILING_EVERY))
        .map(|(_, job)| job)
        .collect();
    for chunk in failing_jobs.chunks(10) {
        let entries = chunk.iter().enumerate().map(|(i, job)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(job.to_json())
                .build()
                .map_err(|e| e.to_string())
        });
        let out = s
            .sqs
            .send_message_batch()
            .queue_url(&s.stack.queue_url)
            .set_entries(Some(entries.collect::<Res<_>>()?))
            .send()
            .await;
        if !out
            .map_err(|e| format!("SendMessageBatch: {e}"))?
            .failed
            .is_empty()
        {
            return Err("SendMessageBatch: entries failed".into());
        }
    }
    let mut received: HashMap<String, aws_sdk_sqs::types::Message> = HashMap::new();
    let mut empty = 0;
    while received.len() < failing_jobs.len() && empty < 3 {
        let out = s
            .sqs
            .receive_message()
            .queue_url(&s.stack.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {e}"))?;
        let got = out.messages.unwrap_or_default();
        empty = if got.is_empty() { empty + 1 } else { 0 };
        for m in got {
            let job = DeliveryJob::parse(m.body().unwrap_or_default())
                .map_err(|e| format!("received job: {e}"))?;
            received.insert(job.image_ref(), m);
        }
    }
    if received.len() != failing_jobs.len() {
        return Err(format!(
            "received {} of {} queued jobs back",
            received.len(),
            failing_jobs.len()
        ));
    }
    let records = s
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| match received.get(&job.image_ref()) {
            Some(m) => devstack::esm::event::record(m, &s.stack.queue_arn),
            None => workload::sqs_record("fa", j, job.to_json(), &s.stack.queue_arn),
        });
    let event = workload::sqs_event(records.collect());
    let ok_jobs = (s.jobs.len() - failing_jobs.len()) as u64;
    let run = deliver_once(ctx, s, &s.proxy, event, "deliver-failing", ok_jobs).await;
    // Whatever happened, leave the queue empty and the sink URLs back.
    let _ = s
        .sqs
        .purge_queue()
        .queue_url(&s.stack.queue_url)
        .send()
        .await;
    set_urls(s, &failing, |i| urls[i].clone()).await?;
    let run = run?;
    let receiver_got = receiver.count();
    if run.failures != failing_jobs.len()
        || receiver_got != failing_jobs.len()
        || run.sink_received != ok_jobs
    {
        return Err(format!(
            "failure workload: {} reported failed of {}, the 503 receiver got {receiver_got}, the sink {} of {ok_jobs}; figures {}",
            run.failures, failing_jobs.len(), run.sink_received, run.figures
        ));
    }
    Ok(json!({
        "jobs": s.jobs.len(), "failing_jobs": failing_jobs.len(), "failing_repos": failing.len(),
        "reported_failures": run.failures, "receiver_got": receiver_got,
        "sqs_per_failed_job": count(&tally(&run.calls), "sqs:") as f64 / failing_jobs.len().max(1) as f64,
        "aws": tally(&run.calls),
        "figures": run.figures,
    }))
}

async fn set_urls(s: &Setup, which: &[usize], url_of: impl Fn(usize) -> String) -> Res<()> {
    let now = shared::domain::time::rfc3339(time::OffsetDateTime::now_utc());
    for &i in which {
        let url = validate_webhook_url(&url_of(i), true).map_err(|e| e.to_string())?;
        s.store
            .put_url(&s.repos[i], &url, &now)
            .await
            .map_err(|e| format!("put_url: {e}"))?;
    }
    Ok(())
}

/// A warm deliver process invoked with one job at a time: what every
/// invocation of a design without batching looks like (after one warm-up).
async fn single_jobs(ctx: &Ctx, s: &Setup) -> Res<Value> {
    let env = function_env(
        &ctx.moto,
        &s.stack,
        &s.proxy.endpoint(),
        &[("ALLOW_PRIVATE_TARGETS", "true")],
    );
    let (f, _log) = start_function("deliver", &env, &ctx.logs, "deliver-single", TIMEOUT).await?;
    let mut durations = Vec::new();
    for k in 0..=ctx.sizes.singles {
        let j = s.jobs.len() + k;
        let job = workload::job(&s.repos[k % s.repos.len()], j)?;
        let event = workload::sqs_event(vec![workload::sqs_record(
            "sj",
            j,
            job.to_json(),
            &s.stack.queue_arn,
        )]);
        if k == 1 {
            s.proxy.reset_counts();
        }
        let before = s.sink.count();
        let inv = f
            .invoke(event, TIMEOUT)
            .await
            .map_err(|e| format!("invoking deliver: {e}"))?;
        if !inv.is_ok() || s.sink.count() != before + 1 {
            return Err(format!("single-job deliver failed: {:?}", inv.outcome));
        }
        if k >= 1 {
            durations.push(ms(inv.duration));
        }
    }
    let _ = f.stop().await;
    Ok(json!({
        "invocations": durations.len(), "median_ms": median(&durations),
        "billed_ms_mean": crate::cost::mean_billed(&durations), "aws": tally(&s.proxy.take_calls()),
    }))
}

/// A moment of the sending phase: when, and the CPU clocks then.
#[derive(Clone, Copy, Debug)]
struct Mark {
    at: Instant,
    /// CPU ms of the sending process (deliver), when watched.
    sender_cpu: Option<f64>,
    /// CPU ms of this benchmark process (the sink, the proxies).
    bench_cpu: Option<f64>,
    jiffies: Option<(u64, u64)>,
}

impl Mark {
    fn now(sender: Option<u32>) -> Mark {
        Mark {
            at: Instant::now(),
            sender_cpu: sender.and_then(stats::process_cpu_ms),
            bench_cpu: stats::process_cpu_ms(std::process::id()),
            jiffies: stats::machine_jiffies(),
        }
    }
}

/// Where the CPU went between the first and the last request at the sink.
fn phase_cpu(a: &Mark, b: &Mark) -> Value {
    let wall_ms = ms(b.at - a.at);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    json!({
        "wall_ms": wall_ms,
        "sender_cpu_ms": b.sender_cpu.zip(a.sender_cpu).map(|(x, y)| x - y),
        "bench_cpu_ms": b.bench_cpu.zip(a.bench_cpu).map(|(x, y)| x - y),
        "machine_busy_ms": stats::busy_share(a.jiffies, b.jiffies).map(|s| s * wall_ms * cpus),
    })
}

/// Watches the sink every millisecond until it has `n` more requests than
/// `base`: the first and the last arrival, i.e. the sending phase as the
/// receiving side saw it (±1 ms), the same yardstick for every sender.
fn watch_sink(
    sink: Arc<Sink>,
    base: u64,
    n: u64,
    sender: Option<u32>,
) -> tokio::task::JoinHandle<Option<(Mark, Mark)>> {
    tokio::spawn(async move {
        let mut first: Option<Mark> = None;
        loop {
            let count = sink.count();
            if first.is_none() && count > base {
                first = Some(Mark::now(sender));
            }
            if count >= base + n {
                return first.map(|f| (f, Mark::now(sender)));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

/// The watcher's window once it has seen everything, or nothing if the sink
/// never got every request.
async fn finish_watch(
    mut watch: tokio::task::JoinHandle<Option<(Mark, Mark)>>,
) -> Option<(Mark, Mark)> {
    match tokio::time::timeout(Duration::from_millis(200), &mut watch).await {
        Ok(done) => done.ok().flatten(),
        Err(_) => {
            watch.abort();
            None
        }
    }
}
