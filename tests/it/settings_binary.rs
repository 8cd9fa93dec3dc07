//! The `settings` binary as Lambda runs it: a process polling the Runtime
//! API (devstack `LocalFunction`), behind an emulated Function URL, against
//! moto. One full set → get → test → delete round over HTTP, with the ping
//! job checked on the real SQS queue, plus the answers the binary must give
//! without a function error. Needs `cargo build -p settings` first
//! (scripts/test.sh builds every binary before the tests).

use std::sync::Arc;
use std::time::Duration;

use alin_tests::{repo_root, Stack};
use devstack::function_url::FunctionUrl;
use devstack::runtime_api::{workspace_binary, LocalFunction};
use serde_json::{json, Value};
use shared::domain::{DeliveryJob, RepositoryName};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn start(stack: &Stack, extra_env: &[(&str, &str)]) -> (Arc<LocalFunction>, String) {
    let binary = workspace_binary("settings");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p settings` first",
        binary.display()
    );
    let mut env = stack.function_env();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let log = repo_root()
        .join(".devstack")
        .join("logs")
        .join(format!("settings-{}.log", stack.table));
    let function = Arc::new(
        LocalFunction::start(&binary, &env, &log)
            .await
            .expect("settings starts")
            .with_timeout(TIMEOUT),
    );
    (function, log.to_string_lossy().into_owned())
}

async fn json_of(resp: reqwest::Response) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, content_type, body)
}

#[tokio::test]
async fn binary_serves_set_get_test_delete_through_the_runtime_api() {
    let stack = Stack::new("settings-bin").await;
    let (function, log_path) = start(&stack, &[]).await;
    let url = FunctionUrl::serve(function.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let name = "alice/team/app";
    let base = format!("{}/repositories/{name}/webhook", url.url());
    // An IP literal: no DNS needed by the binary's system resolver.
    let hook = "https://93.184.215.14/hooks/alin?token=t0ken";

    // set
    let put = http
        .put(&base)
        .header("content-type", "application/json")
        .body(json!({ "url": hook }).to_string())
        .send()
        .await
        .unwrap();
    let (status, content_type, config) = json_of(put).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(content_type, "application/json");
    assert_eq!(config["repository"], name);
    assert_eq!(config["url"], hook);
    assert_eq!(config["enabled"], true);
    assert_eq!(config["consecutive_failures"], 0);
    let secret = config["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    // get
    let (status, _, got) = json_of(http.get(&base).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(got, config);

    // test: a ping job on the real delivery queue
    let (status, content_type, answer) =
        json_of(http.post(format!("{base}/test")).send().await.unwrap()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(content_type, "application/json");
    assert_eq!(answer["queued"], true);
    let webhook_id = answer["webhook_id"].as_str().unwrap().to_owned();
    let messages = stack.drain(&stack.queue_url, 10).await;
    assert_eq!(messages.len(), 1);
    let body: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"v": 1, "webhook_id": webhook_id, "kind": "ping", "repository": name,
               "tag": "ping", "image_size": 0, "layers": [], "repository_size": 0})
    );
    let job = DeliveryJob::parse(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        job,
        DeliveryJob::ping(RepositoryName::parse(name).unwrap(), 0, webhook_id)
    );

    // delete
    let resp = http.delete(&base).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.text().await.unwrap().is_empty());
    let (status, _, gone) = json_of(http.get(&base).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"], format!("repository {name} has no webhook"));

    // The binary logged the requests, never the secret or the URL's path/query.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("settings request"), "{log}");
    for leak in [secret.as_str(), "t0ken", "/hooks/alin"] {
        assert!(!log.contains(leak), "log leaks {leak:?}:\n{log}");
    }
}

#[tokio::test]
async fn binary_answers_errors_as_json_never_as_function_errors() {
    let stack = Stack::new("settings-bin-err").await;
    let (function, _) = start(&stack, &[]).await;

    // Not a Function URL event: a 400 response, not a function error.
    for event in [json!({"Records": []}), json!(null), json!("hello")] {
        let inv = function.invoke(event.clone(), TIMEOUT).await.unwrap();
        let out = inv
            .ok()
            .unwrap_or_else(|| panic!("{event}: {:?}", inv.error()));
        assert_eq!(out["statusCode"], 400, "{out}");
        assert_eq!(out["headers"]["content-type"], "application/json");
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("not a Lambda Function URL"));
    }

    let url = FunctionUrl::serve(function.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("{}/repositories/alice/app/webhook", url.url());
    let put = |body: String| {
        http.put(&base)
            .header("content-type", "application/json")
            .body(body)
    };

    let (status, _, e) = json_of(
        put(json!({"url": "http://10.0.0.1/"}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("private"), "{e}");
    let (status, _, _) = json_of(put("{".into()).send().await.unwrap()).await;
    assert_eq!(status, 400);
    let (status, _, _) = json_of(put(" ".repeat(16 * 1024 + 1)).send().await.unwrap()).await;
    assert_eq!(status, 413);
    let resp = http.post(&base).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "GET, PUT, DELETE");
    let (status, _, _) = json_of(
        http.get(format!("{}/nope", url.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = json_of(
        http.get(format!("{}/repositories/app/webhook", url.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    // ALLOW_PRIVATE_TARGETS reaches the binary: a local URL is accepted.
    let (function, _) = start(&stack, &[("ALLOW_PRIVATE_TARGETS", "true")]).await;
    let open = FunctionUrl::serve(function).await.unwrap();
    let resp = http
        .put(format!("{}/repositories/alice/app/webhook", open.url()))
        .body(json!({"url": "http://127.0.0.1:9/hook"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
