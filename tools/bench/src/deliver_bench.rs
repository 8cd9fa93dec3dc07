//! Measurements 1–3 for `deliver`: one big batch against a fast sink, side by
//! side with a bare reqwest client sending the same requests (throughput,
//! peak memory, AWS calls); the same batch with 10% of the endpoints failing
//! (retries, visibility changes on real receipt handles); and single-job
//! invocations (the per-event cost of a design without batching).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use devstack::receiver::{Behaviour, Receiver, Sink};
use devstack::runtime_api::workspace_binary;
use futures::stream::{self, StreamExt as _};
use serde_json::{json, Value};
use shared::adapters::DynamoStore;
use shared::domain::{validate_webhook_url, DeliveryJob, RepositoryName};
use shared::ports::WebhookStore as _;
use shared::webhook::{build_request, WebhookSecret};

use crate::meter::{busy_time, units_of, Units};
use crate::stack::{self, function_env, start_function, Chain, Stack};
use crate::workload;
use crate::{Ctx, Res};

pub const REGISTRY_HOST: &str = "container.alin.io";
pub const HOSTS: usize = 16;
pub const CONCURRENCY: usize = 64;
pub const PER_HOST: usize = 4;
/// Share of repositories whose endpoint answers 503 in the failure workload.
pub const FAILING_EVERY: usize = 10;
const INVOKE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct BareRun {
    pub elapsed: Duration,
    /// CPU time of the bare client while sending, ms.
    pub cpu_ms: Option<f64>,
    /// Share of the machine's CPU busy meanwhile (all processes).
    pub machine_busy: Option<f64>,
    /// First request → last request as the sink saw them.
    pub sink_window: Option<Duration>,
    pub ok: u64,
    pub peak_rss_kib: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct DeliverRun {
    /// The invocation's duration (Runtime API: event handed out → answer).
    pub duration: Duration,
    /// Wall time inside the invocation with at least one AWS call in flight.
    pub aws_busy: Duration,
    /// Per AWS operation: (calls, wall time with a call of it in flight).
    pub op_busy: BTreeMap<String, Duration>,
    pub peak_rss_kib: Option<u64>,
    /// VmHWM after init, before the invocation.
    pub rss_before_kib: Option<u64>,
    /// Calls per operation, from devstack's AwsProxy.
    pub counts: BTreeMap<String, u64>,
    pub units: Units,
    /// deliver's own figures (its EMF line).
    pub figures: Option<Value>,
    pub reported_failures: usize,
    pub sink_received: u64,
    /// First request → last request as the sink saw them.
    pub sink_window: Option<Duration>,
    /// Where the CPU went during the sending phase.
    pub sending_cpu: Option<PhaseCpu>,
    /// CPU time of the deliver process during the invocation, ms.
    pub cpu_ms: Option<f64>,
    /// Share of the machine's CPU busy meanwhile (all processes).
    pub machine_busy: Option<f64>,
    /// What happened when, from the event being handed out: (what, from, to).
    pub timeline: Vec<(String, Duration, Duration)>,
}

impl DeliverRun {
    pub fn count(&self, op: &str) -> u64 {
        self.counts.get(op).copied().unwrap_or(0)
    }
    pub fn figure(&self, name: &str) -> u64 {
        self.figures
            .as_ref()
            .and_then(|f| f.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

pub struct Throughput {
    pub jobs: usize,
    pub repos: usize,
    pub bare: Vec<BareRun>,
    pub deliver: Vec<DeliverRun>,
    /// Diagnostic: deliver against a DynamoDB stub answering at once.
    pub instant: Vec<DeliverRun>,
    /// Size of one repository record after the runs (DynamoDB item size).
    pub record_bytes: Option<usize>,
    pub body_bytes: usize,
    pub headers: usize,
    /// Size of the SQS event handed to deliver (JSON).
    pub event_bytes: usize,
}

pub struct Failure {
    pub jobs: usize,
    pub failing_jobs: usize,
    pub failing_repos: usize,
    pub run: DeliverRun,
    pub receiver_got: usize,
}

pub struct SingleJobs {
    pub durations_ms: Vec<f64>,
    pub counts: BTreeMap<String, u64>,
    pub units: Units,
    pub invocations: usize,
}

pub struct DeliverResults {
    pub throughput: Throughput,
    pub failure: Result<Failure, String>,
    pub single: Result<SingleJobs, String>,
}

fn deliver_env(ctx: &Ctx, stack: &Stack, chain: &Chain) -> Vec<(String, String)> {
    function_env(
        &ctx.moto,
        stack,
        &chain.endpoint(),
        &[
            ("ALLOW_PRIVATE_TARGETS", "true"),
            ("DELIVERY_CONCURRENCY", &CONCURRENCY.to_string()),
            ("PER_HOST_CONCURRENCY", &PER_HOST.to_string()),
        ],
    )
}

/// One cold `deliver` process, one invocation with `event`.
async fn deliver_once(
    ctx: &Ctx,
    stack: &Stack,
    chain: &Chain,
    event: Value,
    label: &str,
    sink: &Arc<Sink>,
    expected: u64,
) -> Res<DeliverRun> {
    let env = deliver_env(ctx, stack, chain);
    let (f, log) = start_function("deliver", &env, &ctx.logs, label, INVOKE_TIMEOUT).await?;
    chain.reset();
    let before = sink.count();
    let watch = watch_sink(sink.clone(), before, expected, Some(f.pid()));
    let rss_before_kib = f.peak_rss_kib();
    let (cpu0, jiffies0) = (
        crate::stats::process_cpu_ms(f.pid()),
        crate::stats::machine_jiffies(),
    );
    let inv = f
        .invoke(event, INVOKE_TIMEOUT)
        .await
        .map_err(|e| format!("invoking deliver: {e}"))?;
    let cpu_ms = crate::stats::process_cpu_ms(f.pid())
        .zip(cpu0)
        .map(|(a, b)| a - b);
    let machine_busy = crate::stats::busy_share(jiffies0, crate::stats::machine_jiffies());
    let peak_rss_kib = f.peak_rss_kib();
    let sink_received = sink.count() - before;
    let sink_span = finish_watch(watch).await;
    let calls = chain.meter.take();
    let counts = chain.counts(&calls);
    let _ = f.stop().await;
    let response = inv
        .ok()
        .ok_or_else(|| format!("deliver failed: {:?}", inv.error()))?;
    let reported_failures = response
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let end = inv.started_at + inv.duration;
    let at = |t: Instant| t.saturating_duration_since(inv.started_at);
    let mut timeline: Vec<(String, Duration, Duration)> = Vec::new();
    let mut by_op: BTreeMap<String, Vec<crate::meter::Call>> = BTreeMap::new();
    for c in &calls {
        by_op.entry(c.op.clone()).or_default().push(c.clone());
    }
    let op_busy = by_op
        .iter()
        .map(|(op, cs)| (op.clone(), busy_time(cs, inv.started_at, end)))
        .collect();
    for (op, cs) in &by_op {
        if let (Some(s), Some(e)) = (
            cs.iter().map(|c| c.start).min(),
            cs.iter().map(|c| c.end).max(),
        ) {
            timeline.push((format!("`{op}` calls"), at(s), at(e)));
        }
    }
    if let Some((first, last)) = &sink_span {
        timeline.push((
            "webhook POSTs arriving at the sink".into(),
            at(first.at),
            at(last.at),
        ));
    }
    timeline.sort_by_key(|(_, s, _)| *s);
    Ok(DeliverRun {
        duration: inv.duration,
        aws_busy: busy_time(&calls, inv.started_at, end),
        op_busy,
        peak_rss_kib,
        rss_before_kib,
        counts,
        units: units_of(&calls),
        figures: stack::last_emf(&log),
        reported_failures,
        sink_received,
        sink_window: sink_span.map(|(f, l)| l.at - f.at),
        sending_cpu: sink_span.map(|(f, l)| phase_cpu(&f, &l)),
        cpu_ms,
        machine_busy,
        timeline,
    })
}

async fn bare_once(ctx: &Ctx, file: &Path, sink: &Arc<Sink>, jobs: usize) -> Res<BareRun> {
    let before = sink.count();
    let watch = watch_sink(sink.clone(), before, jobs as u64, None);
    let jiffies0 = crate::stats::machine_jiffies();
    let out = tokio::process::Command::new(workspace_binary("bare-client"))
        .arg(file)
        .arg(CONCURRENCY.to_string())
        .arg(PER_HOST.to_string())
        .current_dir(&ctx.root)
        .output()
        .await
        .map_err(|e| format!("running bare-client: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bare-client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bare-client output: {e}"))?;
    let machine_busy = crate::stats::busy_share(jiffies0, crate::stats::machine_jiffies());
    let ok = v["ok"].as_u64().unwrap_or(0);
    let got = sink.count() - before;
    let sink_window = finish_watch(watch).await.map(|(f, l)| l.at - f.at);
    if ok != jobs as u64 || got != jobs as u64 {
        return Err(format!(
            "bare-client: {ok} of {jobs} answered 2xx, the sink got {got}"
        ));
    }
    Ok(BareRun {
        elapsed: Duration::from_micros(v["elapsed_us"].as_u64().unwrap_or(0)),
        cpu_ms: v["cpu_ms"].as_f64(),
        machine_busy,
        sink_window,
        ok,
        peak_rss_kib: v["peak_rss_kib"].as_u64(),
    })
}

/// The requests deliver will send, built beforehand with the same code, for
/// the bare client. Returns (body bytes of the first, header count).
fn write_bare_requests(
    file: &Path,
    jobs: &[DeliveryJob],
    repo_of: &[usize],
    urls: &[String],
    secrets: &[WebhookSecret],
) -> Res<(usize, usize)> {
    let now = time::OffsetDateTime::now_utc();
    let mut list = Vec::with_capacity(jobs.len());
    let mut first = (0, 0);
    for (i, job) in jobs.iter().enumerate() {
        let r = repo_of[i];
        let req = build_request(job, REGISTRY_HOST, &secrets[r], now);
        if i == 0 {
            first = (req.body.len(), req.headers.len());
        }
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        list.push(json!({
            "url": urls[r],
            "headers": headers,
            "body": String::from_utf8_lossy(&req.body),
        }));
    }
    std::fs::write(file, Value::Array(list).to_string())
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(first)
}

/// DynamoDB's item size of one record: attribute names plus values.
async fn record_bytes(ddb: &aws_sdk_dynamodb::Client, table: &str, repo: &str) -> Option<usize> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::adapters::dynamo::{PK, SK, SK_REPO};
    let out = ddb
        .get_item()
        .table_name(table)
        .key(PK, AttributeValue::S(format!("repo#{repo}")))
        .key(SK, AttributeValue::S(SK_REPO.into()))
        .consistent_read(true)
        .send()
        .await
        .ok()?;
    let item = out.item?;
    let size = item
        .iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                    _ => 64,
                }
        })
        .sum();
    Some(size)
}

pub async fn run(ctx: &Ctx, jobs_n: usize, repos_n: usize, rounds: usize) -> Res<DeliverResults> {
    let stack = Stack::create(&ctx.moto, &ctx.root, "tp").await?;
    let chain = Chain::start(&ctx.moto).await?;
    let direct = stack::sdk(ctx.moto.endpoint()).await;
    let ddb = aws_sdk_dynamodb::Client::new(&direct);
    let store = DynamoStore::new(ddb.clone(), &stack.table);
    let sink = Arc::new(Sink::start(HOSTS).await.map_err(|e| format!("sink: {e}"))?);
    let repos = workload::repos("tp", repos_n)?;
    let urls: Vec<String> = (0..repos_n)
        .map(|i| sink.url(i % HOSTS, &format!("/hook/{i}")))
        .collect();
    ctx.progress(&format!(
        "deliver: seeding {repos_n} webhooks on {HOSTS} sink ports"
    ));
    let secrets = stack::seed(&store, &repos, |i| urls[i].clone()).await?;

    // Job j goes to repository j % repos: every repository gets jobs/repos
    // jobs, all with distinct tags.
    let repo_of: Vec<usize> = (0..jobs_n).map(|j| j % repos_n).collect();
    let jobs: Vec<DeliveryJob> = (0..jobs_n)
        .map(|j| workload::job(&repos[repo_of[j]], j))
        .collect::<Res<_>>()?;
    let records: Vec<Value> = jobs
        .iter()
        .enumerate()
        .map(|(j, job)| workload::sqs_record("tp", j, job.to_json(), &stack.queue_arn))
        .collect();
    let event = workload::sqs_event(records);
    let event_bytes = event.to_string().len();
    let bare_file = ctx.work.join("bare-requests.json");
    let (body_bytes, headers) = write_bare_requests(&bare_file, &jobs, &repo_of, &urls, &secrets)?;

    // The diagnostic contender: the same deliver against a DynamoDB stub
    // answering at once from a snapshot of the seeded table.
    let items = crate::fake_dynamo::snapshot(ctx.moto.endpoint(), &stack.table).await?;
    if items.len() < repos_n {
        return Err(format!(
            "table snapshot has {} items for {repos_n} repositories",
            items.len()
        ));
    }
    let fake = crate::fake_dynamo::FakeDynamo::start(items).await?;
    let fake_chain = Chain::to(&fake.endpoint()).await?;

    let mut bare = Vec::new();
    let mut deliver = Vec::new();
    let mut instant = Vec::new();
    for round in 0..rounds {
        // Rotate which goes first so none always runs on a warmer machine.
        for k in 0..3 {
            let which = (k + round) % 3;
            if which == 0 {
                let b = bare_once(ctx, &bare_file, &sink, jobs_n).await?;
                ctx.progress(&format!(
                    "round {}: bare reqwest {} POSTs in {:.0} ms ({:.0}/s)",
                    round + 1,
                    jobs_n,
                    crate::stats::ms(b.elapsed),
                    jobs_n as f64 / b.elapsed.as_secs_f64()
                ));
                bare.push(b);
                continue;
            }
            let (chain, label, what) = if which == 1 {
                (&chain, format!("deliver-throughput-{round}"), "deliver")
            } else {
                (
                    &fake_chain,
                    format!("deliver-instant-ddb-{round}"),
                    "deliver (DynamoDB stub)",
                )
            };
            let d = deliver_once(
                ctx,
                &stack,
                chain,
                event.clone(),
                &label,
                &sink,
                jobs_n as u64,
            )
            .await?;
            if d.sink_received != jobs_n as u64 || d.reported_failures != 0 {
                return Err(format!(
                    "{what} round {}: the sink got {} of {jobs_n}, {} records reported failed, figures {:?}",
                    round + 1,
                    d.sink_received,
                    d.reported_failures,
                    d.figures
                ));
            }
            ctx.progress(&format!(
                "round {}: {what} {} jobs in {:.0} ms ({:.0}/s), AWS calls in flight {:.0} ms, peak RSS {} KiB",
                round + 1,
                jobs_n,
                crate::stats::ms(d.duration),
                jobs_n as f64 / d.duration.as_secs_f64(),
                crate::stats::ms(d.aws_busy),
                d.peak_rss_kib.unwrap_or(0)
            ));
            ctx.progress(&format!(
                "  timeline: {}",
                d.timeline
                    .iter()
                    .map(|(w, a, b)| format!(
                        "{w} {:.0}–{:.0} ms",
                        crate::stats::ms(*a),
                        crate::stats::ms(*b)
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            if which == 1 {
                deliver.push(d);
            } else {
                instant.push(d);
            }
        }
    }
    drop(fake_chain);
    drop(fake);
    let _ = std::fs::remove_file(&bare_file);
    let record_bytes = record_bytes(&ddb, &stack.table, repos[0].as_str()).await;
    let throughput = Throughput {
        jobs: jobs_n,
        repos: repos_n,
        bare,
        deliver,
        instant,
        record_bytes,
        body_bytes,
        headers,
        event_bytes,
    };

    ctx.progress("deliver: the same batch with 10% of endpoints answering 503");
    let failure = failure_workload(
        ctx, &stack, &chain, &store, &direct, &repos, &jobs, &repo_of, &sink,
    )
    .await;
    ctx.progress("deliver: single-job invocations (the unbatched design)");
    let single = single_jobs(ctx, &stack, &chain, &repos, &sink, jobs_n).await;
    Ok(DeliverResults {
        throughput,
        failure,
        single,
    })
}

#[allow(clippy::too_many_arguments)]
async fn failure_workload(
    ctx: &Ctx,
    stack: &Stack,
    chain: &Chain,
    store: &DynamoStore,
    direct: &aws_config::SdkConfig,
    repos: &[RepositoryName],
    jobs: &[DeliveryJob],
    repo_of: &[usize],
    sink: &Arc<Sink>,
) -> Res<Failure> {
    let receiver = Receiver::start(Behaviour::status(503))
        .await
        .map_err(|e| format!("receiver: {e}"))?;
    let now = shared::domain::time::rfc3339(time::OffsetDateTime::now_utc());
    let failing: Vec<usize> = (0..repos.len())
        .filter(|i| i % FAILING_EVERY == 0)
        .collect();
    for &i in &failing {
        let url = validate_webhook_url(&receiver.url(&format!("/hook/{i}")), true)
            .map_err(|e| e.to_string())?;
        store
            .put_url(&repos[i], &url, &now)
            .await
            .map_err(|e| format!("put_url: {e}"))?;
    }
    let failing_idx: Vec<usize> = (0..jobs.len())
        .filter(|&j| repo_of[j].is_multiple_of(FAILING_EVERY))
        .collect();
    let failing_jobs = failing_idx.len();

    // Real receipt handles for the jobs that will fail (the only ones whose
    // visibility deliver changes): they go through the real delivery queue
    // and come back with ReceiveMessage, as the event source mapping gets
    // them, so deliver's ChangeMessageVisibilityBatch entries are checked by
    // moto. The succeeding jobs keep synthetic handles, which deliver never
    // uses (queueing all of them would cost moto O(n²) time: it recomputes
    // the queue's attributes over every message on each send).
    let sqs = aws_sdk_sqs::Client::new(direct);
    let sent_at = Instant::now();
    let chunks: Vec<Vec<SendMessageBatchRequestEntry>> = failing_idx
        .chunks(10)
        .map(|c| {
            c.iter()
                .enumerate()
                .filter_map(|(i, &j)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(jobs[j].to_json())
                        .build()
                        .ok()
                })
                .collect()
        })
        .collect();
    let results: Vec<Result<usize, String>> = stream::iter(chunks)
        .map(|entries| {
            let sqs = sqs.clone();
            async move {
                let out = sqs
                    .send_message_batch()
                    .queue_url(&stack.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| format!("SendMessageBatch: {e}"))?;
                if !out.failed.is_empty() {
                    return Err(format!("SendMessageBatch: {} failed", out.failed.len()));
                }
                Ok(out.successful.len())
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut sent = 0;
    for r in results {
        sent += r?;
    }
    let mut received: HashMap<String, aws_sdk_sqs::types::Message> = HashMap::new();
    let mut empty = 0;
    while received.len() < sent && empty < 3 {
        let out = sqs
            .receive_message()
            .queue_url(&stack.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {e}"))?;
        let got = out.messages.unwrap_or_default();
        if got.is_empty() {
            empty += 1;
        } else {
            empty = 0;
        }
        for m in got {
            let job = DeliveryJob::parse(m.body().unwrap_or_default())
                .map_err(|e| format!("a received job does not parse: {e}"))?;
            received.insert(job.image_ref(), m);
        }
    }
    if received.len() != failing_jobs {
        return Err(format!(
            "received {} of {failing_jobs} queued jobs back",
            received.len()
        ));
    }
    ctx.progress(&format!(
        "queued and received the {failing_jobs} failing jobs in {:.1} s (moto)",
        sent_at.elapsed().as_secs_f64()
    ));
    let records: Vec<Value> = jobs
        .iter()
        .enumerate()
        .map(|(j, job)| match received.get(&job.image_ref()) {
            Some(m) => devstack::esm::event::record(m, &stack.queue_arn),
            None => workload::sqs_record("fa", j, job.to_json(), &stack.queue_arn),
        })
        .collect();
    let real = records
        .iter()
        .filter(|r| {
            !r["receiptHandle"]
                .as_str()
                .unwrap_or("")
                .contains("synthetic")
        })
        .count();
    if real != failing_jobs {
        return Err(format!(
            "{real} records with real handles, expected {failing_jobs}"
        ));
    }
    drop(received);
    let event = workload::sqs_event(records);
    let ok_expected = (jobs.len() - failing_jobs) as u64;
    let run = deliver_once(
        ctx,
        stack,
        chain,
        event,
        "deliver-failing",
        sink,
        ok_expected,
    )
    .await;
    // Whatever happened, leave the queue empty for what follows.
    let _ = sqs.purge_queue().queue_url(&stack.queue_url).send().await;
    let run = run?;
    let receiver_got = receiver.count();
    let ok_jobs = (jobs.len() - failing_jobs) as u64;
    if run.reported_failures != failing_jobs
        || receiver_got != failing_jobs
        || run.sink_received != ok_jobs
    {
        return Err(format!(
            "failure workload: {} reported failed (expected {failing_jobs}), the 503 receiver got {receiver_got}, the sink {} of {ok_jobs}; figures {:?}",
            run.reported_failures, run.sink_received, run.figures
        ));
    }
    // Put the failing repositories back on the sink for later runs.
    for &i in &failing {
        let url = validate_webhook_url(&sink.url(i % HOSTS, &format!("/hook/{i}")), true)
            .map_err(|e| e.to_string())?;
        store
            .put_url(&repos[i], &url, &now)
            .await
            .map_err(|e| format!("put_url: {e}"))?;
    }
    Ok(Failure {
        jobs: jobs.len(),
        failing_jobs,
        failing_repos: failing.len(),
        run,
        receiver_got,
    })
}

/// A warm deliver process invoked with one job at a time: what every
/// invocation of a design without batching looks like.
async fn single_jobs(
    ctx: &Ctx,
    stack: &Stack,
    chain: &Chain,
    repos: &[RepositoryName],
    sink: &Arc<Sink>,
    first_index: usize,
) -> Res<SingleJobs> {
    let n = if ctx.small { 10 } else { 50 };
    let env = deliver_env(ctx, stack, chain);
    let (f, _log) =
        start_function("deliver", &env, &ctx.logs, "deliver-single", INVOKE_TIMEOUT).await?;
    // One warm-up invocation (connection set-up), not counted.
    let mut durations = Vec::new();
    let mut counted = 0;
    for k in 0..=n {
        let j = first_index + k;
        let job = workload::job(&repos[k % repos.len()], j)?;
        let event = workload::sqs_event(vec![workload::sqs_record(
            "sj",
            j,
            job.to_json(),
            &stack.queue_arn,
        )]);
        if k == 1 {
            chain.reset();
        }
        let before = sink.count();
        let inv = f
            .invoke(event, INVOKE_TIMEOUT)
            .await
            .map_err(|e| format!("invoking deliver: {e}"))?;
        if !inv.is_ok() || sink.count() != before + 1 {
            return Err(format!("single-job deliver failed: {:?}", inv.outcome));
        }
        if k >= 1 {
            durations.push(crate::stats::ms(inv.duration));
            counted += 1;
        }
    }
    let calls = chain.meter.take();
    let counts = chain.counts(&calls);
    let _ = f.stop().await;
    Ok(SingleJobs {
        durations_ms: durations,
        counts,
        units: units_of(&calls),
        invocations: counted,
    })
}

/// A moment of the sending phase: when, and the CPU clocks then.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub at: Instant,
    /// CPU ms of the sending process (deliver), when watched.
    pub sender_cpu: Option<f64>,
    /// CPU ms of this benchmark process (the sink, the proxies).
    pub bench_cpu: Option<f64>,
    /// Busy and total jiffies of the machine.
    pub jiffies: Option<(u64, u64)>,
}

impl Mark {
    fn now(sender: Option<u32>) -> Mark {
        Mark {
            at: Instant::now(),
            sender_cpu: sender.and_then(crate::stats::process_cpu_ms),
            bench_cpu: crate::stats::process_cpu_ms(std::process::id()),
            jiffies: crate::stats::machine_jiffies(),
        }
    }
}

/// Where the CPU went between the first and the last request at the sink.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseCpu {
    pub wall_ms: f64,
    pub sender_ms: Option<f64>,
    pub bench_ms: Option<f64>,
    /// All CPUs' busy time, ms.
    pub machine_busy_ms: Option<f64>,
    pub machine_capacity_ms: Option<f64>,
}

fn phase_cpu(a: &Mark, b: &Mark) -> PhaseCpu {
    let wall_ms = crate::stats::ms(b.at - a.at);
    let share = crate::stats::busy_share(a.jiffies, b.jiffies);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    PhaseCpu {
        wall_ms,
        sender_ms: b.sender_cpu.zip(a.sender_cpu).map(|(x, y)| x - y),
        bench_ms: b.bench_cpu.zip(a.bench_cpu).map(|(x, y)| x - y),
        machine_busy_ms: share.map(|s| s * wall_ms * cpus),
        machine_capacity_ms: Some(wall_ms * cpus),
    }
}

/// Watches the sink every millisecond until it has `n` more requests than
/// `base`: the first and last arrival, i.e. the sending phase as the
/// receiving side saw it (±1 ms), measured the same way for both senders,
/// with the CPU clocks at both ends. Abort it to stop early.
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

/// The watcher's window once it has seen everything (it polls every ms, so
/// give it a moment), or nothing if the sink never got all requests.
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
