//! Streamed reads: [`Deliverer`] over a store whose reads are held back or
//! fail chunk by chunk (around `MemoryStore`), sending to a counting axum
//! receiver on 127.0.0.1.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{BatchOutcome, OutcomeApplied, RepoRecord, RepositoryName};
use shared::net::StaticLookup;
use shared::ports::{LayerSize, StoreError, WebhookStore};

use crate::parse::tests::{body, event, msg};
use crate::plan::READ_CHUNK;
use crate::{Config, Deliverer, DeliveryPolicy};

/// Answers 204 to every POST and counts them; returns its base URL.
async fn receiver(count: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().fallback(move || {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// How the store treats its reads after the first.
#[derive(Clone, Copy)]
enum Later {
    /// Held back until the receiver got a webhook (at most 5 s).
    HeldUntilSent,
    /// Refused.
    Fail,
}

/// A memory store whose first `get_many` answers at once and whose later
/// ones are [`Later`].
struct ChunkStore {
    inner: MemoryStore,
    later: Later,
    reads: AtomicUsize,
    received: Arc<AtomicUsize>,
    /// A later read saw a webhook already received.
    sent_before_read: AtomicBool,
}

#[async_trait::async_trait]
impl WebhookStore for ChunkStore {
    async fn get(&self, repo: &RepositoryName) -> Result<Option<RepoRecord>, StoreError> {
        self.inner.get(repo).await
    }
    async fn get_many(
        &self,
        repos: &[RepositoryName],
    ) -> Result<HashMap<RepositoryName, RepoRecord>, StoreError> {
        if self.reads.fetch_add(1, Ordering::SeqCst) > 0 {
            match self.later {
                Later::Fail => return Err(StoreError::Retryable("throttled".into())),
                Later::HeldUntilSent => {
                    let until = Instant::now() + Duration::from_secs(5);
                    while self.received.load(Ordering::SeqCst) == 0 && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let sent = self.received.load(Ordering::SeqCst) > 0;
                    self.sent_before_read.fetch_or(sent, Ordering::SeqCst);
                }
            }
        }
        self.inner.get_many(repos).await
    }
    async fn put_webhook(
        &self,
        repo: &RepositoryName,
        update: &shared::ports::WebhookUpdate,
        now: &str,
    ) -> Result<RepoRecord, StoreError> {
        self.inner.put_webhook(repo, update, now).await
    }
    async fn delete(&self, repo: &RepositoryName) -> Result<bool, StoreError> {
        self.inner.delete(repo).await
    }
    async fn enable(
        &self,
        repo: &RepositoryName,
        now: &str,
    ) -> Result<Option<RepoRecord>, StoreError> {
        self.inner.enable(repo, now).await
    }
    async fn record_outcome(
        &self,
        repo: &RepositoryName,
        outcome: &BatchOutcome,
        threshold: u32,
    ) -> Result<OutcomeApplied, StoreError> {
        self.inner.record_outcome(repo, outcome, threshold).await
    }
    async fn add_layers(
        &self,
        repo: &RepositoryName,
        layers: &[LayerSize],
    ) -> Result<u64, StoreError> {
        self.inner.add_layers(repo, layers).await
    }
}

/// `repos` repositories with a webhook each, one job each, through a
/// [`ChunkStore`]: the report, the store and the requests received.
async fn run(repos: usize, later: Later) -> (crate::BatchReport, Arc<ChunkStore>, usize) {
    let received = Arc::new(AtomicUsize::new(0));
    let base = receiver(received.clone()).await;
    let store = Arc::new(ChunkStore {
        inner: MemoryStore::default(),
        later,
        reads: AtomicUsize::new(0),
        received: received.clone(),
        sent_before_read: AtomicBool::new(false),
    });
    let mut msgs = Vec::new();
    for r in 0..repos {
        let (name, url) = (format!("u{r}/app"), format!("{base}/{r}"));
        let url = shared::domain::validate_webhook_url(&url, true).unwrap();
        let repo = RepositoryName::parse(&name).unwrap();
        store
            .inner
            .put_url(&repo, &url, "2026-11-28T08:00:00Z")
            .await
            .unwrap();
        msgs.push(msg(
            &format!("m{r}"),
            &body(&format!("evt_{r}"), &name, "1.0", "push", None),
            &[],
        ));
    }
    let config = Config {
        delivery: DeliveryPolicy {
            allow_private_targets: true,
            ..DeliveryPolicy::default()
        },
        ..Config::default()
    };
    let queue = Arc::new(MemoryQueue::default());
    let d = Deliverer::new(config, store.clone(), queue, Arc::new(StaticLookup::new())).unwrap();
    let report = d.deliver(event(msgs), None).await.unwrap();
    let got = received.load(Ordering::SeqCst);
    (report, store, got)
}

/// GIVEN two chunks of repositories WHEN the second read is slow THEN the
/// first chunk's webhooks are sent before it answers, and all arrive.
#[tokio::test]
async fn sending_starts_with_the_first_read() {
    let (report, store, got) = run(READ_CHUNK + 20, Later::HeldUntilSent).await;
    assert!(store.sent_before_read.load(Ordering::SeqCst));
    assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    assert_eq!((report.summary.delivered, got), (120, 120));
}

/// GIVEN two chunks WHEN the second read fails THEN the first chunk is
/// delivered and the second's jobs come back uncounted; the batch stands.
#[tokio::test]
async fn a_chunk_that_cannot_be_read_comes_back_alone() {
    let (report, _, got) = run(READ_CHUNK + 20, Later::Fail).await;
    let s = &report.summary;
    assert_eq!((s.delivered, s.not_started, got), (100, 20, 100));
    assert_eq!(s.requeued, 20);
}
