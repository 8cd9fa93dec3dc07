//! A diagnostic stand-in for DynamoDB that answers at once: the items of a
//! snapshot of the real (moto) table for BatchGetItem and GetItem, and an
//! acknowledgement for UpdateItem. With it the benchmark shows what deliver
//! does when its AWS calls cost nothing — moto, one Python process applying
//! DynamoDB calls one at a time on the same CPUs, otherwise hides deliver's
//! own speed. Labelled as a diagnostic wherever it is used; every counted
//! figure comes from the runs against moto.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Res;

/// A running stub; stopped on drop.
pub struct FakeDynamo {
    endpoint: String,
    task: JoinHandle<()>,
}

impl Drop for FakeDynamo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key_of(item: &Value) -> Option<String> {
    Some(format!(
        "{}\u{0}{}",
        item["pk"]["S"].as_str()?,
        item["sk"]["S"].as_str()?
    ))
}

/// One DynamoDB JSON call to `endpoint` (moto), unsigned as moto allows.
async fn call(http: &reqwest::Client, endpoint: &str, op: &str, body: Value) -> Res<Value> {
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, \
                SignedHeaders=host, Signature=0";
    let resp = http
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header("authorization", auth)
        .body(body.to_string())
        .send()
        .await;
    let raw = resp.map_err(|e| format!("{op}: {e}"))?.bytes().await;
    serde_json::from_slice(&raw.map_err(|e| format!("{op}: {e}"))?)
        .map_err(|e| format!("{op}: {e}"))
}

impl FakeDynamo {
    /// Snapshots `table` in moto at `moto` (at least `min_items` items) and
    /// serves it on 127.0.0.1.
    pub async fn start(moto: &str, table: &str, min_items: usize) -> Res<FakeDynamo> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let mut items = HashMap::new();
        let mut body = json!({ "TableName": table });
        loop {
            let page = call(&http, moto, "Scan", body.clone()).await?;
            for item in page["Items"].as_array().into_iter().flatten() {
                items.extend(key_of(item).map(|k| (k, item.clone())));
            }
            match page.get("LastEvaluatedKey") {
                Some(k) if !k.is_null() => body["ExclusiveStartKey"] = k.clone(),
                _ => break,
            }
        }
        if items.len() < min_items {
            return Err(format!(
                "table snapshot has {} items, expected {min_items}",
                items.len()
            ));
        }
        let items = Arc::new(items);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let endpoint = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let items = items.clone();
                let service = hyper::service::service_fn(move |req| {
                    let items = items.clone();
                    async move { Ok::<_, Infallible>(answer(req, &items).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Ok(FakeDynamo { endpoint, task })
    }

    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    items: &HashMap<String, Value>,
) -> Response<Full<Bytes>> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let op = target.split_once('.').map_or("", |(_, op)| op).to_owned();
    let body: Value = match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let item = || body.get("Key").and_then(key_of).and_then(|k| items.get(&k));
    let (status, answer) = match op.as_str() {
        "BatchGetItem" => {
            let mut responses = Map::new();
            for (table, ka) in body["RequestItems"].as_object().into_iter().flatten() {
                let keys = ka["Keys"].as_array().into_iter().flatten();
                let found = keys.filter_map(|k| key_of(k).and_then(|k| items.get(&k).cloned()));
                responses.insert(table.clone(), Value::Array(found.collect()));
            }
            (
                200,
                json!({ "Responses": responses, "UnprocessedKeys": {} }),
            )
        }
        "GetItem" => (200, item().map_or(json!({}), |i| json!({ "Item": i }))),
        "UpdateItem" => match (body["ReturnValues"].as_str().unwrap_or("NONE"), item()) {
            ("NONE", _) | (_, None) => (200, json!({})),
            (_, Some(i)) => (200, json!({ "Attributes": i })),
        },
        other => (
            400,
            json!({
                "__type": "com.amazon.coral.validate#ValidationException",
                "message": format!("bench fake DynamoDB does not serve {other}"),
            }),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    resp
}
