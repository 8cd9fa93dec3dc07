//! The `deliver` function and its flow for one SQS batch:
//! [`plan`](crate::plan) (parse, coalesce) → [`send`](crate::send)
//! (reads routed chunk by chunk into the dispatcher, outcomes written as
//! repositories finish) →
//! [`account`](crate::account) (per-record fate, which records come back) →
//! [`respond`](crate::respond) (visibilities, `batchItemFailures`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use lambda_runtime::LambdaEvent;
use shared::net::{webhook_client, ClientOptions, NameLookup};
use shared::ports::{DeliveryQueue, WebhookStore};
use tracing::error;

use crate::attempt::SendContext;
use crate::config::Config;
use crate::error::DeliverError;
use crate::metrics::{self, Summary};
use crate::parse::SqsBatch;
use crate::{account, plan, respond, send};

/// The `deliver` function: its configuration, ports and the one HTTP client.
pub struct Deliverer {
    config: Config,
    store: Arc<dyn WebhookStore>,
    queue: Arc<dyn DeliveryQueue>,
    ctx: Arc<SendContext>,
}

/// What one batch came to: the answer for Lambda and the summary.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub response: SqsBatchResponse,
    pub summary: Summary,
}

/// Builds the process's webhook client (`shared::net::webhook_client`):
/// keep-alive, HTTP/1.1, no redirects, `DELIVERY_TIMEOUT_SECS` per request,
/// and `lookup` behind the address-rule resolver.
pub fn build_client(
    config: &Config,
    lookup: Arc<dyn NameLookup>,
) -> Result<reqwest::Client, DeliverError> {
    webhook_client(ClientOptions {
        timeout: config.delivery.delivery_timeout,
        allow_private: config.delivery.allow_private_targets,
        lookup,
        max_idle_per_host: config.delivery.per_host_concurrency.max(1),
    })
    .map_err(DeliverError::Client)
}

impl Deliverer {
    /// A deliverer with a new client resolving through `lookup`
    /// (`SystemLookup` in Lambda, a `StaticLookup` in tests).
    pub fn new(
        config: Config,
        store: Arc<dyn WebhookStore>,
        queue: Arc<dyn DeliveryQueue>,
        lookup: Arc<dyn NameLookup>,
    ) -> Result<Self, DeliverError> {
        let client = build_client(&config, lookup)?;
        Ok(Self::with_client(config, store, queue, client))
    }

    /// A deliverer using an already built client (see [`build_client`]).
    pub fn with_client(
        config: Config,
        store: Arc<dyn WebhookStore>,
        queue: Arc<dyn DeliveryQueue>,
        client: reqwest::Client,
    ) -> Self {
        let ctx = Arc::new(SendContext {
            client,
            registry_host: config.registry_host.clone(),
        });
        Self {
            config,
            store,
            queue,
            ctx,
        }
    }

    /// The Lambda handler: delivers the batch against the invocation's
    /// deadline and prints the invocation's metrics line. A deadline of 0
    /// (a hand-made context) means none.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsBatch>,
    ) -> Result<SqsBatchResponse, DeliverError> {
        let started = Instant::now();
        let deadline = (event.context.deadline != 0).then(|| event.context.deadline());
        let request_id = event.context.request_id;
        let received = event.payload.records.len() as u64;
        match self.deliver(event.payload, deadline).await {
            Ok(report) => {
                metrics::emit(&report.summary, &request_id);
                Ok(report.response)
            }
            Err(e) => {
                error!(error = %e, retryable = e.is_retryable(), "batch failed as a whole; every record comes back");
                // Still one metrics line for this invocation.
                let summary = Summary {
                    received,
                    duration_ms: millis(started),
                    ..Summary::default()
                };
                metrics::emit(&summary, &request_id);
                Err(e)
            }
        }
    }

    /// Delivers one batch. `Err` only when the batch cannot be worked at all
    /// (the webhook store could not be read): Lambda then retries every record.
    pub async fn deliver(
        &self,
        event: SqsBatch,
        deadline: Option<SystemTime>,
    ) -> Result<BatchReport, DeliverError> {
        let t0 = Instant::now();
        let last_start = deadline.map(|d| self.last_start(d, t0));
        let mut plan = plan::plan(event, &self.config);
        let written = send::send(
            &mut plan,
            self.ctx.clone(),
            &*self.store,
            &self.config,
            last_start,
        )
        .await?;
        let mut accounted = account::account(plan, written, &self.config);
        let response = respond::respond(&*self.queue, accounted.back, &mut accounted.summary).await;
        let mut summary = accounted.summary;
        summary.duration_ms = millis(t0);
        Ok(BatchReport { response, summary })
    }

    /// The last moment a request may start so it ends (timeout included)
    /// with `deadline_margin` to spare.
    fn last_start(&self, deadline: SystemTime, now: Instant) -> Instant {
        let remaining = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let reserve = self.config.delivery.delivery_timeout + self.config.deadline_margin;
        now + remaining.saturating_sub(reserve)
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
