//! Measurement 4: cold start, from spawning the process to its first poll of
//! the Runtime API (the end of Lambda's init phase), for the three functions
//! and a hello-world `lambda_runtime` binary built with the same profile,
//! interleaved round by round; and the arm64 deployment zips' sizes.

use std::collections::BTreeMap;
use std::time::Duration;

use devstack::runtime_api::{workspace_binary, LocalFunction};

use crate::stack::{function_env, Stack};
use crate::{Ctx, Res};

pub const BINARIES: [&str; 4] = ["hello-lambda", "ingest", "deliver", "settings"];
pub const FUNCTIONS: [&str; 3] = ["ingest", "deliver", "settings"];

pub struct ColdStart {
    pub rounds: usize,
    /// Per binary, every round's spawn → first poll, in ms.
    pub samples: BTreeMap<String, Vec<f64>>,
    /// Size of each release binary (x86_64, this machine).
    pub binary_bytes: BTreeMap<String, u64>,
    /// `target/lambda/<fn>/bootstrap.zip` sizes, when built.
    pub zip_bytes: BTreeMap<String, Option<u64>>,
}

/// (label, binary, environment) of one thing to start.
type Variant = (String, &'static str, Vec<(String, String)>);

/// Label of the diagnostic variant of `function`: the same binary with the
/// system root store reduced to one certificate (`SSL_CERT_FILE`, and an
/// empty `SSL_CERT_DIR`), which shows what loading the root store costs.
pub fn one_root(function: &str) -> String {
    format!("{function} (1 root cert)")
}

/// The first certificate of the system bundle, written to `dir`; `None`
/// when there is no bundle to take it from.
fn one_root_store(dir: &std::path::Path) -> Option<(String, String)> {
    let bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").ok()?;
    let end_marker = "-----END CERTIFICATE-----";
    let begin = bundle.find("-----BEGIN CERTIFICATE-----")?;
    let end = bundle[begin..].find(end_marker)? + begin + end_marker.len();
    let file = dir.join("one-root.pem");
    let empty = dir.join("empty-cert-dir");
    std::fs::write(&file, format!("{}\n", &bundle[begin..end])).ok()?;
    std::fs::create_dir_all(&empty).ok()?;
    Some((file.display().to_string(), empty.display().to_string()))
}

pub async fn run(ctx: &Ctx, stack: &Stack, rounds: usize) -> Res<ColdStart> {
    // A real configuration (init reads it and builds the AWS clients); no
    // AWS call is made before the first poll.
    let env = function_env(
        &ctx.moto,
        stack,
        ctx.moto.endpoint(),
        &[("ALLOW_PRIVATE_TARGETS", "true")],
    );
    let mut variants: Vec<Variant> = BINARIES
        .iter()
        .map(|b| ((*b).to_owned(), *b, env.clone()))
        .collect();
    if let Some((file, dir)) = one_root_store(&ctx.work) {
        for f in FUNCTIONS {
            let mut e = env.clone();
            e.push(("SSL_CERT_FILE".into(), file.clone()));
            e.push(("SSL_CERT_DIR".into(), dir.clone()));
            variants.push((one_root(f), f, e));
        }
    }
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for name in BINARIES {
        let _ = std::fs::remove_file(ctx.logs.join(format!("coldstart-{name}.log")));
    }
    for round in 0..rounds {
        // Rotate the order too, so no binary always follows the same one.
        for k in 0..variants.len() {
            let (label, name, env) = &variants[(k + round) % variants.len()];
            let log = ctx.logs.join(format!("coldstart-{name}.log"));
            let f = LocalFunction::start(&workspace_binary(name), env, &log)
                .await
                .map_err(|e| format!("starting {name}: {e}"))?;
            let polled = f
                .api()
                .wait_for_first_poll(Duration::from_secs(30))
                .await
                .map_err(|e| format!("{label} never polled: {e}"))?;
            let init = polled.saturating_duration_since(f.process().spawned_at());
            let _ = f.stop().await;
            samples
                .entry(label.clone())
                .or_default()
                .push(crate::stats::ms(init));
        }
    }
    let bin_dir = workspace_binary("deliver")
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let binary_bytes = BINARIES
        .iter()
        .filter_map(|n| {
            std::fs::metadata(bin_dir.join(n))
                .ok()
                .map(|m| ((*n).to_owned(), m.len()))
        })
        .collect();
    let zip_bytes = FUNCTIONS
        .iter()
        .map(|n| {
            let zip = ctx
                .root
                .join("target")
                .join("lambda")
                .join(n)
                .join("bootstrap.zip");
            (
                (*n).to_owned(),
                std::fs::metadata(zip).ok().map(|m| m.len()),
            )
        })
        .collect();
    Ok(ColdStart {
        rounds,
        samples,
        binary_bytes,
        zip_bytes,
    })
}
