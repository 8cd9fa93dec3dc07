//! Lambda's SQS event source mapping emulated: long-polls a queue, batches
//! messages (batch size or batching window), invokes an [`Invoker`] with the
//! SQS [`event`] and deletes what the function processed, honouring partial
//! batch responses; one invocation in flight at a time.

pub mod event;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::paths::{lock, wait_until};
use crate::runtime_api::Outcome;
use crate::{DevstackError, Invoker};

/// ReceiveMessage and DeleteMessageBatch take at most 10 messages per call.
const SQS_MAX_BATCH: usize = 10;
/// Pause after a failed SQS call, so a broken endpoint is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EsmStats {
    pub invocations: u64,
    /// Records delivered in those invocations (redeliveries count again).
    pub records: u64,
    pub deleted: u64,
    /// Records not deleted: reported failed, or their whole batch failed.
    pub failed: u64,
    /// Invocations that ended in a function error or timeout, or could not be made.
    pub function_errors: u64,
    /// Invocations whose `batchItemFailures` was invalid (whole batch kept).
    pub invalid_responses: u64,
    pub receive_errors: u64,
    /// Messages whose deletion failed.
    pub delete_errors: u64,
}

struct Mapping<I> {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    invoker: I,
    batch_size: usize,
    window: Duration,
    stats: Arc<Mutex<EsmStats>>,
    stop: watch::Receiver<bool>,
}

/// A running event source mapping; the loop is aborted on drop, or ended
/// cleanly (finishing the batch in hand) with [`EventSourceMapping::stop`].
pub struct EventSourceMapping {
    stats: Arc<Mutex<EsmStats>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl EventSourceMapping {
    /// Starts polling `queue_url` and invoking `invoker` in a background
    /// task. `batch_size` is clamped to at least 1; `window` is the maximum
    /// batching window, counted from the first message of a batch.
    pub fn start<I: Invoker>(
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        queue_arn: impl Into<String>,
        invoker: I,
        batch_size: usize,
        window: Duration,
    ) -> EventSourceMapping {
        let (stats, (stop_tx, stop)) = (Arc::<Mutex<EsmStats>>::default(), watch::channel(false));
        let (queue_url, queue_arn, batch_size) =
            (queue_url.into(), queue_arn.into(), batch_size.max(1));
        let mapping = Mapping {
            sqs,
            queue_url,
            queue_arn,
            invoker,
            batch_size,
            window,
            stats: stats.clone(),
            stop,
        };
        EventSourceMapping {
            stats,
            stop: stop_tx,
            task: Some(tokio::spawn(mapping.run())),
        }
    }

    pub fn stats(&self) -> EsmStats {
        *lock(&self.stats)
    }

    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&EsmStats) -> bool,
    ) -> Result<EsmStats, DevstackError> {
        let what = || {
            format!(
                "event source mapping condition (last stats {:?})",
                self.stats()
            )
        };
        wait_until(timeout, what, || Some(self.stats()).filter(&done)).await
    }

    /// Stops polling after the current receive (≤ 1 s) and the batch in hand,
    /// and returns the final counters.
    pub async fn stop(mut self) -> Result<EsmStats, DevstackError> {
        // A send error means the loop already ended; joining tells how.
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| DevstackError::Setup(format!("event source mapping task: {e}")))?;
        }
        Ok(self.stats())
    }
}

impl Drop for EventSourceMapping {
    fn drop(&mut self) {
        self.task.take().inspect(JoinHandle::abort);
    }
}

impl<I: Invoker> Mapping<I> {
    fn count(&self, f: impl FnOnce(&mut EsmStats)) {
        f(&mut lock(&self.stats));
    }

    async fn run(mut self) {
        while !*self.stop.borrow() {
            let batch = self.gather().await;
            if !batch.is_empty() {
                self.process(batch).await;
            }
        }
    }

    /// Collects one batch: up to `batch_size` messages, or fewer once the
    /// window since the first message has passed. Returns empty when a poll
    /// found nothing (so the caller re-checks the stop flag).
    async fn gather(&mut self) -> Vec<Message> {
        let (mut batch, mut window_ends) = (Vec::new(), None::<Instant>);
        while batch.len() < self.batch_size && !*self.stop.borrow() {
            let left = window_ends.map(|end| end.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                break;
            }
            // Long-poll only if the window leaves time for it.
            let wait_seconds = i32::from(left.is_none_or(|left| left >= Duration::from_secs(1)));
            let want = (self.batch_size - batch.len()).min(SQS_MAX_BATCH);
            let request = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .wait_time_seconds(wait_seconds);
            let request = request.max_number_of_messages(i32::try_from(want).unwrap_or(10));
            let request = request.message_system_attribute_names(MessageSystemAttributeName::All);
            match request
                .message_attribute_names("All")
                .send()
                .await
                .map(|out| out.messages.unwrap_or_default())
            {
                Ok(messages) if messages.is_empty() && batch.is_empty() => break,
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    window_ends.get_or_insert_with(|| Instant::now() + self.window);
                    batch.extend(messages);
                }
                Err(e) => {
                    self.count(|s| s.receive_errors += 1);
                    tracing::warn!(error = %DisplayErrorContext(&e), "devstack esm: ReceiveMessage failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    if batch.is_empty() {
                        break;
                    }
                }
            }
        }
        batch
    }

    async fn process(&mut self, batch: Vec<Message>) {
        let n = batch.len() as u64;
        self.count(|s| (s.invocations, s.records) = (s.invocations + 1, s.records + n));
        let ids: HashSet<&str> = batch.iter().filter_map(|m| m.message_id()).collect();
        let outcome = match self
            .invoker
            .invoke_event(event::event(&batch, &self.queue_arn))
            .await
        {
            Ok(invocation) => invocation.outcome,
            Err(e) => {
                tracing::warn!(error = %e, "devstack esm: invocation could not be made");
                Outcome::FunctionError(Value::Null)
            }
        };
        let failed = match &outcome {
            Outcome::Ok(value) => failed_ids(value, &ids),
            Outcome::FunctionError(_) => None,
        };
        let Some(failed) = failed else {
            // The whole batch stays: it reappears after its visibility timeout.
            return self.count(|s| {
                s.failed += n;
                match outcome {
                    Outcome::Ok(_) => s.invalid_responses += 1,
                    Outcome::FunctionError(_) => s.function_errors += 1,
                }
            });
        };
        self.count(|s| s.failed += failed.len() as u64);
        let kept = |m: &&Message| m.message_id().is_none_or(|id| !failed.contains(id));
        for chunk in batch
            .iter()
            .filter(kept)
            .collect::<Vec<_>>()
            .chunks(SQS_MAX_BATCH)
        {
            self.delete(chunk).await;
        }
    }

    async fn delete(&self, chunk: &[&Message]) {
        let entries = chunk.iter().enumerate().map(|(i, message)| {
            let entry = DeleteMessageBatchRequestEntry::builder().id(i.to_string());
            entry
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .build()
        });
        // Both fields are always set, so building cannot fail.
        let entries: Vec<_> = entries.filter_map(Result::ok).collect();
        let n = entries.len() as u64;
        let request = self.sqs.delete_message_batch().queue_url(&self.queue_url);
        match request.set_entries(Some(entries)).send().await {
            Ok(out) => self.count(|s| {
                s.deleted += out.successful.len() as u64;
                s.delete_errors += out.failed.len() as u64;
            }),
            Err(e) => {
                self.count(|s| s.delete_errors += n);
                tracing::warn!(error = %DisplayErrorContext(&e), "devstack esm: DeleteMessageBatch failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// The message ids a function's answer reports failed (none when it has no
/// `batchItemFailures`); `None` when the report is malformed or names an
/// id not in the batch, which fails the whole batch, as in Lambda.
fn failed_ids<'a>(answer: &Value, ids: &HashSet<&'a str>) -> Option<HashSet<&'a str>> {
    let failures = match answer.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(HashSet::new()),
        Some(failures) => failures.as_array()?,
    };
    let id = |item: &Value| ids.get(item.get("itemIdentifier")?.as_str()?).copied();
    failures.iter().map(id).collect()
}
