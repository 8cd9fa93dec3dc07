//! The SQS trigger: every record of the batch goes through the pipeline
//! together, and the answer is a partial batch response naming exactly the
//! records that failed, so one bad record never holds back the others.

use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::formats::{parse_input, Channel};
use crate::summary::Summary;
use crate::{Ingest, IngestError};

/// A partial batch response and what the invocation did.
#[derive(Debug, Clone)]
pub struct SqsOutcome {
    pub response: SqsBatchResponse,
    pub summary: Summary,
}

impl Ingest {
    /// Handles one SQS batch and logs the invocation's summary. `Err` (the
    /// whole batch is retried) only when a failed record has no message id,
    /// since an empty `itemIdentifier` would fail the batch anyway.
    pub async fn handle_sqs(&self, event: SqsEvent) -> Result<SqsOutcome, IngestError> {
        let started = Instant::now();
        let ids: Vec<Option<String>> = event
            .records
            .iter()
            .map(|r| r.message_id.clone().filter(|id| !id.is_empty()))
            .collect();
        let inputs = event
            .records
            .iter()
            .zip(&ids)
            .map(|(record, id)| {
                let span =
                    tracing::info_span!("sqs_record", message_id = id.as_deref().unwrap_or(""));
                let _entered = span.enter();
                parse_input(
                    record.body.as_deref().unwrap_or("").as_bytes(),
                    Channel::Sqs,
                )
            })
            .collect();
        let processed = self.process(inputs).await;
        let mut summary = processed.summary;
        let mut response = SqsBatchResponse::default();
        let mut unidentified = 0;
        for (failure, id) in processed.failures.into_iter().zip(&ids) {
            let Some(e) = failure else { continue };
            let message_id = id.as_deref().unwrap_or("");
            if e.is_retryable() {
                tracing::warn!(message_id, error = %e, "record failed; it will be retried");
            } else {
                tracing::error!(message_id, error = %e, "record refused; it goes to the dead-letter queue");
            }
            match id {
                Some(id) => {
                    let mut item = BatchItemFailure::default();
                    item.item_identifier = id.clone();
                    response.batch_item_failures.push(item);
                }
                None => unidentified += 1,
            }
        }
        summary.duration = started.elapsed();
        summary.log("sqs");
        if unidentified > 0 {
            return Err(IngestError::UnsupportedInvocation(format!(
                "{unidentified} failed record(s) without a messageId; the whole batch is retried"
            )));
        }
        Ok(SqsOutcome { response, summary })
    }
}
