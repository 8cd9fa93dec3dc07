//! Lambda Function URL requests and responses (payload format 2.0), as lean
//! lenient types: only the fields we read, every one defaulted, so that a
//! malformed request still reaches our code and gets a JSON 4xx instead of
//! a runtime deserialisation error.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The parts of a payload-format-2.0 request we use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRequest {
    pub raw_path: String,
    pub raw_query_string: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub is_base64_encoded: bool,
    pub request_context: RequestContext,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestContext {
    pub http: HttpDescription,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpDescription {
    pub method: String,
    pub path: String,
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is not valid base64")]
    Base64,
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
}

impl HttpRequest {
    /// True when the event looks like a Function URL / HTTP API request.
    pub fn matches(event: &Value) -> bool {
        event
            .get("requestContext")
            .is_some_and(|c| c.get("http").is_some())
    }

    /// A header, case-insensitively (Function URLs lowercase them anyway).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn method(&self) -> &str {
        &self.request_context.http.method
    }

    /// The path, from `rawPath` or the context.
    pub fn path(&self) -> &str {
        if self.raw_path.is_empty() {
            &self.request_context.http.path
        } else {
            &self.raw_path
        }
    }

    /// The body bytes, decoded, refusing anything over `limit` bytes.
    pub fn body_bytes(&self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let Some(body) = &self.body else {
            return Ok(Vec::new());
        };
        // Base64 is 4/3 of the decoded size: refuse early without decoding.
        let encoded_limit = if self.is_base64_encoded {
            limit / 3 * 4 + 4
        } else {
            limit
        };
        if body.len() > encoded_limit {
            return Err(BodyError::TooLarge(limit));
        }
        let bytes = if self.is_base64_encoded {
            STANDARD.decode(body).map_err(|_| BodyError::Base64)?
        } else {
            body.as_bytes().to_vec()
        };
        if bytes.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        Ok(bytes)
    }
}

/// A payload-format-2.0 response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

impl HttpResponse {
    /// A JSON response with the right content type.
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status_code: status,
            headers: BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]),
            body: Some(value.to_string()),
            is_base64_encoded: false,
        }
    }

    /// `{"error": reason}`.
    pub fn error(status: u16, reason: impl Into<String>) -> Self {
        Self::json(status, &serde_json::json!({ "error": reason.into() }))
    }

    /// A bodiless response (204) that still declares JSON, like every answer.
    pub fn empty(status: u16) -> Self {
        Self {
            status_code: status,
            headers: BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]),
            body: None,
            is_base64_encoded: false,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The body parsed as JSON (tests).
    pub fn body_json(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_base64_bodies_with_limits() {
        let req: HttpRequest = serde_json::from_value(serde_json::json!({
            "rawPath": "/x", "headers": {"Content-Type": "application/json"},
            "requestContext": {"http": {"method": "POST"}}, "body": "aGVsbG8=", "isBase64Encoded": true
        }))
        .unwrap();
        assert_eq!(req.body_bytes(100).unwrap(), b"hello");
        assert_eq!(req.body_bytes(3), Err(BodyError::TooLarge(3)));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.method(), "POST");
        let bad = HttpRequest {
            body: Some("***".into()),
            is_base64_encoded: true,
            ..Default::default()
        };
        assert_eq!(bad.body_bytes(100), Err(BodyError::Base64));
        assert!(HttpRequest::matches(
            &serde_json::json!({"requestContext": {"http": {}}})
        ));
        assert!(!HttpRequest::matches(&serde_json::json!({"Records": []})));
    }

    #[test]
    fn error_responses_are_json() {
        let r = HttpResponse::error(400, "bad");
        assert_eq!(r.status_code, 400);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.body_json(), serde_json::json!({"error": "bad"}));
    }
}
