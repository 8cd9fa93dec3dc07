//! The plan of one batch: records parsed ([`crate::parse`]), pushes
//! coalesced ([`crate::coalesce`]), the batch's repositories listed, then
//! read [`READ_CHUNK`] at a time ([`read`]) and each routed once, as its
//! chunk's read answers ([`Plan::route_chunk`]): sending starts with the
//! first chunk instead of after every read. The result is one [`Planned`]
//! per job — its record, its job, its repository and its [`Fate`] — and the
//! jobs ready to send, handed to the dispatcher chunk by chunk.
//!
//! Routing: no webhook → dropped; disabled → its pushes dropped, its pings
//! still sent (a ping is the owner asking "is my endpoint fixed?"); URL
//! refused by the address rule → a counted, non-retried failure; else a
//! target (URL + secret) on a host (`host:port`). A chunk whose read fails
//! leaves its jobs not started (they come back, uncounted).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use futures::stream::{self, Stream, StreamExt};
use reqwest::Url;
use shared::domain::{
    validate_webhook_url, DeliveryJob, JobKind, RepoRecord, RepositoryName, UrlError,
};
use shared::ports::{StoreError, WebhookStore};
use tracing::{info, warn};

use crate::attempt::{Attempt, Target};
use crate::coalesce;
use crate::config::Config;
use crate::dispatch::Ready;
use crate::error::DeliverError;
use crate::parse::{self, Malformed, Record};

/// Repositories per read (one BatchGetItem's worth).
pub(crate) const READ_CHUNK: usize = 100;
/// Reads in flight after the first: few, so each answers early instead of
/// all at once at the end of a burst the store serves together.
const READS_IN_FLIGHT: usize = 2;

/// How one job of the batch ended up.
#[derive(Debug)]
pub(crate) enum Fate {
    /// Waiting for its repository's record, or in a host queue; not
    /// answered yet.
    Queued,
    /// A newer push of the same tag is in the batch.
    Superseded,
    /// No webhook, or a disabled one.
    Dropped,
    /// Sent (or refused before sending), with how it went.
    Attempted(Attempt),
    /// Not started: the deadline came first, or its repository's record
    /// could not be read.
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
    /// Its record is not read yet, or could not be.
    Unread,
    Dropped(&'static str),
    Refused(UrlError),
    Send {
        target: Arc<Target>,
        host: usize,
    },
}

/// A repository of the batch, routed once its record is read.
pub(crate) struct Repo {
    pub name: RepositoryName,
    /// Its jobs, as indexes in [`Plan::jobs`], in batch order.
    pub jobs: Vec<usize>,
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
    /// Host index of each `host:port` routed so far.
    hosts: HashMap<String, usize>,
    allow_private: bool,
}

/// The records of the repositories `range` of [`Plan::repos`] (those
/// without one have none), or why they could not be read.
pub(crate) struct Chunk {
    pub range: Range<usize>,
    pub found: Result<HashMap<RepositoryName, RepoRecord>, StoreError>,
}

/// Parses and coalesces one batch and lists its repositories; nothing is
/// read yet.
pub(crate) fn plan(event: parse::SqsBatch, config: &Config) -> Plan {
    let received = event.records.len() as u64;
    let (parsed, malformed) = parse::parse(event);
    let superseded = coalesce::superseded(&parsed, config.delivery.max_attempts);
    let (mut repos, job_repo) = repositories(&parsed);
    let jobs: Vec<Planned> = parsed
        .into_iter()
        .zip(job_repo)
        .zip(superseded)
        .enumerate()
        .map(|(i, ((p, repo), superseded))| {
            repos[repo].jobs.push(i);
            let fate = if p.record.spent(config.delivery.max_attempts) {
                Fate::Exhausted
            } else if superseded {
                Fate::Superseded
            } else {
                Fate::Queued
            };
            Planned {
                record: p.record,
                job: Arc::new(p.job),
                repo,
                fate,
            }
        })
        .collect();
    Plan {
        received,
        malformed,
        jobs,
        repos,
        hosts: HashMap::new(),
        allow_private: config.delivery.allow_private_targets,
    }
}

/// Reads the records of `names` (the batch's repositories, in
/// [`Plan::repos`] order), [`READ_CHUNK`] a call, in the order they answer.
/// The first read goes alone: sending waits for it, and a store that serves
/// concurrent calls together (one process, or a throttled partition) would
/// answer it only with the next; its chunk keeps the slots busy while the
/// others are read [`READS_IN_FLIGHT`] at a time.
pub(crate) fn read<'a>(
    store: &'a dyn WebhookStore,
    names: &'a [RepositoryName],
) -> impl Stream<Item = Chunk> + Send + 'a {
    let read_chunk = move |(k, chunk): (usize, &'a [RepositoryName])| async move {
        let start = k * READ_CHUNK;
        Chunk {
            range: start..start + chunk.len(),
            found: store.get_many(chunk).await,
        }
    };
    let mut chunks = names.chunks(READ_CHUNK).enumerate();
    let first = stream::iter(chunks.next()).then(read_chunk);
    first.chain(
        stream::iter(chunks)
            .map(read_chunk)
            .buffer_unordered(READS_IN_FLIGHT),
    )
}

/// The batch's repositories, each once and not routed yet, and each
/// job's repository index.
fn repositories(parsed: &[parse::Job]) -> (Vec<Repo>, Vec<usize>) {
    let mut index: HashMap<&RepositoryName, usize> = HashMap::new();
    let mut repos = Vec::new();
    let job_repo = parsed
        .iter()
        .map(|j| {
            *index.entry(&j.job.repository).or_insert_with(|| {
                repos.push(Repo {
                    name: j.job.repository.clone(),
                    jobs: Vec::new(),
                    url_version: 0,
                    origin: String::new(),
                    route: Route::Unread,
                    enabled: false,
                });
                repos.len() - 1
            })
        })
        .collect();
    (repos, job_repo)
}

/// The fate of a job of a routed repository before sending starts.
fn first_fate(repo: &Repo, job: &DeliveryJob) -> Fate {
    match &repo.route {
        Route::Unread => Fate::NotStarted,
        // A disabled webhook still gets pings: a test delivery is how its
        // owner checks a fixed endpoint before enabling it again.
        _ if !repo.enabled && job.kind != JobKind::Ping => Fate::Dropped,
        Route::Dropped(_) => Fate::Dropped,
        Route::Refused(e) => Fate::Attempted(Attempt::refused(DeliverError::Refused(e.clone()))),
        Route::Send { .. } => Fate::Queued,
    }
}

/// Decides, once per repository, where its jobs go.
fn route(
    repo: &mut Repo,
    record: Option<RepoRecord>,
    allow_private: bool,
    hosts: &mut HashMap<String, usize>,
) {
    let Some(mut webhook) = record.and_then(|r| r.webhook) else {
        repo.route = Route::Dropped("no webhook");
        return;
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
            let target = Arc::new(Target::new(url.as_url().clone(), &mut webhook));
            (url.origin_for_logs(), Route::Send { target, host })
        }
    };
    repo.url_version = webhook.url_version;
    repo.origin = origin;
    repo.route = route;
    repo.enabled = webhook.enabled;
}

impl Plan {
    /// Routes the repositories `range` with their records (`None`: they
    /// could not be read) and sets their jobs' fates; returns the jobs to
    /// send. A host's jobs take turns across
    /// its repositories (each job is ranked by its turn within its
    /// repository, then by repository), so one tenant's many or slow jobs
    /// cannot hold the host's slots until the deadline while another
    /// tenant's single job waits.
    pub fn route_chunk(
        &mut self,
        range: Range<usize>,
        mut found: Option<HashMap<RepositoryName, RepoRecord>>,
    ) -> Vec<Ready<Outbound>> {
        let mut ready = Vec::new();
        for r in range.clone() {
            let repo = &mut self.repos[r];
            if let Some(found) = found.as_mut() {
                let record = found.remove(&repo.name);
                route(repo, record, self.allow_private, &mut self.hosts);
            }
            let repo = &self.repos[r];
            let mut turn = 0u64;
            for &i in &repo.jobs {
                let p = &mut self.jobs[i];
                if !matches!(p.fate, Fate::Queued) {
                    continue;
                }
                p.fate = first_fate(repo, &p.job);
                if let (Fate::Queued, Route::Send { target, host }) = (&p.fate, &repo.route) {
                    let rank = (turn << 32) | r as u64;
                    let job = Outbound {
                        index: i,
                        job: p.job.clone(),
                        target: target.clone(),
                    };
                    ready.push(Ready {
                        host: *host,
                        rank,
                        job,
                    });
                    turn += 1;
                }
            }
        }
        self.log_unsent(range);
        ready
    }

    /// One line per repository of `range` whose jobs are not sent, and why.
    fn log_unsent(&self, range: Range<usize>) {
        for r in &self.repos[range] {
            let dropped = r
                .jobs
                .iter()
                .filter(|&&i| matches!(self.jobs[i].fate, Fate::Dropped));
            let jobs = dropped.count();
            let reason = match &r.route {
                Route::Refused(e) => {
                    warn!(repository = %r.name, origin = %r.origin, reason = e.code(), error = %DeliverError::Refused(e.clone()), "webhook URL refused by the address rule; not sent");
                    continue;
                }
                Route::Unread => continue,
                Route::Dropped(reason) => reason,
                _ if !r.enabled => "webhook disabled",
                _ => continue,
            };
            if jobs > 0 {
                info!(repository = %r.name, jobs, reason, "dropped: no webhook to deliver to");
            }
        }
    }
}
