//! The plan of one batch, before anything is sent: records parsed
//! ([`crate::parse`]), pushes coalesced ([`crate::coalesce`]), the batch's
//! repositories read with one `get_many`, and each repository routed once.
//! The result is one [`Planned`] per job — its record, its job, its
//! repository and its [`Fate`] — and the per-host send queues.
//!
//! Routing: no webhook → dropped; disabled → its pushes dropped, its pings
//! still sent (a ping is the owner asking "is my endpoint fixed?"); URL
//! refused by the address rule → a counted, non-retried failure; else a
//! target (URL + secret) on a host (`host:port`).

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::Url;
use shared::domain::{
    validate_webhook_url, DeliveryJob, JobKind, RepoRecord, RepositoryName, UrlError,
};
use shared::ports::{StoreError, WebhookStore};
use tracing::{info, warn};

use crate::attempt::{Attempt, Target};
use crate::coalesce;
use crate::config::Config;
use crate::error::DeliverError;
use crate::parse::{self, Malformed, Record};

/// How one job of the batch ended up.
#[derive(Debug)]
pub(crate) enum Fate {
    /// In a host queue, not answered yet.
    Queued,
    /// A newer push of the same tag is in the batch.
    Superseded,
    /// No webhook, or a disabled one.
    Dropped,
    /// Sent (or refused before sending), with how it went.
    Attempted(Attempt),
    /// Not started: the deadline came first.
    NotStarted,
    /// Not started: its host kept failing in this batch.
    Deferred,
    /// Not sent: its `MAX_ATTEMPTS` real attempts are used up (a re-queued
    /// job whose last attempt failed); released until the redrive policy
    /// moves it to the dead-letter queue.
    Exhausted,
}

/// One job of the batch and everything decided about it.
pub(crate) struct Planned {
    pub record: Record,
    pub job: Arc<DeliveryJob>,
    /// Index in [`Plan::repos`].
    pub repo: usize,
    pub fate: Fate,
}

impl Planned {
    /// When its attempt started, if it was attempted.
    pub fn started_at(&self) -> Option<time::OffsetDateTime> {
        match &self.fate {
            Fate::Attempted(a) => Some(a.started_at),
            _ => None,
        }
    }
}

/// How a repository's jobs are handled in this batch.
pub(crate) enum Route {
    Dropped(&'static str),
    Refused(UrlError),
    Send { target: Arc<Target>, host: usize },
}

/// A repository of the batch, routed.
pub(crate) struct Repo {
    pub name: RepositoryName,
    pub url_version: u64,
    /// The URL's origin, the only part of it that is logged.
    pub origin: String,
    pub route: Route,
    pub enabled: bool,
}

/// A job on its way to a host: what a send worker needs, nothing more.
#[derive(Clone)]
pub(crate) struct Outbound {
    /// Index in [`Plan::jobs`].
    pub index: usize,
    pub job: Arc<DeliveryJob>,
    pub target: Arc<Target>,
}

/// The batch, planned.
pub(crate) struct Plan {
    pub received: u64,
    pub malformed: Vec<Malformed>,
    pub jobs: Vec<Planned>,
    pub repos: Vec<Repo>,
    /// Distinct hosts among the routed repositories.
    pub hosts: usize,
}

/// Parses, coalesces and routes one batch. `Err` only when the store cannot
/// be read: then nothing can be decided and the whole batch comes back.
pub(crate) async fn plan(
    event: aws_lambda_events::event::sqs::SqsEvent,
    store: &dyn WebhookStore,
    config: &Config,
) -> Result<Plan, StoreError> {
    let received = event.records.len() as u64;
    let (parsed, malformed) = parse::parse(event);
    let superseded = coalesce::superseded(&parsed, config.max_attempts);
    let (names, job_repo) = repositories(&parsed);
    let mut found = if names.is_empty() {
        HashMap::new()
    } else {
        store.get_many(&names).await?
    };
    let mut hosts: HashMap<String, usize> = HashMap::new();
    let repos: Vec<Repo> = names
        .into_iter()
        .map(|name| {
            let record = found.remove(&name);
            route(name, record, config.allow_private_targets, &mut hosts)
        })
        .collect();
    let jobs: Vec<Planned> = parsed
        .into_iter()
        .zip(job_repo)
        .zip(superseded)
        .map(|((p, repo), superseded)| {
            let fate = if p.record.spent(config.max_attempts) {
                Fate::Exhausted
            } else {
                first_fate(&repos[repo], &p.job, superseded)
            };
            Planned {
                record: p.record,
                job: Arc::new(p.job),
                repo,
                fate,
            }
        })
        .collect();
    let plan = Plan {
        received,
        malformed,
        jobs,
        repos,
        hosts: hosts.len(),
    };
    plan.log_unsent();
    Ok(plan)
}

/// The batch's repositories, each once, and each job's repository index.
fn repositories(parsed: &[parse::Job]) -> (Vec<RepositoryName>, Vec<usize>) {
    let mut index: HashMap<&RepositoryName, usize> = HashMap::new();
    let mut names = Vec::new();
    let job_repo = parsed
        .iter()
        .map(|j| {
            *index.entry(&j.job.repository).or_insert_with(|| {
                names.push(j.job.repository.clone());
                names.len() - 1
            })
        })
        .collect();
    (names, job_repo)
}

/// A job's fate before sending starts.
fn first_fate(repo: &Repo, job: &DeliveryJob, superseded: bool) -> Fate {
    if superseded {
        return Fate::Superseded;
    }
    // A disabled webhook still gets pings: a test delivery is how its owner
    // checks a fixed endpoint before enabling it again.
    if !repo.enabled && job.kind != JobKind::Ping {
        return Fate::Dropped;
    }
    match &repo.route {
        Route::Dropped(_) => Fate::Dropped,
        Route::Refused(e) => Fate::Attempted(Attempt::refused(DeliverError::Refused(e.clone()))),
        Route::Send { .. } => Fate::Queued,
    }
}

/// Decides, once per repository, where its jobs go.
fn route(
    name: RepositoryName,
    record: Option<RepoRecord>,
    allow_private: bool,
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
    let (origin, route) = match validate_webhook_url(&webhook.url, allow_private) {
        Err(e) => {
            let origin = Url::parse(&webhook.url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            (origin, Route::Refused(e))
        }
        Ok(url) => {
            let next = hosts.len();
            let host = *hosts.entry(url.host_key()).or_insert(next);
            let target = Arc::new(Target::new(url.as_url().clone(), &webhook));
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

impl Plan {
    /// The send queue of each host. A host's jobs take turns across its
    /// repositories (one job of each, then the next of each, …), so one
    /// tenant's many or slow jobs cannot hold the host's slots until the
    /// deadline while another tenant's single job waits.
    pub fn host_queues(&self) -> Vec<Vec<Outbound>> {
        let mut queues: Vec<Vec<Outbound>> = vec![Vec::new(); self.hosts];
        for (index, p) in self.jobs.iter().enumerate() {
            if !matches!(p.fate, Fate::Queued) {
                continue;
            }
            if let Route::Send { target, host } = &self.repos[p.repo].route {
                queues[*host].push(Outbound {
                    index,
                    job: p.job.clone(),
                    target: target.clone(),
                });
            }
        }
        // Turn of each job within its repository, in batch order.
        let mut seen = vec![0usize; self.repos.len()];
        let mut turn = vec![0usize; self.jobs.len()];
        for q in &queues {
            for o in q {
                let r = self.jobs[o.index].repo;
                turn[o.index] = seen[r];
                seen[r] += 1;
            }
        }
        for q in &mut queues {
            q.sort_by_key(|o| (turn[o.index], self.jobs[o.index].repo));
        }
        queues
    }

    /// One line per repository whose jobs are not sent, and why.
    fn log_unsent(&self) {
        let mut dropped = vec![0u32; self.repos.len()];
        for p in &self.jobs {
            if matches!(p.fate, Fate::Dropped) {
                dropped[p.repo] += 1;
            }
        }
        for (r, &jobs) in self.repos.iter().zip(&dropped) {
            let reason = match r.route {
                Route::Dropped(reason) => reason,
                _ if !r.enabled => "webhook disabled",
                _ => continue,
            };
            if jobs > 0 {
                info!(repository = %r.name, jobs, reason, "dropped: no webhook to deliver to");
            }
        }
        for r in &self.repos {
            if let Route::Refused(e) = &r.route {
                warn!(repository = %r.name, origin = %r.origin, reason = e.code(), error = %DeliverError::Refused(e.clone()), "webhook URL refused by the address rule; not sent");
            }
        }
    }
}
