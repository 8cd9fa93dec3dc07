//! Mapping an invocation result back to the HTTP response a Function URL
//! returns: a `statusCode` object is a structured response, any other JSON
//! is a 200 `application/json` body, a function error is a 502.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::http_server::{json_response, Body};
use crate::runtime_api::{Invocation, Outcome};
use crate::DevstackError;

/// The response for an invocation result.
pub fn from_result(result: Result<Invocation, DevstackError>) -> Response<Body> {
    match result {
        // devstack itself could not invoke (process died, …): Lambda's front
        // end answers 500 for service-side failures.
        Err(e) => json_response(500, &json!({"Message": format!("devstack: {e}")})),
        Ok(invocation) => match invocation.outcome {
            Outcome::FunctionError(doc) => json_response(502, &doc),
            Outcome::Ok(value) => from_value(&value),
        },
    }
}

/// The response for a successful function result.
pub fn from_value(value: &Value) -> Response<Body> {
    match value.as_object() {
        Some(obj) if obj.contains_key("statusCode") => structured(obj)
            .unwrap_or_else(|| json_response(502, &json!({"Message": "Internal Server Error"}))),
        _ => json_response(200, value),
    }
}

/// A `{statusCode, headers, cookies, body, isBase64Encoded}` response; `None`
/// when it is malformed, which Lambda reports as a 502.
fn structured(obj: &serde_json::Map<String, Value>) -> Option<Response<Body>> {
    let status = match obj.get("statusCode")? {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let status = StatusCode::from_u16(status).ok()?;

    let body: Bytes = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if obj.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()?,
            )
        }
        Some(Value::String(text)) => Bytes::from(text.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };

    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Some(Value::Object(map)) = obj.get("headers") {
        for (name, value) in map {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            headers.append(name, HeaderValue::from_str(&text).ok()?);
        }
    }
    if let Some(Value::Array(cookies)) = obj.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            headers.append(
                http::header::SET_COOKIE,
                HeaderValue::from_str(cookie).ok()?,
            );
        }
    }
    // Function URLs default the content type to JSON.
    if !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(resp: Response<Body>) -> Bytes {
        resp.into_body()
            .collect()
            .await
            .expect("full body")
            .to_bytes()
    }

    #[tokio::test]
    async fn structured_response_with_base64_body_and_cookies() {
        let resp = from_value(&json!({
            "statusCode": 201,
            "headers": {"X-A": "1", "Content-Type": "application/octet-stream"},
            "cookies": ["a=1", "b=2"],
            "body": "AAEC",
            "isBase64Encoded": true,
        }));
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["x-a"], "1");
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(&body_of(resp).await[..], &[0u8, 1, 2]);
    }

    #[tokio::test]
    async fn plain_json_is_a_200_body() {
        let resp = from_value(&json!({"hello": "world"}));
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(&body_of(resp).await[..], br#"{"hello":"world"}"#);
    }

    #[tokio::test]
    async fn malformed_structured_response_is_502() {
        assert_eq!(from_value(&json!({"statusCode": "abc"})).status(), 502);
        assert_eq!(
            from_value(&json!({"statusCode": 200, "body": "!!", "isBase64Encoded": true})).status(),
            502
        );
    }
}
