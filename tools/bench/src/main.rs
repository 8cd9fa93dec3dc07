//! `alin-bench`, run by `scripts/bench.sh` against the release binaries on
//! the devstack local stack: deliver's throughput against a bare reqwest
//! client, memory, AWS calls per event, cold starts, push → webhook latency
//! and cost, side by side in one run because the machine is noisy. Every
//! figure goes to one JSON file and BENCHMARKS.md's generated tables (see
//! `report`); exit status 1 when a measurement could not be made, never
//! because a target was missed.

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

/// What every measurement needs: moto, the workspace root, function logs
/// and scratch files.
pub struct Ctx {
    pub moto: Moto,
    pub root: PathBuf,
    pub logs: PathBuf,
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
/// `singles`: single-job deliver and single-push ingest invocations;
/// `push_rate`: pushes per second, the highest the local stack sustains (at
/// 100/s moto, one Python process, saturates and requests queue at ingest).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sizes {
    pub small: bool,
    pub jobs: usize,
    pub repos: usize,
    pub rounds: usize,
    pub ingest_events: usize,
    pub cold_rounds: usize,
    pub singles: usize,
    pub pushes: usize,
    pub push_repos: usize,
    pub push_rate: f64,
}

impl Sizes {
    fn new(small: bool) -> Sizes {
        let pick = |small_size, full| if small { small_size } else { full };
        Sizes {
            small,
            jobs: pick(1_000, 10_000),
            repos: pick(100, 1_000),
            rounds: pick(2, 5),
            ingest_events: pick(500, 10_000),
            cold_rounds: pick(3, 10),
            singles: pick(10, 50),
            pushes: pick(100, 1_000),
            push_repos: pick(20, 100),
            push_rate: env_or("BENCH_PUSH_RATE", 50.0),
        }
    }
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    let (work, moto) = (root.join("target/bench"), Moto::start().await.ctx("moto")?);
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
    let ctx = Ctx {
        moto,
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
    let mut results = Map::new();
    let measure = |results: &mut Map<String, Value>, name: &str, r: Res<Value>| {
        if let Err(e) = &r {
            ctx.progress(&format!("{name}: FAILED: {e}"));
        }
        results.insert(name.into(), r.unwrap_or_else(|e| json!({ "error": e })));
    };
    let measurements: [(&str, &str, futures::future::LocalBoxFuture<Res<Value>>); 6] = [
        ("cold", "cold_start", Box::pin(coldstart::run(&ctx))),
        ("deliver", "deliver", Box::pin(deliver_bench::run(&ctx))),
        ("ingest", "ingest", Box::pin(ingest_bench::run(&ctx))),
        (
            "ingest-memory",
            "ingest_memory",
            Box::pin(ingest_memory::run(&ctx)),
        ),
        ("hot", "hot_repo", Box::pin(hot_repo::run(&ctx))),
        ("latency", "latency", Box::pin(latency::run(&ctx))),
    ];
    // Futures start when awaited: each runs alone, in this order.
    for (_, name, measurement) in measurements.into_iter().filter(|m| wanted(m.0)) {
        measure(&mut results, name, measurement.await);
    }
    let cost = cost::run(&results);
    measure(&mut results, "cost", cost);

    let command = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| {
        format!(
            "bash scripts/bench.sh{}",
            if small { " --small" } else { "" }
        )
    });
    let run = json!({ "command": command, "date": report::now_utc(), "seconds": started.elapsed().as_secs(),
        "sizes": ctx.sizes, "machine": report::machine() });
    results.insert("run".into(), run);
    let healthy = results.values().all(|v| v.get("error").is_none());
    let full = only.is_none() && !small;
    let charts = root.join(match (&only, full) {
        (_, true) => "tools/bench/results",
        (Some(_), _) => "target/bench/dev",
        (None, _) => "target/bench/small",
    });
    let md = (if full { &root } else { &charts }).join("BENCHMARKS.md");
    report::write(&Value::Object(results), &root, &charts, &md)?;
    ctx.progress(&format!(
        "results written to {}",
        charts.join("results.json").display()
    ));
    if !healthy {
        eprintln!("alin-bench: some measurements could not be made (see above)");
    }
    Ok(healthy)
}
