//! The answer to Lambda: the visibility of every record that comes back is
//! set first (ChangeMessageVisibilityBatch, 10 a call, a few calls at once),
//! so a retried job never returns after the queue's default visibility
//! timeout instead; then those records are named in `batchItemFailures`.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use futures::stream::{self, StreamExt};
use shared::ports::{DeliveryQueue, QueueError};
use tracing::warn;

use crate::metrics::Summary;
use crate::parse::Record;

/// ChangeMessageVisibilityBatch calls in flight at once.
const VISIBILITY_CALLS_IN_FLIGHT: usize = 8;
/// ChangeMessageVisibilityBatch's entry limit.
const VISIBILITY_BATCH: usize = 10;

/// Sets the visibilities of `back` and builds the partial-batch response.
/// Every record in `back` has a `messageId` (see [`crate::parse`]).
pub(crate) async fn respond(
    queue: &dyn DeliveryQueue,
    back: Vec<(Record, i32)>,
    summary: &mut Summary,
) -> SqsBatchResponse {
    let visibility: Vec<(String, i32)> = back
        .iter()
        .filter_map(|(rec, secs)| rec.receipt_handle.clone().map(|h| (h, *secs)))
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
    let mut response = SqsBatchResponse::default();
    for (rec, _) in back {
        let mut item = BatchItemFailure::default();
        item.item_identifier = rec.message_id;
        response.batch_item_failures.push(item);
    }
    response
}
