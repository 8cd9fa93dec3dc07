//! A diagnostic stand-in for DynamoDB that answers at once: the items of a
//! snapshot of the real (moto) table for BatchGetItem and GetItem, and an
//! acknowledgement for UpdateItem. With it the benchmark can show what
//! deliver does when its AWS calls cost nothing — moto, one Python process
//! applying DynamoDB calls one at a time on the same CPUs, otherwise hides
//! deliver's own speed. It is labelled as a diagnostic wherever it is used;
//! every counted figure comes from the runs against moto.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Res;

type Items = Arc<HashMap<String, Value>>;

/// A running stub; stopped on drop.
pub struct FakeDynamo {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FakeDynamo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key_of(item: &Value) -> Option<String> {
    let pk = item.get("pk")?.get("S")?.as_str()?;
    let sk = item.get("sk")?.get("S")?.as_str()?;
    Some(format!("{pk}\u{0}{sk}"))
}

/// Every item of `table` in moto at `endpoint`, in DynamoDB's JSON wire
/// format, by key.
pub async fn snapshot(endpoint: &str, table: &str) -> Res<HashMap<String, Value>> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut items = HashMap::new();
    let mut start: Option<Value> = None;
    loop {
        let mut body = json!({ "TableName": table });
        if let Some(k) = start.take() {
            body["ExclusiveStartKey"] = k;
        }
        let raw = http
            .post(endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.Scan")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("Scan: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("Scan answer: {e}"))?;
        let resp: Value = serde_json::from_slice(&raw).map_err(|e| format!("Scan answer: {e}"))?;
        for item in resp
            .get("Items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if let Some(k) = key_of(&item) {
                items.insert(k, item);
            }
        }
        match resp.get("LastEvaluatedKey") {
            Some(k) if !k.is_null() => start = Some(k.clone()),
            _ => return Ok(items),
        }
    }
}

impl FakeDynamo {
    pub async fn start(items: HashMap<String, Value>) -> Res<FakeDynamo> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let items: Items = Arc::new(items);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let items = items.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let items = items.clone();
                        async move { Ok::<_, Infallible>(answer(req, &items).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeDynamo { addr, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    resp
}

async fn answer(req: Request<hyper::body::Incoming>, items: &Items) -> Response<Full<Bytes>> {
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split_once('.'))
        .map(|(_, op)| op.to_owned())
        .unwrap_or_default();
    let body: Value = match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    match op.as_str() {
        "BatchGetItem" => {
            let mut responses = Map::new();
            if let Some(ri) = body.get("RequestItems").and_then(Value::as_object) {
                for (table, ka) in ri {
                    let found: Vec<Value> = ka
                        .get("Keys")
                        .and_then(Value::as_array)
                        .map(|keys| {
                            keys.iter()
                                .filter_map(|k| key_of(k).and_then(|k| items.get(&k).cloned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    responses.insert(table.clone(), Value::Array(found));
                }
            }
            reply(
                200,
                json!({ "Responses": responses, "UnprocessedKeys": {} }),
            )
        }
        "GetItem" => match body.get("Key").and_then(key_of).and_then(|k| items.get(&k)) {
            Some(item) => reply(200, json!({ "Item": item })),
            None => reply(200, json!({})),
        },
        "UpdateItem" => {
            let wants = body
                .get("ReturnValues")
                .and_then(Value::as_str)
                .unwrap_or("NONE");
            match (
                wants,
                body.get("Key").and_then(key_of).and_then(|k| items.get(&k)),
            ) {
                ("NONE", _) | (_, None) => reply(200, json!({})),
                (_, Some(item)) => reply(200, json!({ "Attributes": item })),
            }
        }
        other => reply(
            400,
            json!({
                "__type": "com.amazon.coral.validate#ValidationException",
                "message": format!("bench fake DynamoDB does not serve {other}"),
            }),
        ),
    }
}
