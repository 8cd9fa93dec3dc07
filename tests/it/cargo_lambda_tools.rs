//! The local tools as users run them (docs/local-development.md):
//! `cargo lambda watch` serving the workspace's three functions and
//! `cargo lambda invoke <function> --data-file events/...` with the sample
//! events, against a stack made from `template.yaml` in moto.
//!
//! Users pass `--env-file events/local.env` (the fixed local stack: moto on
//! 127.0.0.1:5055, resources `local-<logical id>`); this test's stack is on a
//! free port, so it writes the same kind of file for its own stack. That the
//! fixed values are the names the local stack really gets is checked
//! separately below.
//!
//! Why an env file and not `[package.metadata.lambda.watch.env]`: with
//! cargo-lambda 1.9 a package's metadata env wins over `--env-var`,
//! `--env-file` and `--global` (measured), so it could never be pointed at
//! another stack; the test below keeps such a section from coming back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alin_tests::{repo_root, Stack};
use serde_json::Value;

/// First use builds each function with `cargo run`; allow for a cold build.
const FIRST_INVOKE: Duration = Duration::from_secs(1200);
const LOCAL_ENDPOINT: &str = "http://127.0.0.1:5055";

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo lambda …` as a user's shell runs it: without the variables
/// `cargo test` sets for this process (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`,
/// `LD_LIBRARY_PATH`, …), which would make the nested build differ from a
/// normal one and rebuild half the dependency tree on every switch.
fn cargo_lambda() -> Command {
    let mut cmd = Command::new(cargo());
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        let keep = matches!(k, "CARGO" | "CARGO_HOME" | "CARGO_TARGET_DIR");
        if !keep
            && (k.starts_with("CARGO_") || k == "LD_LIBRARY_PATH" || k.starts_with("RUST_TEST"))
        {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(repo_root())
        .env("PATH", path_with_venv())
        .arg("lambda");
    cmd
}

/// PATH with the project's `.venv/bin` first, where `cargo-lambda` lives.
fn path_with_venv() -> String {
    let venv = repo_root().join(".venv/bin");
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{rest}", venv.display())
}

fn free_port() -> u16 {
    devstack::free_port().expect("a free port")
}

/// `cargo lambda watch`, killed (with the functions it started) on drop.
struct Watch {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Watch {
    fn start(env: &[(String, String)]) -> Watch {
        let port = free_port();
        let env_file = repo_root()
            .join("target")
            .join(format!("cargo-lambda-watch-{port}.env"));
        let mut text = String::from("# written by tests/it/cargo_lambda_tools.rs\n");
        for (k, v) in env {
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(&env_file, text).expect("env file");
        let log = repo_root()
            .join("target")
            .join(format!("cargo-lambda-watch-{port}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = cargo_lambda();
        cmd.args(["watch", "--ignore-changes", "--quiet"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string());
        cmd.arg("--env-file").arg(&env_file);
        // Its own process group, so the functions it spawns go with it.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd
            .stdout(Stdio::from(file.try_clone().expect("log handle")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("cargo lambda watch starts (run scripts/tools.sh)");
        let watch = Watch { child, port, log };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "cargo lambda watch did not listen on {port}: {}",
                watch.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        watch
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `cargo lambda invoke FUNCTION --data-file events/FILE`: the answer.
    fn invoke(&self, function: &str, event: &str) -> Value {
        let out = cargo_lambda()
            .args(["invoke", function, "--data-file", event])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(self.port.to_string())
            .output()
            .expect("cargo lambda invoke runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo lambda invoke {function} --data-file {event} failed: {}\n{stdout}\nwatch log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{function} answered non-JSON ({e}): {stdout}"))
    }

    /// The first invocation builds the function: retry until it answers.
    fn invoke_first(&self, function: &str, event: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let out = cargo_lambda()
                .args(["invoke", function, "--data-file", event])
                .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
                .arg(self.port.to_string())
                .output()
                .expect("cargo lambda invoke runs");
            if out.status.success() {
                let stdout = String::from_utf8_lossy(&out.stdout);
                return serde_json::from_str(stdout.trim())
                    .unwrap_or_else(|e| panic!("{function} answered non-JSON ({e}): {stdout}"));
            }
            assert!(
                t0.elapsed() < FIRST_INVOKE,
                "{function} never answered: {}\nwatch log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The whole process group we created: watch and the functions it ran.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Function URL response's status and JSON body.
fn url_answer(v: &Value) -> (u64, Value) {
    let status = v["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no statusCode: {v}"));
    let body = v["body"].as_str().unwrap_or("");
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body not JSON ({e}): {body}"))
    };
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_and_invoke_each_function_with_the_sample_events() {
    let stack = Stack::new("cltools").await;
    let mut env = stack.function_env();
    env.extend(
        [
            ("INGEST_TOKEN", "local-ingest-token"),
            ("ALLOW_PRIVATE_TARGETS", "true"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let queue_url = stack.queue_url.clone();
    let sqs = stack.sqs.clone();

    let answers = tokio::task::spawn_blocking(move || {
        let watch = Watch::start(&env);
        let put = watch.invoke_first("settings", "events/settings/put-webhook.json");
        let get = watch.invoke("settings", "events/settings/get-webhook.json");
        let push = watch.invoke_first("ingest", "events/ingest/http-native-push.json");
        (watch, put, get, push)
    })
    .await
    .expect("watch thread");
    let (watch, put, get, push) = answers;

    // settings: the webhook of alice/app is created, with a signing secret.
    let (status, config) = url_answer(&put);
    assert_eq!(status, 200, "PUT answered {put}");
    assert_eq!(config["repository"], "alice/app");
    assert!(config["secret"]
        .as_str()
        .unwrap_or("")
        .starts_with("whsec_"));
    let (status, config) = url_answer(&get);
    assert_eq!(status, 200, "GET answered {get}");
    assert_eq!(config["url"], "https://ci.example.com/hooks/alin?token=abc");

    // ingest: the native push for alice/app:1.0 becomes one delivery job.
    let (status, summary) = url_answer(&push);
    assert_eq!(status, 202, "ingest answered {push}");
    assert_eq!(summary["accepted"], 1, "{summary}");
    assert_eq!(summary["queued"], 1, "{summary}");
    // One event, one webhook id. `invoke_first` sends the event again when
    // `cargo lambda invoke` gave up while watch was still building ingest, so
    // the same event may have been queued twice: the same job, never another.
    let msgs = stack.drain(&queue_url, 10).await;
    assert!(!msgs.is_empty(), "a job on the delivery queue");
    let jobs: Vec<Value> = msgs
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap_or("")).expect("job JSON"))
        .collect();
    assert!(
        jobs.iter()
            .all(|j| j["webhook_id"] == jobs[0]["webhook_id"]),
        "one event, one job: {jobs:?}"
    );
    let job = &jobs[0];
    assert_eq!(job["repository"], "alice/app");
    assert_eq!(job["tag"], "1.0");
    drop(sqs);

    // Only now, with ingest's job drained: deliver may put a job back on
    // the same queue (below).
    let batch = tokio::task::spawn_blocking(move || {
        watch.invoke_first("deliver", "events/deliver/sqs-batch.json")
    })
    .await
    .expect("watch thread");

    // deliver: a partial batch response. bob/team/tools has no webhook
    // (dropped), the older alice/app:1.0 job is superseded, and the newer one
    // comes back, and only it: either attempted against ci.example.com, which
    // cannot be reached from here (the record fails, to be retried), or, when
    // the invocation's deadline leaves no time to start a request, re-queued
    // untouched with its attempt count (the record is acknowledged and the
    // same job is on the delivery queue again).
    let failures = batch["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {batch}"));
    let ids: Vec<&str> = failures
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    if ids.is_empty() {
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        let back: Vec<Value> = stack
            .drain(&queue_url, 10)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap_or("")).expect("job JSON"))
            .collect();
        assert_eq!(back.len(), 1, "one job re-queued: {back:?}; {batch}");
        assert_eq!(
            back[0]["webhook_id"], "evt_0e753487879fb8a9bb8abef03152c440",
            "the newer alice/app:1.0 job"
        );
    } else {
        assert_eq!(ids, vec!["9fb37c40-bdb0-4400-8b2f-9316333b8cc0"], "{batch}");
    }
}

/// The fixed local stack in `events/local.env` and `events/env.json` is
/// what the stack script creates with prefix `local-` on moto at
/// 127.0.0.1:5055, and nothing in the functions' manifests overrides it.
#[tokio::test]
async fn the_local_configurations_name_the_local_stack() {
    let stack = Stack::new("clnames").await;
    // The script names resources PREFIX + logical id; moto's queue URLs are
    // ENDPOINT/ACCOUNT/NAME. Derive what prefix `local-` at 5055 gives.
    let prefix = stack
        .table
        .strip_suffix("WebhooksTable")
        .expect("table named PREFIX + WebhooksTable");
    let moto = stack.moto.endpoint().trim_end_matches('/').to_owned();
    let expected_queue = stack
        .queue_url
        .replacen(&moto, LOCAL_ENDPOINT, 1)
        .replacen(prefix, "local-", 1);
    assert!(
        expected_queue.ends_with("/local-DeliveryQueue"),
        "{expected_queue}"
    );

    let local_env =
        std::fs::read_to_string(repo_root().join("events/local.env")).expect("events/local.env");
    let value = |key: &str| -> Option<String> {
        local_env.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    assert_eq!(
        value("WEBHOOKS_TABLE").as_deref(),
        Some("local-WebhooksTable")
    );
    assert_eq!(
        value("DELIVERY_QUEUE_URL").as_deref(),
        Some(expected_queue.as_str())
    );
    assert_eq!(value("AWS_ENDPOINT_URL").as_deref(), Some(LOCAL_ENDPOINT));
    assert_eq!(value("INGEST_TOKEN").as_deref(), Some("local-ingest-token"));
    assert!(value("AWS_REGION").is_some() && value("AWS_ACCESS_KEY_ID").is_some());

    let env_json: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("events/env.json")).expect("events/env.json"),
    )
    .expect("events/env.json is JSON");
    for (function, logical) in [
        ("ingest", "IngestFunction"),
        ("deliver", "DeliverFunction"),
        ("settings", "SettingsFunction"),
    ] {
        assert_eq!(
            env_json[logical]["WEBHOOKS_TABLE"], "local-WebhooksTable",
            "{logical}"
        );
        assert_eq!(
            env_json[logical]["DELIVERY_QUEUE_URL"],
            expected_queue.as_str(),
            "{logical}"
        );
        // A package's lambda metadata env would win over --env-file (and
        // deploy config would reach `cargo lambda deploy`).
        let manifest = repo_root()
            .join("functions")
            .join(function)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
        assert!(
            !text.contains("[package.metadata.lambda"),
            "{function}: a [package.metadata.lambda…] section would override --env-file"
        );
    }
}
