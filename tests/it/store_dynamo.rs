//! The DynamoDB store against moto through the real SDK: batch reads, exact
//! concurrent outcome writes, stale URLs, idempotent layer counting, and the
//! table schema the adapter relies on matching template.yaml.

use std::sync::Arc;

use alin_tests::Stack;
use shared::adapters::dynamo::{PK, SK};
use shared::domain::{
    validate_webhook_url, BatchOutcome, LastDelivery, OutcomeApplied, OutcomeKind, RepositoryName,
    WebhookConfig,
};
use shared::ports::{LayerSize, WebhookStore};

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn url(u: &str) -> shared::domain::WebhookUrl {
    validate_webhook_url(u, false).unwrap()
}

fn outcome(version: u64, kind: OutcomeKind) -> BatchOutcome {
    BatchOutcome {
        url_version: version,
        kind,
        last_delivery: LastDelivery {
            webhook_id: "evt_1".into(),
            event: "push".into(),
            tag: "1.0".into(),
            at: "2026-11-28T08:00:00Z".into(),
            outcome: shared::domain::DeliveryOutcome::Failed,
            status: Some(503),
            error: None,
            duration_ms: 12,
            attempt: 1,
        },
        now: "2026-11-28T08:00:00Z".into(),
        history: None,
    }
}

/// Sets `r`'s webhook URL at `now`; the webhook as stored.
async fn set_url(
    store: &impl WebhookStore,
    r: &RepositoryName,
    u: &str,
    now: &str,
) -> WebhookConfig {
    let rec = store.put_url(r, &url(u), now).await.unwrap();
    rec.webhook.expect("a webhook after put_url")
}

/// Records `kind` for URL version `v` of `r` (threshold 3).
async fn record(
    store: &impl WebhookStore,
    r: &RepositoryName,
    v: u64,
    kind: OutcomeKind,
) -> OutcomeApplied {
    store.record_outcome(r, &outcome(v, kind), 3).await.unwrap()
}

fn failed() -> OutcomeKind {
    OutcomeKind::Failed {
        reason: "HTTP 503".into(),
    }
}

#[tokio::test]
async fn template_declares_the_key_schema_the_adapter_uses() {
    // The live table is the template's (moto's CloudFormation made it from
    // template.yaml): its keys are the ones the adapter writes.
    let stack = Stack::new("schema").await;
    let live = stack
        .dynamodb
        .describe_table()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let live_keys: Vec<(String, String)> = live
        .table()
        .unwrap()
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        live_keys,
        vec![(PK.into(), "HASH".into()), (SK.into(), "RANGE".into())]
    );
}

#[tokio::test]
async fn settings_round_trip_keeps_size_and_renews_secret_only_on_creation() {
    let stack = Stack::new("roundtrip").await;
    let store = stack.store();
    let r = repo("alice/team/app");
    assert!(store.get(&r).await.unwrap().is_none());
    let first = store
        .put_url(
            &r,
            &url("https://a.example.com/h?t=1"),
            "2026-11-28T08:00:00Z",
        )
        .await
        .unwrap();
    let w1 = first.webhook.clone().unwrap();
    assert_eq!(w1.url, "https://a.example.com/h?t=1");
    assert!(w1.enabled);
    assert_eq!(w1.url_version, 1);
    let second = store
        .put_url(&r, &url("https://b.example.com/h"), "2026-11-28T09:00:00Z")
        .await
        .unwrap();
    let w2 = second.webhook.unwrap();
    assert_eq!(w2.secret, w1.secret, "secret kept on replacement");
    assert_eq!(w2.created_at, "2026-11-28T08:00:00Z");
    assert_eq!(w2.updated_at, "2026-11-28T09:00:00Z");
    assert_eq!(w2.url_version, 2);

    store
        .add_layers(
            &r,
            &[LayerSize {
                digest: "sha256:aa".into(),
                size: 10,
            }],
        )
        .await
        .unwrap();
    assert!(store.delete(&r).await.unwrap());
    assert!(
        !store.delete(&r).await.unwrap(),
        "second delete finds nothing"
    );
    let after = store
        .get(&r)
        .await
        .unwrap()
        .expect("record stays for the size");
    assert!(after.webhook.is_none());
    assert_eq!(after.repository_size, 10);
    assert!(store
        .enable(&r, "2026-11-28T10:00:00Z")
        .await
        .unwrap()
        .is_none());

    let third = store
        .put_url(&r, &url("https://c.example.com/"), "2026-11-28T11:00:00Z")
        .await
        .unwrap();
    let w3 = third.webhook.clone().unwrap();
    assert_ne!(w3.secret, w1.secret, "a new webhook gets a new secret");
    assert!(w3.url_version > w2.url_version);
    assert_eq!(third.repository_size, 10);
    let json = third.clone();
    let api = json.api_json().unwrap();
    let keys: Vec<&str> = api
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(keys.contains(&"secret") && keys.contains(&"last_delivery"));
}

#[tokio::test]
async fn batch_fetch_of_250_repositories_takes_three_calls() {
    let stack = Stack::new("batch").await;
    let store = stack.store();
    let repos: Vec<RepositoryName> = (0..250).map(|i| repo(&format!("user{i}/app"))).collect();
    let hook = url("https://ci.example.com/h");
    futures::future::join_all(
        repos
            .iter()
            .map(|r| store.put_url(r, &hook, "2026-11-28T08:00:00Z")),
    )
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    let mut asked = repos.clone();
    asked.push(repo("nobody/missing"));
    asked.push(repos[0].clone()); // duplicates are fetched once
    stack.proxy.reset_counts();
    let got = store.get_many(&asked).await.unwrap();
    assert_eq!(got.len(), 250);
    assert!(got.values().all(|r| r.active_webhook().is_some()));
    // A batch reads what routing needs, not what only the API shows.
    let w = got[&repos[7]].webhook.clone().unwrap();
    assert_eq!((w.url.as_str(), w.url_version), (hook.as_str(), 1));
    assert!(w.secret.expose().starts_with("whsec_"));
    assert!(w.created_at.is_empty() && w.updated_at.is_empty());
    assert_eq!(
        stack.proxy.count("dynamodb:BatchGetItem"),
        3,
        "{:?}",
        stack.proxy.counts()
    );
    assert_eq!(stack.proxy.count_prefix("dynamodb:"), 3);
}

#[tokio::test]
async fn fifty_concurrent_failures_count_exactly_and_disable_once() {
    let stack = Stack::new("concurrent").await;
    let store = Arc::new(stack.store());
    for (name, threshold, expect_disabled) in [("alice/high", 100, false), ("alice/low", 5, true)] {
        let r = repo(name);
        let rec = store
            .put_url(&r, &url("https://ci.example.com/h"), "2026-11-28T08:00:00Z")
            .await
            .unwrap();
        let version = rec.webhook.unwrap().url_version;
        let results = futures::future::join_all((0..50).map(|_| {
            let store = store.clone();
            let r = r.clone();
            async move {
                store
                    .record_outcome(&r, &outcome(version, failed()), threshold)
                    .await
            }
        }))
        .await;
        let mut disabled_now = 0;
        for res in results {
            match res.unwrap() {
                OutcomeApplied::Applied {
                    disabled_now: d, ..
                } => disabled_now += usize::from(d),
                OutcomeApplied::Stale => panic!("nothing changed the URL"),
            }
        }
        let w = store.get(&r).await.unwrap().unwrap().webhook.unwrap();
        assert_eq!(w.consecutive_failures, 50, "{name}");
        assert_eq!(!w.enabled, expect_disabled, "{name}");
        assert_eq!(
            disabled_now,
            usize::from(expect_disabled),
            "{name}: disabled exactly once"
        );
        if expect_disabled {
            assert!(w.disabled_at.is_some());
            assert_eq!(w.disabled_reason.as_deref(), Some("HTTP 503"));
        }
    }
}

#[tokio::test]
async fn threshold_success_reset_and_gone() {
    let stack = Stack::new("policy").await;
    let store = stack.store();
    let r = repo("alice/app");
    let v = set_url(&store, &r, "https://ci.example.com/h", "t0")
        .await
        .url_version;
    for i in 1..=2 {
        let res = record(&store, &r, v, failed()).await;
        assert_eq!(
            res,
            OutcomeApplied::Applied {
                consecutive_failures: i,
                disabled_now: false
            }
        );
    }
    let res = record(&store, &r, v, OutcomeKind::Delivered).await;
    assert_eq!(
        res,
        OutcomeApplied::Applied {
            consecutive_failures: 0,
            disabled_now: false
        }
    );
    for i in 1..=3 {
        let res = record(&store, &r, v, failed()).await;
        assert_eq!(
            res,
            OutcomeApplied::Applied {
                consecutive_failures: i,
                disabled_now: i == 3
            }
        );
    }
    let w = store.get(&r).await.unwrap().unwrap().webhook.unwrap();
    assert!(!w.enabled);
    assert_eq!(w.last_delivery.unwrap().status, Some(503));

    let rec = store.enable(&r, "t1").await.unwrap().unwrap();
    let w = rec.webhook.unwrap();
    assert!(w.enabled && w.consecutive_failures == 0 && w.disabled_at.is_none());
    let res = record(&store, &r, w.url_version, OutcomeKind::Gone).await;
    assert!(matches!(
        res,
        OutcomeApplied::Applied {
            disabled_now: true,
            ..
        }
    ));
    let w = store.get(&r).await.unwrap().unwrap().webhook.unwrap();
    assert!(!w.enabled);
    assert_eq!(
        w.disabled_reason.as_deref(),
        Some("receiver answered 410 Gone")
    );
}

#[tokio::test]
async fn a_failure_for_a_replaced_url_never_counts_against_the_new_one() {
    let stack = Stack::new("stale").await;
    let store = stack.store();
    let r = repo("alice/app");
    let old = set_url(&store, &r, "https://old.example.com/h", "t0").await;
    for _ in 0..2 {
        record(&store, &r, old.url_version, failed()).await;
    }
    let new = set_url(&store, &r, "https://new.example.com/h", "t1").await;
    assert_eq!(
        new.consecutive_failures, 0,
        "replacing the URL resets the count"
    );
    for _ in 0..5 {
        let res = record(&store, &r, old.url_version, failed()).await;
        assert_eq!(res, OutcomeApplied::Stale);
    }
    let res = record(&store, &r, old.url_version, OutcomeKind::Gone).await;
    assert_eq!(res, OutcomeApplied::Stale);
    let w = store.get(&r).await.unwrap().unwrap().webhook.unwrap();
    assert!(w.enabled);
    assert_eq!(w.consecutive_failures, 0);
    assert_eq!(w.url, "https://new.example.com/h");
    // After a delete, outcomes of the deleted webhook are stale too.
    assert!(store.delete(&r).await.unwrap());
    let res = record(&store, &r, new.url_version, failed()).await;
    assert_eq!(res, OutcomeApplied::Stale);
}

#[tokio::test]
async fn distinct_layer_counting_is_idempotent_and_exact_under_concurrency() {
    let stack = Stack::new("layers").await;
    let store = Arc::new(stack.store());
    let r = repo("alice/app");
    let l = |d: &str, size: u64| LayerSize {
        digest: format!("sha256:{d}"),
        size,
    };
    assert_eq!(
        store
            .add_layers(&r, &[l("a", 100), l("b", 200), l("a", 100)])
            .await
            .unwrap(),
        300
    );
    stack.proxy.reset_counts();
    assert_eq!(
        store
            .add_layers(&r, &[l("a", 100), l("b", 200)])
            .await
            .unwrap(),
        300,
        "redelivery adds nothing"
    );
    assert_eq!(
        stack.proxy.count("dynamodb:TransactWriteItems"),
        0,
        "nothing new, nothing written"
    );
    assert_eq!(
        store
            .add_layers(&r, &[l("b", 200), l("c", 50)])
            .await
            .unwrap(),
        350
    );
    assert_eq!(store.add_layers(&r, &[]).await.unwrap(), 350);

    // Ten concurrent ingests of overlapping layer sets.
    let results = futures::future::join_all((0..10).map(|i| {
        let store = store.clone();
        let r = r.clone();
        async move {
            let layers = vec![l("d", 1000), l(&format!("e{}", i % 3), 10)];
            store.add_layers(&r, &layers).await
        }
    }))
    .await;
    for res in results {
        let size = res.unwrap();
        assert!(
            (1360..=1380).contains(&size),
            "each answer is a real size: {size}"
        );
    }
    let rec = store.get(&r).await.unwrap().unwrap();
    assert_eq!(rec.repository_size, 350 + 1000 + 30);
    // The repository has no webhook, yet its size is kept.
    assert!(rec.webhook.is_none());
}
