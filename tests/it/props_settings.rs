//! Property tests of the settings API parser and handler
//! (`settings::Settings::handle_event`, memory store and queue, a resolver
//! without DNS) on arbitrary and mutated requests: methods, raw paths
//! (percent escapes, slashes, unicode), bodies (arbitrary JSON, mutated
//! `{"url": …}`, text, oversize), and raw invocation payloads.
//!
//! What must hold: no panic; every answer is one of the contract's statuses
//! and never a 5xx for bad input; every error is `{"error": "<reason>"}`;
//! a 405 names what is allowed; and a URL accepted with 200 is one delivery
//! will accept too (it passes the address rule again and its name does not
//! resolve to a private address). For the `format` and `headers` fields: an
//! accepted PUT stored exactly the headers given, in order, shows their names
//! only and none the service owns, and no answer ever carries a header value.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{validate_webhook_url, RepositoryName};
use shared::function_url::HttpResponse;
use shared::ports::WebhookStore;

use crate::props_common as common;
use common::*;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

async fn api() -> settings::Settings {
    let store = Arc::new(MemoryStore::default());
    let url = validate_webhook_url("https://ci.example.com/h?token=x", false).unwrap();
    store
        .put_url(
            &RepositoryName::parse("alice/app").unwrap(),
            &url,
            "2026-11-28T08:00:00Z",
        )
        .await
        .unwrap();
    settings::Settings::new(
        store,
        Arc::new(MemoryQueue::default()),
        Arc::new(OfflineLookup),
        false,
    )
}

fn arb_method() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "GET", "PUT", "DELETE", "POST", "PATCH", "HEAD", "OPTIONS", "get", "", "P UT",
    ])
    .prop_map(str::to_owned)
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice/app".to_owned()),
        Just("alice%2Fapp".to_owned()),
        Just("alice%252Fapp".to_owned()),
        Just("bob/team/app".to_owned()),
        Just("Alice/App".to_owned()),
        Just("alice//app".to_owned()),
        Just("alice/../app".to_owned()),
        Just(format!("alice/{}", "a".repeat(300))),
        "[a-z0-9%./_-]{0,24}",
        nasty_string(),
    ]
}

fn arb_path() -> impl Strategy<Value = String> {
    let suffix = prop::sample::select(vec![
        "/webhook",
        "/webhook",
        "/webhook/enable",
        "/webhook/test",
        "/webhook/",
        "",
        "/webhook%2Ftest",
        "/webhooks",
    ]);
    prop_oneof![
        8 => (arb_name(), suffix).prop_map(|(n, s)| format!("/repositories/{n}{s}")),
        1 => nasty_string(),
        1 => Just("/".to_owned()),
    ]
}

/// URL-ish strings: schemes, hosts (public, private, mapped, names that
/// resolve inside, numeric tricks), unicode paths (some long enough that
/// percent-encoding pushes them past 2048 characters), queries.
fn arb_url() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["https", "http", "HTTPS", "ftp", "javascript", ""]);
    let host = prop::sample::select(vec![
        "ci.example.com",
        "ci.example.com:8443",
        "internal.test",
        "hooks.internal.test",
        "HOOKS.INTERNAL.TEST.",
        "8.8.8.8",
        "10.0.0.1",
        "[::ffff:10.0.0.1]",
        "[::ffff:a9fe:a9fe]",
        "169.254.169.254",
        "0x7f.1",
        "2130706433",
        "localhost",
        "[::1]",
        "user:pw@ci.example.com",
        "",
        "[fd00::1]",
        "100.64.0.1",
        "ci.example.com:99999",
    ]);
    let path = prop_oneof![
        4 => "(/[a-zA-Z0-9._~-]{0,10}){0,3}",
        2 => "/\\PC{0,30}",
        1 => (200usize..800).prop_map(|n| format!("/{}", "é".repeat(n))),
        1 => (1900usize..2100).prop_map(|n| format!("/{}", "a".repeat(n))),
    ];
    let query = prop_oneof![
        Just(String::new()),
        Just("?token=abc".to_owned()),
        "\\?[a-z=&%]{0,20}"
    ];
    (scheme, host, path, query).prop_map(|(s, h, p, q)| format!("{s}://{h}{p}{q}"))
}

fn arb_body() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        4 => arb_url().prop_map(|u| Some(json!({"url": u}).to_string())),
        2 => (arb_url(), arb_mutations()).prop_map(|(u, m)| Some(mutate(json!({"url": u}), &m).to_string())),
        1 => arb_json().prop_map(|v| Some(v.to_string())),
        1 => nasty_string().prop_map(Some),
        1 => (16_000usize..17_000).prop_map(|n| Some(json!({"url": format!("https://ci.example.com/{}", "a".repeat(n))}).to_string())),
    ]
}

/// The properties every answer must have.
fn check(resp: &HttpResponse, put: bool) -> Result<(), TestCaseError> {
    let status = resp.status_code;
    prop_assert!(
        matches!(status, 200 | 202 | 204 | 400 | 404 | 405 | 413),
        "status {} is not in the contract (never 5xx for bad input): {:?}",
        status,
        resp
    );
    let body = resp.body_json();
    if status >= 400 {
        prop_assert!(body["error"].is_string(), "an error says why: {:?}", resp);
    }
    if status == 405 {
        prop_assert!(resp.headers.contains_key("allow"), "{:?}", resp);
    }
    if status == 200 {
        let stored = body["url"].as_str().unwrap_or_default();
        let accepted = validate_webhook_url(stored, false);
        prop_assert!(
            accepted.is_ok(),
            "answered 200 with a URL delivery refuses ({:?}): {}",
            accepted.err(),
            stored
        );
        let host = accepted
            .unwrap()
            .as_url()
            .host_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        prop_assert!(
            !host.ends_with("internal.test"),
            "a name resolving to a private address was accepted: {}",
            stored
        );
        prop_assert!(body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")));
    }
    if put && status == 200 {
        prop_assert_eq!(&body["enabled"], &json!(true));
        prop_assert_eq!(&body["consecutive_failures"], &json!(0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(512))]

    /// Any method, path and body.
    #[test]
    fn settings_never_answers_bad_requests_with_5xx(method in arb_method(), path in arb_path(), body in arb_body()) {
        rt().block_on(async {
            let resp = api().await.handle_event(http_event(&method, &path, json!({"content-type": "application/json"}), body.as_deref())).await;
            check(&resp, method == "PUT")
        })?;
    }

    /// Raw invocation payloads: arbitrary JSON and mutated valid events
    /// (wrongly typed fields reach the lenient parser).
    #[test]
    fn settings_answers_any_payload(doc in prop_oneof![
        arb_json(),
        arb_mutations().prop_map(|m| mutate(http_event("PUT", "/repositories/alice/app/webhook", json!({}), Some(r#"{"url":"https://ci.example.com/x"}"#)), &m)),
    ]) {
        rt().block_on(async {
            let resp = api().await.handle_event(doc).await;
            check(&resp, false)
        })?;
    }

    /// PUT with URL-ish strings: refused with a reason, or accepted as a URL
    /// delivery will accept too.
    #[test]
    fn an_accepted_url_is_one_delivery_accepts(url in arb_url()) {
        rt().block_on(async {
            let resp = api()
                .await
                .handle_event(http_event("PUT", "/repositories/alice/app/webhook", json!({}), Some(&json!({"url": url}).to_string())))
                .await;
            check(&resp, true)?;
            prop_assert!(matches!(resp.status_code, 200 | 400), "{:?}", resp);
            Ok(())
        })?;
    }

    /// PUT with arbitrary formats and header maps (valid, owned, badly
    /// named, with control characters, too many): a 200 stored exactly what
    /// was given and shows names only; a 400 stored nothing; no answer
    /// quotes a value.
    #[test]
    fn custom_headers_are_stored_as_given_or_refused_without_their_value(
        format in arb_format(),
        headers in prop::collection::vec((arb_header_name(), arb_header_value()), 0..13),
    ) {
        rt().block_on(async {
            let store = Arc::new(MemoryStore::default());
            let api = settings::Settings::new(store.clone(), Arc::new(MemoryQueue::default()), Arc::new(OfflineLookup), false);
            let map: serde_json::Map<String, serde_json::Value> =
                headers.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
            let body = json!({"url": "https://ci.example.com/h", "format": format, "headers": map});
            let resp = api
                .handle_event(http_event("PUT", "/repositories/alice/app/webhook", json!({}), Some(&body.to_string())))
                .await;
            check(&resp, true)?;
            let text = resp.body.clone().unwrap_or_default();
            prop_assert!(!text.contains(SECRET_MARK), "a header value in the answer: {}", text);
            let record = store.get(&RepositoryName::parse("alice/app").unwrap()).await.unwrap();
            match resp.status_code {
                200 => {
                    let w = record.and_then(|r| r.webhook).expect("stored");
                    let stored: Vec<(String, String)> = w.headers.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
                    let given: Vec<(String, String)> = map.iter().map(|(n, v)| (n.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
                    prop_assert_eq!(&stored, &given);
                    let names: Vec<&str> = map.keys().map(String::as_str).collect();
                    prop_assert_eq!(&resp.body_json()["headers"], &json!(names));
                    prop_assert_eq!(&resp.body_json()["format"], &json!(format));
                    prop_assert!(stored.len() <= 10);
                    prop_assert!(stored.iter().all(|(n, _)| !shared::webhook::headers::is_service_owned(n)));
                }
                status => {
                    prop_assert!(matches!(status, 400 | 413), "{:?}", resp);
                    prop_assert!(record.is_none(), "a refused PUT stored something");
                }
            }
            Ok(())
        })?;
    }
}

/// Every header value these properties generate contains it, so an answer
/// or log that shows a value is caught by a substring search.
const SECRET_MARK: &str = "Sx9qv";

fn arb_format() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "alin",
        "github-dispatch",
        "cloudevents",
        "xml",
        "",
        "ALIN",
    ])
    .prop_map(str::to_owned)
}

fn arb_header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "X-[A-Za-z0-9-]{1,12}",
        1 => Just("Authorization".to_owned()),
        1 => prop::sample::select(vec![
            "Host", "content-length", "Content-Type", "connection", "Transfer-Encoding",
            "user-agent", "X-ALIN-WEBHOOK", "webhook-id", "Webhook-Extra", "Accept",
            "x-github-api-version", "Upgrade", "Proxy-Authorization",
        ]).prop_map(str::to_owned),
        1 => "[ -~]{0,8}",
        1 => nasty_string(),
    ]
}

fn arb_header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ -~]{0,40}",
        1 => "[\\x00-\\x1f]{1,3}",
        1 => (2040usize..2060).prop_map(|n| "v".repeat(n)),
        1 => nasty_string(),
    ]
    .prop_map(|v| format!("{SECRET_MARK}{v}"))
}
