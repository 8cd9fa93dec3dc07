//! A Lambda Function URL emulation (auth type NONE): each request becomes
//! the payload-format-2.0 event, the [`Invoker`]'s result becomes the HTTP
//! answer by the Function URL rules (a `statusCode` object is structured,
//! other JSON a 200, a function error a 502).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::http_server::{self, json_response, Body, ConnInfo, Reply, ServerHandle};
use crate::paths::{self, REGION};
use crate::runtime_api::Outcome;
use crate::DevstackError;
use crate::Invoker;

/// Lambda's synchronous invocation payload limit: larger bodies are refused
/// the way the Function URL front end refuses them.
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

pub struct FunctionUrl {
    server: ServerHandle,
    url_id: String,
}

impl FunctionUrl {
    /// Serves `invoker` on a free port of 127.0.0.1 in a background task.
    /// Pass an `Arc<LocalFunction>` to share one function with other event
    /// sources.
    pub async fn serve<I: Invoker>(invoker: I) -> Result<FunctionUrl, DevstackError> {
        // Function URL ids are 32 lowercase alphanumerics; hex is a subset.
        let (invoker, url_id) = (Arc::new(invoker), paths::random_hex(16));
        let id = url_id.clone();
        let server = http_server::serve("Function URL", false, None, move |req, info| {
            handle(invoker.clone(), id.clone(), req, info)
        });
        Ok(FunctionUrl {
            server: server.await?,
            url_id,
        })
    }

    /// `http://127.0.0.1:PORT`, without the trailing slash AWS shows.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The emulated URL id (the `apiId`/`domainPrefix` of the events).
    pub fn url_id(&self) -> &str {
        &self.url_id
    }
}

async fn handle<I: Invoker>(
    invoker: Arc<I>,
    url_id: String,
    req: Request<Incoming>,
    info: ConnInfo,
) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let too_large =
                format!("Request must be smaller than {MAX_BODY_BYTES} bytes for the InvokeFunction operation");
            let bad = e
                .is::<http_body_util::LengthLimitError>()
                .then_some((413, too_large));
            let (status, message) = bad.unwrap_or_else(|| (400, format!("bad request body: {e}")));
            return Reply::Response(json_response(status, &json!({ "Message": message })));
        }
    };
    let invoked = invoker
        .invoke_event(event(&parts, &body, info, &url_id))
        .await;
    Reply::Response(match invoked.map(|invocation| invocation.outcome) {
        // devstack itself could not invoke (process died, …): Lambda's front
        // end answers 500 for service-side failures.
        Err(e) => json_response(500, &json!({"Message": format!("devstack: {e}")})),
        Ok(Outcome::FunctionError(doc)) => json_response(502, &doc),
        Ok(Outcome::Ok(value)) if value.get("statusCode").is_none() => json_response(200, &value),
        Ok(Outcome::Ok(value)) => serde_json::from_value::<Structured>(value)
            .ok()
            .and_then(Structured::into_response)
            .unwrap_or_else(|| json_response(502, &json!({"Message": "Internal Server Error"}))),
    })
}

fn event(parts: &http::request::Parts, body: &[u8], info: ConnInfo, url_id: &str) -> Value {
    let mut req = LambdaFunctionUrlRequest::default();
    // The headers as Lambda passes them: names lowercased, repeated headers
    // joined with commas, no `cookie`, and the forwarding headers its front
    // end adds.
    for name in parts.headers.keys().filter(|name| *name != COOKIE) {
        let values: Vec<_> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        if let Ok(value) = HeaderValue::from_bytes(values.join(",").as_bytes()) {
            req.headers.insert(name, value);
        }
    }
    let forwarded = [
        ("x-forwarded-for", info.peer.ip().to_string()),
        ("x-forwarded-proto", "http".to_owned()),
        ("x-forwarded-port", info.local.port().to_string()),
        ("x-amzn-trace-id", paths::trace_header()),
    ];
    for (name, value) in forwarded {
        if let (false, Ok(value)) = (
            req.headers.contains_key(name),
            HeaderValue::from_str(&value),
        ) {
            req.headers.insert(name, value);
        }
    }
    let raw_query = parts.uri.query().unwrap_or("");
    for (key, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        let joined = req
            .query_string_parameters
            .entry(key.into_owned())
            .or_default();
        *joined += &format!("{}{value}", if joined.is_empty() { "" } else { "," });
    }
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let textual = header(CONTENT_TYPE).is_some_and(is_textual);
    req.is_base64_encoded = !body.is_empty();
    req.body = match std::str::from_utf8(body) {
        _ if body.is_empty() => None,
        Ok(text) if textual => {
            req.is_base64_encoded = false;
            Some(text.to_owned())
        }
        _ => Some(STANDARD.encode(body)),
    };
    let mut cookies = Vec::new();
    for value in parts.headers.get_all(COOKIE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        cookies.extend(
            text.split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        );
    }
    req.cookies = (!cookies.is_empty()).then_some(cookies);
    req.version = Some("2.0".into());
    req.raw_path = Some(parts.uri.path().to_owned());
    req.raw_query_string = Some(raw_query.to_owned());
    let now = OffsetDateTime::now_utc();
    let ctx = &mut req.request_context;
    // What Lambda sends for auth type NONE, not the function's account.
    ctx.account_id = Some("anonymous".into());
    ctx.apiid = Some(url_id.to_owned());
    ctx.domain_name = Some(format!("{url_id}.lambda-url.{REGION}.on.aws"));
    ctx.domain_prefix = Some(url_id.to_owned());
    ctx.request_id = Some(paths::uuid_v4());
    let time_fmt =
        format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    ctx.time = now.format(&time_fmt).ok();
    ctx.time_epoch = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    ctx.http.method = Some(parts.method.to_string());
    ctx.http.path = Some(parts.uri.path().to_owned());
    ctx.http.protocol = Some(format!("{:?}", parts.version));
    ctx.http.source_ip = Some(info.peer.ip().to_string());
    ctx.http.user_agent = Some(header(http::header::USER_AGENT).unwrap_or("").to_owned());
    let mut event = serde_json::to_value(&req).unwrap_or_default();
    event["routeKey"] = json!("$default");
    event["requestContext"]["routeKey"] = json!("$default");
    event["requestContext"]["stage"] = json!("$default");
    // Lambda omits keys it has nothing for rather than sending null or {}.
    let present = |_: &String, v: &mut Value| !v.is_null() && v != &json!({});
    if let Some(ctx) = event["requestContext"].as_object_mut() {
        ctx.retain(present);
    }
    if let Some(top) = event.as_object_mut() {
        top.retain(present);
    }
    event
}

/// Whether Lambda passes a body of this content type as text; everything
/// else (including a missing content type) arrives base64-encoded.
fn is_textual(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = [
        "application/json",
        "application/xml",
        "application/javascript",
    ];
    mime.starts_with("text/")
        || text.contains(&mime.as_str())
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
}

/// A structured function response (`{statusCode, headers, cookies, body,
/// isBase64Encoded}`); one that does not parse is a 502, as in Lambda.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Structured {
    status_code: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    cookies: Vec<String>,
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

impl Structured {
    fn into_response(self) -> Option<Response<Body>> {
        let body = match self.body {
            None => Bytes::new(),
            Some(text) if self.is_base64_encoded => STANDARD.decode(text).ok()?.into(),
            Some(text) => text.into(),
        };
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = StatusCode::from_u16(self.status_code).ok()?;
        let headers: &mut HeaderMap = resp.headers_mut();
        // Function URLs default the content type to JSON.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(&value).ok()?,
            );
        }
        for cookie in self.cookies {
            headers.append(SET_COOKIE, HeaderValue::from_str(&cookie).ok()?);
        }
        Some(resp)
    }
}
