//! `devstack up`: the whole service on this machine, no Docker, no AWS.
//!
//! Starts moto, creates the table and queues from `template.yaml`, runs the
//! three Lambda binaries through the Runtime API emulation, serves ingest and
//! settings on Function URL emulations, emulates the delivery queue's event
//! source mapping with the template's batch size and window, starts a webhook
//! receiver, sets a webhook through `settings`, pushes through `ingest`, and
//! prints the webhook the receiver got with its signature verified by the
//! independent `standardwebhooks` library. Exit 0 means all of that worked.
//!
//! `--keep-running` leaves it up for manual use (curl commands printed);
//! `--with-registry` also starts Debian's `docker-registry` with notifications
//! to ingest and pushes a real image into it with `skopeo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use devstack::esm::EventSourceMapping;
use devstack::function_url::FunctionUrl;
use devstack::moto::Moto;
use devstack::receiver::{Behaviour, Receiver, RecordedRequest};
use devstack::registry::{Layer, OciLayout, Registry};
use devstack::runtime_api::{workspace_binary, LocalFunction};
use serde_json::{json, Value};

const INGEST_TOKEN: &str = "local-ingest-token";
const WAIT: Duration = Duration::from_secs(60);
/// moto's port for `devstack up`: the one `events/local.env` names.
const LOCAL_MOTO_PORT: u16 = 5055;

type Res<T> = Result<T, String>;

struct Args {
    keep_running: bool,
    with_registry: bool,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        keep_running: false,
        with_registry: false,
    };
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("up") {
        return Err("usage: devstack up [--keep-running] [--with-registry]".into());
    }
    for arg in args {
        match arg.as_str() {
            "--keep-running" => a.keep_running = true,
            "--with-registry" => a.with_registry = true,
            "-h" | "--help" => {
                println!("usage: devstack up [--keep-running] [--with-registry]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devstack up: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> Res<PathBuf> {
    devstack::paths::workspace_root().ok_or_else(|| "cannot find the workspace root".to_owned())
}

fn param(stack: &serde_json::Map<String, Value>, name: &str) -> Res<u64> {
    stack
        .get("Parameters")
        .and_then(|p| p.get(name))
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("template parameter {name} missing from the stack output"))
}

fn out(stack: &serde_json::Map<String, Value>, name: &str) -> Res<String> {
    stack
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("stack output {name} missing"))
}

async fn run() -> Res<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let root = repo_root()?;
    let logs = root.join("target").join("devstack-up");
    std::fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;

    step("starting moto (DynamoDB + SQS) and creating the stack from template.yaml");
    // A fixed port, so `cargo lambda watch --env-file events/local.env` finds
    // this stack (docs/local-development.md).
    let moto = Moto::start_on(LOCAL_MOTO_PORT)
        .await
        .map_err(|e| e.to_string())?;
    let stack = moto
        .provision("local-", &[])
        .await
        .map_err(|e| e.to_string())?;
    let table = out(&stack, "WebhooksTable")?;
    let queue_url = out(&stack, "DeliveryQueueUrl")?;
    let queue_arn = out(&stack, "DeliveryQueueArn")?;
    let batch_size = param(&stack, "DeliverBatchSize")?;
    let window = param(&stack, "DeliverBatchingWindowSeconds")?;
    println!("   table {table}, delivery queue {queue_url}");

    let mut env = moto.function_env();
    env.extend(
        [
            ("WEBHOOKS_TABLE", table.as_str()),
            ("DELIVERY_QUEUE_URL", queue_url.as_str()),
            ("INGEST_TOKEN", INGEST_TOKEN),
            // The receiver is on 127.0.0.1: allowed only in local use.
            ("ALLOW_PRIVATE_TARGETS", "true"),
            ("RETRY_BASE_DELAY_SECS", "2"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    // ingest fetches Distribution manifests only from REGISTRY_URL: the
    // registry's port is chosen now so ingest knows its origin.
    let registry_port = devstack::free_port().map_err(|e| e.to_string())?;
    env.push((
        "REGISTRY_URL".to_owned(),
        format!("http://127.0.0.1:{registry_port}"),
    ));

    step("starting ingest, deliver and settings through the Lambda Runtime API");
    let start = |name: &'static str| {
        let env = env.clone();
        let log = logs.join(format!("{name}.log"));
        async move {
            LocalFunction::start(&workspace_binary(name), &env, &log)
                .await
                .map(|f| f.with_timeout(Duration::from_secs(60)))
                .map_err(|e| format!("starting {name}: {e} (build with `cargo build --bins`)"))
        }
    };
    let ingest = start("ingest").await?;
    let deliver = start("deliver").await?;
    let settings = start("settings").await?;
    let ingest_url = FunctionUrl::serve(ingest)
        .await
        .map_err(|e| e.to_string())?;
    let settings_url = FunctionUrl::serve(settings)
        .await
        .map_err(|e| e.to_string())?;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let esm = EventSourceMapping::start(
        sqs,
        queue_url.clone(),
        queue_arn,
        deliver,
        batch_size as usize,
        Duration::from_secs(window),
    );
    println!("   ingest   {}", ingest_url.url());
    println!("   settings {}", settings_url.url());
    println!("   delivery event source mapping: BatchSize {batch_size}, window {window}s (from template.yaml)");
    println!("   function logs in {}", logs.display());

    step("starting a webhook receiver");
    let receiver = Receiver::start(Behaviour::ok())
        .await
        .map_err(|e| e.to_string())?;
    let hook_url = receiver.url("/hooks/alin?token=local-receiver-token");
    println!("   {}", receiver.url("/hooks/alin"));

    let http = reqwest::Client::new();
    step("setting the webhook of alice/app through settings (PUT)");
    let put = http
        .put(format!(
            "{}/repositories/alice/app/webhook",
            settings_url.url()
        ))
        .json(&json!({ "url": hook_url }))
        .send()
        .await
        .map_err(|e| format!("PUT webhook: {e}"))?;
    let status = put.status();
    let config: Value = put
        .json()
        .await
        .map_err(|e| format!("PUT webhook answer: {e}"))?;
    if status != 200 {
        return Err(format!("PUT webhook answered {status}: {config}"));
    }
    let secret = config["secret"]
        .as_str()
        .ok_or("config has no secret")?
        .to_owned();
    println!(
        "   200, enabled={}, secret whsec_… (kept for verification)",
        config["enabled"]
    );

    step("pushing alice/app:1.0 through ingest (native push event)");
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let push = json!({
        "event": "push", "username": "alice", "repository": "app", "tag": "1.0",
        "digest": digest('d'), "image_size": 3_456_789, "layers": [digest('a'), digest('b')],
        "repository_size": 9_876_543, "pushed_at": "2026-11-28T08:00:00Z", "id": "local-demo-push-1"
    });
    let answer = http
        .post(format!("{}/", ingest_url.url()))
        .bearer_auth(INGEST_TOKEN)
        .json(&push)
        .send()
        .await
        .map_err(|e| format!("POST ingest: {e}"))?;
    let status = answer.status();
    let summary = answer.text().await.unwrap_or_default();
    println!("   {status} {summary}");
    if status != 202 {
        return Err(format!("ingest answered {status}"));
    }

    step(&format!(
        "waiting for the webhook (batching window {window}s)"
    ));
    let got = receiver
        .wait_for(1, WAIT)
        .await
        .map_err(|e| e.to_string())?;
    let req = got.first().ok_or("no webhook received")?;
    print_and_verify(req, &secret, &hook_url)?;

    if args.with_registry {
        push_real_image(&ingest_url.url(), &receiver, registry_port).await?;
    }

    println!(
        "\nOK: push → ingest → queue → deliver → webhook, signature verified, in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    if args.keep_running {
        println!("\nThe stack keeps running; Ctrl-C stops it. Try:");
        println!(
            "  export SETTINGS={} INGEST={}",
            settings_url.url(),
            ingest_url.url()
        );
        println!("  curl -s \"$SETTINGS/repositories/alice/app/webhook\"");
        println!("  curl -s -X POST \"$SETTINGS/repositories/alice/app/webhook/test\"");
        println!(
            "  curl -s -X POST \"$INGEST/\" -H 'authorization: Bearer {INGEST_TOKEN}' -d '{}'",
            json!({"event":"push","username":"alice","repository":"app","tag":"2.0","image_size":1,"layers":[],"repository_size":1})
        );
        println!("  webhooks arrive at the receiver and are printed below");
        let mut seen = receiver.count();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let all = receiver.requests();
                    for r in all.iter().skip(seen) {
                        print_request(r);
                    }
                    seen = all.len();
                }
            }
        }
    }
    let stats = esm.stop().await.map_err(|e| e.to_string())?;
    println!("event source mapping: {stats:?}");
    drop(moto);
    Ok(())
}

fn step(what: &str) {
    println!("\n== {what}");
}

fn print_request(req: &RecordedRequest) {
    println!("   {} {}", req.method, redact_query(&req.target));
    for (name, value) in &req.headers {
        println!("   {name}: {value}");
    }
    println!("\n   {}", req.body_text());
}

/// The receiver's own token is ours, but print the habit we preach.
fn redact_query(target: &str) -> String {
    match target.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => target.to_owned(),
    }
}

fn print_and_verify(req: &RecordedRequest, secret: &str, hook_url: &str) -> Res<()> {
    step("the webhook the receiver got");
    print_request(req);
    let expected_target = hook_url
        .split_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    if req.target != expected_target {
        return Err(format!(
            "request target {:?} is not the configured one",
            req.target
        ));
    }
    devstack::verify_standardwebhooks(secret, &req.headers, &req.body_text())
        .map_err(|e| e.to_string())?;
    println!("   signature verified by the standardwebhooks library; query string kept");
    Ok(())
}

/// `--with-registry`: docker-registry notifying ingest, alice/app:2.0 built
/// here and pushed with skopeo, and its webhook checked at the receiver.
async fn push_real_image(ingest_url: &str, receiver: &Receiver, port: u16) -> Res<()> {
    step("starting docker-registry with notifications to ingest");
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let registry = Registry::start(work.path(), port, &format!("{ingest_url}/"), INGEST_TOKEN)
        .await
        .map_err(|e| e.to_string())?;
    println!("   registry on 127.0.0.1:{}", registry.port());

    step("pushing alice/app:2.0 with skopeo (an OCI image built here)");
    let layer = Layer::new(b"hello from devstack up\n").map_err(|e| e.to_string())?;
    let mut layout = OciLayout::new(&work.path().join("oci")).map_err(|e| e.to_string())?;
    let digest = layout
        .add_image("2.0", std::slice::from_ref(&layer))
        .map_err(|e| e.to_string())?;
    registry
        .push(&layout, "2.0", "alice/app")
        .map_err(|e| e.to_string())?;
    println!("   pushed manifest {digest}");

    step("waiting for the webhook of alice/app:2.0");
    let deadline = Instant::now() + WAIT;
    let req = loop {
        let hit = receiver
            .requests()
            .into_iter()
            .find(|r| r.header("x-alin-webhook") == Some("alice/app:2.0"));
        if let Some(req) = hit {
            break req;
        }
        if Instant::now() > deadline {
            return Err(
                "no webhook for alice/app:2.0 within 60 s (see target/devstack-up/*.log)".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    print_request(&req);
    let body = req.body_json().unwrap_or_default();
    if body["layers"] != json!([layer.digest]) {
        return Err(format!(
            "layers {} are not the pushed [{}]",
            body["layers"], layer.digest
        ));
    }
    println!("   layers match the pushed image");
    Ok(())
}
