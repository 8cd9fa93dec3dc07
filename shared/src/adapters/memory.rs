//! In-memory store and queue for unit tests of the handlers' logic. They
//! follow the ports' semantics (versions, thresholds, idempotent layers) but
//! are never used outside tests: integration tests use DynamoDB and SQS.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::{
    BatchOutcome, DeliveryJob, OutcomeApplied, OutcomeKind, QueuedJob, RepoRecord, RepositoryName,
    WebhookConfig,
};
use crate::ports::{
    DeliveryQueue, LayerSize, QueueError, SendReport, StoreError, WebhookStore, WebhookUpdate,
};
use crate::webhook::WebhookSecret;

#[derive(Default)]
struct StoreState {
    records: HashMap<RepositoryName, RepoRecord>,
    layers: HashSet<(RepositoryName, String)>,
    versions: HashMap<RepositoryName, u64>,
    reads: usize,
    writes: usize,
}

/// A fake's state behind a mutex; a panicked test's poison is ignored.
#[derive(Default)]
struct Locked<S>(Mutex<S>);

impl<S> Locked<S> {
    fn with<T>(&self, f: impl FnOnce(&mut S) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A [`WebhookStore`] in a mutex, with call counters.
#[derive(Default)]
pub struct MemoryStore {
    state: Locked<StoreState>,
}

impl MemoryStore {
    /// (read calls, write calls) so far.
    pub fn calls(&self) -> (usize, usize) {
        self.state.with(|s| (s.reads, s.writes))
    }
}

/// A record as `get_many` returns it: without the fields a batch does not
/// read (see the port).
pub(crate) fn batch_read(rec: &RepoRecord) -> RepoRecord {
    let mut rec = rec.clone();
    if let Some(w) = &mut rec.webhook {
        w.consecutive_failures = 0;
        w.disabled_at = None;
        w.disabled_reason = None;
        w.last_delivery = None;
        w.created_at.clear();
        w.updated_at.clear();
    }
    rec
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn get(&self, repo: &RepositoryName) -> Result<Option<RepoRecord>, StoreError> {
        Ok(self.state.with(|s| {
            s.reads += 1;
            s.records.get(repo).cloned()
        }))
    }

    async fn get_many(
        &self,
        repos: &[RepositoryName],
    ) -> Result<HashMap<RepositoryName, RepoRecord>, StoreError> {
        Ok(self.state.with(|s| {
            let unique: HashSet<&RepositoryName> = repos.iter().collect();
            s.reads += unique.len().div_ceil(100);
            unique
                .into_iter()
                .filter_map(|r| s.records.get(r).map(|rec| (r.clone(), batch_read(rec))))
                .collect()
        }))
    }

    async fn put_webhook(
        &self,
        repo: &RepositoryName,
        update: &WebhookUpdate,
        now: &str,
    ) -> Result<RepoRecord, StoreError> {
        Ok(self.state.with(|s| {
            s.writes += 1;
            let version = s.versions.entry(repo.clone()).or_insert(0);
            *version += 1;
            let version = *version;
            let rec = s.records.entry(repo.clone()).or_insert_with(|| RepoRecord {
                repository: repo.clone(),
                webhook: None,
                repository_size: 0,
            });
            let old = rec.webhook.take();
            let (secret, created_at) = match &old {
                Some(w) => (w.secret.clone(), w.created_at.clone()),
                None => (WebhookSecret::generate(), now.to_owned()),
            };
            let kept = old.as_ref().map(|w| w.headers.clone()).unwrap_or_default();
            let deliveries = old
                .as_ref()
                .map(|w| w.deliveries.clone())
                .unwrap_or_default();
            rec.webhook = Some(WebhookConfig {
                url: update.url.as_str().to_owned(),
                secret,
                enabled: true,
                consecutive_failures: 0,
                disabled_at: None,
                disabled_reason: None,
                last_delivery: old.and_then(|w| w.last_delivery),
                created_at,
                updated_at: now.to_owned(),
                url_version: version,
                format: update.format,
                headers: update.headers.clone().unwrap_or(kept),
                deliveries,
            });
            rec.clone()
        }))
    }

    async fn delete(&self, repo: &RepositoryName) -> Result<bool, StoreError> {
        Ok(self.state.with(|s| {
            s.writes += 1;
            *s.versions.entry(repo.clone()).or_insert(0) += 1;
            s.records
                .get_mut(repo)
                .and_then(|r| r.webhook.take())
                .is_some()
        }))
    }

    async fn enable(
        &self,
        repo: &RepositoryName,
        now: &str,
    ) -> Result<Option<RepoRecord>, StoreError> {
        Ok(self.state.with(|s| {
            s.writes += 1;
            let version = s.versions.entry(repo.clone()).or_insert(0);
            *version += 1;
            let version = *version;
            let rec = s.records.get_mut(repo)?;
            let w = rec.webhook.as_mut()?;
            w.enabled = true;
            w.consecutive_failures = 0;
            w.disabled_at = None;
            w.disabled_reason = None;
            w.updated_at = now.to_owned();
            w.url_version = version;
            Some(rec.clone())
        }))
    }

    async fn record_outcome(
        &self,
        repo: &RepositoryName,
        outcome: &BatchOutcome,
        threshold: u32,
    ) -> Result<OutcomeApplied, StoreError> {
        Ok(self.state.with(|s| {
            s.writes += 1;
            let Some(w) = s.records.get_mut(repo).and_then(|r| r.webhook.as_mut()) else {
                return OutcomeApplied::Stale;
            };
            if w.url_version != outcome.url_version {
                return OutcomeApplied::Stale;
            }
            w.last_delivery = Some(outcome.last_delivery.clone());
            if let Some(h) = &outcome.history {
                w.deliveries.clone_from(h);
            }
            let was_enabled = w.enabled;
            let disable = |w: &mut WebhookConfig, reason: &str| {
                w.enabled = false;
                w.disabled_at.get_or_insert_with(|| outcome.now.clone());
                w.disabled_reason.get_or_insert_with(|| reason.to_owned());
            };
            match &outcome.kind {
                OutcomeKind::Delivered => w.consecutive_failures = 0,
                OutcomeKind::Gone => {
                    w.consecutive_failures += 1;
                    disable(w, "receiver answered 410 Gone");
                }
                OutcomeKind::Failed { reason } => {
                    w.consecutive_failures += 1;
                    if w.consecutive_failures >= threshold {
                        disable(w, reason);
                    }
                }
            }
            OutcomeApplied::Applied {
                consecutive_failures: w.consecutive_failures,
                disabled_now: was_enabled && !w.enabled,
            }
        }))
    }

    async fn add_layers(
        &self,
        repo: &RepositoryName,
        layers: &[LayerSize],
    ) -> Result<u64, StoreError> {
        Ok(self.state.with(|s| {
            s.reads += 1;
            let mut added: u64 = 0;
            for l in layers {
                if s.layers.insert((repo.clone(), l.digest.clone())) {
                    added = u64::saturating_add(added, l.size);
                }
            }
            if added > 0 {
                s.writes += 1;
            }
            let rec = s.records.entry(repo.clone()).or_insert_with(|| RepoRecord {
                repository: repo.clone(),
                webhook: None,
                repository_size: 0,
            });
            rec.repository_size = rec.repository_size.saturating_add(added);
            rec.repository_size
        }))
    }
}

#[derive(Default)]
struct QueueState {
    jobs: Vec<DeliveryJob>,
    visibility: Vec<(String, i32)>,
    requeued: Vec<(QueuedJob, i32)>,
    send_calls: usize,
    fail_next_sends: usize,
}

/// A [`DeliveryQueue`] that records what was sent and every visibility change.
#[derive(Default)]
pub struct MemoryQueue {
    state: Locked<QueueState>,
}

impl MemoryQueue {
    pub fn jobs(&self) -> Vec<DeliveryJob> {
        self.state.with(|s| s.jobs.clone())
    }

    pub fn visibility_changes(&self) -> Vec<(String, i32)> {
        self.state.with(|s| s.visibility.clone())
    }

    /// Jobs re-queued, with their delay in seconds, in order.
    pub fn requeued(&self) -> Vec<(QueuedJob, i32)> {
        self.state.with(|s| s.requeued.clone())
    }

    /// SendMessageBatch calls a real queue would have needed (10 a call).
    pub fn send_calls(&self) -> usize {
        self.state.with(|s| s.send_calls)
    }

    /// Makes the next `n` jobs sent fail, to test the callers' error paths.
    pub fn fail_next_sends(&self, n: usize) {
        self.state.with(|s| s.fail_next_sends = n);
    }

    /// Sends (or re-queues) `items` onto the list `to` picks, ≤10 a call,
    /// failing the ones [`MemoryQueue::fail_next_sends`] asked for.
    fn send<T: Clone>(
        &self,
        items: &[T],
        to: impl Fn(&mut QueueState) -> &mut Vec<T>,
    ) -> SendReport {
        self.state.with(|s| {
            let mut report = SendReport {
                calls: items.len().div_ceil(10),
                ..SendReport::default()
            };
            s.send_calls += report.calls;
            for (i, item) in items.iter().enumerate() {
                if s.fail_next_sends > 0 {
                    s.fail_next_sends -= 1;
                    report.failed.push((i, "injected failure".into()));
                } else {
                    to(s).push(item.clone());
                    report.sent += 1;
                }
            }
            report
        })
    }
}

#[async_trait]
impl DeliveryQueue for MemoryQueue {
    async fn send_jobs(&self, jobs: &[DeliveryJob]) -> Result<SendReport, QueueError> {
        Ok(self.send(jobs, |s| &mut s.jobs))
    }

    async fn requeue(&self, jobs: &[(QueuedJob, i32)]) -> Result<SendReport, QueueError> {
        Ok(self.send(jobs, |s| &mut s.requeued))
    }

    async fn change_visibility(&self, items: &[(String, i32)]) -> Result<(), QueueError> {
        self.state.with(|s| s.visibility.extend_from_slice(items));
        Ok(())
    }
}
