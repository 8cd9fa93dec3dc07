//! The send stage of a batch: the plan's host queues go through the
//! dispatcher ([`crate::dispatch`]: concurrency limits, deadline, host
//! breaker), each answer becomes its job's fate, and a repository's outcome
//! is written ([`crate::account::write_outcomes`]) as soon as its last job
//! is answered, so the ≤ 1 write per repository runs alongside the remaining
//! sends instead of after them.

use std::sync::Arc;
use std::time::Instant;

use shared::ports::WebhookStore;
use tokio::sync::mpsc;
use tracing::debug;

use crate::account::{self, Finished, Ledger, Written};
use crate::attempt::{self, Attempt, SendContext};
use crate::config::Config;
use crate::dispatch::{self, HostSignal, Limits};
use crate::error::DeliverError;
use crate::plan::{Fate, Outbound, Plan};

/// Sends the plan's queued jobs, setting each job's fate, and writes every
/// repository's outcome; returns what the writes did.
pub(crate) async fn send(
    plan: &mut Plan,
    ctx: Arc<SendContext>,
    store: &dyn WebhookStore,
    config: &Config,
    last_start: Option<Instant>,
) -> Vec<Written> {
    let mut ledger = Ledger::new(plan, config.max_attempts);
    let queues = plan.host_queues();
    let Plan { jobs, repos, .. } = plan;
    let repos = &*repos;
    let (tx, rx) = mpsc::unbounded_channel::<Finished>();
    for f in ledger.settled(jobs, repos) {
        let _ = tx.send(f);
    }
    let limits = Limits {
        global: config.delivery_concurrency,
        per_host: config.per_host_concurrency,
        breaker: config.host_breaker,
    };
    let sending = async {
        let work = move |o: Outbound| {
            let ctx = ctx.clone();
            async move { attempt::send(&ctx, &o.target, &o.job).await }
        };
        let left = dispatch::run(queues, limits, last_start, work, host_signal, |o, a| {
            debug!(message_id = %jobs[o.index].record.message_id, repository = %o.job.repository, origin = %repos[jobs[o.index].repo].origin, answer = ?a.answer.as_ref().map_err(ToString::to_string), duration_ms = a.duration.as_millis() as u64, "attempt");
            jobs[o.index].fate = Fate::Attempted(a);
            if let Some(f) = ledger.answered(o.index, jobs, repos) {
                let _ = tx.send(f);
            }
        })
        .await;
        for o in left.not_started {
            jobs[o.index].fate = Fate::NotStarted;
        }
        for o in left.tripped {
            jobs[o.index].fate = Fate::Deferred;
        }
        for f in ledger.cut_short(jobs, repos) {
            let _ = tx.send(f);
        }
        drop(tx);
    };
    let writing = account::write_outcomes(store, repos, rx, config.failure_threshold);
    let ((), written) = futures::join!(sending, writing);
    written
}

/// What an attempt says about its host, for the breaker.
fn host_signal(a: &Attempt) -> HostSignal {
    match &a.answer {
        Err(e) if e.is_transport() => HostSignal::Unreachable,
        Err(DeliverError::Refused(_)) => HostSignal::Neutral,
        _ => HostSignal::Answered,
    }
}
