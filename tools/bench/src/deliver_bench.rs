//! deliver's measurements (BENCHMARKS.md says what each one shows): one batch
//! of 10,000 jobs over 1,000 repositories sent by deliver and by the bare
//! keep-alive client, alternating within one run: **headline** (receivers
//! answering after 20 ms on 250 loopback hosts), **instant** (CPU µs per
//! webhook), **https** (a TLS sink, handshakes, a 128 MB Lambda's CPU share),
//! 10% of the endpoints failing, and single-job invocations. Outcome writes
//! are paced like DynamoDB ([`DYNAMODB_WRITE_LATENCY`]); the headline also
//! runs against moto's own write rate. `BENCH_DELIVER=headline,instant,https,
//! failing,single` picks some of them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, SendMessageBatchRequestEntry};
use devstack::aws_proxy::{busy_time, AwsProxy, Call};
use devstack::paths::cpu_ms;
use devstack::receiver::{Behaviour, Options, Receiver};
use devstack::runtime_api::workspace_binary;
use serde_json::{json, Value};
use shared::domain::{DeliveryJob, RepositoryName};
use shared::webhook::{build_request, WebhookSecret};

use crate::stack::{count, start_function, tally, Stack};
use crate::stats::{self, median, mib, ms};
use crate::Context as _;
use crate::{workload, Ctx, Res};

pub const REGISTRY_HOST: &str = "container.alin.io";
pub const HOSTS: usize = 250;
pub const CONCURRENCY: usize = 64;
pub const PER_HOST: usize = 4;
/// How long the headline's receivers take to answer.
const RECEIVER_DELAY: Duration = Duration::from_millis(20);
/// The template's deliver MemorySize, and the size with one full vCPU.
const LAMBDA_MB: f64 = 128.0;
const FULL_VCPU_MB: f64 = 1769.0;
/// One repository in this many answers 503 in the failure workload.
const FAILING_EVERY: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(600);
/// What a paced outcome write takes: DynamoDB's single-digit milliseconds.
pub const DYNAMODB_WRITE_LATENCY: Duration = Duration::from_millis(5);

/// The workload's fixed parts, shared by every contender.
struct Setup {
    stack: Stack,
    /// Another proxy, with outcome writes paced like DynamoDB.
    paced: AwsProxy,
    sink: Receiver,
    repos: Vec<RepositoryName>,
    secrets: Vec<WebhookSecret>,
    jobs: Vec<DeliveryJob>,
    event: Value,
    /// Extra environment of both contenders (the test CA, for https).
    env: Vec<(String, String)>,
}

struct Run {
    duration: Duration,
    started: Instant,
    calls: Vec<Call>,
    received: usize,
    /// The first and the last webhook answered at the sink.
    answers: Option<(Instant, Instant)>,
    cpu_ms: Option<f64>,
    /// Share of the machine's CPUs busy during the invocation.
    machine_busy: Option<f64>,
    rss_kib: Option<u64>,
    failures: usize,
    figures: Value,
}

impl Run {
    /// When each operation's calls ran, from the event handed out, and the
    /// wall time with one of them in flight.
    fn timeline(&self) -> Vec<Value> {
        let at = |t: Instant| ms(t.saturating_duration_since(self.started));
        let mut by_op: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
        for c in &self.calls {
            by_op.entry(&c.op).or_default().push(c);
        }
        let end = self.started + self.duration;
        let row = |(op, cs): (&&str, &Vec<&Call>)| {
            let from = cs.iter().map(|c| c.start).min().map_or(0.0, at);
            let to = cs.iter().map(|c| c.end).max().map_or(0.0, at);
            let busy = ms(busy_time(cs.iter().copied(), self.started, end));
            json!({ "what": format!("`{op}`"), "calls": cs.len(), "from_ms": from, "to_ms": to, "busy_ms": busy })
        };
        let mut rows: Vec<Value> = by_op.iter().map(row).collect();
        if let Some((a, b)) = self.answers {
            rows.push(json!({ "what": "webhooks answered", "from_ms": at(a), "to_ms": at(b) }));
        }
        rows
    }
}

async fn deliver_once(
    ctx: &Ctx,
    s: &Setup,
    proxy: &AwsProxy,
    event: Value,
    label: &str,
) -> Res<Run> {
    let (c, p) = (CONCURRENCY.to_string(), PER_HOST.to_string());
    let mut extra = vec![
        ("ALLOW_PRIVATE_TARGETS", "true"),
        ("DELIVERY_CONCURRENCY", c.as_str()),
        ("PER_HOST_CONCURRENCY", p.as_str()),
    ];
    extra.extend(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let env = s.stack.env(&proxy.endpoint(), &extra);
    let (f, log) = start_function(ctx, "deliver", label, &env, TIMEOUT).await?;
    proxy.reset_counts();
    let (before, _) = (s.sink.count(), s.sink.take_answers());
    let (cpu0, jiffies0) = (cpu_ms(f.pid), stats::machine_jiffies());
    let inv = f.invoke(event, TIMEOUT).await;
    let machine_busy = stats::busy_share(jiffies0, stats::machine_jiffies());
    let inv = inv.ctx("invoking deliver")?;
    let (cpu, rss_kib) = (
        cpu_ms(f.pid).zip(cpu0).map(|(a, b)| a - b),
        f.peak_rss_kib(),
    );
    let _ = f.stop().await;
    // Outside the timed window: moto catches up with the paced writes.
    let refused = proxy.settle().await;
    let error = || format!("deliver: {:?}", inv.error());
    let response = inv.ok().ok_or_else(error)?;
    if refused > 0 {
        return Err(format!("{label}: moto refused {refused} paced writes"));
    }
    Ok(Run {
        duration: inv.duration,
        started: inv.started_at,
        calls: proxy.take_calls(),
        received: s.sink.count() - before,
        answers: s.sink.take_answers(),
        cpu_ms: cpu,
        machine_busy,
        rss_kib,
        failures: response["batchItemFailures"].as_array().map_or(0, Vec::len),
        figures: crate::stack::last_emf(&log),
    })
}

async fn bare_once(ctx: &Ctx, s: &Setup, file: &Path) -> Res<Value> {
    let (before, _) = (s.sink.count(), s.sink.take_answers());
    let (c, p) = (CONCURRENCY.to_string(), PER_HOST.to_string());
    let mut bare = tokio::process::Command::new(workspace_binary("bare-client"));
    let bare = bare
        .args([file.display().to_string(), c, p])
        .current_dir(&ctx.root)
        .envs(s.env.clone());
    let out = bare.output().await.ctx("running bare-client")?;
    let err = || String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bare-client ({}): {e}: {}", out.status, err()))?;
    let (jobs, got, ok) = (s.jobs.len(), s.sink.count() - before, &v["ok"]);
    if ok.as_u64() != Some(jobs as u64) || got != jobs {
        return Err(format!(
            "bare-client: {ok} of {jobs} 2xx, the sink got {got}"
        ));
    }
    let elapsed_ms = v["elapsed_us"].as_f64().unwrap_or(0.0) / 1000.0;
    Ok(json!({
        "ms": elapsed_ms, "per_s": rate(s.jobs.len(), elapsed_ms), "cpu_ms": v["cpu_ms"],
        "sink_per_s": s.sink.take_answers().map(|(a, b)| rate(s.jobs.len(), ms(b - a))),
        "peak_rss_mib": mib(v["peak_rss_kib"].as_u64()),
    }))
}

/// `/hook/<i>` for each of `n` repositories, round-robin over the sink's ports.
fn hook_urls(sink: &Receiver, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| sink.url_at(i, &format!("/hook/{i}")))
        .collect()
}

fn rate(n: usize, ms: f64) -> f64 {
    n as f64 / ms.max(1e-3) * 1000.0
}

/// The requests deliver will send, built beforehand with the same code, for
/// the bare client; returns the first body's size and header count.
fn write_bare_requests(file: &Path, s: &Setup, urls: &[String]) -> Res<(usize, usize)> {
    let now = time::OffsetDateTime::now_utc();
    let n = s.repos.len();
    let mut first = None;
    let request = |(i, job): (usize, &DeliveryJob)| {
        let req = build_request(job, REGISTRY_HOST, &s.secrets[i % n], now);
        first.get_or_insert((req.body.len(), req.headers.len()));
        let headers: Vec<_> = req
            .headers
            .iter()
            .filter(|(h, _)| !h.eq_ignore_ascii_case("content-length"))
            .collect();
        json!({ "url": urls[i % n], "headers": headers, "body": String::from_utf8_lossy(&req.body) })
    };
    let list: Vec<Value> = s.jobs.iter().enumerate().map(request).collect();
    let text = serde_json::to_vec(&list).map_err(|e| e.to_string())?;
    std::fs::write(file, text).ctx(&format!("writing {}", file.display()))?;
    Ok(first.unwrap_or_default())
}

/// The parts of the measurement `BENCH_DELIVER` asks for (all by default).
fn wanted(part: &str) -> bool {
    std::env::var("BENCH_DELIVER").map_or(true, |v| v.split(',').any(|p| p == part))
}

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let (jobs_n, repos_n) = (ctx.sizes.jobs, ctx.sizes.repos);
    let stack = Stack::create(&ctx.moto, "tp").await?;
    let sink = Receiver::start_with(Options::counting(HOSTS), Behaviour::status(204))
        .await
        .ctx("sink")?;
    let repos = workload::repos("tp", repos_n)?;
    // Job j goes to repository j % repos, each with its own tag: nothing coalesces.
    let jobs: Vec<DeliveryJob> = (0..jobs_n)
        .map(|j| workload::job(&repos[j % repos_n], j))
        .collect::<Res<_>>()?;
    let record = |(j, job): (usize, &DeliveryJob)| {
        workload::sqs_record("tp", j, job.to_json(), &stack.queue_arn)
    };
    let event = json!({ "Records": jobs.iter().enumerate().map(record).collect::<Vec<_>>() });
    let urls = hook_urls(&sink, repos_n);
    ctx.progress(&format!(
        "deliver: seeding {repos_n} webhooks on {HOSTS} sink ports"
    ));
    let secrets = stack.seed(&repos, |i| urls[i].clone()).await?;
    let paced = stack.new_proxy().await?;
    paced.set_write_behind(Some(DYNAMODB_WRITE_LATENCY));
    let mut s = Setup {
        paced,
        stack,
        sink,
        repos,
        secrets,
        jobs,
        event,
        env: Vec::new(),
    };
    // The side measurements report their failure in place of figures.
    let soft = |r: Res<Value>| r.unwrap_or_else(|e| json!({ "error": e }));
    let mut out = json!({});
    if wanted("headline") {
        out["throughput"] = compare(ctx, &s, "headline", RECEIVER_DELAY, &urls).await?;
    }
    if wanted("instant") {
        out["instant"] = compare(ctx, &s, "instant", Duration::ZERO, &urls).await?;
    }
    if wanted("failing") {
        out["failing"] = soft(failure_workload(ctx, &s).await);
    }
    if wanted("single") {
        out["single"] = soft(single_jobs(ctx, &s).await);
    }
    if wanted("https") {
        out["https"] = soft(https(ctx, &mut s).await);
    }
    Ok(out)
}

/// The headline against a TLS sink: every webhook re-pointed at it, the
/// test CA handed to both contenders as `SSL_CERT_FILE` (an extra CA bundle).
async fn https(ctx: &Ctx, s: &mut Setup) -> Res<Value> {
    let options = Options {
        tls: true,
        ..Options::counting(HOSTS)
    };
    let tls = Receiver::start_with(options, Behaviour::status(204))
        .await
        .ctx("TLS sink")?;
    let ca = ctx.work.join("bench-test-ca.pem");
    std::fs::write(&ca, tls.ca_pem().unwrap_or_default()).ctx("CA file")?;
    let urls = hook_urls(&tls, s.repos.len());
    s.stack.seed(&s.repos, |i| urls[i].clone()).await?;
    s.env = vec![("SSL_CERT_FILE".into(), ca.display().to_string())];
    s.sink = tls;
    compare(ctx, s, "https", RECEIVER_DELAY, &urls).await
}

/// deliver against the bare client over `urls`, the sink answering after
/// `delay`, `ctx.sizes.rounds` rounds taking turns at going first.
async fn compare(ctx: &Ctx, s: &Setup, name: &str, delay: Duration, urls: &[String]) -> Res<Value> {
    let jobs_n = s.jobs.len();
    s.sink
        .set_behaviour(Behaviour::delay(delay, Behaviour::status(204)));
    let bare_file = ctx.work.join(format!("bare-requests-{name}.json"));
    let (body_bytes, headers) = write_bare_requests(&bare_file, s, urls)?;
    // deliver with paced writes is the contender; the headline also runs it
    // against moto's own write rate.
    let contenders = if name == "headline" {
        vec!["bare", "deliver", "moto"]
    } else {
        vec!["bare", "deliver"]
    };
    let (mut rounds, mut runs) = (Vec::new(), Vec::new());
    for round in 0..ctx.sizes.rounds {
        let mut row = json!({ "round": round + 1 });
        for k in 0..contenders.len() {
            let who = contenders[(k + round) % contenders.len()];
            let handshakes = s.sink.handshakes();
            if who == "bare" {
                row["bare"] = bare_once(ctx, s, &bare_file).await?;
                row["bare"]["handshakes"] = json!(s.sink.handshakes() - handshakes);
                continue;
            }
            let label = format!("{who}-{name}-{round}");
            let proxy = if who == "moto" {
                &s.stack.proxy
            } else {
                &s.paced
            };
            let d = deliver_once(ctx, s, proxy, s.event.clone(), &label).await?;
            if d.received != jobs_n || d.failures != 0 {
                let (got, failed, figures) = (d.received, d.failures, &d.figures);
                return Err(format!(
                    "{label}: the sink got {got} of {jobs_n}, {failed} records failed, figures {figures}"
                ));
            }
            let dur = ms(d.duration);
            let aws_ms = ms(busy_time(&d.calls, d.started, d.started + d.duration));
            row[who] = json!({
                "ms": dur, "per_s": rate(jobs_n, dur), "cpu_ms": d.cpu_ms,
                "sink_per_s": d.answers.map(|(a, b)| rate(jobs_n, ms(b - a))),
                "aws_busy_ms": aws_ms, "peak_rss_mib": mib(d.rss_kib), "machine_busy": d.machine_busy,
                "handshakes": s.sink.handshakes() - handshakes,
            });
            if who == "deliver" {
                runs.push(d);
            }
        }
        let per_s = |who: &str| row[who]["per_s"].as_f64().unwrap_or(0.0);
        let (d, b, n) = (per_s("deliver"), per_s("bare"), round + 1);
        ctx.progress(&format!(
            "deliver {name} round {n}: deliver {d:.0}/s, bare {b:.0}/s"
        ));
        rounds.push(row);
    }
    let _ = std::fs::remove_file(&bare_file);
    let figures = |who: &str, what: &str| {
        rounds
            .iter()
            .filter_map(|r| r[who][what].as_f64())
            .collect::<Vec<f64>>()
    };
    let med = |who: &str, what: &str| median(&figures(who, what));
    let per_webhook = |who: &str, what: &str| med(who, what) / jobs_n as f64;
    let cpu_us = |who: &str| per_webhook(who, "cpu_ms") * 1000.0;
    runs.sort_by_key(|d| d.duration);
    let median_run = runs
        .get((runs.len().max(1) - 1) / 2)
        .ok_or("no deliver round")?;
    let aws = tally(&median_run.calls);
    let reads = count(&aws, "dynamodb:BatchGetItem") + count(&aws, "dynamodb:GetItem");
    let writes = count(&aws, "dynamodb:") - reads;
    let max_rss = |who: &str| figures(who, "peak_rss_mib").into_iter().fold(0.0, f64::max);
    Ok(json!({
        "jobs": jobs_n, "repos": s.repos.len(), "hosts": HOSTS, "concurrency": CONCURRENCY,
        "per_host": PER_HOST, "delay_ms": ms(delay),
        "floor_per_s": (delay > Duration::ZERO).then(|| CONCURRENCY as f64 / delay.as_secs_f64()),
        "body_bytes": body_bytes, "headers": headers, "rounds": rounds,
        "bare_per_s": med("bare", "per_s"), "deliver_per_s": med("deliver", "per_s"),
        "ratio": med("deliver", "per_s") / med("bare", "per_s"),
        "dynamodb_write_latency_ms": ms(DYNAMODB_WRITE_LATENCY),
        "moto_per_s": (name == "headline").then(|| med("moto", "per_s")),
        "moto_ratio": (name == "headline").then(|| med("moto", "per_s") / med("bare", "per_s")),
        "sink_ratio": med("deliver", "sink_per_s") / med("bare", "sink_per_s"),
        "cpu_us_per_webhook": { "bare": cpu_us("bare"), "deliver": cpu_us("deliver") },
        "lambda_128mb_per_s": { "bare": lambda_share(cpu_us("bare")), "deliver": lambda_share(cpu_us("deliver")) },
        "handshakes_per_webhook": { "bare": per_webhook("bare", "handshakes"), "deliver": per_webhook("deliver", "handshakes") },
        "peak_rss_mib": max_rss("deliver"), "bare_peak_rss_mib": max_rss("bare"),
        "per_job": { "reads": reads / jobs_n as f64, "writes": writes / jobs_n as f64,
            "sqs": count(&aws, "sqs:") / jobs_n as f64 },
        "median_run": { "median_ms": ms(median_run.duration), "aws": aws, "timeline": median_run.timeline() },
    }))
}

/// Webhooks per second a Lambda of the template's memory size can sign and
/// send at `cpu_us` per webhook: Lambda gives CPU in proportion to memory,
/// one full vCPU at 1,769 MB, so 128 MB gets 128/1769 of one. Measured CPU
/// time per webhook is scaled, not emulated with a quota.
fn lambda_share(cpu_us: f64) -> f64 {
    LAMBDA_MB / FULL_VCPU_MB * 1e6 / cpu_us.max(1e-3)
}

/// The batch again with every 10th repository's endpoint answering 503. The
/// failing jobs go through the real delivery queue and come back with
/// ReceiveMessage, so deliver's ChangeMessageVisibilityBatch entries name real
/// in-flight messages that moto checks; the others keep synthetic handles,
/// which deliver never uses (queueing them all would only measure moto, whose
/// SendMessage is quadratic in the queue's length).
async fn failure_workload(ctx: &Ctx, s: &Setup) -> Res<Value> {
    let receiver = Receiver::start(Behaviour::status(503))
        .await
        .ctx("receiver")?;
    let failing: Vec<RepositoryName> = s.repos.iter().step_by(FAILING_EVERY).cloned().collect();
    let hook = |i| receiver.url(&format!("/hook/{i}"));
    s.stack.seed(&failing, hook).await?;
    let failing_jobs: Vec<&DeliveryJob> = (s.jobs.iter().enumerate())
        .filter(|(j, _)| (j % s.repos.len()).is_multiple_of(FAILING_EVERY))
        .map(|(_, job)| job)
        .collect();
    let received = queue_and_receive(s, &failing_jobs).await;
    let records = s.jobs.iter().enumerate().map(|(j, job)| {
        match received.as_ref().ok().and_then(|r| r.get(&job.image_ref())) {
            Some(m) => devstack::esm::event::record(m, &s.stack.queue_arn),
            None => workload::sqs_record("fa", j, job.to_json(), &s.stack.queue_arn),
        }
    });
    let event = json!({ "Records": records.collect::<Vec<_>>() });
    let run = match received {
        Ok(_) => deliver_once(ctx, s, &s.stack.proxy, event, "deliver-failing").await,
        Err(e) => Err(e),
    };
    // Whatever happened, leave the queue empty and the sink URLs back.
    let _ = s
        .stack
        .sqs
        .purge_queue()
        .queue_url(&s.stack.queue_url)
        .send()
        .await;
    let back = |i: usize| {
        s.sink
            .url_at(i * FAILING_EVERY, &format!("/hook/{}", i * FAILING_EVERY))
    };
    s.stack.seed(&failing, back).await?;
    let run = run?;
    let (receiver_got, ok_jobs) = (receiver.count(), s.jobs.len() - failing_jobs.len());
    if run.failures != failing_jobs.len()
        || receiver_got != failing_jobs.len()
        || run.received != ok_jobs
    {
        return Err(format!(
            "failure workload: {} reported failed of {}, the 503 receiver got {receiver_got}, the sink {} of {ok_jobs}; figures {}",
            run.failures, failing_jobs.len(), run.received, run.figures
        ));
    }
    let aws = tally(&run.calls);
    Ok(json!({
        "jobs": s.jobs.len(), "failing_jobs": failing_jobs.len(), "failing_repos": failing.len(),
        "reported_failures": run.failures, "receiver_got": receiver_got,
        "sqs_per_failed_job": count(&aws, "sqs:") / failing_jobs.len().max(1) as f64,
        "aws": aws, "figures": run.figures,
    }))
}

/// Sends `jobs` to the delivery queue and receives them back, by image.
async fn queue_and_receive(s: &Setup, jobs: &[&DeliveryJob]) -> Res<HashMap<String, Message>> {
    let q = &s.stack.queue_url;
    for chunk in jobs.chunks(10) {
        let mut send = s.stack.sqs.send_message_batch().queue_url(q);
        for (i, job) in chunk.iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder().id(i.to_string());
            send = send.entries(
                entry
                    .message_body(job.to_json())
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        if !send.send().await.ctx("SendMessageBatch")?.failed.is_empty() {
            return Err("SendMessageBatch: entries failed".into());
        }
    }
    let (mut received, mut empty) = (HashMap::new(), 0);
    while received.len() < jobs.len() && empty < 3 {
        let got = s.stack.receive_jobs().await?;
        empty = if got.is_empty() { empty + 1 } else { 0 };
        received.extend(got.into_iter().map(|(job, m)| (job.image_ref(), m)));
    }
    if received.len() != jobs.len() {
        return Err(format!(
            "received {} of {} queued jobs back",
            received.len(),
            jobs.len()
        ));
    }
    Ok(received)
}

/// A warm deliver process invoked with one job at a time: what every
/// invocation of a design without batching looks like (after one warm-up).
async fn single_jobs(ctx: &Ctx, s: &Setup) -> Res<Value> {
    let extra = [("ALLOW_PRIVATE_TARGETS", "true")];
    let env = s.stack.env(&s.stack.proxy.endpoint(), &extra);
    let (f, _log) = start_function(ctx, "deliver", "deliver-single", &env, TIMEOUT).await?;
    let mut durations = Vec::new();
    for k in 0..=ctx.sizes.singles {
        let j = s.jobs.len() + k;
        let job = workload::job(&s.repos[k % s.repos.len()], j)?;
        let record = workload::sqs_record("sj", j, job.to_json(), &s.stack.queue_arn);
        if k == 1 {
            s.stack.proxy.reset_counts();
        }
        let before = s.sink.count();
        let inv = f
            .invoke(json!({ "Records": vec![record] }), TIMEOUT)
            .await
            .ctx("invoking deliver")?;
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
        "billed_ms_mean": crate::stats::mean_billed(&durations), "aws": tally(&s.stack.proxy.take_calls()),
    }))
}
