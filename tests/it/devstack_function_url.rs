use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use devstack::function_url::FunctionUrl;
use devstack::runtime_api::LocalFunction;
use devstack::{invoker_fn, Outcome};
use serde_json::{json, Value};

use crate::{echo_binary, log_path};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn closure_round_trip_status_headers_cookies_and_base64() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = seen.clone();
    let url = FunctionUrl::serve(invoker_fn(move |event: Value| {
        record.lock().unwrap().push(event);
        async move {
            Outcome::Ok(json!({
                "statusCode": 418,
                "headers": {"x-answer": "42", "content-type": "image/png"},
                "cookies": ["a=1; Path=/", "b=2"],
                "body": b64(&[0x89, b'P', b'N', b'G', 0, 0xff]),
                "isBase64Encoded": true,
            }))
        }
    }))
    .await
    .unwrap();

    let resp = reqwest::Client::new()
        .post(format!("{}/hooks/ecr?x=1&x=2&y=a%2Fb", url.url()))
        .header("Content-Type", "application/octet-stream")
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .header("Cookie", "session=abc; theme=dark")
        .body(vec![0u8, 1, 2, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.headers()["x-answer"], "42");
    assert_eq!(resp.headers()["content-type"], "image/png");
    let cookies: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
    assert_eq!(
        &resp.bytes().await.unwrap()[..],
        &[0x89, b'P', b'N', b'G', 0, 0xff]
    );

    let event = seen.lock().unwrap()[0].clone();
    assert_eq!(event["rawPath"], "/hooks/ecr");
    assert_eq!(event["rawQueryString"], "x=1&x=2&y=a%2Fb");
    assert_eq!(
        event["queryStringParameters"],
        json!({"x": "1,2", "y": "a/b"})
    );
    assert_eq!(event["headers"]["x-multi"], "one,two");
    assert_eq!(event["cookies"], json!(["session=abc", "theme=dark"]));
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], b64(&[0, 1, 2, 0xfe]));
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(event["requestContext"]["apiId"], url.url_id());
}

#[tokio::test]
async fn plain_json_is_200_and_function_error_is_502() {
    let url = FunctionUrl::serve(invoker_fn(|event: Value| async move {
        if event["rawPath"] == "/boom" {
            Outcome::FunctionError(json!({"errorType": "Oops", "errorMessage": "it broke"}))
        } else {
            Outcome::Ok(json!({"plain": event["body"].clone()}))
        }
    }))
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/ok", url.url()))
        .header("content-type", "application/json")
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body, json!({"plain": "{\"a\":1}"}));

    let resp = http
        .get(format!("{}/boom", url.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["errorMessage"], "it broke");
}

#[tokio::test]
async fn bodies_up_to_6_mib_pass_larger_are_413() {
    let url = FunctionUrl::serve(invoker_fn(|event: Value| async move {
        let body = event["body"].as_str().unwrap_or("");
        Outcome::Ok(json!({"received": body.len()}))
    }))
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let five_mib = "x".repeat(5 * 1024 * 1024);
    let resp = http
        .post(url.url())
        .header("content-type", "text/plain")
        .body(five_mib)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["received"], 5 * 1024 * 1024);

    let seven_mib = "x".repeat(7 * 1024 * 1024);
    let resp = http
        .post(url.url())
        .header("content-type", "text/plain")
        .body(seven_mib)
        .send()
        .await;
    // The server refuses before reading everything; the client sees either
    // the 413 or the connection closing under its upload.
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    }
}

#[tokio::test]
async fn echo_lambda_behind_a_function_url() {
    let function = LocalFunction::start(&echo_binary(), &[], &log_path("url-echo"))
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let url = FunctionUrl::serve(function).await.unwrap();
    let http = reqwest::Client::new();

    let binary: Vec<u8> = (0..=255u8).collect();
    let resp = http
        .put(format!("{}/echo/path?q=1", url.url()))
        .header("content-type", "application/octet-stream")
        .header("x-echo-status", "201")
        .header("cookie", "c=1")
        .body(binary.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-echo-method"], "PUT");
    assert_eq!(resp.headers()["x-echo-path"], "/echo/path");
    assert_eq!(resp.headers()["x-echo-query"], "q=1");
    assert_eq!(resp.headers()["set-cookie"], "c=1");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), binary);

    let resp = http
        .post(url.url())
        .header("content-type", "application/json")
        .body(r#"{"text":"héllo"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), r#"{"text":"héllo"}"#);
}
