//! `alin-bench`: the benchmark of alin-webhooks, run by `scripts/bench.sh`
//! against the release binaries (`DEVSTACK_BIN_DIR=target/release`) on the
//! devstack local stack (moto, Runtime API, Function URL and SQS event
//! source mapping emulations, sinks and receivers). It measures, side by
//! side in one run because the machine is noisy:
//!
//! 1. deliver's throughput on one big batch against a bare reqwest client;
//! 2. deliver's peak resident memory on that batch;
//! 3. AWS requests per event (deliver all-success and 10% failing, ingest);
//! 4. cold start against a hello-world Lambda, and the arm64 zip sizes;
//! 5. push → webhook latency through the whole stack;
//! 6. cost per million pushes against a naive design.
//!
//! It prints a table and writes a report (BENCHMARKS.md for a full run;
//! `target/bench/small/` for `--small`, so CI never touches the repository).
//! Exit status 1 when a measurement could not be made (a broken path), never
//! because a target was missed.

mod coldstart;
mod cost;
mod deliver_bench;
mod fake_dynamo;
mod ingest_bench;
mod ingest_memory;
mod latency;
mod meter;
mod report;
mod stack;
mod stats;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use devstack::moto::Moto;

pub type Res<T> = Result<T, String>;

/// What every measurement needs.
pub struct Ctx {
    pub moto: Moto,
    pub root: PathBuf,
    /// Function logs.
    pub logs: PathBuf,
    /// Scratch files.
    pub work: PathBuf,
    pub small: bool,
    started: Instant,
}

impl Ctx {
    pub fn progress(&self, msg: &str) {
        eprintln!("[{:6.1}s] {msg}", self.started.elapsed().as_secs_f64());
    }
}

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub jobs: usize,
    pub repos: usize,
    pub rounds: usize,
    pub ingest_events: usize,
    pub ingest_repos: usize,
    pub cold_rounds: usize,
    pub pushes: usize,
    pub push_repos: usize,
    pub push_rate: f64,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            jobs: 10_000,
            repos: 1_000,
            rounds: 5,
            ingest_events: 10_000,
            ingest_repos: 1_000,
            cold_rounds: 10,
            pushes: 1_000,
            push_repos: 100,
            // The highest round rate the local stack sustains: at 100/s moto
            // (one Python process) saturates and requests queue at ingest.
            push_rate: 50.0,
        }
    }

    fn small() -> Sizes {
        Sizes {
            jobs: 1_000,
            repos: 100,
            rounds: 2,
            ingest_events: 1_000,
            ingest_repos: 100,
            cold_rounds: 3,
            pushes: 100,
            push_repos: 20,
            push_rate: 50.0,
        }
    }
}

pub struct Results {
    pub small: bool,
    pub sizes: Sizes,
    pub command: String,
    pub date: String,
    pub elapsed: Duration,
    pub deliver: Res<deliver_bench::DeliverResults>,
    pub ingest: Res<ingest_bench::IngestResult>,
    pub cold: Res<coldstart::ColdStart>,
    pub latency: Res<latency::Latency>,
    /// What scripts/bench.sh said about the arm64 zips.
    pub zip_status: Option<String>,
}

fn usage() -> ! {
    eprintln!("usage: alin-bench [--small] [--out <report.md>]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut small = false;
    let mut out: Option<PathBuf> = None;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--small" => small = true,
            "--out" => out = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            // For working on the benchmark: run some sections only
            // (cold,deliver,ingest,latency); the report goes to target/bench/dev.
            "--only" => {
                only = Some(
                    args.next()
                        .unwrap_or_else(|| usage())
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            _ => usage(),
        }
    }
    match run(small, out, only).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("alin-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(small: bool, out: Option<PathBuf>, only: Option<Vec<String>>) -> Res<bool> {
    let wanted = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let started = Instant::now();
    let root = devstack::paths::workspace_root().ok_or("cannot find the workspace root")?;
    if std::env::var_os(devstack::paths::BIN_DIR_ENV).is_none() {
        std::env::set_var(devstack::paths::BIN_DIR_ENV, root.join("target/release"));
    }
    let work = root.join("target").join("bench");
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
    let mut sizes = if small { Sizes::small() } else { Sizes::full() };
    if let Some(rate) = std::env::var("BENCH_PUSH_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        sizes.push_rate = rate;
    }
    let date = report::now_utc();
    eprintln!(
        "alin-bench{}: binaries from {}",
        if small { " --small" } else { "" },
        devstack::runtime_api::workspace_binary("deliver").display()
    );
    let ctx = Ctx {
        moto: Moto::start().await.map_err(|e| format!("moto: {e}"))?,
        root: root.clone(),
        logs,
        work,
        small,
        started,
    };
    ctx.progress("moto is up");

    ctx.progress("cold start");
    let cold = if !wanted("cold") {
        skipped()
    } else {
        match stack::Stack::create(&ctx.moto, &ctx.root, "cs").await {
            Ok(stack) => coldstart::run(&ctx, &stack, sizes.cold_rounds).await,
            Err(e) => Err(e),
        }
    };
    report_err(&ctx, "cold start", &cold);

    ctx.progress("deliver throughput, memory and AWS calls");
    let deliver = if wanted("deliver") {
        deliver_bench::run(&ctx, sizes.jobs, sizes.repos, sizes.rounds).await
    } else {
        skipped()
    };
    report_err(&ctx, "deliver", &deliver);

    ctx.progress("ingest AWS calls");
    let ingest = if wanted("ingest") {
        ingest_bench::run(&ctx, sizes.ingest_events, sizes.ingest_repos).await
    } else {
        skipped()
    };
    report_err(&ctx, "ingest", &ingest);

    ctx.progress("ingest peak memory on a hostile index");
    if wanted("ingest-memory") {
        match ingest_memory::run(&ctx).await {
            Ok(m) => eprintln!("{}", m.summary()),
            Err(e) => eprintln!("ingest memory: FAILED: {e}"),
        }
    }

    ctx.progress("push → webhook latency");
    let latency = if wanted("latency") {
        latency::run(&ctx, sizes.pushes, sizes.push_repos, sizes.push_rate).await
    } else {
        skipped()
    };
    report_err(&ctx, "latency", &latency);

    let results = Results {
        small,
        sizes,
        command: std::env::var("BENCH_COMMAND").unwrap_or_else(|_| {
            format!(
                "bash scripts/bench.sh{}",
                if small { " --small" } else { "" }
            )
        }),
        date,
        elapsed: started.elapsed(),
        deliver,
        ingest,
        cold,
        latency,
        zip_status: std::env::var("BENCH_ZIP_STATUS").ok(),
    };
    let (md_path, plots_dir) = match out {
        Some(p) => {
            let dir = p
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            (p, dir)
        }
        None if only.is_some() => {
            let dir = root.join("target/bench/dev");
            (dir.join("BENCHMARKS.md"), dir)
        }
        None if small => {
            let dir = root.join("target/bench/small");
            (dir.join("BENCHMARKS.md"), dir)
        }
        None => (root.join("BENCHMARKS.md"), root.join("tools/bench/results")),
    };
    let healthy = report::write(&results, &md_path, &plots_dir)?;
    ctx.progress(&format!("report written to {}", md_path.display()));
    if !healthy {
        eprintln!("alin-bench: some measurements could not be made (see above)");
    }
    Ok(healthy)
}

fn skipped<T>() -> Res<T> {
    Err("skipped (--only)".into())
}

fn report_err<T>(ctx: &Ctx, what: &str, r: &Res<T>) {
    if let Err(e) = r {
        ctx.progress(&format!("{what}: FAILED: {e}"));
    }
}
