//! The send stage of a batch: the plan's repositories are read chunk by
//! chunk ([`crate::plan::read`]) while the dispatcher ([`crate::dispatch`]:
//! concurrency limits, deadline, host breaker) sends the jobs of the chunks
//! already routed; each answer becomes its job's fate, and a repository's
//! outcome is written ([`crate::account::write_outcomes`]) as soon as its
//! last job is answered and the reads are done, so the ≤ 1 write per
//! repository runs alongside the remaining sends instead of after them, and
//! never ahead of a read that sends still wait for (a store serving calls
//! one at a time would otherwise answer the reads last).

use std::sync::Arc;
use std::time::Instant;

use shared::domain::RepositoryName;
use shared::ports::{StoreError, WebhookStore};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::account::{self, Finished, Ledger, Written};
use crate::attempt::{self, Attempt, SendContext};
use crate::config::Config;
use crate::dispatch::{self, Batch, HostSignal, Leftovers, Limits, Ready};
use crate::error::DeliverError;
use crate::plan::{self, Chunk, Fate, Outbound, Plan};

/// Reads, routes and sends the plan's jobs, setting each job's fate, and
/// writes every repository's outcome; returns what the writes did. `Err`
/// only when no repository could be read: then nothing was sent.
pub(crate) async fn send(
    plan: &mut Plan,
    ctx: Arc<SendContext>,
    store: &dyn WebhookStore,
    config: &Config,
    last_start: Option<Instant>,
) -> Result<Vec<Written>, StoreError> {
    let names: Vec<RepositoryName> = plan.repos.iter().map(|r| r.name.clone()).collect();
    let (tx, rx) = mpsc::unbounded_channel::<Finished>();
    let limits = Limits {
        global: config.delivery.delivery_concurrency,
        per_host: config.delivery.per_host_concurrency,
        breaker: config.host_breaker,
    };
    let sending = async {
        let mut batch = Sending {
            ledger: Ledger::new(plan, config.delivery.max_attempts),
            plan,
            outcomes: tx,
            held: Vec::new(),
            reads_left: names.len().div_ceil(plan::READ_CHUNK),
            read_error: None,
            read_any: false,
        };
        let work = move |o: Outbound| {
            let ctx = ctx.clone();
            async move { attempt::send(&ctx, &o.target, &o.job).await }
        };
        let reads = plan::read(store, &names);
        let left = dispatch::run(reads, limits, last_start, work, host_signal, &mut batch).await;
        batch.finish(left)
    };
    let writing = account::write_outcomes(store, &names, rx, config.delivery.failure_threshold);
    let (read, written) = futures::join!(sending, writing);
    read.map(|()| written)
}

/// The send stage's side of the dispatcher: routes each chunk as it is
/// read, records each answer, and hands each finished repository's outcome
/// to the writer.
struct Sending<'a> {
    plan: &'a mut Plan,
    ledger: Ledger,
    outcomes: mpsc::UnboundedSender<Finished>,
    /// Outcomes ready while reads are still to come, and how many.
    held: Vec<Finished>,
    reads_left: usize,
    /// The last read that failed, and whether any read succeeded.
    read_error: Option<StoreError>,
    read_any: bool,
}

impl Batch<Outbound, Attempt> for Sending<'_> {
    type Read = Chunk;

    fn arrived(&mut self, chunk: Chunk) -> Vec<Ready<Outbound>> {
        self.reads_left = self.reads_left.saturating_sub(1);
        let found = match chunk.found {
            Ok(found) => {
                self.read_any = true;
                Some(found)
            }
            Err(e) => {
                warn!(error = %e, repositories = chunk.range.len(), "could not read webhook records; their jobs come back");
                self.read_error = Some(e);
                None
            }
        };
        let ready = self.plan.route_chunk(chunk.range.clone(), found);
        for r in chunk.range {
            let Plan { jobs, repos, .. } = &*self.plan;
            if let Some(f) = self.ledger.routed(r, jobs, repos) {
                self.held.push(f);
            }
        }
        self.release();
        ready
    }

    fn done(&mut self, o: Outbound, a: Attempt) {
        let Plan { jobs, repos, .. } = &mut *self.plan;
        debug!(message_id = %jobs[o.index].record.message_id, repository = %o.job.repository, origin = %repos[jobs[o.index].repo].origin, answer = ?a.answer.as_ref().map_err(ToString::to_string), duration_ms = a.duration.as_millis() as u64, "attempt");
        jobs[o.index].fate = Fate::Attempted(a);
        if let Some(f) = self.ledger.answered(o.index, jobs, repos) {
            self.held.push(f);
            self.release();
        }
    }
}

impl Sending<'_> {
    /// Hands the held outcomes to the writer once every read has arrived.
    fn release(&mut self) {
        if self.reads_left == 0 {
            for f in self.held.drain(..) {
                let _ = self.outcomes.send(f);
            }
        }
    }

    /// The jobs never started get their fates and the repositories cut
    /// short their outcomes; the writer's channel closes.
    fn finish(mut self, left: Leftovers<Outbound>) -> Result<(), StoreError> {
        self.reads_left = 0;
        self.release();
        let Plan { jobs, repos, .. } = self.plan;
        for o in left.not_started {
            jobs[o.index].fate = Fate::NotStarted;
        }
        for o in left.tripped {
            jobs[o.index].fate = Fate::Deferred;
        }
        for f in self.ledger.cut_short(jobs, repos) {
            let _ = self.outcomes.send(f);
        }
        match self.read_error {
            Some(e) if !self.read_any => Err(e),
            _ => Ok(()),
        }
    }
}

/// What an attempt says about its host, for the breaker.
fn host_signal(a: &Attempt) -> HostSignal {
    match &a.answer {
        Err(e) if e.is_transport() => HostSignal::Unreachable,
        Err(DeliverError::Refused(_)) => HostSignal::Neutral,
        _ => HostSignal::Answered,
    }
}
