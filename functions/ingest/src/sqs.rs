//! The SQS trigger: every record of the batch goes through the pipeline
//! together, and the answer is a partial batch response naming exactly the
//! records that failed, so one bad record never holds back the others.

use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::bounded::bounded;
use crate::formats::{parse_input, Channel};
use crate::pipeline::Unusable;
use crate::summary::Summary;
use crate::{Ingest, IngestError};

/// A partial batch response and what the invocation did.
#[derive(Debug, Clone)]
pub struct SqsOutcome {
    pub response: SqsBatchResponse,
    pub summary: Summary,
}

impl Ingest {
    /// Handles one SQS batch and logs the invocation's summary. A record
    /// without a `messageId` (never from real SQS) cannot be named in
    /// `batchItemFailures`, and failing the whole batch for it would redo
    /// every other record: it is acknowledged, logged at ERROR and counted
    /// malformed, as deliver does.
    pub async fn handle_sqs(&self, event: SqsEvent) -> Result<SqsOutcome, IngestError> {
        let started = Instant::now();
        let mut unnamed = 0;
        let mut ids = Vec::with_capacity(event.records.len());
        let mut inputs = Vec::with_capacity(event.records.len());
        for record in &event.records {
            let Some(id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
                unnamed += 1;
                tracing::error!(
                    body_bytes = record.body.as_deref().map_or(0, str::len),
                    "SQS record without a messageId acknowledged unprocessed"
                );
                continue;
            };
            let span = tracing::info_span!("sqs_record", message_id = %bounded(&id));
            let _entered = span.enter();
            inputs.push(parse_input(
                record.body.as_deref().unwrap_or("").as_bytes(),
                Channel::Sqs,
            ));
            ids.push(id);
        }
        let processed = self.process(inputs, Unusable::Ignore).await;
        let mut summary = processed.summary;
        summary.malformed += unnamed;
        let mut response = SqsBatchResponse::default();
        for (failure, id) in processed.failures.into_iter().zip(&ids) {
            let Some(e) = failure else { continue };
            let message_id = bounded(id);
            if e.is_retryable() {
                tracing::warn!(%message_id, error = %e, "record failed; it will be retried");
            } else {
                tracing::error!(%message_id, error = %e, "record refused; it goes to the dead-letter queue");
            }
            let mut item = BatchItemFailure::default();
            item.item_identifier = id.clone();
            response.batch_item_failures.push(item);
        }
        summary.duration = started.elapsed();
        summary.log("sqs");
        Ok(SqsOutcome { response, summary })
    }
}
