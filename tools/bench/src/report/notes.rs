//! The "what limits it" paragraphs: written from the run's own figures, so
//! they say what this run measured, not what was true once.

use std::fmt::Write as _;

use super::{median, mib, ms, thousands, TpFigures};
use crate::coldstart::{ColdStart, FUNCTIONS};
use crate::deliver_bench::{DeliverRun, Throughput};

/// The run whose duration is the median (the lower middle for even counts).
pub(super) fn median_by_duration(runs: &[DeliverRun]) -> Option<DeliverRun> {
    let mut v: Vec<&DeliverRun> = runs.iter().collect();
    v.sort_by_key(|d| d.duration);
    v.get(v.len().checked_sub(1)? / 2).map(|d| (*d).clone())
}

/// (from, to) of the timeline entry whose label starts with `what`.
pub(super) fn span(run: &DeliverRun, what: &str) -> Option<(f64, f64)> {
    run.timeline
        .iter()
        .find(|(w, _, _)| w.starts_with(what))
        .map(|(_, a, b)| (ms(*a), ms(*b)))
}

pub(super) fn tp_limits(f: &TpFigures, t: &Throughput) -> String {
    let run = &f.median_run;
    let dur = ms(run.duration);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let n_get = run.count("dynamodb:BatchGetItem");
    let n_upd = run.count("dynamodb:UpdateItem");
    let reads_ms = run
        .op_busy
        .get("dynamodb:BatchGetItem")
        .map_or(0.0, |d| ms(*d));
    let writes_ms = run
        .op_busy
        .get("dynamodb:UpdateItem")
        .map_or(0.0, |d| ms(*d));
    let mut s = String::new();
    if f.ratio >= 0.9 {
        let _ = write!(
            s,
            "The target is met: deliver sends at {:.0}% of what reqwest alone achieves on this \
             machine, AWS calls included.",
            f.ratio * 100.0
        );
        return s;
    }
    let Some((first_post, last_post)) = span(run, "webhook POSTs") else {
        return "The sink's timeline is missing, so the invocation cannot be broken down.".into();
    };
    let writes = span(run, "`dynamodb:UpdateItem`");
    let reads = if n_get == 1 {
        format!(
            "the one BatchGetItem call reading the batch's {} records",
            thousands(t.repos as f64)
        )
    } else {
        format!(
            "the {n_get} BatchGetItem calls reading the batch's {} records ({:.0} ms each, made \
             one after another: `DynamoStore::batch_get` loops over its chunks of 100 in \
             sequence)",
            thousands(t.repos as f64),
            reads_ms / n_get.max(1) as f64
        )
    };
    let _ = write!(
        s,
        "**What limits it.** The median invocation ({dur:.0} ms) falls into three phases. \
         Before the first POST reached the sink: {first_post:.0} ms, of which {reads_ms:.0} ms \
         were {reads}, the rest reading and parsing the {}-record event. Sending: {:.0} ms, \
         first to last POST at the sink, {:.2} of the bare client's rate over the same \
         yardstick. After the last POST: {:.0} ms of outcome writes still in flight.",
        thousands(t.jobs as f64),
        last_post - first_post,
        f.ratio_sink,
        (dur - last_post).max(0.0)
    );
    if let Some((w0, w1)) = writes {
        let _ = write!(
            s,
            " The {n_upd} UpdateItem calls (one per repository) ran from {w0:.0} to {w1:.0} ms — \
             deliver starts a repository's write as soon as its last job is answered, so they \
             overlap the sending — and kept at least one write in flight for {writes_ms:.0} ms: \
             moto applies DynamoDB calls one at a time (scripts/moto_server.py, {:.1} ms each \
             here), so the 32 writes deliver keeps in flight queue there.",
            writes_ms / n_upd.max(1) as f64
        );
    }
    if let Some(ins) = median_by_duration(&t.instant) {
        let phases = match span(&ins, "webhook POSTs") {
            Some((a, b)) => format!(
                " ({a:.0} ms before the first POST, {:.0} ms sending, {:.0} ms after the last)",
                b - a,
                (ms(ins.duration) - b).max(0.0)
            ),
            None => String::new(),
        };
        let _ = write!(
            s,
            " Diagnostic: the same binary against a DynamoDB stub that answers at once from a \
             snapshot of the table (tools/bench/src/fake_dynamo.rs; same requests, no moto) ran \
             the batch in {:.0} ms{phases}: {}/s, {:.2} of the limit — what deliver itself costs \
             on this machine.",
            ms(ins.duration),
            thousands(f.instant_median),
            f.ratio_instant
        );
    }
    let bare_cpu: Vec<f64> = t.bare.iter().filter_map(|b| b.cpu_ms).collect();
    let bare_us = median(&bare_cpu) * 1000.0 / t.jobs as f64;
    if let Some(pc) = run.sending_cpu {
        let part = |x: Option<f64>| x.map_or("?".into(), |x| format!("{x:.0} ms"));
        let other = match (pc.machine_busy_ms, pc.sender_ms, pc.bench_ms) {
            (Some(m), Some(d), Some(b)) => format!("{:.0} ms", (m - d - b).max(0.0)),
            _ => "?".into(),
        };
        let _ = write!(
            s,
            " Where the CPU went during the sending phase ({:.0} ms of wall time, {} of CPU \
             on {cpus} CPUs): deliver {} ({:.1} µs per POST, against the bare client's {bare_us:.1} \
             µs alone), this benchmark's process (the sink answering, the proxies forwarding the \
             writes) {}, everything else (moto applying the writes, and any other load on this \
             shared machine) {other}; the machine was {} busy.",
            pc.wall_ms,
            part(pc.machine_capacity_ms),
            part(pc.sender_ms),
            pc.sender_ms.unwrap_or(0.0) * 1000.0 / t.jobs as f64,
            part(pc.bench_ms),
            pc.machine_busy_ms
                .zip(pc.machine_capacity_ms)
                .map_or("?".into(), |(b, c)| format!("{:.0}%", b / c * 100.0))
        );
    }
    // Does taking moto away speed the sending phase up? Compare the stub
    // runs' sending rate at the sink with the moto runs'.
    let n = t.jobs as f64;
    let stub_sink: Vec<f64> = t
        .instant
        .iter()
        .filter_map(|d| d.sink_window)
        .map(|w| n / w.as_secs_f64().max(1e-6))
        .collect();
    if !stub_sink.is_empty() {
        let stub_ratio = median(&stub_sink) / f.bare_sink_median.max(1e-9);
        if stub_ratio > f.ratio_sink + 0.1 {
            let _ = write!(
                s,
                " Without moto (the stub runs) the sending phase reaches {stub_ratio:.2} of the \
                 bare client's rate instead of {:.2}: on these {cpus} CPUs, moto applying the \
                 overlapping writes takes that much from the sending; the rest is deliver's own \
                 work per POST (building and signing the request, the dispatcher, the SDK calls \
                 for the writes).",
                f.ratio_sink
            );
        } else {
            let _ = write!(
                s,
                " Without moto (the stub runs) the sending phase is no faster ({stub_ratio:.2} of \
                 the bare client's rate): what holds it back is deliver's own work per POST \
                 (building and signing the request, the dispatcher, the SDK calls for the \
                 overlapping writes; see the CPU per POST above) and whatever else loads this \
                 shared machine."
            );
        }
    }
    let _ = write!(
        s,
        " Against DynamoDB (calls of a few ms, served elsewhere) the read phase would be \
         {n_get} round trip{} and the write tail short{}.",
        if n_get == 1 { "" } else { "s" },
        if n_get > 1 {
            "; the read phase would shrink further if `batch_get` issued its chunks concurrently"
        } else {
            ""
        }
    );
    s
}

pub(super) fn rss_note(peak_kib: u64, t: &Throughput) -> String {
    let before: Vec<f64> = t
        .deliver
        .iter()
        .filter_map(|d| d.rss_before_kib)
        .map(|k| k as f64)
        .collect();
    let before = median(&before) as u64;
    let event_mib = t.event_bytes as f64 / 1048576.0;
    let mut s = format!(
        "Before the invocation (after init) deliver's high-water mark was {}; the event it was \
         handed is {event_mib:.1} MiB of JSON ({} records), which deliver receives whole, parses \
         into records and turns into jobs; the batch added {} to the high-water mark.",
        mib(before),
        thousands(t.jobs as f64),
        mib(peak_kib.saturating_sub(before))
    );
    if peak_kib <= 64 * 1024 {
        s.push_str(&format!(
            " Met with {} to spare.",
            mib(64 * 1024 - peak_kib)
        ));
    } else {
        s.push_str(&format!(
            " Missed by {}: the event is held as text, as parsed records and as jobs at once; a \
             batch of the template's default BatchSize needs a fraction of it.",
            mib(peak_kib - 64 * 1024)
        ));
    }
    s.push_str(
        " (The bare client's figure is mostly its request file, read whole before sending.)",
    );
    s
}

pub(super) fn cold_note(c: &ColdStart, hello: f64) -> String {
    let med = |label: &str| median(c.samples.get(label).map_or(&[][..], Vec::as_slice));
    let worst = FUNCTIONS
        .iter()
        .map(|f| (*f, med(f)))
        .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let mut s = if worst.1 <= 2.0 * hello {
        format!(
            "All three functions start within 2× of the hello world (the slowest, {}, at {:.2}×).",
            worst.0,
            worst.1 / hello
        )
    } else {
        format!(
            "**What limits it.** The functions take up to {:.2}× the hello world's init ({} at \
             {:.1} ms against {hello:.1} ms).",
            worst.1 / hello,
            worst.0,
            worst.1
        )
    };
    let diag = med(&crate::coldstart::one_root(worst.0));
    if diag > 0.0 {
        let certs = std::fs::read_dir("/etc/ssl/certs").map_or(0, |d| d.count());
        let bundle = std::fs::metadata("/etc/ssl/certs/ca-certificates.crt").map_or(0, |m| m.len());
        s.push_str(&format!(
            " With the root store reduced to one certificate, {} starts in {diag:.1} ms \
             ({:.2}× hello): {:.1} ms of its init is the AWS SDK's default HTTPS client loading \
             the system's root certificates (here a {} KB bundle plus {certs} entries of \
             /etc/ssl/certs, all read and parsed before the first poll, though the first AWS \
             call happens only in the first invocation). What remains is reading the \
             configuration and building the SDK and webhook clients. Ways out, for the function \
             code: build the SDK's HTTP client with compiled-in roots (webpki-roots) instead of \
             the native store, or defer building it until an invocation needs it.",
            worst.0,
            diag / hello,
            worst.1 - diag,
            bundle / 1024
        ));
    }
    s.push_str(
        " On Lambda, init also includes fetching and unpacking the zip, which grows with its size.",
    );
    s
}

pub(super) fn latency_note(l: &crate::latency::Latency) -> String {
    let window = crate::latency::WINDOW.as_secs_f64() * 1000.0;
    let ingest_ms: Vec<f64> = l.ingest.iter().map(|s| ms(s.duration)).collect();
    let deliver_ms: Vec<f64> = l.deliver.iter().map(|s| ms(s.duration)).collect();
    let http = median(&l.ingest_http_ms);
    let inv = median(&ingest_ms);
    let mut s = format!(
        "What makes it: the batching window is the floor — the mapping collects messages for \
         {window:.0} ms after the first one of a batch before invoking deliver, so a push waits \
         up to that long for its batch to close — plus ingest (its Function URL answered in \
         {http:.0} ms median), the mapping's receives, and deliver up to the POST (the \
         BatchGetItem of the batch's repositories first). deliver ran {} times, {:.0} ms \
         median; this emulation runs one invocation at a time (MaximumConcurrency 1), so \
         pushes arriving meanwhile wait for the next batch.",
        l.deliver.len(),
        median(&deliver_ms)
    );
    if http > 2.0 * inv + 20.0 {
        s.push_str(&format!(
            " Here the pipeline was saturated: ingest invocations took {inv:.0} ms median but \
             its Function URL answered in {http:.0} ms, so requests queued for the {} ingest \
             processes — {:.0} pushes/s times {inv:.0} ms is more than they could absorb while \
             moto (one Python process, DynamoDB calls applied one at a time) also served \
             deliver's reads and writes and the mapping's receives. The tail is moto's, not \
             the design's.",
            l.ingest_pool, l.rate
        ));
    }
    if median(&deliver_ms) > window {
        s.push_str(&format!(
            " deliver's invocations ({:.0} ms median, mostly its outcome writes queueing in \
             moto) outlast the window, so batches also waited for the previous one.",
            median(&deliver_ms)
        ));
    }
    s.push_str(&format!(
        " The product promises webhooks \"a few seconds late\"; deployed with the template's \
         DeliverBatchingWindowSeconds of {} s the floor moves from {window:.0} ms to {} ms.",
        l.template_window_secs,
        l.template_window_secs * 1000
    ));
    s
}
