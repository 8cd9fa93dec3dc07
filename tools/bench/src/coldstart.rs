//! Cold start (spawn to first `/next` poll, the end of Lambda's init) of the
//! three functions and a hello-world Lambda, interleaved round by round;
//! the first invocation's duration beside it (work moved out of init shows
//! there); binary and arm64 zip sizes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use devstack::runtime_api::workspace_binary;
use serde_json::{json, Value};

use crate::stack::{start_function, Stack};
use crate::stats::{median, ms, percentile};
use crate::workload::{job, native_push, repos, sqs_record};
use crate::{Ctx, Res};

pub const FUNCTIONS: [&str; 3] = ["ingest", "deliver", "settings"];
const HELLO: &str = "hello-lambda";
const TIMEOUT: Duration = Duration::from_secs(30);

/// The first request each binary gets: one that reads the table (a
/// repository without a webhook, so nothing is sent anywhere).
fn first_event(name: &str, arn: &str) -> Res<Value> {
    let repo = &repos("cold", 1)?[0];
    let record = |body: String| json!({ "Records": vec![sqs_record("cs", 0, body, arn)] });
    Ok(match name {
        "ingest" => record(native_push(repo, "t0", "cold-0", 0).to_string()),
        "deliver" => record(job(repo, 0)?.to_json()),
        "settings" => json!({"version": "2.0", "rawPath": format!("/repositories/{repo}/webhook"),
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {"http": {"method": "GET", "path": format!("/repositories/{repo}/webhook")}}}),
        _ => json!({"hello": "world"}),
    })
}

/// Where the zips came from: bench.sh says when it built them; otherwise
/// they are found (with their age) or absent.
fn zip_status(root: &Path) -> String {
    if let Ok(s) = std::env::var("BENCH_ZIP_STATUS") {
        return s;
    }
    let zip = root.join("target/lambda/ingest/bootstrap.zip");
    match std::fs::metadata(&zip).and_then(|m| m.modified()) {
        Ok(t) => format!(
            "found in target/lambda (built {} min before this run, not by it)",
            t.elapsed().map_or(0, |d| d.as_secs() / 60)
        ),
        Err(_) => "absent: run `cargo lambda build --release --arm64 --output-format zip`".into(),
    }
}

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let stack = Stack::create(&ctx.moto, "cs").await?;
    // A real configuration (init reads it and builds the AWS clients); no
    // AWS call is made before the first poll.
    let extra = [("ALLOW_PRIVATE_TARGETS", "true")];
    let env = stack.env(ctx.moto.endpoint(), &extra);
    let names: Vec<&str> = std::iter::once(HELLO).chain(FUNCTIONS).collect();
    let mut init: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut first = init.clone();
    for round in 0..ctx.sizes.cold_rounds {
        // Rotate the order too, so no binary always follows the same one.
        for k in 0..names.len() {
            let name = names[(k + round) % names.len()];
            let label = format!("coldstart-{name}");
            let (f, _) = start_function(ctx, name, &label, &env, TIMEOUT).await?;
            let polled = f
                .api
                .first_poll_at()
                .ok_or(format!("{name} never polled"))?;
            init.entry(name)
                .or_default()
                .push(ms(polled.saturating_duration_since(f.spawned_at)));
            let inv = f
                .invoke(first_event(name, &stack.queue_arn)?, TIMEOUT)
                .await;
            let inv = inv.map_err(|e| format!("{name}: first invocation: {e}"))?;
            if let Some(error) = inv.error() {
                return Err(format!("{name}: first invocation failed: {error:?}"));
            }
            first.entry(name).or_default().push(ms(inv.duration));
            let _ = f.stop().await;
        }
    }
    let hello = median(init.get(HELLO).map_or(&[][..], Vec::as_slice));
    let size = |p: &Path| Some(std::fs::metadata(p).ok()?.len() as f64 / 1048576.0);
    let binary = |(name, v): (&&'static str, &Vec<f64>)| {
        let m = median(v);
        let (min, max) = (percentile(v, 0.0), percentile(v, 100.0));
        let j = json!({ "median_ms": m, "min_ms": min, "max_ms": max, "vs_hello": m / hello,
            "first_invocation_ms": median(&first[name]),
            "binary_mib": size(&workspace_binary(name)) });
        (*name, j)
    };
    let binaries: BTreeMap<&str, Value> = init.iter().map(binary).collect();
    let zip = |f: &str| size(&ctx.root.join(format!("target/lambda/{f}/bootstrap.zip")));
    let zips: BTreeMap<&str, Option<f64>> = FUNCTIONS.iter().map(|f| (*f, zip(f))).collect();
    Ok(
        json!({ "rounds": ctx.sizes.cold_rounds, "binaries": binaries, "zip_mib": zips,
        "zip_status": zip_status(&ctx.root) }),
    )
}
