//! devstack-echo: a minimal Lambda function built on `lambda_runtime`, used
//! to test devstack's emulations end to end with a real runtime client.
//!
//! Behaviour by event shape:
//! - `{"devstack": {...}}` controls: `sleep_ms` (then continue), `error`
//!   (return that error), `exit` (exit the process with that code).
//! - An SQS event (`Records`): reports every record whose body contains
//!   `fail` in `batchItemFailures`; a body containing `crash` fails the whole
//!   invocation.
//! - A Function URL event (`requestContext.http`): answers a structured
//!   response echoing the request body byte for byte (same base64 flag and
//!   content type), cookies, and the status from header `x-echo-status`.
//! - Anything else: `{"event": <event>, "context": {...}}`.

use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();

    if let Some(control) = payload.get("devstack") {
        if let Some(ms) = control.get("sleep_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(message) = control.get("error").and_then(Value::as_str) {
            return Err(message.into());
        }
        if let Some(code) = control.get("exit").and_then(Value::as_i64) {
            std::process::exit(i32::try_from(code).unwrap_or(1));
        }
    }

    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        let body = |r: &Value| {
            r.get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        if records.iter().any(|r| body(r).contains("crash")) {
            return Err("a record asked to crash the batch".into());
        }
        let failures: Vec<Value> = records
            .iter()
            .filter(|r| body(r).contains("fail"))
            .map(|r| json!({"itemIdentifier": r.get("messageId").cloned().unwrap_or(Value::Null)}))
            .collect();
        return Ok(json!({ "batchItemFailures": failures }));
    }

    if payload.pointer("/requestContext/http").is_some() {
        let header = |name: &str| {
            payload
                .pointer(&format!("/headers/{name}"))
                .and_then(Value::as_str)
        };
        let status: u16 = header("x-echo-status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        return Ok(json!({
            "statusCode": status,
            "headers": {
                "content-type": header("content-type").unwrap_or("application/octet-stream"),
                "x-echo-method": payload.pointer("/requestContext/http/method").cloned().unwrap_or(Value::Null),
                "x-echo-path": payload.get("rawPath").cloned().unwrap_or(Value::Null),
                "x-echo-query": payload.get("rawQueryString").cloned().unwrap_or(Value::Null),
            },
            "cookies": payload.get("cookies").cloned().unwrap_or_else(|| json!([])),
            "body": payload.get("body").cloned().unwrap_or_else(|| json!("")),
            "isBase64Encoded": payload.get("isBase64Encoded").cloned().unwrap_or(Value::Bool(false)),
        }));
    }

    Ok(json!({
        "event": payload,
        "context": {
            "request_id": ctx.request_id,
            "deadline_ms": ctx.deadline,
            "function_arn": ctx.invoked_function_arn,
            "trace_id": ctx.xray_trace_id,
            "function_name": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
            "region": std::env::var("AWS_REGION").ok(),
            "extra": std::env::var("DEVSTACK_ECHO_EXTRA").ok(),
        },
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
