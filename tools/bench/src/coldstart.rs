//! Cold start, from spawning the process to its first poll of the Runtime API
//! (the end of Lambda's init phase), for the three functions and a
//! hello-world `lambda_runtime` binary built with the same profile,
//! interleaved round by round; a diagnostic variant of each function with the
//! system root store cut to one certificate (what loading it costs); and the
//! sizes of the binaries and of the arm64 deployment zips.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use devstack::runtime_api::{workspace_binary, LocalFunction};
use serde_json::{json, Value};

use crate::stack::{function_env, Stack};
use crate::stats::{median, ms};
use crate::{Ctx, Res};

pub const FUNCTIONS: [&str; 3] = ["ingest", "deliver", "settings"];
const HELLO: &str = "hello-lambda";

/// (label, binary, environment) of one thing to start.
type Variant<'a> = (String, &'a str, Vec<(String, String)>);

/// The first certificate of the system bundle as `SSL_CERT_FILE`, with an
/// empty `SSL_CERT_DIR`; `None` without a bundle.
fn one_root_store(dir: &Path) -> Option<[(String, String); 2]> {
    let bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").ok()?;
    let end_marker = "-----END CERTIFICATE-----";
    let begin = bundle.find("-----BEGIN CERTIFICATE-----")?;
    let end = bundle[begin..].find(end_marker)? + begin + end_marker.len();
    let (file, empty) = (dir.join("one-root.pem"), dir.join("empty-cert-dir"));
    std::fs::write(&file, format!("{}\n", &bundle[begin..end])).ok()?;
    std::fs::create_dir_all(&empty).ok()?;
    let s = |p: &Path| p.display().to_string();
    Some([
        ("SSL_CERT_FILE".into(), s(&file)),
        ("SSL_CERT_DIR".into(), s(&empty)),
    ])
}

pub async fn run(ctx: &Ctx) -> Res<Value> {
    let stack = Stack::create(&ctx.moto, "cs").await?;
    // A real configuration (init reads it and builds the AWS clients); no
    // AWS call is made before the first poll.
    let env = function_env(
        &ctx.moto,
        &stack,
        ctx.moto.endpoint(),
        &[("ALLOW_PRIVATE_TARGETS", "true")],
    );
    let mut variants: Vec<Variant> = std::iter::once(HELLO)
        .chain(FUNCTIONS)
        .map(|b| (b.to_owned(), b, env.clone()))
        .collect();
    if let Some(one_root) = one_root_store(&ctx.work) {
        for f in FUNCTIONS {
            let e = env
                .iter()
                .cloned()
                .chain(one_root.iter().cloned())
                .collect();
            variants.push((format!("{f} (1 root cert)"), f, e));
        }
    }
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..ctx.sizes.cold_rounds {
        // Rotate the order too, so no binary always follows the same one.
        for k in 0..variants.len() {
            let (label, name, env) = &variants[(k + round) % variants.len()];
            let log = ctx.logs.join(format!("coldstart-{name}.log"));
            let f = LocalFunction::start(&workspace_binary(name), env, &log)
                .await
                .map_err(|e| format!("starting {name}: {e}"))?;
            let polled = f.api().wait_for_first_poll(Duration::from_secs(30)).await;
            let polled = polled.map_err(|e| format!("{label} never polled: {e}"))?;
            let init = polled.saturating_duration_since(f.process().spawned_at());
            let _ = f.stop().await;
            samples.entry(label.clone()).or_default().push(ms(init));
        }
    }
    let hello = median(samples.get(HELLO).map_or(&[][..], Vec::as_slice));
    let size = |p: &Path| std::fs::metadata(p).ok().map(|m| m.len());
    let binaries: BTreeMap<&String, Value> = samples
        .iter()
        .map(|(label, v)| {
            let m = median(v);
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(0.0, f64::max);
            let mb = size(&workspace_binary(label)).map(|b| b as f64 / 1048576.0);
            let j = json!({ "median_ms": m, "min_ms": min, "max_ms": max, "vs_hello": m / hello, "binary_mib": mb });
            (label, j)
        })
        .collect();
    let zips: BTreeMap<&str, Option<u64>> = FUNCTIONS
        .iter()
        .map(|f| {
            (
                *f,
                size(&ctx.root.join(format!("target/lambda/{f}/bootstrap.zip"))),
            )
        })
        .collect();
    Ok(json!({ "rounds": ctx.sizes.cold_rounds, "binaries": binaries, "zip_bytes": zips }))
}
