//! The request log: what each request logs, and that neither the secret nor
//! the webhook URL's path or query ever reaches it. A test binary of its own
//! because a scoped tracing subscriber is only reliable without other tests
//! registering callsites on other threads at the same time.

use std::sync::{Arc, Mutex};

use lambda_runtime::tracing::subscriber;
use serde_json::{json, Value};
use settings::Settings;
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::function_url::HttpResponse;
use shared::net::StaticLookup;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn call(settings: &Settings, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    settings
        .handle_event(json!({
            "version": "2.0",
            "rawPath": path,
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": method, "path": path}, "requestId": "req-42"},
            "body": body.map(|b| b.to_string()),
            "isBase64Encoded": false
        }))
        .await
}

#[tokio::test]
async fn logs_name_the_request_but_never_the_secret_or_the_url_path() {
    let logs = Captured::default();
    let writer = logs.clone();
    let collector = subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(collector);

    let settings = Settings::new(
        Arc::new(MemoryStore::default()),
        Arc::new(MemoryQueue::default()),
        Arc::new(StaticLookup::new().with("ci.example.com", &["93.184.215.14".parse().unwrap()])),
        false,
    );
    let base = "/repositories/alice/app/webhook";
    let put = call(
        &settings,
        "PUT",
        base,
        Some(json!({"url": "https://ci.example.com/hooks/s3cr3t-path?token=t0ken"})),
    )
    .await;
    assert_eq!(put.status_code, 200);
    let secret = put.body_json()["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&settings, "POST", &format!("{base}/test"), None)
            .await
            .status_code,
        202
    );
    call(&settings, "POST", &format!("{base}/enable"), None).await;
    call(&settings, "GET", base, None).await;
    let refused = call(
        &settings,
        "PUT",
        base,
        Some(json!({"url": "http://10.0.0.1/private-s3cr3t-path?token=t0ken"})),
    )
    .await;
    assert_eq!(refused.status_code, 400);
    call(&settings, "PATCH", base, None).await;
    call(&settings, "GET", "/elsewhere/s3cr3t-path", None).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for forbidden in [secret.as_str(), "s3cr3t", "t0ken", "whsec_"] {
        assert!(
            !text.contains(forbidden),
            "logs contain {forbidden:?}:\n{text}"
        );
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |pred: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .find(|l| pred(&l["fields"]))
            .cloned()
            .unwrap_or_else(|| panic!("no such log line in\n{text}"))
    };
    let put_line =
        find(&|f| f["route"] == "PUT /repositories/{name}/webhook" && f["status"] == 200);
    assert_eq!(put_line["fields"]["method"], "PUT");
    assert_eq!(put_line["fields"]["repository"], "alice/app");
    assert_eq!(put_line["fields"]["target"], "https://ci.example.com");
    assert_eq!(put_line["fields"]["request_id"], "req-42");
    let test_line = find(&|f| f["status"] == 202);
    assert_eq!(
        test_line["fields"]["route"],
        "POST /repositories/{name}/webhook/test"
    );
    assert!(test_line["fields"]["webhook_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    find(&|f| f["status"] == 400 && f["error_kind"] == "forbidden_address");
    let wrong_method = find(&|f| f["status"] == 405);
    assert_eq!(
        wrong_method["fields"]["route"],
        "/repositories/{name}/webhook"
    );
    let unknown = find(&|f| f["status"] == 404);
    assert_eq!(unknown["fields"]["route"], "unknown");
}
