//! The delivery queue on SQS: SendMessageBatch packed to the 10-entry and
//! 256 KiB limits with failed entries retried, and visibility changes in
//! batches of 10. Chunks go out concurrently to keep ingest's latency flat.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use futures::stream::{self, StreamExt};

use super::dynamo::is_retryable_code;
use crate::domain::{DeliveryJob, QueuedJob};
use crate::ports::{DeliveryQueue, QueueError, SendReport};

/// SendMessageBatch's entry limit.
const BATCH_MAX_ENTRIES: usize = 10;
/// SendMessageBatch's payload limit (the classic one, safe everywhere).
const BATCH_MAX_BYTES: usize = 256 * 1024;
/// Attempts for the entries of one chunk.
const ATTEMPTS: u32 = 4;
/// Chunks in flight at once.
const PARALLEL_CALLS: usize = 8;

/// SQS-backed [`DeliveryQueue`].
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends one chunk, retrying its transiently failed entries. Returns the
    /// entries (index into the caller's slice, reason) still failing, and the
    /// calls made.
    async fn send_chunk(
        &self,
        chunk: Vec<(usize, String)>,
        delays: &[i32],
    ) -> (Vec<(usize, String)>, usize) {
        let mut pending = chunk;
        let mut given_up = Vec::new();
        let mut calls = 0;
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                pause(attempt).await;
            }
            let entries: Vec<SendMessageBatchRequestEntry> = pending
                .iter()
                .filter_map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .set_delay_seconds(delays.get(*i).copied())
                        .build()
                        .ok()
                })
                .collect();
            calls += 1;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    let mut retry = Vec::new();
                    for f in out.failed {
                        let Some(pos) = pending.iter().position(|(i, _)| i.to_string() == f.id)
                        else {
                            continue;
                        };
                        let entry = pending.swap_remove(pos);
                        last_error = format!("{}: {}", f.code, f.message.unwrap_or_default());
                        if f.sender_fault {
                            // The same entry would be refused again.
                            given_up.push((entry.0, last_error.clone()));
                        } else {
                            retry.push(entry);
                        }
                    }
                    pending = retry;
                }
                Err(e) => {
                    last_error = describe(&e);
                    if !is_retryable(&e) {
                        break;
                    }
                }
            }
        }
        given_up.extend(pending.into_iter().map(|(i, _)| (i, last_error.clone())));
        (given_up, calls)
    }
}

fn is_retryable<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => is_retryable_code(se.err().code().unwrap_or("")),
        _ => false,
    }
}

fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(se) => {
            format!(
                "{}: {}",
                se.err().code().unwrap_or("?"),
                se.err().message().unwrap_or("")
            )
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

async fn pause(attempt: u32) {
    let base = 50u64 << attempt.min(5);
    let jitter = rand::random::<u64>() % base;
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// Packs bodies into chunks within both SendMessageBatch limits.
pub fn pack(bodies: Vec<(usize, String)>) -> Vec<Vec<(usize, String)>> {
    let mut chunks = Vec::new();
    let mut cur: Vec<(usize, String)> = Vec::new();
    let mut bytes = 0;
    for (i, body) in bodies {
        if !cur.is_empty()
            && (cur.len() == BATCH_MAX_ENTRIES || bytes + body.len() > BATCH_MAX_BYTES)
        {
            chunks.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += body.len();
        cur.push((i, body));
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

impl SqsQueue {
    /// Sends bodies (by index) in packed chunks, `delays[i]` seconds late.
    async fn send_bodies(&self, bodies: Vec<(usize, String)>, delays: &[i32]) -> SendReport {
        let total = bodies.len();
        let results: Vec<(Vec<(usize, String)>, usize)> = stream::iter(pack(bodies))
            .map(|chunk| self.send_chunk(chunk, delays))
            .buffer_unordered(PARALLEL_CALLS)
            .collect()
            .await;
        let mut report = SendReport::default();
        for (failed, calls) in results {
            report.calls += calls;
            report.failed.extend(failed);
        }
        report.failed.sort();
        report.sent = total - report.failed.len();
        report
    }
}

#[async_trait]
impl DeliveryQueue for SqsQueue {
    async fn send_jobs(&self, jobs: &[DeliveryJob]) -> Result<SendReport, QueueError> {
        let bodies = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (i, j.to_json()))
            .collect();
        Ok(self.send_bodies(bodies, &[]).await)
    }

    async fn requeue(&self, jobs: &[(QueuedJob, i32)]) -> Result<SendReport, QueueError> {
        let bodies = jobs
            .iter()
            .enumerate()
            .map(|(i, (j, _))| (i, j.to_json()))
            .collect();
        let delays: Vec<i32> = jobs.iter().map(|(_, d)| (*d).clamp(0, 900)).collect();
        Ok(self.send_bodies(bodies, &delays).await)
    }

    async fn change_visibility(&self, items: &[(String, i32)]) -> Result<(), QueueError> {
        for chunk in items.chunks(BATCH_MAX_ENTRIES) {
            let mut pending: Vec<(usize, &(String, i32))> = chunk.iter().enumerate().collect();
            let mut last = String::new();
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    pause(attempt).await;
                }
                let entries: Vec<_> = pending
                    .iter()
                    .filter_map(|(i, (handle, secs))| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(handle)
                            .visibility_timeout(*secs)
                            .build()
                            .ok()
                    })
                    .collect();
                match self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => {
                        let failed: Vec<String> = out
                            .failed
                            .iter()
                            .filter(|f| !f.sender_fault)
                            .map(|f| f.id.clone())
                            .collect();
                        if let Some(f) = out.failed.first() {
                            last = format!("{}: {}", f.code, f.message.clone().unwrap_or_default());
                        }
                        pending.retain(|(i, _)| failed.contains(&i.to_string()));
                        if pending.is_empty() {
                            break;
                        }
                    }
                    Err(e) => {
                        last = describe(&e);
                        if !is_retryable(&e) {
                            return Err(QueueError::Permanent(last));
                        }
                    }
                }
            }
            if !pending.is_empty() {
                return Err(QueueError::Retryable(last));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_by_count_and_size() {
        let small: Vec<(usize, String)> = (0..25).map(|i| (i, "x".repeat(100))).collect();
        let chunks = pack(small);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        let big: Vec<(usize, String)> = (0..5).map(|i| (i, "x".repeat(100 * 1024))).collect();
        let chunks = pack(big);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(pack(vec![]).is_empty());
    }
}
