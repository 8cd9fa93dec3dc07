use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devstack::runtime_api::{LocalFunction, RuntimeApi};
use devstack::{DevstackError, Outcome};
use serde_json::{json, Value};

use crate::{echo_binary, log_path};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn echo_lambda_round_trip_with_lambda_context() {
    let env = [("DEVSTACK_ECHO_EXTRA".to_string(), "extra-value".to_string())];
    let function = LocalFunction::start(&echo_binary(), &env, &log_path("rt-echo"))
        .await
        .unwrap();
    let before = now_ms();
    let inv = function
        .invoke(json!({"hello": "world"}), Duration::from_secs(5))
        .await
        .unwrap();
    let out = inv.ok().expect("success").clone();
    assert_eq!(out["event"], json!({"hello": "world"}));
    let ctx = &out["context"];
    assert_eq!(ctx["request_id"], inv.request_id.as_str());
    assert_eq!(
        ctx["function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:devstack-echo"
    );
    assert_eq!(ctx["function_name"], "devstack-echo");
    assert_eq!(ctx["region"], "us-east-1");
    assert_eq!(ctx["extra"], "extra-value");
    assert!(ctx["trace_id"].as_str().unwrap().starts_with("Root=1-"));
    let deadline = ctx["deadline_ms"].as_u64().unwrap();
    assert!(
        deadline >= before + 4_000 && deadline <= now_ms() + 5_000,
        "deadline {deadline}"
    );

    let first_poll = function
        .api
        .first_poll_at()
        .expect("the runtime polled /next");
    assert!(first_poll <= inv.started_at);
    assert!(function.spawned_at < first_poll, "cold start is measurable");
    assert!(!inv.timed_out && inv.duration < Duration::from_secs(5));
    let rss = function.peak_rss_kib().expect("process alive");
    assert!(rss > 100, "peak rss {rss} KiB");
    let (peak_rss_kib, _status) = function.stop().await.unwrap();
    assert!(peak_rss_kib.unwrap() >= rss);
}

#[tokio::test]
async fn function_error_timeout_then_recovery() {
    let function = LocalFunction::start(&echo_binary(), &[], &log_path("rt-errors"))
        .await
        .unwrap();

    let inv = function
        .invoke(
            json!({"devstack": {"error": "boom"}}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let err = inv.error().expect("function error");
    assert_eq!(err["errorMessage"], "boom", "{err}");

    let inv = function
        .invoke(
            json!({"devstack": {"sleep_ms": 1500}}),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert!(inv.timed_out);
    assert_eq!(inv.error().unwrap()["errorType"], "Sandbox.Timedout");
    assert!(
        inv.duration >= Duration::from_millis(300) && inv.duration < Duration::from_millis(1400)
    );

    // The late answer to the timed-out request is accepted and dropped; the
    // runtime then takes the next event, which is answered normally.
    let inv = function
        .invoke(json!({"after": "timeout"}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(inv.ok().unwrap()["event"], json!({"after": "timeout"}));
    assert!(
        inv.queued >= Duration::from_millis(900),
        "waited for the sleeping runtime: {:?}",
        inv.queued
    );
}

#[tokio::test]
async fn invocations_are_fifo_and_one_at_a_time() {
    let function = Arc::new(
        LocalFunction::start(&echo_binary(), &[], &log_path("rt-fifo"))
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for n in 0..5 {
        let f = function.clone();
        tasks.push(tokio::spawn(async move {
            f.invoke(
                json!({"n": n, "devstack": {"sleep_ms": 60}}),
                Duration::from_secs(10),
            )
            .await
        }));
        // Space the submissions so the queue order is the submission order.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap().unwrap());
    }
    let mut by_start = done.clone();
    by_start.sort_by_key(|inv| inv.started_at);
    let order: Vec<i64> = by_start
        .iter()
        .map(|inv| inv.ok().unwrap()["event"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
    for pair in by_start.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].started_at + pair[0].duration,
            "invocations overlapped"
        );
    }
}

#[tokio::test]
async fn process_exit_fails_the_invocation_with_the_log_tail() {
    let function = LocalFunction::start(&echo_binary(), &[], &log_path("rt-exit"))
        .await
        .unwrap();
    let err = function
        .invoke(json!({"devstack": {"exit": 3}}), Duration::from_secs(10))
        .await
        .unwrap_err();
    match err {
        DevstackError::ProcessExited { status, log_tail } => {
            assert!(status.contains('3'), "{status}");
            assert!(log_tail.contains("devstack: starting"), "{log_tail}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn missing_binary_is_a_clear_error() {
    let missing = std::path::Path::new("/nonexistent/devstack-nope");
    match LocalFunction::start(missing, &[], &log_path("rt-missing")).await {
        Err(DevstackError::BinaryNotFound(p)) => assert_eq!(p, missing),
        Err(other) => panic!("unexpected {other:?}"),
        Ok(_) => panic!("spawned a missing binary"),
    }
}

/// Drives the Runtime API by hand, as a runtime client would, to check the
/// protocol details a well-behaved `lambda_runtime` never exercises.
#[tokio::test]
async fn raw_protocol_headers_non_json_bodies_and_stale_events() {
    let mut api = RuntimeApi::start("raw").await.unwrap();
    api.set_dispatch_timeout(Duration::from_millis(200));
    let base = format!("http://{}/2018-06-01/runtime", api.addr());
    let http = reqwest::Client::new();

    // Nobody polls: the invocation gives up and must never be handed out.
    let stale = api
        .invoke(json!({"stale": true}), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(stale, DevstackError::NotPolled { .. }),
        "{stale:?}"
    );
    assert!(api.first_poll_at().is_none());

    let api = Arc::new(api);
    let invoker = {
        let api = api.clone();
        tokio::spawn(async move {
            api.invoke(json!({"fresh": 1}), Duration::from_secs(3))
                .await
        })
    };
    let next = http
        .get(format!("{base}/invocation/next"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    let h = next.headers().clone();
    let id = h["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        h["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:raw"
    );
    assert!(h["lambda-runtime-trace-id"]
        .to_str()
        .unwrap()
        .starts_with("Root=1-"));
    let deadline: u64 = h["lambda-runtime-deadline-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(deadline > now_ms() + 2_000 && deadline <= now_ms() + 3_000);
    let event: Value = serde_json::from_slice(&next.bytes().await.unwrap()).unwrap();
    assert_eq!(event, json!({"fresh": 1}), "the stale event was skipped");
    assert!(api.first_poll_at().is_some());

    let unknown = http
        .post(format!("{base}/invocation/nope/response"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let ok = http
        .post(format!("{base}/invocation/{id}/response"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let inv = invoker.await.unwrap().unwrap();
    assert_eq!(inv.outcome, Outcome::Ok(json!("not json")));
    assert_eq!(inv.request_id, id);

    // An error posted as plain text is wrapped with the header's type.
    let invoker = {
        let api = api.clone();
        tokio::spawn(async move { api.invoke(json!({}), Duration::from_secs(3)).await })
    };
    let next = http
        .get(format!("{base}/invocation/next"))
        .send()
        .await
        .unwrap();
    let id = next.headers()["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    http.post(format!("{base}/invocation/{id}/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.Custom")
        .body("bad thing")
        .send()
        .await
        .unwrap();
    let inv = invoker.await.unwrap().unwrap();
    assert_eq!(
        inv.error().unwrap(),
        &json!({"errorType": "Runtime.Custom", "errorMessage": "bad thing"})
    );

    // After an init error every invocation reports it.
    let init = json!({"errorType": "Runtime.InitError", "errorMessage": "no config"});
    let r = http
        .post(format!("{base}/init/error"))
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let inv = api.invoke(json!({}), Duration::from_secs(1)).await.unwrap();
    assert_eq!(inv.error().unwrap(), &init);
    assert_eq!(api.init_error(), Some(init));
}
