//! The work common to both triggers: parsed inputs in, delivery jobs out,
//! with each failure pinned to the input (HTTP body or SQS record) it came
//! from so the trigger can answer per input. One invocation makes at most
//! one `get_many` and one `send_jobs`, whatever the number of inputs; manifest
//! fetches and layer counting run concurrently but bounded.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use shared::domain::job::JOB_VERSION;
use shared::domain::{DeliveryJob, Digest, JobKind, RepositoryName};
use shared::ports::LayerSize;

use crate::error::IngestError;
use crate::formats::{Parsed, Push, PushContent};
use crate::manifest::{image_size, resolve_layers, ByteBudget};
use crate::summary::{IgnoreReason, Summary};
use crate::Ingest;

/// Pushes whose manifests are fetched at once.
const FETCH_CONCURRENCY: usize = 8;
/// Repositories whose layers are counted at once.
const STORE_CONCURRENCY: usize = 8;

/// What an unusable manifest (gone, unsupported, too large) does to its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Acknowledged and counted ignored (the SQS door, native over HTTP).
    Ignore,
    /// Fails the input permanently (a Distribution event over HTTP, which is
    /// then counted rejected and kept in the dead-letter queue).
    Fail,
}

/// What processing did for each input, and the invocation's counts.
pub(crate) struct Processed {
    /// One slot per input, `Some` when the input failed.
    pub failures: Vec<Option<IngestError>>,
    pub summary: Summary,
}

/// A push on its way to becoming a job.
struct Work {
    input: usize,
    push: Push,
    /// Layers with sizes: `None` until the manifest is resolved.
    layers: Option<Vec<LayerSize>>,
    image_size: u64,
    repository_size: u64,
}

impl Processed {
    fn fail(&mut self, input: usize, e: IngestError) {
        if let Some(slot) = self.failures.get_mut(input) {
            // The first failure is the one worth reporting.
            slot.get_or_insert(e);
        }
    }

    fn failed(&self, input: usize) -> bool {
        self.failures.get(input).is_some_and(Option::is_some)
    }
}

impl Ingest {
    /// Turns parsed inputs into queued jobs; see the module docs.
    pub(crate) async fn process(
        &self,
        inputs: Vec<Result<Parsed, IngestError>>,
        unusable: Unusable,
    ) -> Processed {
        let mut out = Processed {
            failures: inputs.iter().map(|_| None).collect(),
            summary: Summary::default(),
        };
        let mut work = Vec::new();
        for (input, parsed) in inputs.into_iter().enumerate() {
            match parsed {
                Ok(p) => {
                    out.summary.received += p.received;
                    p.ignored
                        .into_iter()
                        .for_each(|r| out.summary.ignored.add(r));
                    work.extend(p.pushes.into_iter().map(|push| Work::new(input, push)));
                }
                Err(e) => {
                    out.summary.malformed += 1;
                    out.fail(input, e);
                }
            }
        }

        let work = self.resolve_manifests(work, unusable, &mut out).await;
        let work = self.count_layers(work, &mut out).await;
        out.summary.accepted = work.len();
        let jobs = self.keep_webhooked(work, &mut out).await;
        self.send(jobs, &mut out).await;
        out.summary.failed_inputs = out.failures.iter().filter(|f| f.is_some()).count();
        out
    }

    /// Fetches the manifests of Distribution and ECR pushes within one
    /// invocation-wide budget of bytes in flight. Unusable ones are ignored or
    /// fail their input (`unusable`); refused ones and retryable failures
    /// fail their input.
    async fn resolve_manifests(
        &self,
        work: Vec<Work>,
        unusable: Unusable,
        out: &mut Processed,
    ) -> Vec<Work> {
        let budget = ByteBudget::new(self.manifest_bytes);
        let budget = &budget;
        let results: Vec<Option<Result<Vec<LayerSize>, IngestError>>> = stream::iter(&work)
            .map(|w| async move {
                match &w.push.content {
                    PushContent::Manifest(location) => {
                        Some(resolve_layers(self.manifests.as_ref(), location, budget).await)
                    }
                    PushContent::Known { .. } => None,
                }
            })
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
        let mut kept = Vec::with_capacity(work.len());
        for (mut w, result) in work.into_iter().zip(results) {
            match result {
                None => kept.push(w),
                Some(Ok(layers)) => {
                    w.image_size = image_size(&layers);
                    w.layers = Some(layers);
                    kept.push(w);
                }
                Some(Err(e)) => {
                    let refused = matches!(e, IngestError::Refused(_));
                    let verdict = if refused {
                        "event refused; no manifest fetched"
                    } else if e.is_retryable() {
                        "manifest fetch failed; the event will be retried"
                    } else if unusable == Unusable::Fail {
                        "manifest unusable; event rejected"
                    } else {
                        "manifest unusable; event ignored"
                    };
                    tracing::warn!(
                        repository = %w.push.repository,
                        tag = %w.push.tag,
                        error = %e,
                        "{verdict}"
                    );
                    // Only an unusable manifest where `Unusable::Ignore`
                    // applies is acknowledged; a refusal or a retryable
                    // failure always fails its input.
                    if !refused && !e.is_retryable() && unusable == Unusable::Ignore {
                        out.summary.ignored.add(IgnoreReason::ManifestUnusable);
                    } else {
                        out.fail(w.input, e);
                    }
                }
            }
        }
        kept.retain(|w| !out.failed(w.input));
        kept
    }

    /// Counts fetched layers into each repository's size (also repositories
    /// without a webhook, so the size is right when one is added later).
    /// Pushes to one repository go in order, so each job's size includes the
    /// pushes before it; repositories go concurrently.
    async fn count_layers(&self, work: Vec<Work>, out: &mut Processed) -> Vec<Work> {
        let mut by_repo: BTreeMap<&RepositoryName, Vec<usize>> = BTreeMap::new();
        for (i, w) in work.iter().enumerate() {
            if w.layers.is_some() {
                by_repo.entry(&w.push.repository).or_default().push(i);
            }
        }
        let work_ref = &work;
        let results: Vec<(usize, Result<u64, IngestError>)> = stream::iter(by_repo)
            .map(|(repo, indices)| async move {
                let mut sizes = Vec::with_capacity(indices.len());
                for i in indices {
                    let layers = work_ref[i].layers.as_deref().unwrap_or_default();
                    let r = self
                        .store
                        .add_layers(repo, layers)
                        .await
                        .map_err(IngestError::from);
                    sizes.push((i, r));
                }
                sizes
            })
            .buffer_unordered(STORE_CONCURRENCY)
            .flat_map(stream::iter)
            .collect()
            .await;
        let mut sizes = vec![None; work.len()];
        for (i, r) in results {
            match r {
                Ok(size) => sizes[i] = Some(size),
                Err(e) => {
                    tracing::warn!(
                        repository = %work[i].push.repository,
                        error = %e,
                        "counting layers into the repository size failed"
                    );
                    out.fail(work[i].input, e);
                }
            }
        }
        work.into_iter()
            .zip(sizes)
            .filter_map(|(mut w, size)| {
                if let Some(size) = size {
                    w.repository_size = size;
                }
                (!out.failed(w.input)).then_some(w)
            })
            .collect()
    }

    /// One `get_many` for every distinct repository; pushes to repositories
    /// without an enabled webhook are dropped. Returns the jobs with the
    /// input each came from.
    async fn keep_webhooked(
        &self,
        work: Vec<Work>,
        out: &mut Processed,
    ) -> Vec<(usize, DeliveryJob)> {
        if work.is_empty() {
            return Vec::new();
        }
        let repos: Vec<RepositoryName> = work
            .iter()
            .map(|w| w.push.repository.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        out.summary.store_lookups += 1;
        let records = match self.store.get_many(&repos).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(repositories = repos.len(), error = %e, "webhook lookup failed");
                let msg = e.to_string();
                let retryable = e.is_retryable();
                for w in &work {
                    // StoreError is not Clone; rebuild one per input.
                    let e = if retryable {
                        shared::ports::StoreError::Retryable(msg.clone())
                    } else {
                        shared::ports::StoreError::Permanent(msg.clone())
                    };
                    out.fail(w.input, e.into());
                }
                return Vec::new();
            }
        };
        let mut jobs = Vec::with_capacity(work.len());
        for w in work {
            let active = records
                .get(&w.push.repository)
                .and_then(|r| r.active_webhook())
                .is_some();
            if !active {
                out.summary.dropped_no_webhook += 1;
                continue;
            }
            let input = w.input;
            let from_manifest = w.layers.is_some();
            let job = w.into_job();
            match job.validate() {
                Ok(()) => jobs.push((input, job)),
                // A manifest beyond what a job can carry (over 1024 layers):
                // the registry's retry would bring the same manifest again.
                Err(e) if from_manifest => {
                    tracing::warn!(image = %job.image_ref(), error = %e, "manifest unusable; event ignored");
                    out.summary.ignored.add(IgnoreReason::ManifestUnusable);
                }
                Err(e) => out.fail(
                    input,
                    IngestError::Malformed(format!("job for {}: {e}", job.image_ref())),
                ),
            }
        }
        jobs
    }

    /// One `send_jobs` for the whole invocation; refused jobs fail their input.
    async fn send(&self, jobs: Vec<(usize, DeliveryJob)>, out: &mut Processed) {
        let jobs: Vec<(usize, DeliveryJob)> = jobs
            .into_iter()
            .filter(|(input, _)| !out.failed(*input))
            .collect();
        if jobs.is_empty() {
            return;
        }
        let batch: Vec<DeliveryJob> = jobs.iter().map(|(_, j)| j.clone()).collect();
        match self.queue.send_jobs(&batch).await {
            Ok(report) => {
                out.summary.queue_calls += report.calls;
                out.summary.jobs_sent += report.sent;
                out.summary.jobs_failed += report.failed.len();
                for (index, reason) in report.failed {
                    if let Some((input, job)) = jobs.get(index) {
                        tracing::warn!(
                            image = %job.image_ref(),
                            webhook_id = %job.webhook_id,
                            error = %reason,
                            "delivery job not queued"
                        );
                        out.fail(*input, IngestError::NotQueued(reason));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(jobs = jobs.len(), error = %e, "sending delivery jobs failed");
                out.summary.jobs_failed += jobs.len();
                let msg = e.to_string();
                let retryable = e.is_retryable();
                for (input, _) in &jobs {
                    let e = if retryable {
                        shared::ports::QueueError::Retryable(msg.clone())
                    } else {
                        shared::ports::QueueError::Permanent(msg.clone())
                    };
                    out.fail(*input, e.into());
                }
            }
        }
    }
}

impl Work {
    fn new(input: usize, push: Push) -> Self {
        let (image_size, repository_size) = match &push.content {
            PushContent::Known {
                image_size,
                repository_size,
                ..
            } => (*image_size, *repository_size),
            PushContent::Manifest(_) => (0, 0),
        };
        Self {
            input,
            push,
            layers: None,
            image_size,
            repository_size,
        }
    }

    fn into_job(self) -> DeliveryJob {
        let layers: Vec<Digest> = match (self.layers, &self.push.content) {
            (Some(fetched), _) => fetched
                .into_iter()
                .filter_map(|l| Digest::parse(&l.digest).ok())
                .collect(),
            (None, PushContent::Known { layers, .. }) => layers.clone(),
            (None, PushContent::Manifest(_)) => Vec::new(),
        };
        DeliveryJob {
            v: JOB_VERSION,
            webhook_id: self.push.webhook_id,
            kind: JobKind::Push,
            repository: self.push.repository,
            tag: self.push.tag,
            digest: self.push.digest,
            image_size: self.image_size,
            layers,
            repository_size: self.repository_size,
            pushed_at: self.push.pushed_at,
        }
    }
}
