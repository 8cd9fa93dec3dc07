//! `alin-bench`: the benchmark of alin-webhooks, run by `scripts/bench.sh`
//! against the release binaries (`DEVSTACK_BIN_DIR=target/release`) on the
//! devstack local stack (moto, Runtime API, Function URL and SQS event
//! source mapping emulations, sinks and receivers). It measures, side by
//! side in one run because the machine is noisy: deliver's throughput against
//! a bare reqwest client (and against a DynamoDB stub), its peak memory, AWS
//! calls per event, cold starts against a hello-world Lambda and the arm64
//! zip sizes, push → webhook latency, and cost per million pushes.
//!
//! It writes every figure to one JSON file and the generated tables of
//! BENCHMARKS.md (see `report`). Exit status 1 when a measurement could not be
//! made (a broken path), never because a target was missed.

mod coldstart;
mod cost;
mod deliver_bench;
mod hot_repo;
mod ingest_bench;
mod ingest_memory;
mod latency;
mod report;
mod stack;
mod stats;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use devstack::moto::Moto;
use serde_json::{json, Map, Value};

pub type Res<T> = Result<T, String>;

/// Turns any error into this crate's, naming what failed (`what: error`).
pub trait Context<T> {
    fn ctx(self, what: &str) -> Res<T>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// What every measurement needs.
pub struct Ctx {
    pub moto: Moto,
    pub root: PathBuf,
    /// Function logs.
    pub logs: PathBuf,
    /// Scratch files.
    pub work: PathBuf,
    pub sizes: Sizes,
    started: Instant,
}

impl Ctx {
    pub fn progress(&self, msg: &str) {
        eprintln!("[{:6.1}s] {msg}", self.started.elapsed().as_secs_f64());
    }
}

/// Workload sizes: the full run, or `--small` (CI: every path, seconds).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sizes {
    pub small: bool,
    pub jobs: usize,
    pub repos: usize,
    pub rounds: usize,
    pub ingest_events: usize,
    pub cold_rounds: usize,
    /// Single-job deliver and single-push ingest invocations.
    pub singles: usize,
    pub pushes: usize,
    pub push_repos: usize,
    /// Pushes per second: the highest rate the local stack sustains (at
    /// 100/s moto, one Python process, saturates and requests queue at ingest).
    pub push_rate: f64,
}

impl Sizes {
    fn new(small: bool) -> Sizes {
        let k = if small { 10 } else { 1 };
        Sizes {
            small,
            jobs: 10_000 / k,
            repos: 1_000 / k,
            rounds: if small { 2 } else { 5 },
            ingest_events: if small { 500 } else { 10_000 },
            cold_rounds: if small { 3 } else { 10 },
            singles: if small { 10 } else { 50 },
            pushes: 1_000 / k,
            push_repos: if small { 20 } else { 100 },
            push_rate: env_or("BENCH_PUSH_RATE", 50.0),
        }
    }
}

/// The value of environment variable `name`, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    let value = std::env::var(name).ok().and_then(|v| v.parse().ok());
    value.unwrap_or(default)
}

fn usage() -> ! {
    eprintln!("usage: alin-bench [--small] [--only cold,deliver,ingest,ingest-memory,hot,latency]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let (mut small, mut only) = (false, None::<Vec<String>>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--small" => small = true,
            // For working on the benchmark: some measurements only; the
            // results go to target/bench/dev.
            "--only" => {
                let list = args.next().unwrap_or_else(|| usage());
                only = Some(list.split(',').map(str::to_owned).collect());
            }
            _ => usage(),
        }
    }
    match run(small, only).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("alin-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(small: bool, only: Option<Vec<String>>) -> Res<bool> {
    let started = Instant::now();
    let root = devstack::paths::workspace_root().ok_or("cannot find the workspace root")?;
    if std::env::var_os(devstack::paths::BIN_DIR_ENV).is_none() {
        std::env::set_var(devstack::paths::BIN_DIR_ENV, root.join("target/release"));
    }
    let work = root.join("target/bench");
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
    let ctx = Ctx {
        moto: Moto::start().await.ctx("moto")?,
        root: root.clone(),
        logs,
        work,
        sizes: Sizes::new(small),
        started,
    };
    ctx.progress("moto is up");
    let wanted = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));

    // The measurements, in order: each adds one section to the results (an
    // error string when it could not be made). A new measurement is one line.
    let mut sections = Map::new();
    let results = &mut sections;
    let measure = |results: &mut Map<_, _>, name: &str, r: Res<Value>| {
        if let Err(e) = &r {
            ctx.progress(&format!("{name}: FAILED: {e}"));
        }
        results.insert(name.into(), r.unwrap_or_else(|e| json!({ "error": e })));
    };
    if wanted("cold") {
        measure(results, "cold_start", coldstart::run(&ctx).await);
    }
    if wanted("deliver") {
        measure(results, "deliver", deliver_bench::run(&ctx).await);
    }
    if wanted("ingest") {
        measure(results, "ingest", ingest_bench::run(&ctx).await);
    }
    if wanted("ingest-memory") {
        measure(results, "ingest_memory", ingest_memory::run(&ctx).await);
    }
    if wanted("hot") {
        measure(results, "hot_repo", hot_repo::run(&ctx).await);
    }
    if wanted("latency") {
        measure(results, "latency", latency::run(&ctx).await);
    }
    let cost = cost::run(results);
    measure(results, "cost", cost);

    results.insert(
        "run".into(),
        json!({
            "command": std::env::var("BENCH_COMMAND").unwrap_or_else(|_| {
                format!("bash scripts/bench.sh{}", if small { " --small" } else { "" })
            }),
            "date": report::now_utc(),
            "seconds": started.elapsed().as_secs(),
            "sizes": ctx.sizes,
            "machine": report::machine(),
        }),
    );
    let healthy = results.values().all(|v| v.get("error").is_none());
    let full = only.is_none() && !small;
    let charts = root.join(match (&only, full) {
        (_, true) => "tools/bench/results",
        (Some(_), _) => "target/bench/dev",
        (None, _) => "target/bench/small",
    });
    let md = (if full { &root } else { &charts }).join("BENCHMARKS.md");
    report::write(&Value::Object(sections), &root, &charts, &md)?;
    let json = charts.join("results.json");
    ctx.progress(&format!("results written to {}", json.display()));
    if !healthy {
        eprintln!("alin-bench: some measurements could not be made (see above)");
    }
    Ok(healthy)
}
