//! The answer to Lambda. Jobs that were not sent are re-queued first
//! (SendMessageBatch with a short `DelaySeconds`, carrying their real
//! attempt count) and their records acknowledged; a job whose re-queue send
//! fails falls back to coming back through its visibility. Then the
//! visibility of every record that comes back is set
//! (ChangeMessageVisibilityBatch, 10 a call, a few calls at once), so a
//! retried job never returns after the queue's default visibility timeout
//! instead; then those records are named in `batchItemFailures`.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use futures::stream::{self, StreamExt};
use shared::domain::QueuedJob;
use shared::ports::{DeliveryQueue, QueueError};
use tracing::{info, warn};

use crate::account::Back;
use crate::metrics::Summary;

/// ChangeMessageVisibilityBatch calls in flight at once.
const VISIBILITY_CALLS_IN_FLIGHT: usize = 8;
/// ChangeMessageVisibilityBatch's entry limit.
const VISIBILITY_BATCH: usize = 10;

/// Re-queues what was not sent, sets the visibilities of the rest of `back`
/// and builds the partial-batch response. Every record in `back` has a
/// `messageId` (see [`crate::parse`]).
pub(crate) async fn respond(
    queue: &dyn DeliveryQueue,
    back: Vec<Back>,
    summary: &mut Summary,
) -> SqsBatchResponse {
    let back = requeue(queue, back, summary).await;
    set_visibility(queue, &back, summary).await;
    let mut response = SqsBatchResponse::default();
    for b in back {
        let mut item = BatchItemFailure::default();
        item.item_identifier = b.record.message_id;
        response.batch_item_failures.push(item);
    }
    response
}

/// Sends the jobs to re-queue; returns the records still to report failed
/// (the ones not to re-queue, and those whose send failed).
async fn requeue(queue: &dyn DeliveryQueue, back: Vec<Back>, summary: &mut Summary) -> Vec<Back> {
    let (to_send, mut rest): (Vec<Back>, Vec<Back>) =
        back.into_iter().partition(|b| b.requeue.is_some());
    if to_send.is_empty() {
        return rest;
    }
    let jobs: Vec<(QueuedJob, i32)> = to_send
        .iter()
        .filter_map(|b| {
            let job = b.requeue.as_deref()?.clone();
            // This receive was not an attempt.
            let attempts = Some(b.record.attempt.saturating_sub(1));
            Some((QueuedJob { job, attempts }, b.secs))
        })
        .collect();
    let failed: Vec<usize> = match queue.requeue(&jobs).await {
        Ok(report) => report.failed.into_iter().map(|(i, _)| i).collect(),
        Err(e) => {
            warn!(error = %e, jobs = jobs.len(), "could not re-queue jobs not sent; they come back through their visibility");
            (0..jobs.len()).collect()
        }
    };
    summary.requeued += (jobs.len() - failed.len()) as u64;
    if !failed.is_empty() {
        summary.queue_errors += failed.len() as u64;
        warn!(
            jobs = failed.len(),
            "re-queue failed for some jobs; they come back through their visibility"
        );
    }
    info!(
        requeued = summary.requeued,
        "jobs not sent were re-queued with their attempt counts"
    );
    for (i, b) in to_send.into_iter().enumerate() {
        if failed.contains(&i) {
            rest.push(b);
        }
    }
    rest
}

async fn set_visibility(queue: &dyn DeliveryQueue, back: &[Back], summary: &mut Summary) {
    let visibility: Vec<(String, i32)> = back
        .iter()
        .filter_map(|b| b.record.receipt_handle.clone().map(|h| (h, b.secs)))
        .collect();
    let changed: Vec<(usize, Result<(), QueueError>)> =
        stream::iter(visibility.chunks(VISIBILITY_BATCH))
            .map(|chunk| async move { (chunk.len(), queue.change_visibility(chunk).await) })
            .buffer_unordered(VISIBILITY_CALLS_IN_FLIGHT)
            .collect()
            .await;
    for (count, res) in changed {
        if let Err(e) = res {
            summary.queue_errors += count as u64;
            warn!(messages = count, error = %e, "could not set the retry visibility; those jobs come back after the queue's visibility timeout");
        }
    }
}
