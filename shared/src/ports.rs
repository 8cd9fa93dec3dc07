//! The narrow interfaces the functions speak to: the webhook store and the
//! delivery queue. DynamoDB and SQS sit behind them (`adapters`); an
//! in-memory store exists for unit tests only.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::{
    BatchOutcome, DeliveryJob, OutcomeApplied, QueuedJob, RepoRecord, RepositoryName, WebhookUrl,
};
use crate::webhook::{CustomHeaders, PayloadFormat};

/// A store failure, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, 5xx, lost connections: try again later.
    #[error("webhook store temporarily failed: {0}")]
    Retryable(String),
    /// Validation errors, missing table, corrupt item: retrying will not help.
    #[error("webhook store failed: {0}")]
    Permanent(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// A queue failure, split the same way.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("delivery queue temporarily failed: {0}")]
    Retryable(String),
    #[error("delivery queue failed: {0}")]
    Permanent(String),
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// One layer of a pushed image, for repository-size accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSize {
    pub digest: String,
    pub size: u64,
}

/// What a settings `PUT` sets: the URL, the format, and the custom headers
/// (`None` keeps the stored ones, `Some` replaces them, empty clears them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUpdate {
    pub url: WebhookUrl,
    pub format: PayloadFormat,
    pub headers: Option<CustomHeaders>,
}

/// Where repositories' webhooks, failure counts and sizes live.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// The record of one repository, if any.
    async fn get(&self, repo: &RepositoryName) -> Result<Option<RepoRecord>, StoreError>;

    /// Many records at once (BatchGetItem, ≤100 keys a call, unprocessed keys
    /// retried), as a batch needs them: the webhook's URL, secret, state,
    /// URL version, format, headers and history, and the size. The failure
    /// count, disable time and reason, last delivery and timestamps are
    /// left at their defaults (read one record with [`WebhookStore::get`]
    /// for those). Repositories with no record are absent from the map.
    async fn get_many(
        &self,
        repos: &[RepositoryName],
    ) -> Result<HashMap<RepositoryName, RepoRecord>, StoreError>;

    /// Sets the URL, the format and (when given) the custom headers: creates
    /// the webhook with a new secret, or replaces them keeping the secret;
    /// either way enabled with a count of 0.
    async fn put_webhook(
        &self,
        repo: &RepositoryName,
        update: &WebhookUpdate,
        now: &str,
    ) -> Result<RepoRecord, StoreError>;

    /// [`WebhookStore::put_webhook`] of a URL alone: the `alin` format, the
    /// stored headers kept.
    async fn put_url(
        &self,
        repo: &RepositoryName,
        url: &WebhookUrl,
        now: &str,
    ) -> Result<RepoRecord, StoreError> {
        let update = WebhookUpdate {
            url: url.clone(),
            format: PayloadFormat::Alin,
            headers: None,
        };
        self.put_webhook(repo, &update, now).await
    }

    /// Removes the webhook (the repository size stays). `false` if none.
    async fn delete(&self, repo: &RepositoryName) -> Result<bool, StoreError>;

    /// Re-enables and clears the count. `None` if there is no webhook.
    async fn enable(
        &self,
        repo: &RepositoryName,
        now: &str,
    ) -> Result<Option<RepoRecord>, StoreError>;

    /// Records one batch's outcome in a single conditional write: a stale
    /// URL version writes nothing; the write that reaches the threshold
    /// disables, exactly once. The outcome's history attempts go in the same
    /// write, so history costs no write of its own (stores without history
    /// leave them out).
    async fn record_outcome(
        &self,
        repo: &RepositoryName,
        outcome: &BatchOutcome,
        threshold: u32,
    ) -> Result<OutcomeApplied, StoreError>;

    /// Counts each distinct layer once into the repository size and returns
    /// the size afterwards. Idempotent: a layer seen before adds nothing.
    async fn add_layers(
        &self,
        repo: &RepositoryName,
        layers: &[LayerSize],
    ) -> Result<u64, StoreError>;
}

/// What a send did: jobs that could not be queued after retries, by index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub failed: Vec<(usize, String)>,
    pub calls: usize,
}

/// The delivery queue.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Sends jobs with SendMessageBatch (≤10 a call, ≤256 KiB a call), retrying
    /// failed entries. Entries still failing are reported, not dropped.
    async fn send_jobs(&self, jobs: &[DeliveryJob]) -> Result<SendReport, QueueError>;

    /// Sends jobs again, each after its own delay in seconds (`DelaySeconds`,
    /// 0..=900), with their attempt counts: how `deliver` puts back a job it
    /// did not send without using up a receive. Failed entries are reported.
    /// A queue that cannot delay refuses (the caller then falls back to the
    /// message's visibility).
    async fn requeue(&self, jobs: &[(QueuedJob, i32)]) -> Result<SendReport, QueueError> {
        let _ = jobs;
        Err(QueueError::Permanent(
            "this queue cannot re-queue with a delay".into(),
        ))
    }

    /// Sets when received messages reappear (ChangeMessageVisibilityBatch,
    /// ≤10 a call), by receipt handle and seconds.
    async fn change_visibility(&self, items: &[(String, i32)]) -> Result<(), QueueError>;
}
