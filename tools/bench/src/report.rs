//! The outputs: a summary table on stdout, the Markdown report, and the SVG
//! plots (drawn here, no plotting library).

use std::fmt::Write as _;
use std::path::Path;

use crate::coldstart::FUNCTIONS;
use crate::cost::{self, Design, PerPush};
use crate::deliver_bench::{DeliverRun, Throughput, CONCURRENCY, HOSTS, PER_HOST};
use crate::ingest_bench::BATCH;
use crate::stats::{mean, median, ms, percentile};
use crate::{Res, Results};

mod notes;
mod svg;

use notes::{cold_note, latency_note, rss_note, tp_limits};
use svg::{bar_chart, cdf_chart};

pub fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    )
}

// ------------------------------------------------------------------ machine

struct Machine {
    nproc: usize,
    memory: String,
    cpu: String,
    kernel: String,
    rustc: String,
}

fn machine() -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory,
        cpu,
        kernel,
        rustc,
    }
}

// ------------------------------------------------------------------ formatting

fn thousands(n: f64) -> String {
    let n = n.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn money(x: f64) -> String {
    if x == 0.0 {
        "$0".into()
    } else if x < 0.01 {
        format!("${x:.4}")
    } else {
        format!("${x:.3}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn per(n: f64) -> String {
    if n == 0.0 {
        "0".into()
    } else if n >= 0.1 {
        format!("{n:.3}")
    } else {
        format!("{n:.4}")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Met,
    Missed,
    Info,
}

impl Verdict {
    fn of(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }
    fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Info => "",
        }
    }
}

struct Row {
    figure: String,
    value: String,
    target: String,
    verdict: Verdict,
}

fn row(
    figure: impl Into<String>,
    value: impl Into<String>,
    target: impl Into<String>,
    v: Verdict,
) -> Row {
    Row {
        figure: figure.into(),
        value: value.into(),
        target: target.into(),
        verdict: v,
    }
}

// ------------------------------------------------------------------ derived figures

struct TpFigures {
    bare_rates: Vec<f64>,
    deliver_rates: Vec<f64>,
    bare_median: f64,
    deliver_median: f64,
    ratio: f64,
    ratio_best: f64,
    /// First → last request at the sink, as rates, for both senders.
    bare_sink_rates: Vec<f64>,
    deliver_sink_rates: Vec<f64>,
    bare_sink_median: f64,
    deliver_sink_median: f64,
    ratio_sink: f64,
    /// Diagnostic: deliver against the instant DynamoDB stub.
    instant_rates: Vec<f64>,
    instant_median: f64,
    ratio_instant: f64,
    median_run: DeliverRun,
    peak_rss_kib: u64,
}

fn tp_figures(t: &Throughput) -> Option<TpFigures> {
    if t.bare.is_empty() || t.deliver.is_empty() {
        return None;
    }
    let n = t.jobs as f64;
    let bare_rates: Vec<f64> = t.bare.iter().map(|b| n / b.elapsed.as_secs_f64()).collect();
    let deliver_rates: Vec<f64> = t
        .deliver
        .iter()
        .map(|d| n / d.duration.as_secs_f64())
        .collect();

    let window_rate =
        |w: Option<std::time::Duration>| w.map_or(0.0, |w| n / w.as_secs_f64().max(1e-6));
    let bare_sink_rates: Vec<f64> = t.bare.iter().map(|b| window_rate(b.sink_window)).collect();
    let deliver_sink_rates: Vec<f64> = t
        .deliver
        .iter()
        .map(|d| window_rate(d.sink_window))
        .collect();
    let bare_sink_median = median(&bare_sink_rates);
    let deliver_sink_median = median(&deliver_sink_rates);
    let instant_rates: Vec<f64> = t
        .instant
        .iter()
        .map(|d| n / d.duration.as_secs_f64())
        .collect();
    let instant_median = median(&instant_rates);
    let bare_median = median(&bare_rates);
    let deliver_median = median(&deliver_rates);
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    // The run whose duration is the median (the lower middle for even counts).
    let mut by_duration: Vec<&DeliverRun> = t.deliver.iter().collect();
    by_duration.sort_by_key(|d| d.duration);
    let median_run = by_duration[(by_duration.len() - 1) / 2].clone();
    Some(TpFigures {
        ratio: deliver_median / bare_median,
        ratio_best: best(&deliver_rates) / best(&bare_rates),
        ratio_sink: deliver_sink_median / bare_sink_median.max(1e-9),
        ratio_instant: instant_median / bare_median,
        instant_rates,
        instant_median,
        bare_sink_rates,
        deliver_sink_rates,
        bare_sink_median,
        deliver_sink_median,
        bare_rates,
        deliver_rates,
        bare_median,
        deliver_median,
        median_run,
        peak_rss_kib: t
            .deliver
            .iter()
            .filter_map(|d| d.peak_rss_kib)
            .max()
            .unwrap_or(0),
    })
}

fn reads(run: &DeliverRun) -> u64 {
    run.count("dynamodb:BatchGetItem") + run.count("dynamodb:GetItem") + run.count("dynamodb:Query")
}

fn writes(run: &DeliverRun) -> u64 {
    run.count("dynamodb:UpdateItem")
        + run.count("dynamodb:PutItem")
        + run.count("dynamodb:DeleteItem")
        + run.count("dynamodb:TransactWriteItems")
        + run.count("dynamodb:BatchWriteItem")
}

fn sqs_calls(run: &DeliverRun) -> u64 {
    run.counts
        .iter()
        .filter(|(k, _)| k.starts_with("sqs:"))
        .map(|(_, v)| v)
        .sum()
}

fn mean_billed(samples_ms: &[f64]) -> f64 {
    mean(
        &samples_ms
            .iter()
            .map(|&d| cost::billed_ms(d))
            .collect::<Vec<_>>(),
    )
}

const SQS_REGISTRY_SEND: &str = "registry's SendMessage into the registry-events queue";
const SQS_REGISTRY_POLL: &str = "ReceiveMessage + DeleteMessageBatch on the registry-events queue";
const SQS_SEND: &str = "SendMessage(Batch) by ingest to the delivery queue";
const SQS_RECEIVE: &str = "ReceiveMessage by the delivery queue's event source mapping";
const SQS_DELETE: &str = "DeleteMessage(Batch) by that event source mapping";
const SQS_VISIBILITY: &str = "ChangeMessageVisibilityBatch by deliver (retries)";
const SQS_ORDER: [&str; 6] = [
    SQS_REGISTRY_SEND,
    SQS_REGISTRY_POLL,
    SQS_SEND,
    SQS_RECEIVE,
    SQS_DELETE,
    SQS_VISIBILITY,
];

/// Rows of the cost table in a fixed order: Lambda, SQS, DynamoDB.
fn line_rank(name: &str) -> usize {
    if name.starts_with("Lambda") {
        0
    } else if name.starts_with("ingest") {
        1
    } else if name.starts_with("deliver") {
        2
    } else if let Some(i) = SQS_ORDER.iter().position(|s| name.ends_with(s)) {
        10 + i
    } else if name.contains("read") {
        30
    } else {
        31
    }
}

fn designs(r: &Results) -> Option<Vec<Design>> {
    let d = r.deliver.as_ref().ok()?;
    let tp = tp_figures(&d.throughput)?;
    let single = d.single.as_ref().ok()?;
    let ing = r.ingest.as_ref().ok()?;
    let jobs = d.throughput.jobs as f64;
    let run = &tp.median_run;

    let ingest_http_billed = mean_billed(&ing.http.durations_ms);
    let pushes = ing.http.pushes.max(1) as f64;
    let http_send_calls = ing
        .http
        .counts
        .get("sqs:SendMessageBatch")
        .copied()
        .unwrap_or(0) as f64
        / pushes;
    let http_rru = ing.http.units.rru / pushes;
    let single_billed = mean_billed(&single.durations_ms);
    let single_n = single.invocations.max(1) as f64;

    let batched_deliver = PerPush {
        deliver_invocations: 1.0 / jobs,
        deliver_billed_ms: cost::billed_ms(ms(run.duration)) / jobs,
        rru: run.units.rru / jobs,
        wru: run.units.wru / jobs,
        in_flight: CONCURRENCY as f64,
        ..PerPush::default()
    };
    let esm_receive = 0.1;
    let esm_delete = 0.1;
    let cmvb = run.count("sqs:ChangeMessageVisibilityBatch") as f64 / jobs;

    let naive = PerPush {
        ingest_invocations: 1.0,
        ingest_billed_ms: ingest_http_billed,
        deliver_invocations: 1.0,
        deliver_billed_ms: single_billed,
        sqs: vec![(SQS_SEND, 1.0), (SQS_RECEIVE, 1.0), (SQS_DELETE, 1.0)],
        rru: 1.0,
        wru: 1.0,
        in_flight: 1.0,
    };
    let ours_http = PerPush {
        ingest_invocations: 1.0,
        ingest_billed_ms: ingest_http_billed,
        sqs: vec![
            (SQS_SEND, http_send_calls),
            (SQS_RECEIVE, esm_receive),
            (SQS_DELETE, esm_delete),
            (SQS_VISIBILITY, cmvb),
        ],
        rru: http_rru + batched_deliver.rru,
        ..batched_deliver.clone()
    };
    let ingest_ms: Vec<f64> = ing.durations_ms.clone();
    let events = ing.events as f64;
    let ours_queue = PerPush {
        ingest_invocations: ing.invocations as f64 / events,
        ingest_billed_ms: ingest_ms.iter().map(|&d| cost::billed_ms(d)).sum::<f64>() / events,
        sqs: vec![
            (SQS_REGISTRY_SEND, 1.0),
            (SQS_REGISTRY_POLL, 2.0 / BATCH as f64),
            (SQS_SEND, ing.count("sqs:SendMessageBatch") as f64 / events),
            (SQS_RECEIVE, esm_receive),
            (SQS_DELETE, esm_delete),
            (SQS_VISIBILITY, cmvb),
        ],
        rru: ing.units.rru / events + batched_deliver.rru,
        ..batched_deliver.clone()
    };
    let quiet = PerPush {
        ingest_invocations: 1.0,
        ingest_billed_ms: ingest_http_billed,
        deliver_invocations: 1.0,
        deliver_billed_ms: single_billed,
        sqs: vec![
            (SQS_SEND, http_send_calls),
            (SQS_RECEIVE, 1.0),
            (SQS_DELETE, 1.0),
        ],
        rru: http_rru + single.units.rru / single_n,
        wru: single.units.wru / single_n,
        in_flight: 1.0,
    };
    Some(vec![
        Design {
            name: "naive".into(),
            note: "one SQS message per event (send + receive + delete), one ingest and one deliver invocation per event, GetItem + UpdateItem per event".into(),
            p: naive,
        },
        Design {
            name: "ours, Function URL".into(),
            note: format!(
                "pushes POSTed to the ingest Function URL, one per invocation (measured: single pushes on a warm process); deliver batches of {} jobs over {} repositories (as measured)",
                thousands(jobs),
                thousands(d.throughput.repos as f64)
            ),
            p: ours_http,
        },
        Design {
            name: "ours, registry queue".into(),
            note: format!(
                "pushes through the registry-events queue, ingest batches of {BATCH} (as measured); the registry's SendMessage counted at one per push; deliver as in the previous column"
            ),
            p: ours_queue,
        },
        Design {
            name: "ours, quiet service".into(),
            note: "traffic so thin that every deliver batch holds one job (measured single-job invocations); Function URL ingress".into(),
            p: quiet,
        },
    ])
}

// ------------------------------------------------------------------ summary rows

fn summary(r: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    let scale = |full: f64| -> f64 {
        match r.deliver.as_ref() {
            Ok(d) => (full * d.throughput.jobs as f64 / 10_000.0).max(1.0),
            Err(_) => full,
        }
    };
    match &r.deliver {
        Ok(d) => {
            let t = &d.throughput;
            if let Some(f) = tp_figures(t) {
                rows.push(row(
                    format!(
                        "1. bare reqwest, {} POSTs (median of {})",
                        thousands(t.jobs as f64),
                        t.bare.len()
                    ),
                    format!("{}/s", thousands(f.bare_median)),
                    "the limit",
                    Verdict::Info,
                ));
                rows.push(row(
                    format!(
                        "1. deliver, one batch of {} jobs (median of {})",
                        thousands(t.jobs as f64),
                        t.deliver.len()
                    ),
                    format!("{}/s", thousands(f.deliver_median)),
                    "",
                    Verdict::Info,
                ));
                rows.push(row(
                    "1. deliver / bare (medians)",
                    format!("{:.2} (best/best {:.2})", f.ratio, f.ratio_best),
                    "≥ 0.90",
                    Verdict::of(f.ratio >= 0.9),
                ));
                rows.push(row(
                    "1. sending phase at the sink, deliver / bare",
                    format!(
                        "{:.2} ({}/s vs {}/s)",
                        f.ratio_sink,
                        thousands(f.deliver_sink_median),
                        thousands(f.bare_sink_median)
                    ),
                    "",
                    Verdict::Info,
                ));
                if !t.instant.is_empty() {
                    rows.push(row(
                        "1. deliver / bare, DynamoDB stub answering at once (diagnostic)",
                        format!("{:.2} ({}/s)", f.ratio_instant, thousands(f.instant_median)),
                        "",
                        Verdict::Info,
                    ));
                }
                rows.push(row(
                    "2. deliver peak RSS (VmHWM), that batch",
                    mib(f.peak_rss_kib),
                    "≤ 64 MiB",
                    Verdict::of(f.peak_rss_kib <= 64 * 1024),
                ));
                let run = &f.median_run;
                let (rt, wt) = (scale(10.0), scale(1000.0));
                rows.push(row(
                    "3. deliver DynamoDB reads (calls), all-success batch",
                    format!("{} ({} items)", reads(run), run.units.items_read),
                    format!("≤ {rt:.0}"),
                    Verdict::of(reads(run) as f64 <= rt),
                ));
                rows.push(row(
                    "3. deliver DynamoDB writes (calls), all-success batch",
                    writes(run).to_string(),
                    format!("≤ {wt:.0}"),
                    Verdict::of(writes(run) as f64 <= wt),
                ));
                rows.push(row(
                    "3. deliver SQS calls, all-success batch",
                    sqs_calls(run).to_string(),
                    "",
                    Verdict::Info,
                ));
            }
            match &d.failure {
                Ok(fl) => {
                    let run = &fl.run;
                    rows.push(row(
                        "3. deliver, 10% failing: reads / writes / ChangeMessageVisibilityBatch",
                        format!(
                            "{} / {} / {} ({} entries refused)",
                            reads(run),
                            writes(run),
                            run.count("sqs:ChangeMessageVisibilityBatch"),
                            run.units.failed_entries
                        ),
                        "",
                        Verdict::Info,
                    ));
                }
                Err(e) => rows.push(row(
                    "3. deliver, 10% failing",
                    format!("FAILED: {e}"),
                    "",
                    Verdict::Missed,
                )),
            }
        }
        Err(e) => rows.push(row(
            "1–3. deliver",
            format!("FAILED: {e}"),
            "",
            Verdict::Missed,
        )),
    }
    match &r.ingest {
        Ok(i) => {
            let n = i.events as f64;
            let smb = i.count("sqs:SendMessageBatch") as f64 / n;
            rows.push(row(
                format!(
                    "3. ingest SendMessageBatch per event ({} events, batches of {BATCH})",
                    thousands(n)
                ),
                per(smb),
                "≤ 0.1",
                Verdict::of(smb <= 0.1 + 1e-9),
            ));
            rows.push(row(
                "3. ingest BatchGetItem per event",
                per(i.count("dynamodb:BatchGetItem") as f64 / n),
                "",
                Verdict::Info,
            ));
        }
        Err(e) => rows.push(row(
            "3. ingest",
            format!("FAILED: {e}"),
            "",
            Verdict::Missed,
        )),
    }
    match &r.cold {
        Ok(c) => {
            let hello = median(c.samples.get("hello-lambda").map_or(&[][..], Vec::as_slice));
            rows.push(row(
                format!("4. cold start hello-lambda (median of {})", c.rounds),
                format!("{hello:.1} ms"),
                "the floor",
                Verdict::Info,
            ));
            for f in FUNCTIONS {
                let m = median(c.samples.get(f).map_or(&[][..], Vec::as_slice));
                let ratio = m / hello;
                rows.push(row(
                    format!("4. cold start {f}"),
                    format!("{m:.1} ms ({ratio:.2}× hello)"),
                    "≤ 2× hello",
                    Verdict::of(ratio <= 2.0),
                ));
            }
            let diag: Vec<String> = FUNCTIONS
                .iter()
                .filter_map(|f| {
                    let v = c.samples.get(&crate::coldstart::one_root(f))?;
                    Some(format!("{f} {:.2}×", median(v) / hello))
                })
                .collect();
            if !diag.is_empty() {
                rows.push(row(
                    "4. cold start, root store cut to one certificate (diagnostic)",
                    diag.join(", "),
                    "",
                    Verdict::Info,
                ));
            }
            let zips: Vec<String> = FUNCTIONS
                .iter()
                .map(|f| match c.zip_bytes.get(*f).copied().flatten() {
                    Some(b) => format!("{f} {:.2} MiB", b as f64 / 1048576.0),
                    None => format!("{f} not built"),
                })
                .collect();
            rows.push(row(
                "4. arm64 bootstrap.zip",
                zips.join(", "),
                "",
                Verdict::Info,
            ));
        }
        Err(e) => rows.push(row(
            "4. cold start",
            format!("FAILED: {e}"),
            "",
            Verdict::Missed,
        )),
    }
    match &r.latency {
        Ok(l) => {
            rows.push(row(
                format!(
                    "5. push → webhook p50 / p99 ({} pushes at {:.0}/s)",
                    l.pushes, l.rate
                ),
                format!(
                    "{:.0} ms / {:.0} ms",
                    percentile(&l.latencies_ms, 50.0),
                    percentile(&l.latencies_ms, 99.0)
                ),
                "",
                Verdict::Info,
            ));
        }
        Err(e) => rows.push(row(
            "5. latency",
            format!("FAILED: {e}"),
            "",
            Verdict::Missed,
        )),
    }
    match designs(r) {
        Some(ds) => {
            let totals: Vec<String> = ds
                .iter()
                .map(|d| format!("{} {}", d.name, money(cost::total(&d.p))))
                .collect();
            rows.push(row(
                "6. cost per million pushes",
                totals.join("; "),
                "",
                Verdict::Info,
            ));
        }
        None => rows.push(row(
            "6. cost per million pushes",
            "not computed (a measurement it needs failed)",
            "",
            Verdict::Missed,
        )),
    }
    rows
}

fn print_table(rows: &[Row]) {
    let w0 = rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(0)
        .min(70);
    let w2 = rows
        .iter()
        .map(|r| r.target.chars().count())
        .max()
        .unwrap_or(0);
    let pad = |s: &str, w: usize| {
        let n = s.chars().count();
        format!("{s}{}", " ".repeat(w.saturating_sub(n)))
    };
    println!();
    println!(
        "{}  {}  {}  verdict",
        pad("figure", w0),
        pad("measured", w1),
        pad("target", w2)
    );
    println!("{}", "-".repeat(w0 + w1 + w2 + 13));
    for r in rows {
        println!(
            "{}  {}  {}  {}",
            pad(&r.figure, w0),
            pad(&r.value, w1),
            pad(&r.target, w2),
            r.verdict.text()
        );
    }
    println!();
}

// ------------------------------------------------------------------ Markdown

fn md_table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        head.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

fn counts_line(run: &DeliverRun) -> String {
    run.counts
        .iter()
        .map(|(k, v)| format!("`{k}` {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn write(r: &Results, md_path: &Path, plots: &Path) -> Res<bool> {
    let rows = summary(r);
    print_table(&rows);
    let healthy = r
        .deliver
        .as_ref()
        .is_ok_and(|d| d.failure.is_ok() && d.single.is_ok())
        && r.ingest.is_ok()
        && r.cold.is_ok()
        && r.latency.is_ok()
        && designs(r).is_some();

    std::fs::create_dir_all(plots).map_err(|e| format!("creating {}: {e}", plots.display()))?;
    let md_dir = md_path.parent().unwrap_or(Path::new("."));
    let rel = |file: &str| -> String {
        let p = plots.join(file);
        p.strip_prefix(md_dir)
            .map(|q| q.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };
    let m = machine();
    // Which build the measured binaries are: `release`, or `debug` for the
    // CI-sized run (scripts/bench.sh --small).
    let profile = devstack::runtime_api::workspace_binary("deliver")
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "release".into());
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ =
        writeln!(
        o,
        "Generated by `{}` on {} (whole run {:.0} s){}. Everything runs on this one machine: the \
         {profile} binaries as processes behind devstack's Lambda Runtime API emulation, moto for \
         DynamoDB and SQS, local HTTP sinks and receivers. Figures that compete are measured side \
         by side in the same run, alternating, because the machine is shared and noisy; read \
         ratios rather than absolute numbers.\n",
        r.command,
        r.date,
        r.elapsed.as_secs_f64(),
        if r.small { ", CI-sized (`--small`)" } else { "" }
    );
    md_table(
        &mut o,
        &["machine", ""],
        &[
            vec!["CPUs (`nproc`)".into(), m.nproc.to_string()],
            vec!["memory".into(), m.memory.clone()],
            vec!["CPU model".into(), m.cpu.clone()],
            vec!["kernel".into(), m.kernel.clone()],
            vec![
                "compiler".into(),
                if profile == "release" {
                    format!(
                        "{} (workspace release profile: opt-level 3, fat LTO, 1 codegen unit)",
                        m.rustc
                    )
                } else {
                    format!(
                        "{} ({profile} binaries: only the paths are checked, not the speed)",
                        m.rustc
                    )
                },
            ],
        ],
    );
    let _ = writeln!(o, "## Summary\n");
    md_table(
        &mut o,
        &["figure", "measured", "target", "verdict"],
        &rows
            .iter()
            .map(|r| {
                vec![
                    r.figure.clone(),
                    r.value.clone(),
                    r.target.clone(),
                    r.verdict.text().into(),
                ]
            })
            .collect::<Vec<_>>(),
    );

    section_deliver(&mut o, r, &rel);
    section_cold(&mut o, r);
    section_latency(&mut o, r, &rel);
    section_cost(&mut o, r);

    let _ = writeln!(o, "## How to run\n");
    let _ = writeln!(
        o,
        "`bash scripts/bench.sh` builds the release binaries (`cargo build --release -p ingest -p \
         deliver -p settings -p alin-bench`), the arm64 zips with cargo-lambda, and runs \
         `target/release/alin-bench` with `DEVSTACK_BIN_DIR=target/release`; it prints the \
         summary table and rewrites this file and `tools/bench/results/*.svg`. `bash \
         scripts/bench.sh --small` is the CI-sized run ({} jobs over {} repositories, {} pushes) \
         on the debug binaries the tests already built: every measurement path, seconds not \
         minutes; it writes its report to \
         `target/bench/small/` and exits non-zero if a measurement could not be made (never \
         for a missed target). Function logs are in `target/bench/logs/`.\n",
        thousands(crate::Sizes::small().jobs as f64),
        crate::Sizes::small().repos,
        crate::Sizes::small().pushes
    );

    // Plots.
    if let Ok(d) = &r.deliver {
        if let Some(f) = tp_figures(&d.throughput) {
            let svg = bar_chart(
                &format!(
                    "Webhook POSTs per second, one batch of {} jobs, {} in flight",
                    thousands(d.throughput.jobs as f64),
                    CONCURRENCY
                ),
                "/s",
                &[
                    (
                        "bare reqwest, its own clock".into(),
                        f.bare_median,
                        f.bare_rates.clone(),
                        "#9e9e9e",
                    ),
                    (
                        "deliver, invocation duration".into(),
                        f.deliver_median,
                        f.deliver_rates.clone(),
                        "#1f77b4",
                    ),
                    (
                        "deliver, DynamoDB stub (diagnostic)".into(),
                        f.instant_median,
                        f.instant_rates.clone(),
                        "#ff9896",
                    ),
                    (
                        "bare, at the sink".into(),
                        f.bare_sink_median,
                        f.bare_sink_rates.clone(),
                        "#cfcfcf",
                    ),
                    (
                        "deliver, at the sink".into(),
                        f.deliver_sink_median,
                        f.deliver_sink_rates.clone(),
                        "#9ecae1",
                    ),
                ],
            );
            write_file(&plots.join("throughput.svg"), &svg)?;
        }
    }
    if let Ok(l) = &r.latency {
        let svg = cdf_chart(
            &format!(
                "Push → webhook latency, {} pushes at {:.0}/s, {} s batching window",
                l.pushes,
                l.rate,
                crate::latency::WINDOW.as_secs()
            ),
            &l.latencies_ms,
            &[
                (
                    format!("p50 {:.0} ms", percentile(&l.latencies_ms, 50.0)),
                    percentile(&l.latencies_ms, 50.0),
                ),
                (
                    format!("p99 {:.0} ms", percentile(&l.latencies_ms, 99.0)),
                    percentile(&l.latencies_ms, 99.0),
                ),
            ],
        );
        write_file(&plots.join("latency.svg"), &svg)?;
    }
    if let Some(dir) = md_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    write_file(md_path, &o)?;
    Ok(healthy)
}

/// Sections 1–3: deliver, and the ingest figures of section 3.
fn section_deliver(o: &mut String, r: &Results, rel: &dyn Fn(&str) -> String) {
    let _ = writeln!(o, "## 1. Delivery throughput\n");
    match &r.deliver {
        Ok(d) => {
            let t = &d.throughput;
            let _ = writeln!(
                o,
                "One SQS event of {} delivery jobs over {} repositories (each job its own tag, so \
                 nothing is coalesced), handed to a fresh `deliver` process through the Runtime \
                 API, as Lambda's event source mapping builds it (messageId, receiptHandle, the \
                 job JSON as body, ApproximateReceiveCount 1, SentTimestamp, eventSourceARN of the \
                 delivery queue). Every repository has a webhook (set with \
                 `DynamoStore::put_url`) on one of {HOSTS} ports of a devstack `Sink` answering \
                 204, so DELIVERY_CONCURRENCY={CONCURRENCY} = PER_HOST_CONCURRENCY={PER_HOST} × \
                 {HOSTS} hosts. The limit is `bare-client` (tools/bench/src/bin/bare-client.rs): \
                 reqwest alone in its own process, HTTP/1.1 keep-alive, the same {} requests \
                 (bodies of {} bytes and the {} contract headers, built beforehand with \
                 `shared::webhook::build_request`), {CONCURRENCY} in flight, {PER_HOST} per host, \
                 to the same sink. Three contenders take turns, {} rounds each, the order \
                 rotated every round: the bare client, deliver against moto, and — a diagnostic \
                 — the same deliver against a DynamoDB stub answering at once \
                 (tools/bench/src/fake_dynamo.rs); each deliver round is a fresh process. The \
                 sink counted every delivery of every round. deliver's rate uses the \
                 invocation's duration (event handed out → answer), which includes reading the \
                 records from DynamoDB (BatchGetItem) and writing one outcome per repository \
                 (UpdateItem) — against moto, through two local proxies.\n",
                thousands(t.jobs as f64),
                thousands(t.repos as f64),
                thousands(t.jobs as f64),
                t.body_bytes,
                t.headers,
                t.bare.len()
            );
            if let Some(f) = tp_figures(t) {
                let mut rows = Vec::new();
                for i in 0..t.bare.len().max(t.deliver.len()) {
                    let b = t.bare.get(i);
                    let dr = t.deliver.get(i);
                    let window = |w: Option<std::time::Duration>, rate: f64| {
                        w.map_or("?".into(), |w| {
                            format!("{:.0} ms ({}/s)", ms(w), thousands(rate))
                        })
                    };
                    rows.push(vec![
                        (i + 1).to_string(),
                        b.map_or("".into(), |b| {
                            format!("{:.0} ms ({}/s)", ms(b.elapsed), thousands(f.bare_rates[i]))
                        }),
                        b.map_or("".into(), |b| window(b.sink_window, f.bare_sink_rates[i])),
                        dr.map_or("".into(), |d| {
                            format!(
                                "{:.0} ms ({}/s)",
                                ms(d.duration),
                                thousands(f.deliver_rates[i])
                            )
                        }),
                        dr.map_or("".into(), |d| format!("{:.0} ms", ms(d.aws_busy))),
                        dr.map_or("".into(), |d| {
                            window(d.sink_window, f.deliver_sink_rates[i])
                        }),
                        dr.map_or("".into(), |d| d.peak_rss_kib.map_or("?".into(), mib)),
                        t.instant.get(i).map_or("".into(), |d| {
                            format!(
                                "{:.0} ms ({}/s)",
                                ms(d.duration),
                                thousands(f.instant_rates[i])
                            )
                        }),
                    ]);
                }
                md_table(
                    o,
                    &[
                        "round",
                        "bare (its own clock)",
                        "bare at the sink",
                        "deliver (invocation)",
                        "AWS calls in flight",
                        "deliver at the sink",
                        "deliver peak RSS",
                        "deliver, DynamoDB stub (diagnostic)",
                    ],
                    &rows,
                );
                let n = t.jobs as f64;
                let cpu_rows: Vec<Vec<String>> = (0..t.bare.len().max(t.deliver.len()))
                    .map(|i| {
                        let pct =
                            |x: Option<f64>| x.map_or("?".into(), |x| format!("{:.0}%", x * 100.0));
                        let us = |x: Option<f64>| {
                            x.map_or("?".into(), |x| {
                                format!("{:.0} ms ({:.1} µs per POST)", x, x * 1000.0 / n)
                            })
                        };
                        vec![
                            (i + 1).to_string(),
                            t.bare.get(i).map_or("".into(), |b| us(b.cpu_ms)),
                            t.bare.get(i).map_or("".into(), |b| pct(b.machine_busy)),
                            t.deliver.get(i).map_or("".into(), |d| us(d.cpu_ms)),
                            t.deliver.get(i).map_or("".into(), |d| pct(d.machine_busy)),
                        ]
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "CPU time (user + system, 10 ms ticks) of each sender, and how busy the whole \
                     machine was meanwhile ({} CPUs; the bare client's window includes its start \
                     and reading its request file; deliver's CPU includes parsing the event and \
                     the AWS SDK calls):\n",
                    std::thread::available_parallelism().map_or(0, |n| n.get())
                );
                md_table(
                    o,
                    &[
                        "round",
                        "bare client CPU",
                        "machine busy",
                        "deliver CPU",
                        "machine busy",
                    ],
                    &cpu_rows,
                );
                let _ = writeln!(
                    o,
                    "\"At the sink\" is the sending phase as the receiving side saw it, the same \
                     yardstick for both: first request → last request arriving (sampled every \
                     millisecond). \"AWS calls in flight\" is the wall time inside the invocation \
                     during which at least one AWS call was outstanding, from a timing proxy in \
                     front of devstack's `AwsProxy`.\n"
                );
                let _ = writeln!(
                    o,
                    "**Median: bare {}/s, deliver {}/s, ratio {:.2}** (target ≥ 0.90; best against \
                     best {:.2}). The sending phase alone, at the sink: deliver {}/s against bare \
                     {}/s, **{:.2}**.\n",
                    thousands(f.bare_median),
                    thousands(f.deliver_median),
                    f.ratio,
                    f.ratio_best,
                    thousands(f.deliver_sink_median),
                    thousands(f.bare_sink_median),
                    f.ratio_sink
                );
                let run = &f.median_run;
                let mut ops: Vec<Vec<String>> = run
                    .op_busy
                    .iter()
                    .map(|(op, busy)| {
                        vec![
                            format!("`{op}`"),
                            run.count(op).to_string(),
                            format!("{:.0} ms", ms(*busy)),
                        ]
                    })
                    .collect();
                ops.push(vec![
                    "all AWS calls".into(),
                    run.counts.values().sum::<u64>().to_string(),
                    format!("{:.0} ms of {:.0} ms", ms(run.aws_busy), ms(run.duration)),
                ]);
                let _ = writeln!(
                    o,
                    "Timeline of the median invocation ({:.0} ms), from the event being handed \
                     out:\n",
                    ms(run.duration)
                );
                md_table(
                    o,
                    &["what", "from", "to"],
                    &run.timeline
                        .iter()
                        .map(|(w, a, b)| {
                            vec![
                                w.clone(),
                                format!("{:.0} ms", ms(*a)),
                                format!("{:.0} ms", ms(*b)),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
                let _ = writeln!(o, "Where the median deliver invocation waited on AWS:\n");
                md_table(
                    o,
                    &["operation", "calls", "wall time with one in flight"],
                    &ops,
                );
                let _ = writeln!(o, "![throughput]({})\n", rel("throughput.svg"));
                let limits = tp_limits(&f, t);
                let _ = writeln!(o, "{limits}\n");
                let _ = writeln!(
                    o,
                    "A CPU profile of deliver under this workload (perf; how to take it again, \
                     and what it showed last time: the allocator and the SDK's per-call cost \
                     lead) is in [tools/bench/PROFILING.md](tools/bench/PROFILING.md).\n"
                );

                let _ = writeln!(o, "## 2. Peak memory of deliver\n");
                let _ = writeln!(
                    o,
                    "VmHWM of the deliver process after the {}-job invocation (a fresh process \
                     each round; the largest of the rounds): **{}** (target ≤ 64 MiB; \
                     the function is configured with 128 MB). The bare client peaked at {}.\n",
                    thousands(t.jobs as f64),
                    mib(f.peak_rss_kib),
                    t.bare
                        .iter()
                        .filter_map(|b| b.peak_rss_kib)
                        .max()
                        .map_or("?".into(), mib)
                );
                let _ = writeln!(o, "{}\n", rss_note(f.peak_rss_kib, t));

                let _ = writeln!(o, "## 3. AWS requests per event\n");
                let _ = writeln!(
                    o,
                    "Counted by devstack's `AwsProxy` between the function and moto; DynamoDB \
                     units from the request bodies (each key of a BatchGetItem is one strongly \
                     consistent read of an item ≤ 4 KB = 1 RRU; each UpdateItem of an item ≤ 1 KB \
                     = 1 WRU). A repository record measured {} after the runs.\n",
                    t.record_bytes.map_or("?".into(), |b| format!(
                        "{b} bytes (≤ 1 KB: 1 WRU per write, 1 RRU per read)"
                    ))
                );
                let jobs = t.jobs as f64;
                let mut rows = vec![vec![
                    format!(
                        "deliver, all succeed ({} jobs, {} repos)",
                        thousands(jobs),
                        thousands(t.repos as f64)
                    ),
                    format!("{} ({} RRU)", reads(run), run.units.rru),
                    format!("{} ({} WRU)", writes(run), run.units.wru),
                    sqs_calls(run).to_string(),
                    format!(
                        "{} / {} / {}",
                        per(reads(run) as f64 / jobs),
                        per(writes(run) as f64 / jobs),
                        per(sqs_calls(run) as f64 / jobs)
                    ),
                ]];
                if let Ok(fl) = &d.failure {
                    let fr = &fl.run;
                    let n = fl.jobs as f64;
                    rows.push(vec![
                        format!(
                            "deliver, {} of {} repos answer 503 ({} jobs fail)",
                            fl.failing_repos,
                            thousands(t.repos as f64),
                            thousands(fl.failing_jobs as f64)
                        ),
                        format!("{} ({} RRU)", reads(fr), fr.units.rru),
                        format!("{} ({} WRU)", writes(fr), fr.units.wru),
                        format!(
                            "{} ChangeMessageVisibilityBatch, {} entries refused",
                            sqs_calls(fr),
                            fr.units.failed_entries
                        ),
                        format!(
                            "{} / {} / {}",
                            per(reads(fr) as f64 / n),
                            per(writes(fr) as f64 / n),
                            per(sqs_calls(fr) as f64 / n)
                        ),
                    ]);
                }
                if let Ok(i) = &r.ingest {
                    let n = i.events as f64;
                    rows.push(vec![
                        format!(
                            "ingest, {} native push events in SQS batches of {BATCH}, {} repos",
                            thousands(n),
                            thousands(i.repos as f64)
                        ),
                        format!(
                            "{} BatchGetItem ({} RRU)",
                            i.count("dynamodb:BatchGetItem"),
                            i.units.rru
                        ),
                        format!(
                            "{}",
                            i.counts
                                .iter()
                                .filter(|(k, _)| k.starts_with("dynamodb:")
                                    && *k != "dynamodb:BatchGetItem")
                                .map(|(_, v)| v)
                                .sum::<u64>()
                        ),
                        format!("{} SendMessageBatch", i.count("sqs:SendMessageBatch")),
                        format!(
                            "{} / 0 / {}",
                            per(i.count("dynamodb:BatchGetItem") as f64 / n),
                            per(i.count("sqs:SendMessageBatch") as f64 / n)
                        ),
                    ]);
                }
                md_table(
                    o,
                    &[
                        "workload",
                        "DynamoDB reads",
                        "DynamoDB writes",
                        "SQS calls",
                        "per event: reads / writes / SQS",
                    ],
                    &rows,
                );
                let _ = writeln!(
                    o,
                    "Targets: deliver ≤ 10 reads and ≤ 1,000 writes for the 10,000-job \
                     all-success batch{}; ingest ≤ 0.1 SendMessageBatch per event.\n",
                    if r.small {
                        " (scaled to the batch size in --small)"
                    } else {
                        ""
                    }
                );
                let _ = writeln!(o, "All calls, all-success batch: {}.\n", counts_line(run));
                match &d.failure {
                    Ok(fl) => {
                        let _ = writeln!(
                            o,
                            "All calls, 10% failing: {}. deliver's own figures for that batch: \
                             delivered {}, failed {}, retried {}, queue errors {}, store errors {}.\n",
                            counts_line(&fl.run),
                            fl.run.figure("delivered"),
                            fl.run.figure("failed"),
                            fl.run.figure("retried"),
                            fl.run.figure("queue_errors"),
                            fl.run.figure("store_errors")
                        );
                        let _ = writeln!(
                            o,
                            "Receipt handles: the jobs whose endpoints fail went through the real \
                             delivery queue (SendMessageBatch, then ReceiveMessage back), and their \
                             records were built from those messages by devstack's event source \
                             mapping code, so every ChangeMessageVisibilityBatch entry deliver \
                             sends (the failed jobs' backoff) names a real in-flight message and is \
                             checked by moto — none was refused. Synthetic handles would have made \
                             those calls fail. The succeeding jobs carry synthetic handles, which \
                             deliver never uses: a succeeded job is only acknowledged (the \
                             all-success batch makes no SQS call at all). Queueing those too \
                             would only have measured moto, whose SendMessage recomputes the \
                             queue's attributes over every message (quadratic in the queue's \
                             length). The {} jobs for the failing endpoints were reported as \
                             batch item failures and the 503 receiver got exactly {} requests.\n",
                            thousands(fl.failing_jobs as f64),
                            thousands(fl.receiver_got as f64)
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(o, "The 10%-failing workload FAILED: {e}\n");
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(o, "FAILED: {e}\n");
        }
    }
    if let Err(e) = &r.ingest {
        let _ = writeln!(o, "The ingest measurement FAILED: {e}\n");
    } else if let Ok(i) = &r.ingest {
        let _ = writeln!(
            o,
            "ingest: {} invocations of {BATCH} events, median {:.1} ms, p99 {:.1} ms each, \
             of which the AWS calls (mean latency through the proxies): {}; {} distinct \
             delivery jobs reached the queue (one per event, each checked); peak RSS {}.\n",
            i.invocations,
            median(&i.durations_ms),
            percentile(&i.durations_ms, 99.0),
            i.op_latency
                .iter()
                .map(|(op, (n, m))| format!("{n} `{op}` at {m:.1} ms"))
                .collect::<Vec<_>>()
                .join(", "),
            thousands(i.queued as f64),
            i.peak_rss_kib.map_or("?".into(), mib)
        );
    }
}

/// Section 4: cold start and the arm64 zips.
fn section_cold(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## 4. Cold start\n");
    match &r.cold {
        Ok(c) => {
            let _ = writeln!(
                o,
                "From spawning the process to its first `GET /next` on the Runtime API \
                 (`RuntimeApi::first_poll_at`), i.e. Lambda's init phase: the configuration read, \
                 the AWS SDK clients and the HTTP client built. {} rounds, all binaries \
                 interleaved in a rotating order; `hello-lambda` is \
                 tools/bench/src/bin/hello-lambda.rs, the `cargo lambda new` hello world built \
                 with the same release profile. The \"1 root cert\" rows are a diagnostic: the \
                 same binary with `SSL_CERT_FILE` pointing at one certificate and an empty \
                 `SSL_CERT_DIR`, to show what loading the system root store costs.\n",
                c.rounds
            );
            let hello = median(c.samples.get("hello-lambda").map_or(&[][..], Vec::as_slice));
            let labels: Vec<String> = crate::coldstart::BINARIES
                .iter()
                .map(|b| (*b).to_owned())
                .chain(
                    FUNCTIONS
                        .iter()
                        .map(|f| crate::coldstart::one_root(f))
                        .filter(|l| c.samples.contains_key(l)),
                )
                .collect();
            let rows: Vec<Vec<String>> = labels
                .iter()
                .map(|b| {
                    let b = b.as_str();
                    let diagnostic = b.contains("root cert");
                    let v = c.samples.get(b).map_or(&[][..], Vec::as_slice);
                    let m = median(v);
                    vec![
                        format!("`{b}`"),
                        format!("{m:.1} ms"),
                        format!("{:.1} ms", v.iter().copied().fold(f64::INFINITY, f64::min)),
                        format!("{:.1} ms", v.iter().copied().fold(0.0, f64::max)),
                        format!("{:.2}×", m / hello),
                        c.binary_bytes
                            .get(b)
                            .map_or("".into(), |n| format!("{:.1} MiB", *n as f64 / 1048576.0)),
                        if b == "hello-lambda" {
                            "".into()
                        } else if diagnostic {
                            "(diagnostic)".into()
                        } else {
                            Verdict::of(m / hello <= 2.0).text().into()
                        },
                    ]
                })
                .collect();
            md_table(
                o,
                &[
                    "binary",
                    "median",
                    "min",
                    "max",
                    "vs hello",
                    "x86_64 binary",
                    "≤ 2× hello",
                ],
                &rows,
            );
            let zips: Vec<Vec<String>> = FUNCTIONS
                .iter()
                .map(|f| {
                    vec![
                        format!("`{f}`"),
                        c.zip_bytes
                            .get(*f)
                            .copied()
                            .flatten()
                            .map_or("not built".into(), |b| {
                                format!(
                                    "{:.2} MiB ({} bytes)",
                                    b as f64 / 1048576.0,
                                    thousands(b as f64)
                                )
                            }),
                    ]
                })
                .collect();
            let _ = writeln!(
                o,
                "arm64 deployment packages (`target/lambda/<function>/bootstrap.zip`, made by \
                 `cargo lambda build --release --arm64 --output-format zip`, which the full run \
                 invokes first){}:\n",
                r.zip_status
                    .as_ref()
                    .map_or(String::new(), |s| format!("; this run: {s}"))
            );
            md_table(o, &["function", "bootstrap.zip"], &zips);
            let _ = writeln!(o, "{}\n", cold_note(c, hello));
        }
        Err(e) => {
            let _ = writeln!(o, "FAILED: {e}\n");
        }
    }
}

/// Section 5: push → webhook latency.
fn section_latency(o: &mut String, r: &Results, rel: &dyn Fn(&str) -> String) {
    let _ = writeln!(o, "## 5. Push → webhook latency\n");
    match &r.latency {
        Ok(l) => {
            let p = |q: f64| percentile(&l.latencies_ms, q);
            let deliver_sizes: Vec<f64> = l.deliver.iter().map(|s| s.records as f64).collect();
            let deliver_ms: Vec<f64> = l.deliver.iter().map(|s| ms(s.duration)).collect();
            let ingest_ms: Vec<f64> = l.ingest.iter().map(|s| ms(s.duration)).collect();
            let _ = writeln!(
                o,
                "{} native push events POSTed to the ingest Function URL emulation at a steady \
                 {:.0}/s (a rate this local stack sustains: its one moto process serves every \
                 AWS call, and around 100/s it saturates and requests queue at ingest; \
                 `BENCH_PUSH_RATE` overrides it) over {} repositories (each its own tag), served \
                 by {} ingest processes \
                 (Lambda scales a Function URL out the same way); the delivery queue in moto; \
                 devstack's event source mapping with BatchSize {} (template.yaml) and a {} s \
                 batching window invoking one deliver process; a devstack `Receiver` answering \
                 204 and recording arrival instants. Latency = the push's POST leaving the client \
                 → its webhook (matched by `x-alin-webhook`) arriving.\n",
                thousands(l.pushes as f64),
                l.rate,
                l.repos,
                l.ingest_pool,
                l.batch_size,
                crate::latency::WINDOW.as_secs()
            );
            md_table(
                o,
                &["p50", "p90", "p99", "max", "min"],
                &[vec![
                    format!("**{:.0} ms**", p(50.0)),
                    format!("{:.0} ms", p(90.0)),
                    format!("**{:.0} ms**", p(99.0)),
                    format!("{:.0} ms", p(100.0)),
                    format!(
                        "{:.0} ms",
                        l.latencies_ms.iter().copied().fold(f64::INFINITY, f64::min)
                    ),
                ]],
            );
            let _ = writeln!(
                o,
                "Along the way: the ingest Function URL answered in {:.1} ms median ({:.1} ms \
                 p99; the ingest invocation itself {:.1} ms median); the mapping made {} deliver \
                 invocations of {:.0} jobs on average (median duration {:.0} ms).\n",
                median(&l.ingest_http_ms),
                percentile(&l.ingest_http_ms, 99.0),
                median(&ingest_ms),
                l.deliver.len(),
                mean(&deliver_sizes),
                median(&deliver_ms)
            );
            let _ = writeln!(o, "![latency]({})\n", rel("latency.svg"));
            let _ = writeln!(o, "{}\n", latency_note(l));
            let mut rows = Vec::new();
            for (role, rc) in &l.calls {
                rows.push(vec![
                    role.to_string(),
                    rc.counts
                        .iter()
                        .map(|(k, v)| format!("`{k}` {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
            let _ = writeln!(o, "AWS calls of the whole run, by who made them:\n");
            md_table(o, &["caller", "calls"], &rows);
        }
        Err(e) => {
            let _ = writeln!(o, "FAILED: {e}\n");
        }
    }
}

/// Section 6: cost per million pushes.
fn section_cost(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## 6. Cost per million pushes\n");
    match designs(r) {
        Some(ds) => {
            let _ = writeln!(
                o,
                "Prices: {}: Lambda arm64 ${} per GB-second and ${:.2} per million requests; \
                 SQS standard ${:.2} per million requests (each SendMessageBatch, ReceiveMessage, \
                 DeleteMessageBatch, ChangeMessageVisibilityBatch is one request up to 64 KB — \
                 all of ours are far below); DynamoDB on-demand ${:.3} per million read request \
                 units and ${:.3} per million write request units (a strongly consistent read of \
                 an item ≤ 4 KB is 1 RRU, each item of a BatchGetItem counts; a write of an item \
                 ≤ 1 KB is 1 WRU, transactional writes 2). Both functions have 128 MB; Lambda \
                 bills each invocation's duration rounded up to the millisecond. Free tiers are \
                 ignored.\n",
                cost::PRICES_DATE,
                cost::LAMBDA_GB_SECOND,
                cost::LAMBDA_PER_MILLION_REQUESTS,
                cost::SQS_PER_MILLION_REQUESTS,
                cost::DDB_PER_MILLION_RRU,
                cost::DDB_PER_MILLION_WRU
            );
            for d in &ds {
                let _ = writeln!(o, "- **{}**: {}.", d.name, d.note);
            }
            o.push('\n');
            // Lines: the union of all designs' lines, in first-seen order.
            let mut names: Vec<String> = Vec::new();
            let all: Vec<Vec<(String, f64, f64)>> = ds.iter().map(|d| cost::lines(&d.p)).collect();
            for ls in &all {
                for (n, _, _) in ls {
                    if !names.contains(n) {
                        names.push(n.clone());
                    }
                }
            }
            names.sort_by_key(|n| line_rank(n));
            let mut rows = Vec::new();
            for n in &names {
                let mut row = vec![n.clone()];
                for ls in &all {
                    row.push(match ls.iter().find(|(k, _, _)| k == n) {
                        Some((_, q, c)) if *q > 0.0 => format!("{} → {}", thousands(*q), money(*c)),
                        _ => "—".into(),
                    });
                }
                rows.push(row);
            }
            let mut total = vec!["**total**".to_owned()];
            let mut with_endpoints = vec![format!(
                "total if endpoints answer in {:.0} ms (stated, not measured)",
                cost::ENDPOINT_MS
            )];
            for d in &ds {
                total.push(format!("**{}**", money(cost::total(&d.p))));
                with_endpoints.push(money(cost::total(&d.p) + cost::endpoint_extra(&d.p)));
            }
            rows.push(total);
            rows.push(with_endpoints);
            let mut head = vec!["per million pushes"];
            head.extend(ds.iter().map(|d| d.name.as_str()));
            md_table(o, &head, &rows);
            let per_push: Vec<String> = ds
                .iter()
                .map(|d| {
                    format!(
                        "{}: ingest {:.1} billed ms and deliver {:.3} billed ms per push",
                        d.name, d.p.ingest_billed_ms, d.p.deliver_billed_ms
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "Durations used (measured in this run on this machine against moto, so \
                 DynamoDB and SQS answer slower than the real services and the local sink far \
                 faster than real endpoints): {}. The last line adds a stated endpoint response \
                 time: unbatched, each deliver invocation bills the whole wait; batched, {} \
                 requests wait together. The event source mapping's own polling is counted at \
                 its floor (one ReceiveMessage and one DeleteMessageBatch per 10 jobs); idle \
                 long polls (Lambda keeps several pollers long-polling each queue, roughly a \
                 few hundred thousand requests a month whatever the traffic) are a fixed \
                 monthly cost, not a per-push one, and the same in every design.\n",
                per_push.join("; "),
                CONCURRENCY
            );
            if let Ok(l) = &r.latency {
                if let Some(esm) = l.calls.get("event source mapping") {
                    let rm = esm.counts.get("sqs:ReceiveMessage").copied().unwrap_or(0);
                    let dm = esm
                        .counts
                        .get("sqs:DeleteMessageBatch")
                        .copied()
                        .unwrap_or(0);
                    let _ = writeln!(
                        o,
                        "For comparison, devstack's emulated mapping in the latency run made {rm} \
                         ReceiveMessage calls ({} returned messages) and {dm} DeleteMessageBatch \
                         calls for {} jobs in {:.0} s. That emulation polls with a zero wait once \
                         less than a second of the batching window is left, so it makes far more \
                         receives than Lambda's long-polling pollers; it is not used for the cost \
                         table.\n",
                        esm.units.messages_received,
                        l.pushes,
                        l.wall.as_secs_f64()
                    );
                }
            }
        }
        None => {
            let _ = writeln!(o, "Not computed: a measurement it needs failed.\n");
        }
    }
}
fn write_file(path: &Path, text: &str) -> Res<()> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
