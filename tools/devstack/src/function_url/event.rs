//! Building the payload-format-2.0 event Lambda sends for a Function URL
//! request (<https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html>).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::util::{self, REGION};

/// Whether Lambda passes a body of this content type as text; everything
/// else (including a missing content type) arrives base64-encoded.
pub fn is_textual(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "application/xml"
        || mime.ends_with("+xml")
        || mime == "application/javascript"
}

/// The event for one request. `now` is a parameter so tests can pin time.
pub fn build(
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    local: SocketAddr,
    url_id: &str,
    now: OffsetDateTime,
) -> Value {
    let headers = &parts.headers;
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());

    let mut cookies: Vec<String> = Vec::new();
    for value in headers.get_all(http::header::COOKIE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        cookies.extend(
            text.split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        );
    }

    // Lambda lowercases names and joins repeated headers with commas; the
    // cookie header moves to `cookies`.
    let mut header_map = Map::new();
    for name in headers.keys() {
        if name == http::header::COOKIE {
            continue;
        }
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        header_map.insert(name.as_str().to_owned(), Value::String(joined));
    }
    // The Function URL front end adds these; functions read the client IP here.
    let defaults = [
        ("x-forwarded-for", peer.ip().to_string()),
        ("x-forwarded-proto", "http".to_owned()),
        ("x-forwarded-port", local.port().to_string()),
        ("x-amzn-trace-id", util::trace_header()),
    ];
    for (name, value) in defaults {
        header_map.entry(name).or_insert(Value::String(value));
    }

    let raw_query = parts.uri.query().unwrap_or("");
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }

    let (body_field, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (None, false),
        Ok(text) if is_textual(header_str("content-type")) => (Some(text.to_owned()), false),
        _ => (
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };

    let domain = format!("{url_id}.lambda-url.{REGION}.on.aws");
    let time_fmt =
        format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    let time_text = now.format(&time_fmt).unwrap_or_default();
    let epoch_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);

    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            // What Lambda sends for auth type NONE, not the function's account.
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": domain,
            "domainPrefix": url_id,
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": format!("{:?}", parts.version),
                "sourceIp": peer.ip().to_string(),
                "userAgent": header_str("user-agent").unwrap_or(""),
            },
            "requestId": util::uuid_v4(),
            "routeKey": "$default",
            "stage": "$default",
            "time": time_text,
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": is_base64,
    });
    // Lambda omits these keys entirely (rather than sending null/empty) when
    // there is nothing to put in them.
    if let Some(obj) = event.as_object_mut() {
        if !cookies.is_empty() {
            obj.insert("cookies".into(), json!(cookies));
        }
        if !query.is_empty() {
            let joined: Map<String, Value> = query
                .into_iter()
                .map(|(k, v)| (k, Value::String(v.join(","))))
                .collect();
            obj.insert("queryStringParameters".into(), Value::Object(joined));
        }
        if let Some(body) = body_field {
            obj.insert("body".into(), Value::String(body));
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn builds_a_payload_2_0_event() {
        let req = http::Request::post("/hooks/push?a=1&b=x%20y&a=2")
            .header("Content-Type", "application/json")
            .header("X-Repeat", "one")
            .header("x-repeat", "two")
            .header("Cookie", "s=1; t=2")
            .header("User-Agent", "curl/8")
            .body(())
            .expect("request");
        let now = datetime!(2020-03-12 19:03:58.123 UTC);
        let ev = build(
            &parts(req),
            br#"{"k":1}"#,
            addr(5555),
            addr(9000),
            "abc",
            now,
        );
        assert_eq!(ev["version"], "2.0");
        assert_eq!(ev["routeKey"], "$default");
        assert_eq!(ev["rawPath"], "/hooks/push");
        assert_eq!(ev["rawQueryString"], "a=1&b=x%20y&a=2");
        assert_eq!(ev["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
        assert_eq!(ev["headers"]["x-repeat"], "one,two");
        assert_eq!(ev["headers"]["content-type"], "application/json");
        assert_eq!(ev["headers"]["x-forwarded-for"], "127.0.0.1");
        assert!(ev["headers"].get("cookie").is_none());
        assert_eq!(ev["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(ev["body"], r#"{"k":1}"#);
        assert_eq!(ev["isBase64Encoded"], false);
        let ctx = &ev["requestContext"];
        assert_eq!(ctx["http"]["method"], "POST");
        assert_eq!(ctx["http"]["path"], "/hooks/push");
        assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
        assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(ctx["http"]["userAgent"], "curl/8");
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["domainName"], "abc.lambda-url.us-east-1.on.aws");
        assert_eq!(ctx["time"], "12/Mar/2020:19:03:58 +0000");
        assert_eq!(ctx["timeEpoch"], 1_584_039_838_123_i64);
    }

    #[test]
    fn binary_or_untyped_bodies_are_base64() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let octets = http::Request::post("/")
            .header("content-type", "application/octet-stream")
            .body(())
            .expect("req");
        let ev = build(&parts(octets), b"hi", addr(1), addr(2), "x", now);
        assert_eq!(
            (ev["body"].as_str(), ev["isBase64Encoded"].as_bool()),
            (Some("aGk="), Some(true))
        );

        let bad_utf8 = http::Request::post("/")
            .header("content-type", "text/plain")
            .body(())
            .expect("req");
        let ev = build(&parts(bad_utf8), &[0xff, 0xfe], addr(1), addr(2), "x", now);
        assert_eq!(
            (ev["body"].as_str(), ev["isBase64Encoded"].as_bool()),
            (Some("//4="), Some(true))
        );

        let untyped = http::Request::post("/").body(()).expect("req");
        let ev = build(&parts(untyped), b"hi", addr(1), addr(2), "x", now);
        assert_eq!(ev["isBase64Encoded"], true);

        let empty = http::Request::get("/").body(()).expect("req");
        let ev = build(&parts(empty), b"", addr(1), addr(2), "x", now);
        assert!(
            ev.get("body").is_none()
                && ev.get("queryStringParameters").is_none()
                && ev.get("cookies").is_none()
        );
    }

    #[test]
    fn textual_content_types() {
        for ct in [
            "text/plain",
            "application/json; charset=utf-8",
            "application/cloudevents+json",
            "application/xml",
        ] {
            assert!(is_textual(Some(ct)), "{ct}");
        }
        for ct in [
            "application/octet-stream",
            "image/png",
            "multipart/form-data",
        ] {
            assert!(!is_textual(Some(ct)), "{ct}");
        }
        assert!(!is_textual(None));
    }
}
