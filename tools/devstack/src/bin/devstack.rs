//! `devstack up`: the whole service on this machine, no Docker, no AWS. moto
//! with the stack, the three binaries on the Runtime API emulation, ingest
//! and settings on Function URLs, the delivery queue's event source mapping
//! and a receiver; it sets a webhook, pushes, and prints the webhook with its
//! signature verified by `standardwebhooks`. Exit 0 means all of that
//! worked; `--keep-running` then leaves it up.

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use devstack::esm::EventSourceMapping;
use devstack::function_url::FunctionUrl;
use devstack::moto::Moto;
use devstack::receiver::{Behaviour, Receiver, RecordedRequest};
use devstack::runtime_api::{workspace_binary, LocalFunction};
use serde_json::{json, Value};

const USAGE: &str = "usage: devstack up [--keep-running]";
const INGEST_TOKEN: &str = "local-ingest-token";
const WAIT: Duration = Duration::from_secs(60);
/// moto's port: the local stack `events/local.env` names, so `cargo lambda
/// watch --env-file events/local.env` finds this stack.
const LOCAL_MOTO_PORT: u16 = 5055;

type Res<T> = Result<T, Box<dyn Error>>;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keep_running = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["up"] => false,
        ["up", "--keep-running"] => true,
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = run(keep_running).await {
        eprintln!("devstack up: FAILED: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run(keep_running: bool) -> Res<()> {
    let started = Instant::now();
    let logs = devstack::paths::target_dir()
        .ok_or("no target directory")?
        .join("devstack-up");
    step("starting moto (DynamoDB + SQS) with the stack's table and queues");
    let moto = Moto::start_on(LOCAL_MOTO_PORT).await?;
    let stack = moto.provision("local-", &[]).await?;
    let out = |name: &str| stack[name].as_str().unwrap_or_default().to_owned();
    let (table, queue) = (out("WebhooksTable"), out("DeliveryQueueUrl"));
    println!("   table {table}, delivery queue {queue}");

    step("starting ingest, deliver and settings through the Lambda Runtime API");
    let mut env = moto.function_env();
    let dlq = out("RegistryEventsDeadLetterQueueUrl");
    let vars = [
        ("WEBHOOKS_TABLE", table),
        ("DELIVERY_QUEUE_URL", queue.clone()),
        ("REGISTRY_EVENTS_QUEUE_URL", out("RegistryEventsQueueUrl")),
        ("REGISTRY_EVENTS_DLQ_URL", dlq),
        ("INGEST_TOKEN", INGEST_TOKEN.into()),
        // The receiver is on 127.0.0.1: allowed only in local use.
        ("ALLOW_PRIVATE_TARGETS", "true".into()),
        ("RETRY_BASE_DELAY_SECS", "2".into()),
        ("RUST_LOG", "info".into()),
    ];
    env.extend(vars.map(|(k, v)| (k.to_owned(), v)));
    let function = |name: &'static str| {
        let (env, log) = (env.clone(), logs.join(format!("{name}.log")));
        async move {
            let started = LocalFunction::start(&workspace_binary(name), &env, &log).await;
            let function = started
                .map_err(|e| format!("starting {name}: {e} (build with `cargo build --bins`)"))?;
            Ok::<_, String>(function.with_timeout(WAIT))
        }
    };
    // The delivery mapping's settings: the template's defaults.
    let param = |name: &str| {
        stack["Parameters"][name]
            .as_str()
            .and_then(|v| v.parse().ok())
    };
    let (batch, window) = (
        param("DeliverBatchSize").ok_or("no DeliverBatchSize")?,
        param("DeliverBatchingWindowSeconds").ok_or("no DeliverBatchingWindowSeconds")?,
    );
    let (sqs, deliver) = (
        aws_sdk_sqs::Client::new(&moto.sdk_config().await),
        function("deliver").await?,
    );
    let window_secs = Duration::from_secs(window as u64);
    let esm = EventSourceMapping::start(
        sqs,
        queue,
        out("DeliveryQueueArn"),
        deliver,
        batch,
        window_secs,
    );
    let ingest = FunctionUrl::serve(function("ingest").await?).await?;
    let settings = FunctionUrl::serve(function("settings").await?).await?;
    let receiver = Receiver::start(Behaviour::ok()).await?;
    println!(
        "   ingest   {}\n   settings {}",
        ingest.url(),
        settings.url()
    );
    println!(
        "   delivery event source mapping: BatchSize {batch}, window {window}s (the template's)"
    );
    println!("   function logs in {}", logs.display());
    println!("   webhook receiver {}", receiver.url("/hooks/alin"));

    let hook_url = receiver.url("/hooks/alin?token=local-receiver-token");
    step("setting the webhook of alice/app through settings (PUT)");
    let put =
        reqwest::Client::new().put(format!("{}/repositories/alice/app/webhook", settings.url()));
    let config = call(put.json(&json!({ "url": hook_url })), 200).await?;
    let secret = config["secret"].as_str().ok_or("config has no secret")?;
    println!(
        "   enabled={}, secret whsec_… (kept for verification)",
        config["enabled"]
    );

    step("pushing alice/app:1.0 through ingest (native push event)");
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let push = json!({
        "event": "push", "username": "alice", "repository": "app", "tag": "1.0",
        "digest": digest('d'), "image_size": 3_456_789, "layers": [digest('a'), digest('b')],
        "repository_size": 9_876_543, "pushed_at": "2026-11-28T08:00:00Z", "id": "local-demo-push-1"
    });
    let post = reqwest::Client::new().post(format!("{}/", ingest.url()));
    call(post.bearer_auth(INGEST_TOKEN).json(&push), 202).await?;

    step("waiting for the webhook (the event source mapping's batching window)");
    let got = receiver.wait_for(1, WAIT).await?;
    let req = got.first().ok_or("no webhook received")?;
    step("the webhook the receiver got");
    print_request(req);
    if receiver.url(&req.target) != hook_url {
        return Err(format!("request target {:?} is not the configured one", req.target).into());
    }
    devstack::verify_standardwebhooks(secret, &req.headers, &req.body_text())?;
    println!("   signature verified by the standardwebhooks library; query string kept");
    println!(
        "\nOK: push → ingest → queue → deliver → webhook, signature verified, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if keep_running {
        serve_until_ctrl_c(&settings, &ingest, &receiver).await;
    }
    println!("event source mapping: {:?}", esm.stop().await?);
    Ok(())
}

/// Sends `request`, prints the answer and returns its JSON body (null when
/// there is none) if the status is `expected`.
async fn call(request: reqwest::RequestBuilder, expected: u16) -> Res<Value> {
    let answer = request.send().await?;
    let (status, text) = (answer.status(), answer.text().await.unwrap_or_default());
    let body: Value = serde_json::from_str(&text).unwrap_or_default();
    if status != expected {
        return Err(format!("answered {status}, not {expected}: {text}").into());
    }
    // The settings answer holds the webhook's secret: print its status only.
    match body.get("secret") {
        Some(_) => println!("   {status}"),
        None => println!("   {status} {text}"),
    }
    Ok(body)
}

async fn serve_until_ctrl_c(settings: &FunctionUrl, ingest: &FunctionUrl, receiver: &Receiver) {
    let (settings, ingest) = (settings.url(), ingest.url());
    let push = json!({"event":"push","username":"alice","repository":"app","tag":"2.0","image_size":1,"layers":[],"repository_size":1});
    println!(
        "\nThe stack keeps running; Ctrl-C stops it. Try:\n  export SETTINGS={settings} INGEST={ingest}
  curl -s \"$SETTINGS/repositories/alice/app/webhook\"
  curl -s -X POST \"$SETTINGS/repositories/alice/app/webhook/test\"
  curl -s -X POST \"$INGEST/\" -H 'authorization: Bearer {INGEST_TOKEN}' -d '{push}'
  webhooks arrive at the receiver and are printed below"
    );
    let mut seen = receiver.count();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let all = receiver.requests();
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
