//! One SQS batch from start to end: parse, coalesce, one `get_many` for the
//! batch's repositories, send within the concurrency limits and the
//! deadline, then per record "acknowledged" or "failed with this visibility"
//! and per repository at most one `record_outcome` (CONTRACT §5).
//!
//! How a record ends:
//! - malformed → failed, visibility 0: it comes straight back, fails again,
//!   and after `MAX_ATTEMPTS` receives SQS moves it to the DLQ;
//! - superseded, dropped (no webhook, disabled), 2xx, 410, any other non-2xx
//!   status, address-rule refusal → acknowledged;
//! - 429, 5xx, timeout, connection error → failed with visibility
//!   `RETRY_BASE_DELAY_SECS × 2^(attempt−1)` ±20% (≤ 900 s, lengthened by
//!   `Retry-After`), or, when `ApproximateReceiveCount ≥ MAX_ATTEMPTS`,
//!   failed with visibility 0: the queue's redrive policy has
//!   `maxReceiveCount = MAX_ATTEMPTS`, so the next receive moves it to the DLQ;
//! - not started before the deadline → failed, visibility 0–5 s, not counted;
//! - not started because its host failed `host_breaker` times in a row in
//!   this batch (timeouts, connection errors) → failed with the backoff of
//!   its attempt, not counted against its webhook.
//!
//! Both "not started" kinds still use up a receive (SQS counts receives, not
//! attempts), so a job that keeps missing the deadline ends in the DLQ; the
//! DLQ can be redriven.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures::stream::{self, FuturesUnordered, StreamExt};
use lambda_runtime::LambdaEvent;
use reqwest::Url;
use shared::domain::time::rfc3339;
use shared::domain::{
    validate_webhook_url, BatchOutcome, DeliveryJob, JobKind, LastDelivery, OutcomeApplied,
    OutcomeKind, RepoRecord, RepositoryName, UrlError,
};
use shared::net::{webhook_client, ClientOptions, NameLookup};
use shared::ports::{DeliveryQueue, QueueError, StoreError, WebhookStore};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::backoff::retry_delay;
use crate::batch::{self, Record};
use crate::dispatch::{self, HostSignal, Limits};
use crate::error::DeliverError;
use crate::metrics::{self, Figures};
use crate::send::{send, Attempt, SendContext, Target};
use crate::settings::Settings;

/// Longest visibility given to jobs not started before the deadline.
const NOT_STARTED_MAX_VISIBILITY: u32 = 5;
/// `record_outcome` writes in flight at once.
const OUTCOME_WRITES_IN_FLIGHT: usize = 32;
/// ChangeMessageVisibilityBatch calls in flight at once.
const VISIBILITY_CALLS_IN_FLIGHT: usize = 8;
/// ChangeMessageVisibilityBatch's entry limit.
const VISIBILITY_BATCH: usize = 10;

/// The `deliver` function: its settings, ports and the one HTTP client.
pub struct Deliverer {
    settings: Settings,
    store: Arc<dyn WebhookStore>,
    queue: Arc<dyn DeliveryQueue>,
    ctx: Arc<SendContext>,
}

/// What one batch came to: the answer for Lambda and the figures.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub response: SqsBatchResponse,
    pub figures: Figures,
}

/// Builds the process's webhook client (`shared::net::webhook_client`):
/// keep-alive, HTTP/1.1, no redirects, `DELIVERY_TIMEOUT_SECS` per request,
/// and `lookup` behind the address-rule resolver.
pub fn build_client(
    settings: &Settings,
    lookup: Arc<dyn NameLookup>,
) -> Result<reqwest::Client, DeliverError> {
    webhook_client(ClientOptions {
        timeout: settings.delivery_timeout,
        allow_private: settings.allow_private_targets,
        lookup,
        max_idle_per_host: settings.per_host_concurrency.max(1),
    })
    .map_err(DeliverError::Client)
}

/// How one job of the batch ended up.
enum Fate {
    Pending,
    Superseded,
    Dropped,
    Attempted(Attempt),
    NotStarted,
    Deferred,
}

/// How a repository's jobs are handled in this batch.
enum Route {
    Dropped(&'static str),
    Refused(UrlError),
    Send { target: Arc<Target>, host: usize },
}

/// What the workers read while sending: the jobs, each job's repository,
/// and each repository's target (when it is sent to).
struct Plan {
    jobs: Vec<DeliveryJob>,
    job_repo: Vec<usize>,
    targets: Vec<Option<Arc<Target>>>,
}

struct Repo {
    name: RepositoryName,
    url_version: u64,
    origin: String,
    route: Route,
    /// A disabled webhook still gets pings: a test delivery is how its owner
    /// checks a fixed endpoint before enabling it again.
    enabled: bool,
}

/// A repository's attempts in this batch, reduced.
#[derive(Default, Clone)]
struct Tally {
    /// Jobs queued for sending and not answered yet.
    pending: u32,
    delivered: u32,
    gone: u32,
    failed: u32,
    /// The last attempt and the last failed one, by start time.
    last: Option<usize>,
    last_failure: Option<usize>,
}

impl Tally {
    /// Counts the attempt of job `i` (already in `fates`).
    fn record(&mut self, i: usize, fates: &[Fate]) {
        let Fate::Attempted(a) = &fates[i] else {
            return;
        };
        match &a.answer {
            Ok(_) => self.delivered += 1,
            // Says nothing about the receiver.
            Err(DeliverError::Internal(_)) => return,
            Err(e) => {
                self.failed += 1;
                if e.status() == Some(410) {
                    self.gone += 1;
                }
                if later(fates, self.last_failure, i) {
                    self.last_failure = Some(i);
                }
            }
        }
        if later(fates, self.last, i) {
            self.last = Some(i);
        }
    }
}

fn started_at(fates: &[Fate], i: usize) -> Option<OffsetDateTime> {
    match &fates[i] {
        Fate::Attempted(a) => Some(a.started_at),
        _ => None,
    }
}

/// Whether job `i` started at or after job `current`.
fn later(fates: &[Fate], current: Option<usize>, i: usize) -> bool {
    current.is_none_or(|c| started_at(fates, i) >= started_at(fates, c))
}

/// The repository's outcome from its tally (CONTRACT §5): any 2xx →
/// delivered; else any 410 → gone; else failed with the last failure's
/// reason. `None` when nothing was attempted.
fn outcome(
    t: &Tally,
    url_version: u64,
    fates: &[Fate],
    jobs: &[DeliveryJob],
    records: &[Record],
    max_attempts: u32,
) -> Option<BatchOutcome> {
    let last = t.last?;
    let kind = if t.delivered > 0 {
        OutcomeKind::Delivered
    } else if t.gone > 0 {
        OutcomeKind::Gone
    } else {
        OutcomeKind::Failed {
            reason: failure_reason(&fates[t.last_failure?]),
        }
    };
    let last_delivery = last_delivery(&jobs[last], &records[last], &fates[last], max_attempts)?;
    Some(BatchOutcome {
        url_version,
        kind,
        last_delivery,
        now: rfc3339(OffsetDateTime::now_utc()),
    })
}

/// Records outcomes as they arrive, a bounded number at a time, until the
/// channel closes; returns every write's result.
async fn write_outcomes(
    store: &dyn WebhookStore,
    repos: &[Repo],
    mut rx: mpsc::UnboundedReceiver<(usize, BatchOutcome)>,
    threshold: u32,
) -> Vec<(usize, BatchOutcome, Result<OutcomeApplied, StoreError>)> {
    let mut in_flight = FuturesUnordered::new();
    let mut results = Vec::new();
    let mut open = true;
    loop {
        tokio::select! {
            msg = rx.recv(), if open && in_flight.len() < OUTCOME_WRITES_IN_FLIGHT => match msg {
                Some((r, o)) => {
                    in_flight.push(async move {
                        let res = store.record_outcome(&repos[r].name, &o, threshold).await;
                        (r, o, res)
                    });
                }
                None => open = false,
            },
            Some(done) = in_flight.next(), if !in_flight.is_empty() => results.push(done),
            else => break,
        }
    }
    results
}

impl Deliverer {
    /// A deliverer with a new client resolving through `lookup`
    /// (`SystemLookup` in Lambda, a `StaticLookup` in tests).
    pub fn new(
        settings: Settings,
        store: Arc<dyn WebhookStore>,
        queue: Arc<dyn DeliveryQueue>,
        lookup: Arc<dyn NameLookup>,
    ) -> Result<Self, DeliverError> {
        let client = build_client(&settings, lookup)?;
        Ok(Self::with_client(settings, store, queue, client))
    }

    /// A deliverer using an already built client (see [`build_client`]).
    pub fn with_client(
        settings: Settings,
        store: Arc<dyn WebhookStore>,
        queue: Arc<dyn DeliveryQueue>,
        client: reqwest::Client,
    ) -> Self {
        let ctx = Arc::new(SendContext {
            client,
            registry_host: settings.registry_host.clone(),
        });
        Self {
            settings,
            store,
            queue,
            ctx,
        }
    }

    /// The settings this deliverer runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The Lambda handler: delivers the batch against the invocation's
    /// deadline and prints the invocation's metrics line. A deadline of 0
    /// (a hand-made context) means none.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, DeliverError> {
        let started = Instant::now();
        let deadline = (event.context.deadline != 0).then(|| event.context.deadline());
        let request_id = event.context.request_id;
        let received = event.payload.records.len() as u64;
        match self.deliver(event.payload, deadline).await {
            Ok(report) => {
                metrics::emit(&report.figures, &request_id);
                Ok(report.response)
            }
            Err(e) => {
                error!(error = %e, retryable = e.is_retryable(), "batch failed as a whole; every record comes back");
                // Still one metrics line for this invocation.
                let figures = Figures {
                    received,
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    ..Figures::default()
                };
                metrics::emit(&figures, &request_id);
                Err(e)
            }
        }
    }

    /// Delivers one batch. `Err` only when the batch cannot be worked at all
    /// (the webhook store could not be read): Lambda then retries every record.
    pub async fn deliver(
        &self,
        event: SqsEvent,
        deadline: Option<SystemTime>,
    ) -> Result<BatchReport, DeliverError> {
        let t0 = Instant::now();
        let last_start = deadline.map(|d| self.last_start(d, t0));
        let s = &self.settings;
        let mut figures = Figures {
            received: event.records.len() as u64,
            ..Figures::default()
        };
        // (record, visibility) of every record to report failed.
        let mut failures: Vec<(Record, i32)> = Vec::new();

        let (parsed, malformed) = batch::parse(event);
        for m in malformed {
            warn!(message_id = %m.record.message_id, error = %m.error, "malformed delivery job; it goes to the dead-letter queue");
            figures.malformed += 1;
            failures.push((m.record, 0));
        }
        let superseded = batch::superseded(&parsed);

        // The batch's repositories, each once, and each job's repository.
        let (repo_names, job_repo) = {
            let mut index: HashMap<&RepositoryName, usize> = HashMap::new();
            let mut names = Vec::new();
            let job_repo: Vec<usize> = parsed
                .iter()
                .map(|j| {
                    *index.entry(&j.job.repository).or_insert_with(|| {
                        names.push(j.job.repository.clone());
                        names.len() - 1
                    })
                })
                .collect();
            (names, job_repo)
        };
        let mut found = if repo_names.is_empty() {
            HashMap::new()
        } else {
            self.store.get_many(&repo_names).await?
        };
        let mut hosts: HashMap<String, usize> = HashMap::new();
        let repos: Vec<Repo> = repo_names
            .into_iter()
            .map(|name| {
                let record = found.remove(&name);
                self.route(name, record, &mut hosts)
            })
            .collect();
        drop(found);

        let n = parsed.len();
        let mut records: Vec<Record> = Vec::with_capacity(n);
        let mut jobs: Vec<DeliveryJob> = Vec::with_capacity(n);
        for j in parsed {
            records.push(j.record);
            jobs.push(j.job);
        }
        let mut fates: Vec<Fate> = (0..n).map(|_| Fate::Pending).collect();
        let mut tallies: Vec<Tally> = vec![Tally::default(); repos.len()];
        let mut queues: Vec<Vec<usize>> = vec![Vec::new(); hosts.len()];
        let mut dropped_per_repo: Vec<u32> = vec![0; repos.len()];
        for i in 0..n {
            let r = job_repo[i];
            if superseded[i] {
                fates[i] = Fate::Superseded;
                continue;
            }
            if !repos[r].enabled && jobs[i].kind != JobKind::Ping {
                fates[i] = Fate::Dropped;
                dropped_per_repo[r] += 1;
                continue;
            }
            match &repos[r].route {
                Route::Dropped(_) => {
                    fates[i] = Fate::Dropped;
                    dropped_per_repo[r] += 1;
                }
                Route::Refused(e) => {
                    fates[i] = Fate::Attempted(Attempt::refused(DeliverError::Refused(e.clone())));
                    tallies[r].record(i, &fates);
                }
                Route::Send { host, .. } => {
                    queues[*host].push(i);
                    tallies[r].pending += 1;
                }
            }
        }
        // A host's jobs go repository by repository, so repositories finish
        // (and their outcomes are written) while the batch is still sending.
        for q in &mut queues {
            q.sort_by_key(|&i| job_repo[i]);
        }
        for (r, &count) in repos.iter().zip(&dropped_per_repo) {
            let reason = match r.route {
                Route::Dropped(reason) => Some(reason),
                _ if !r.enabled => Some("webhook disabled"),
                _ => None,
            };
            if let Some(reason) = reason {
                if count > 0 {
                    info!(repository = %r.name, jobs = count, reason, "dropped: no webhook to deliver to");
                }
            }
        }
        for r in &repos {
            if let Route::Refused(e) = &r.route {
                warn!(repository = %r.name, origin = %r.origin, reason = e.code(), error = %DeliverError::Refused(e.clone()), "webhook URL refused by the address rule; not sent");
            }
        }

        // Send, writing each repository's outcome as soon as its last job
        // is answered; the rest once sending ends.
        let (tx, rx) = mpsc::unbounded_channel::<(usize, BatchOutcome)>();
        for (r, t) in tallies.iter().enumerate() {
            if t.pending == 0 {
                if let Some(o) = outcome(
                    t,
                    repos[r].url_version,
                    &fates,
                    &jobs,
                    &records,
                    s.max_attempts,
                ) {
                    let _ = tx.send((r, o));
                }
            }
        }
        let limits = Limits {
            global: s.delivery_concurrency,
            per_host: s.per_host_concurrency,
            breaker: s.host_breaker,
        };
        let plan = Arc::new(Plan {
            targets: repos
                .iter()
                .map(|r| match &r.route {
                    Route::Send { target, .. } => Some(target.clone()),
                    _ => None,
                })
                .collect(),
            jobs,
            job_repo,
        });
        let (jobs, job_repo) = (&plan.jobs, &plan.job_repo);
        let sending = async {
            let done_tx = tx.clone();
            let (ctx, work_plan) = (self.ctx.clone(), plan.clone());
            let leftovers = dispatch::run(
                queues,
                limits,
                last_start,
                move |i| {
                    let (ctx, plan) = (ctx.clone(), work_plan.clone());
                    async move {
                        match &plan.targets[plan.job_repo[i]] {
                            Some(t) => send(&ctx, t, &plan.jobs[i]).await,
                            None => Attempt::refused(DeliverError::Internal("no target".into())),
                        }
                    }
                },
                |a: &Attempt| match &a.answer {
                    Err(e) if e.is_transport() => HostSignal::Unreachable,
                    Err(DeliverError::Internal(_) | DeliverError::Refused(_)) => HostSignal::Neutral,
                    _ => HostSignal::Answered,
                },
                |i, attempt| {
                    debug!(message_id = %records[i].message_id, repository = %jobs[i].repository, origin = %repos[job_repo[i]].origin, answer = ?attempt.answer.as_ref().map_err(ToString::to_string), duration_ms = attempt.duration.as_millis() as u64, "attempt");
                    fates[i] = Fate::Attempted(attempt);
                    let r = job_repo[i];
                    let t = &mut tallies[r];
                    t.record(i, &fates);
                    t.pending -= 1;
                    if t.pending == 0 {
                        if let Some(o) = outcome(t, repos[r].url_version, &fates, jobs, &records, s.max_attempts) {
                            let _ = done_tx.send((r, o));
                        }
                    }
                },
            )
            .await;
            for &i in &leftovers.not_started {
                fates[i] = Fate::NotStarted;
            }
            for &i in &leftovers.tripped {
                fates[i] = Fate::Deferred;
            }
            // Repositories cut short: what was attempted still counts.
            for (r, t) in tallies.iter().enumerate() {
                if t.pending > 0 {
                    if let Some(o) = outcome(
                        t,
                        repos[r].url_version,
                        &fates,
                        jobs,
                        &records,
                        s.max_attempts,
                    ) {
                        let _ = tx.send((r, o));
                    }
                }
            }
            drop(tx);
        };
        let writing = write_outcomes(&*self.store, &repos, rx, s.failure_threshold);
        let ((), written) = futures::join!(sending, writing);

        // Per record: acknowledged, or failed with a visibility.
        let mut not_started = 0u64;
        for (i, fate) in fates.iter().enumerate() {
            let rec = &records[i];
            match fate {
                Fate::Superseded => figures.superseded += 1,
                Fate::Dropped => figures.dropped += 1,
                Fate::Pending | Fate::NotStarted => {
                    figures.not_started += 1;
                    not_started += 1;
                    failures.push((rec.clone(), short_visibility()));
                }
                Fate::Deferred => {
                    figures.deferred += 1;
                    let d = retry_delay(s.retry_base_delay, rec.attempt, None);
                    failures.push((rec.clone(), d));
                }
                Fate::Attempted(a) => match &a.answer {
                    Ok(_) => figures.delivered += 1,
                    Err(DeliverError::Internal(e)) => {
                        // Nothing is known about the receiver: like not started.
                        error!(message_id = %rec.message_id, error = %e, "delivery task failed");
                        figures.not_started += 1;
                        failures.push((rec.clone(), short_visibility()));
                    }
                    Err(e) => {
                        figures.failed += 1;
                        if e.status() == Some(410) {
                            figures.gone += 1;
                        } else if e.is_retryable() {
                            if rec.attempt >= s.max_attempts {
                                figures.dead_lettered += 1;
                                failures.push((rec.clone(), 0));
                            } else {
                                figures.retried += 1;
                                let d = retry_delay(s.retry_base_delay, rec.attempt, a.retry_after);
                                failures.push((rec.clone(), d));
                            }
                        }
                    }
                },
            }
        }
        if not_started > 0 {
            warn!(
                not_started,
                "deadline near: jobs not started come back in a few seconds"
            );
        }
        if figures.deferred > 0 {
            warn!(
                deferred = figures.deferred,
                "hosts kept failing: their remaining jobs come back with backoff"
            );
        }
        for (r, outcome, res) in written {
            let repo = &repos[r];
            if let OutcomeKind::Failed { reason } = &outcome.kind {
                warn!(repository = %repo.name, origin = %repo.origin, failed = tallies[r].failed, reason = %reason, "webhook delivery failed");
            }
            match res {
                Ok(OutcomeApplied::Applied {
                    disabled_now: true,
                    consecutive_failures,
                }) => {
                    figures.disabled += 1;
                    let reason = match &outcome.kind {
                        OutcomeKind::Failed { reason } => reason.as_str(),
                        _ => "HTTP 410",
                    };
                    info!(repository = %repo.name, origin = %repo.origin, consecutive_failures, reason, "webhook disabled");
                }
                Ok(OutcomeApplied::Applied { .. }) => {}
                Ok(OutcomeApplied::Stale) => {
                    debug!(repository = %repo.name, "webhook changed during the batch; outcome not recorded");
                }
                Err(e) => {
                    figures.store_errors += 1;
                    warn!(repository = %repo.name, error = %e, "could not record the delivery outcome");
                }
            }
        }

        // Visibility before the answer: a retried job must not come back
        // after the queue's default visibility timeout instead.
        let visibility: Vec<(String, i32)> = failures
            .iter()
            .filter_map(|(rec, secs)| rec.receipt_handle.clone().map(|h| (h, *secs)))
            .collect();
        let queue = &self.queue;
        let changed: Vec<(usize, Result<(), QueueError>)> =
            stream::iter(visibility.chunks(VISIBILITY_BATCH))
                .map(|chunk| async move { (chunk.len(), queue.change_visibility(chunk).await) })
                .buffer_unordered(VISIBILITY_CALLS_IN_FLIGHT)
                .collect()
                .await;
        for (count, res) in changed {
            if let Err(e) = res {
                figures.queue_errors += count as u64;
                warn!(messages = count, error = %e, "could not set the retry visibility; those jobs come back after the queue's visibility timeout");
            }
        }

        let mut response = SqsBatchResponse::default();
        for (rec, _) in failures {
            if rec.message_id.is_empty() {
                // An empty itemIdentifier would fail the whole batch.
                error!(
                    position = rec.position,
                    "a failed record has no messageId and cannot be reported; it is acknowledged"
                );
                continue;
            }
            let mut item = BatchItemFailure::default();
            item.item_identifier = rec.message_id;
            response.batch_item_failures.push(item);
        }
        figures.duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(BatchReport { response, figures })
    }

    /// The last moment a request may start so it ends (timeout included)
    /// with `deadline_margin` to spare.
    fn last_start(&self, deadline: SystemTime, now: Instant) -> Instant {
        let remaining = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let reserve = self.settings.delivery_timeout + self.settings.deadline_margin;
        now + remaining.saturating_sub(reserve)
    }

    /// Decides, once per repository, where its jobs go.
    fn route(
        &self,
        name: RepositoryName,
        record: Option<RepoRecord>,
        hosts: &mut HashMap<String, usize>,
    ) -> Repo {
        let Some(webhook) = record.and_then(|r| r.webhook) else {
            return Repo {
                name,
                url_version: 0,
                origin: String::new(),
                route: Route::Dropped("no webhook"),
                enabled: false,
            };
        };
        let origin_of = |raw: &str| {
            Url::parse(raw)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default()
        };
        let (origin, route) =
            match validate_webhook_url(&webhook.url, self.settings.allow_private_targets) {
                Err(e) => (origin_of(&webhook.url), Route::Refused(e)),
                Ok(url) => {
                    let next = hosts.len();
                    let host = *hosts.entry(url.host_key()).or_insert(next);
                    let target = Arc::new(Target {
                        url: url.as_url().clone(),
                        secret: webhook.secret,
                    });
                    (url.origin_for_logs(), Route::Send { target, host })
                }
            };
        Repo {
            name,
            url_version: webhook.url_version,
            origin,
            route,
            enabled: webhook.enabled,
        }
    }
}

fn short_visibility() -> i32 {
    (rand::random::<u32>() % (NOT_STARTED_MAX_VISIBILITY + 1)) as i32
}

fn failure_reason(fate: &Fate) -> String {
    match fate {
        Fate::Attempted(Attempt { answer: Err(e), .. }) => e.to_string(),
        _ => "failed".to_owned(),
    }
}

/// The record's `last_delivery` for an attempted job.
fn last_delivery(
    job: &DeliveryJob,
    rec: &Record,
    fate: &Fate,
    max_attempts: u32,
) -> Option<LastDelivery> {
    let Fate::Attempted(a) = fate else {
        return None;
    };
    let (outcome, status, error) = match &a.answer {
        Ok(code) => ("delivered", Some(*code), None),
        Err(e) => {
            let outcome = if e.status() == Some(410) {
                "gone"
            } else if e.is_retryable() && rec.attempt < max_attempts {
                "retrying"
            } else {
                "failed"
            };
            (outcome, e.status(), Some(e.to_string()))
        }
    };
    Some(LastDelivery {
        webhook_id: job.webhook_id.clone(),
        event: job.kind.as_str().to_owned(),
        tag: job.tag.as_str().to_owned(),
        at: rfc3339(a.started_at),
        outcome: outcome.to_owned(),
        status,
        error,
        duration_ms: u64::try_from(a.duration.as_millis()).unwrap_or(u64::MAX),
        attempt: rec.attempt,
    })
}
