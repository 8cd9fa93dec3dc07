//! Accounting for a batch: each repository's outcome, the failure count
//! behind "disable after N", and which records come back and when.
//!
//! - **Outcome per repository** ([`outcome`]): any 2xx → delivered (count
//!   back to 0); else any 410 → gone (disabled at once); else failed, counted
//!   once per batch whatever the number of failed jobs, with the last
//!   failure's reason. `last_delivery` is the last attempt by start time.
//! - **Disable after N**: the outcome goes to `WebhookStore::record_outcome`
//!   with `FAILURE_THRESHOLD` ([`write_outcomes`]); the store counts the
//!   failure and, at the threshold, disables in the same conditional write, so
//!   exactly one writer learns it disabled the webhook.
//! - **Delivery history**: every attempt of the batch, newest first, goes in
//!   front of the history the batch read (kept on the [`Target`]), cut to
//!   `HISTORY_LEN`, and is written by the same outcome write (no write of its
//!   own). Repositories without a target (no request possible) keep theirs.
//!   A first attempt of an event the history already holds is a
//!   redelivery. The newest entry of each event keeps its payload (what
//!   the settings API needs to send it again); older ones drop it.
//! - **Which records come back** ([`comes_back`]): malformed → visibility 0
//!   (to the DLQ after `MAX_ATTEMPTS` receives); 429, 5xx, timeout,
//!   connection error → the retry schedule of [`crate::backoff`], or 0 at the
//!   last attempt so the redrive policy moves it to the DLQ. Everything else
//!   (superseded, dropped, 2xx, 410, other statuses, address-rule refusal)
//!   is acknowledged.
//! - **Attempts are attempts.** A job that was not sent — not started before
//!   the deadline (back in 0–5 s), or its host given up for the batch (back
//!   after the backoff of its attempt) — is re-queued as a new message
//!   carrying its real attempt count, and the original is acknowledged
//!   ([`crate::respond`]); only if that send fails does it come back through
//!   its visibility (using up a receive, nothing lost). Failed attempts keep
//!   using visibility, so a message's receives are its attempts and the
//!   attempt number is the job's earlier attempts + `ApproximateReceiveCount`.
//!   A re-queued job whose attempts are used up but whose message has
//!   receives left is not sent again: it is released at once until the
//!   redrive policy (`maxReceiveCount = MAX_ATTEMPTS`) moves it to
//!   the dead-letter queue. So a job reaches the DLQ after exactly
//!   `MAX_ATTEMPTS` real attempts.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use shared::domain::record::HISTORY_LEN;
use shared::domain::time::rfc3339;
use shared::domain::{
    AttemptKind, BatchOutcome, DeliveryAttempt, DeliveryJob, DeliveryOutcome, EventPayload,
    LastDelivery, OutcomeApplied, OutcomeKind, RepositoryName,
};
use shared::ports::{StoreError, WebhookStore};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::attempt::{Attempt, Target};
use crate::backoff::retry_delay;
use crate::config::Config;
use crate::error::DeliverError;
use crate::metrics::Summary;
use crate::parse::Record;
use crate::plan::{Fate, Plan, Planned, Repo, Route};

/// Longest visibility given to jobs not started before the deadline.
const NOT_STARTED_MAX_VISIBILITY: u32 = 5;
/// `record_outcome` writes in flight at once.
const OUTCOME_WRITES_IN_FLIGHT: usize = 32;

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
    /// Every attempted job, for the delivery history.
    attempted: Vec<usize>,
}

impl Tally {
    /// Counts the attempt of job `i` (already in its fate).
    fn record(&mut self, i: usize, jobs: &[Planned]) {
        let Fate::Attempted(a) = &jobs[i].fate else {
            return;
        };
        self.attempted.push(i);
        match &a.answer {
            Ok(_) => self.delivered += 1,
            Err(e) => {
                self.failed += 1;
                if e.status() == Some(410) {
                    self.gone += 1;
                }
                if later(jobs, self.last_failure, i) {
                    self.last_failure = Some(i);
                }
            }
        }
        if later(jobs, self.last, i) {
            self.last = Some(i);
        }
    }
}

/// Whether job `i` started at or after job `current`.
fn later(jobs: &[Planned], current: Option<usize>, i: usize) -> bool {
    current.is_none_or(|c| jobs[i].started_at() >= jobs[c].started_at())
}

/// A repository's outcome, ready to be written.
pub(crate) struct Finished {
    pub repo: usize,
    pub outcome: BatchOutcome,
    /// Failed attempts behind it (for the log).
    pub failed: u32,
}

/// A written outcome and what the write did.
pub(crate) struct Written {
    pub finished: Finished,
    pub result: Result<OutcomeApplied, StoreError>,
}

/// Each repository's tally while the batch is sent.
pub(crate) struct Ledger {
    tallies: Vec<Tally>,
    max_attempts: u32,
}

impl Ledger {
    /// Tallies what planning already settled (refusals) and counts the
    /// queued jobs each repository waits for.
    pub fn new(plan: &Plan, max_attempts: u32) -> Self {
        let mut tallies = vec![Tally::default(); plan.repos.len()];
        for (i, p) in plan.jobs.iter().enumerate() {
            match p.fate {
                Fate::Queued => tallies[p.repo].pending += 1,
                Fate::Attempted(_) => tallies[p.repo].record(i, &plan.jobs),
                _ => {}
            }
        }
        Self {
            tallies,
            max_attempts,
        }
    }

    /// Repository `r` was routed (its jobs' fates are set): its tally
    /// anew, and its outcome when it has nothing to send (a URL refused by
    /// the address rule).
    pub fn routed(&mut self, r: usize, jobs: &[Planned], repos: &[Repo]) -> Option<Finished> {
        let mut t = Tally::default();
        for &i in &repos[r].jobs {
            match jobs[i].fate {
                Fate::Queued => t.pending += 1,
                Fate::Attempted(_) => t.record(i, jobs),
                _ => {}
            }
        }
        let pending = t.pending;
        self.tallies[r] = t;
        if pending > 0 {
            return None;
        }
        self.finished(r, jobs, repos)
    }

    /// Repositories cut short by the deadline or the breaker: what was
    /// attempted still counts.
    pub fn cut_short(&self, jobs: &[Planned], repos: &[Repo]) -> Vec<Finished> {
        self.finished_where(jobs, repos, |t| t.pending > 0)
    }

    fn finished_where(
        &self,
        jobs: &[Planned],
        repos: &[Repo],
        pick: impl Fn(&Tally) -> bool,
    ) -> Vec<Finished> {
        (0..self.tallies.len())
            .filter(|&r| pick(&self.tallies[r]))
            .filter_map(|r| self.finished(r, jobs, repos))
            .collect()
    }

    /// Job `i` was answered (its fate is set): its repository's outcome
    /// when it was the last job that repository waited for.
    pub fn answered(&mut self, i: usize, jobs: &[Planned], repos: &[Repo]) -> Option<Finished> {
        let r = jobs[i].repo;
        let t = &mut self.tallies[r];
        t.record(i, jobs);
        t.pending = t.pending.saturating_sub(1);
        if t.pending > 0 {
            return None;
        }
        self.finished(r, jobs, repos)
    }

    fn finished(&self, r: usize, jobs: &[Planned], repos: &[Repo]) -> Option<Finished> {
        let t = &self.tallies[r];
        let mut outcome = outcome(t, repos[r].url_version, jobs, self.max_attempts)?;
        if let Route::Send { target, .. } = &repos[r].route {
            outcome.history = Some(history(t, jobs, target));
        }
        Some(Finished {
            repo: r,
            outcome,
            failed: t.failed,
        })
    }
}

/// The repository's outcome from its tally (see the module docs). `None`
/// when nothing was attempted.
fn outcome(
    t: &Tally,
    url_version: u64,
    jobs: &[Planned],
    max_attempts: u32,
) -> Option<BatchOutcome> {
    let last = &jobs[t.last?];
    let kind = if t.delivered > 0 {
        OutcomeKind::Delivered
    } else if t.gone > 0 {
        OutcomeKind::Gone
    } else {
        OutcomeKind::Failed {
            reason: failure_reason(&jobs[t.last_failure?].fate),
        }
    };
    Some(BatchOutcome {
        url_version,
        kind,
        last_delivery: last_delivery(last, max_attempts)?,
        now: rfc3339(OffsetDateTime::now_utc()),
        history: None,
    })
}

fn failure_reason(fate: &Fate) -> String {
    match fate {
        Fate::Attempted(Attempt { answer: Err(e), .. }) => e.to_string(),
        _ => "failed".to_owned(),
    }
}

/// The record's `last_delivery` for an attempted job.
fn last_delivery(p: &Planned, max_attempts: u32) -> Option<LastDelivery> {
    let Fate::Attempted(a) = &p.fate else {
        return None;
    };
    let (outcome, status, error) = match &a.answer {
        Ok(code) => (DeliveryOutcome::Delivered, Some(*code), None),
        Err(e) => {
            let outcome = if e.status() == Some(410) {
                DeliveryOutcome::Gone
            } else if e.is_retryable() && p.record.attempt < max_attempts {
                DeliveryOutcome::Retrying
            } else {
                DeliveryOutcome::Failed
            };
            (outcome, e.status(), Some(e.to_string()))
        }
    };
    Some(LastDelivery {
        webhook_id: p.job.webhook_id.clone(),
        event: p.job.kind.as_str().to_owned(),
        tag: p.job.tag.as_str().to_owned(),
        at: rfc3339(a.started_at),
        outcome,
        status,
        error,
        duration_ms: u64::try_from(a.duration.as_millis()).unwrap_or(u64::MAX),
        attempt: p.record.attempt,
    })
}

/// The repository's history after this batch: its attempts, newest first,
/// in front of the history read at the start (taken from the target: a
/// repository finishes once), cut to [`HISTORY_LEN`].
fn history(t: &Tally, jobs: &[Planned], target: &Target) -> Vec<DeliveryAttempt> {
    let mut mine: Vec<&Planned> = t.attempted.iter().map(|&i| &jobs[i]).collect();
    mine.sort_by_key(|p| std::cmp::Reverse(p.started_at()));
    let old = target.take_history();
    let seen = |id: &str| old.iter().any(|e| e.webhook_id == id);
    let new: Vec<DeliveryAttempt> = mine
        .iter()
        .filter_map(|p| history_entry(p, seen(&p.job.webhook_id)))
        .collect();
    let mut list: Vec<DeliveryAttempt> = new.into_iter().chain(old).take(HISTORY_LEN).collect();
    let mut with_payload = std::collections::HashSet::new();
    for e in &mut list {
        if !with_payload.insert(e.webhook_id.clone()) {
            e.payload = None;
        }
    }
    list
}

/// One attempted job as a history entry; `known` when the history read at
/// the start of the batch already holds its event.
fn history_entry(p: &Planned, known: bool) -> Option<DeliveryAttempt> {
    let Fate::Attempted(a) = &p.fate else {
        return None;
    };
    let (status, error) = match &a.answer {
        Ok(code) => (Some(*code), None),
        Err(e) => (e.status(), error_class(e).map(str::to_owned)),
    };
    Some(DeliveryAttempt {
        webhook_id: p.job.webhook_id.clone(),
        event: p.job.kind.as_str().to_owned(),
        tag: p.job.tag.as_str().to_owned(),
        attempt: p.record.attempt,
        at: rfc3339(a.started_at),
        duration_ms: u64::try_from(a.duration.as_millis()).unwrap_or(u64::MAX),
        status,
        error,
        kind: match (p.record.attempt, known) {
            (1, true) => AttemptKind::Redelivery,
            (1, false) => AttemptKind::First,
            _ => AttemptKind::Retry,
        },
        payload: Some(EventPayload {
            image_size: p.job.image_size,
            layers: p.job.layers.clone(),
            repository_size: p.job.repository_size,
        }),
    })
}

/// Why an attempt got no answer, as a class; `None` when it did (the
/// status says the rest).
fn error_class(e: &DeliverError) -> Option<&'static str> {
    match e {
        DeliverError::Status(_) => None,
        DeliverError::Timeout => Some("timeout"),
        DeliverError::Connection => Some("connection"),
        DeliverError::Refused(_) => Some("refused"),
        DeliverError::Request(_) => Some("request"),
        DeliverError::Store(_) | DeliverError::Queue(_) | DeliverError::Client(_) => Some("error"),
    }
}

/// Records outcomes as they arrive, a bounded number at a time, until the
/// channel closes. The store applies "disable after `threshold`".
pub(crate) async fn write_outcomes(
    store: &dyn WebhookStore,
    names: &[RepositoryName],
    mut rx: mpsc::UnboundedReceiver<Finished>,
    threshold: u32,
) -> Vec<Written> {
    let mut in_flight = FuturesUnordered::new();
    let mut results = Vec::new();
    let mut open = true;
    loop {
        tokio::select! {
            msg = rx.recv(), if open && in_flight.len() < OUTCOME_WRITES_IN_FLIGHT => match msg {
                Some(finished) => in_flight.push(async move {
                    let name = &names[finished.repo];
                    let result = store
                        .record_outcome(name, &finished.outcome, threshold)
                        .await;
                    Written { finished, result }
                }),
                None => open = false,
            },
            Some(done) = in_flight.next(), if !in_flight.is_empty() => results.push(done),
            else => break,
        }
    }
    results
}

/// A record that is not acknowledged as it is.
pub(crate) struct Back {
    pub record: Record,
    /// Its visibility, or its re-queue delay, in seconds.
    pub secs: i32,
    /// Not sent: re-queue this job (with `record.attempt − 1` attempts made)
    /// instead of releasing the record.
    pub requeue: Option<Arc<DeliveryJob>>,
}

/// How a job comes back.
pub(crate) enum Return {
    /// Released with this visibility: the next receive is its next attempt.
    Visibility(i32),
    /// Not sent: re-queued with this delay, its attempt count unchanged.
    Requeue(i32),
}

/// The batch accounted: its summary so far and the records that come back,
/// in batch order (malformed first).
pub(crate) struct Accounted {
    pub summary: Summary,
    pub back: Vec<Back>,
}

/// Counts every record once, decides which come back, and logs the outcome
/// writes.
pub(crate) fn account(plan: Plan, written: Vec<Written>, config: &Config) -> Accounted {
    let mut summary = Summary {
        received: plan.received,
        ..Summary::default()
    };
    let mut back = Vec::new();
    for m in plan.malformed {
        summary.malformed += 1;
        if m.record.message_id.is_empty() {
            error!(
                position = m.record.position,
                "record without a messageId: acknowledged, it cannot be reported failed"
            );
            continue;
        }
        warn!(message_id = %m.record.message_id, error = %m.error, "malformed delivery job; it goes to the dead-letter queue");
        back.push(Back {
            record: m.record,
            secs: 0,
            requeue: None,
        });
    }
    for p in plan.jobs {
        let (secs, requeue) = match comes_back(&p, config, &mut summary) {
            None => continue,
            Some(Return::Visibility(secs)) => (secs, None),
            Some(Return::Requeue(secs)) => (secs, Some(p.job)),
        };
        back.push(Back {
            record: p.record,
            secs,
            requeue,
        });
    }
    if summary.not_started > 0 {
        warn!(
            not_started = summary.not_started,
            "deadline near: jobs not started come back in a few seconds"
        );
    }
    if summary.deferred > 0 {
        warn!(
            deferred = summary.deferred,
            "hosts kept failing: their remaining jobs come back with backoff"
        );
    }
    for w in written {
        log_written(&plan.repos[w.finished.repo], w, &mut summary);
    }
    Accounted { summary, back }
}

/// Counts job `p` in `summary` and says whether and how it comes back, or
/// is acknowledged (`None`).
pub(crate) fn comes_back(p: &Planned, config: &Config, summary: &mut Summary) -> Option<Return> {
    let rec = &p.record;
    match &p.fate {
        Fate::Superseded => summary.superseded += 1,
        Fate::Dropped => summary.dropped += 1,
        Fate::Queued | Fate::NotStarted => {
            summary.not_started += 1;
            return Some(Return::Requeue(short_visibility()));
        }
        Fate::Deferred => {
            summary.deferred += 1;
            let delay = retry_delay(config.delivery.retry_base_delay, rec.attempt, None);
            return Some(Return::Requeue(delay));
        }
        Fate::Exhausted => {
            summary.failed += 1;
            summary.dead_lettered += 1;
            return Some(Return::Visibility(0));
        }
        Fate::Attempted(a) => match &a.answer {
            Ok(_) => summary.delivered += 1,
            Err(e) => {
                summary.failed += 1;
                if e.status() == Some(410) {
                    summary.gone += 1;
                } else if e.is_retryable() {
                    if rec.attempt >= config.delivery.max_attempts {
                        summary.dead_lettered += 1;
                        return Some(Return::Visibility(0));
                    }
                    summary.retried += 1;
                    let delay =
                        retry_delay(config.delivery.retry_base_delay, rec.attempt, a.retry_after);
                    return Some(Return::Visibility(delay));
                }
            }
        },
    }
    None
}

fn short_visibility() -> i32 {
    (rand::random::<u32>() % (NOT_STARTED_MAX_VISIBILITY + 1)) as i32
}

fn log_written(repo: &Repo, w: Written, summary: &mut Summary) {
    let Written { finished, result } = w;
    let outcome = &finished.outcome;
    if let OutcomeKind::Failed { reason } = &outcome.kind {
        warn!(repository = %repo.name, origin = %repo.origin, failed = finished.failed, reason = %reason, "webhook delivery failed");
    }
    match result {
        Ok(OutcomeApplied::Applied {
            disabled_now: true,
            consecutive_failures,
        }) => {
            summary.disabled += 1;
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
            summary.store_errors += 1;
            warn!(repository = %repo.name, error = %e, "could not record the delivery outcome");
        }
    }
}
