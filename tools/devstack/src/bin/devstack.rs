//! `devstack up`: the whole service on this machine, no Docker, no AWS.
//!
//! Starts moto with the stack's table and queues (`devstack::stack`), runs
//! the three Lambda binaries through the Runtime API emulation, serves ingest
//! and settings on Function URL emulations, emulates the delivery queue's
//! event source mapping with the template's batch size and window, starts a
//! webhook receiver, sets a webhook through `settings`, pushes through
//! `ingest`, and prints the webhook the receiver got with its signature
//! verified by the independent `standardwebhooks` library. Exit 0 means all
//! of that worked.
//!
//! `--keep-running` leaves it up for manual use (curl commands printed);
//! `--with-registry` also starts Debian's `docker-registry` with notifications
//! to ingest and pushes a real image into it with `skopeo`.

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use devstack::esm::EventSourceMapping;
use devstack::function_url::FunctionUrl;
use devstack::moto::Moto;
use devstack::receiver::{Behaviour, Receiver, RecordedRequest};
use devstack::registry::{Layer, OciLayout, Registry};
use devstack::runtime_api::{workspace_binary, LocalFunction};
use devstack::stack::Params;
use serde_json::{json, Value};

const USAGE: &str = "usage: devstack up [--keep-running] [--with-registry]";
const INGEST_TOKEN: &str = "local-ingest-token";
const WAIT: Duration = Duration::from_secs(60);
/// moto's port: the local stack `events/local.env` names.
const LOCAL_MOTO_PORT: u16 = 5055;

type Res<T> = Result<T, Box<dyn Error>>;

/// The running service.
struct Up {
    _moto: Moto,
    ingest_url: FunctionUrl,
    settings_url: FunctionUrl,
    esm: EventSourceMapping,
    receiver: Receiver,
    /// Where `--with-registry` starts docker-registry: chosen before ingest
    /// starts, since ingest fetches manifests only from `REGISTRY_URL`.
    registry_port: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    if flag("-h") || flag("--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let known = ["--keep-running", "--with-registry"];
    if args.first().map(String::as_str) != Some("up")
        || args[1..].iter().any(|a| !known.contains(&a.as_str()))
    {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run(flag("--keep-running"), flag("--with-registry")).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devstack up: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(keep_running: bool, with_registry: bool) -> Res<()> {
    let started = Instant::now();
    let up = start().await?;
    let hook_url = up.receiver.url("/hooks/alin?token=local-receiver-token");
    let secret = set_webhook(&up.settings_url.url(), &hook_url).await?;
    push(&up.ingest_url.url()).await?;
    step("waiting for the webhook (the event source mapping's batching window)");
    let got = up.receiver.wait_for(1, WAIT).await?;
    let req = got.first().ok_or("no webhook received")?;
    print_and_verify(req, &secret, &hook_url)?;
    if with_registry {
        push_real_image(&up.ingest_url.url(), &up.receiver, up.registry_port).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("\nOK: push → ingest → queue → deliver → webhook, signature verified, in {secs:.1}s");
    if keep_running {
        serve_until_ctrl_c(&up).await;
    }
    let stats = up.esm.stop().await?;
    println!("event source mapping: {stats:?}");
    Ok(())
}

/// moto and the stack, the three functions, their URLs, the event source
/// mapping and a receiver.
async fn start() -> Res<Up> {
    let logs = devstack::paths::workspace_root()
        .ok_or("cannot find the workspace root")?
        .join("target")
        .join("devstack-up");
    std::fs::create_dir_all(&logs)?;
    step("starting moto (DynamoDB + SQS) with the stack's table and queues");
    // A fixed port, so `cargo lambda watch --env-file events/local.env`
    // finds this stack (docs/local-development.md).
    let moto = Moto::start_on(LOCAL_MOTO_PORT).await?;
    let stack = moto.provision("local-", &[]).await?;
    let params = Params::parse(&[])?;
    let out = |name: &str| {
        stack
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (table, queue_url) = (out("WebhooksTable"), out("DeliveryQueueUrl"));
    println!("   table {table}, delivery queue {queue_url}");
    let registry_port = devstack::free_port()?;
    let registry_url = format!("http://127.0.0.1:{registry_port}");
    let (registry_queue, registry_dlq) = (
        out("RegistryEventsQueueUrl"),
        out("RegistryEventsDeadLetterQueueUrl"),
    );

    step("starting ingest, deliver and settings through the Lambda Runtime API");
    let mut env = moto.function_env();
    env.extend(
        [
            ("WEBHOOKS_TABLE", table.as_str()),
            ("DELIVERY_QUEUE_URL", queue_url.as_str()),
            ("INGEST_TOKEN", INGEST_TOKEN),
            ("REGISTRY_URL", registry_url.as_str()),
            ("REGISTRY_EVENTS_QUEUE_URL", registry_queue.as_str()),
            ("REGISTRY_EVENTS_DLQ_URL", registry_dlq.as_str()),
            // The receiver is on 127.0.0.1: allowed only in local use.
            ("ALLOW_PRIVATE_TARGETS", "true"),
            ("RETRY_BASE_DELAY_SECS", "2"),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let mut functions = Vec::new();
    for name in ["ingest", "deliver", "settings"] {
        let log = logs.join(format!("{name}.log"));
        let function = LocalFunction::start(&workspace_binary(name), &env, &log)
            .await
            .map_err(|e| format!("starting {name}: {e} (build with `cargo build --bins`)"))?;
        functions.push(function.with_timeout(Duration::from_secs(60)));
    }
    let [ingest, deliver, settings] =
        <[LocalFunction; 3]>::try_from(functions).map_err(|_| "three functions expected")?;
    let (batch, window) = (
        params.get("DeliverBatchSize"),
        params.get("DeliverBatchingWindowSeconds"),
    );
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let window_secs = Duration::from_secs(window.into());
    let esm = EventSourceMapping::start(
        sqs,
        queue_url,
        out("DeliveryQueueArn"),
        deliver,
        batch as usize,
        window_secs,
    );
    let up = Up {
        ingest_url: FunctionUrl::serve(ingest).await?,
        settings_url: FunctionUrl::serve(settings).await?,
        receiver: Receiver::start(Behaviour::ok()).await?,
        esm,
        registry_port,
        _moto: moto,
    };
    println!("   ingest   {}", up.ingest_url.url());
    println!("   settings {}", up.settings_url.url());
    println!(
        "   delivery event source mapping: BatchSize {batch}, window {window}s (the template's)"
    );
    println!("   function logs in {}", logs.display());
    println!("   webhook receiver {}", up.receiver.url("/hooks/alin"));
    Ok(up)
}

/// PUTs the webhook of alice/app; returns its secret.
async fn set_webhook(settings_url: &str, hook_url: &str) -> Res<String> {
    step("setting the webhook of alice/app through settings (PUT)");
    let put = reqwest::Client::new()
        .put(format!("{settings_url}/repositories/alice/app/webhook"))
        .json(&json!({ "url": hook_url }))
        .send()
        .await?;
    let status = put.status();
    let config: Value = put.json().await?;
    if status != 200 {
        return Err(format!("PUT webhook answered {status}: {config}").into());
    }
    println!(
        "   200, enabled={}, secret whsec_… (kept for verification)",
        config["enabled"]
    );
    Ok(config["secret"]
        .as_str()
        .ok_or("config has no secret")?
        .to_owned())
}

async fn push(ingest_url: &str) -> Res<()> {
    step("pushing alice/app:1.0 through ingest (native push event)");
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let push = json!({
        "event": "push", "username": "alice", "repository": "app", "tag": "1.0",
        "digest": digest('d'), "image_size": 3_456_789, "layers": [digest('a'), digest('b')],
        "repository_size": 9_876_543, "pushed_at": "2026-11-28T08:00:00Z", "id": "local-demo-push-1"
    });
    let answer = reqwest::Client::new()
        .post(format!("{ingest_url}/"))
        .bearer_auth(INGEST_TOKEN)
        .json(&push)
        .send()
        .await?;
    let status = answer.status();
    println!("   {status} {}", answer.text().await.unwrap_or_default());
    if status != 202 {
        return Err(format!("ingest answered {status}").into());
    }
    Ok(())
}

async fn serve_until_ctrl_c(up: &Up) {
    println!("\nThe stack keeps running; Ctrl-C stops it. Try:");
    println!(
        "  export SETTINGS={} INGEST={}",
        up.settings_url.url(),
        up.ingest_url.url()
    );
    println!("  curl -s \"$SETTINGS/repositories/alice/app/webhook\"");
    println!("  curl -s -X POST \"$SETTINGS/repositories/alice/app/webhook/test\"");
    let push = json!({"event":"push","username":"alice","repository":"app","tag":"2.0","image_size":1,"layers":[],"repository_size":1});
    println!(
        "  curl -s -X POST \"$INGEST/\" -H 'authorization: Bearer {INGEST_TOKEN}' -d '{push}'"
    );
    println!("  webhooks arrive at the receiver and are printed below");
    let mut seen = up.receiver.count();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let all = up.receiver.requests();
                all.iter().skip(seen).for_each(print_request);
                seen = all.len();
            }
        }
    }
}

fn step(what: &str) {
    println!("\n== {what}");
}

/// Prints a received webhook, its query string redacted: the receiver's
/// token is ours, but print the habit we preach.
fn print_request(req: &RecordedRequest) {
    let path = req
        .target
        .split_once('?')
        .map_or(req.target.clone(), |(p, _)| format!("{p}?…"));
    println!("   {} {path}", req.method);
    for (name, value) in &req.headers {
        println!("   {name}: {value}");
    }
    println!("\n   {}", req.body_text());
}

fn print_and_verify(req: &RecordedRequest, secret: &str, hook_url: &str) -> Res<()> {
    step("the webhook the receiver got");
    print_request(req);
    let expected_target = hook_url
        .split_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    if req.target != expected_target {
        return Err(format!("request target {:?} is not the configured one", req.target).into());
    }
    devstack::verify_standardwebhooks(secret, &req.headers, &req.body_text())?;
    println!("   signature verified by the standardwebhooks library; query string kept");
    Ok(())
}

/// `--with-registry`: docker-registry notifying ingest, alice/app:2.0 built
/// here and pushed with skopeo, and its webhook checked at the receiver.
async fn push_real_image(ingest_url: &str, receiver: &Receiver, port: u16) -> Res<()> {
    step("starting docker-registry with notifications to ingest");
    let work = tempfile::tempdir()?;
    let registry =
        Registry::start(work.path(), port, &format!("{ingest_url}/"), INGEST_TOKEN).await?;
    println!("   registry on 127.0.0.1:{}", registry.port());

    step("pushing alice/app:2.0 with skopeo (an OCI image built here)");
    let layer = Layer::new(b"hello from devstack up\n")?;
    let mut layout = OciLayout::new(&work.path().join("oci"))?;
    let digest = layout.add_image("2.0", std::slice::from_ref(&layer))?;
    registry.push(&layout, "2.0", "alice/app")?;
    println!("   pushed manifest {digest}");

    step("waiting for the webhook of alice/app:2.0");
    let deadline = Instant::now() + WAIT;
    let req = loop {
        if let Some(req) = receiver
            .requests()
            .into_iter()
            .find(|r| r.header("x-alin-webhook") == Some("alice/app:2.0"))
        {
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
        )
        .into());
    }
    println!("   layers match the pushed image");
    Ok(())
}
