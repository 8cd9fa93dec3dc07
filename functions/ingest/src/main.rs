//! The `ingest` Lambda binary: reads the configuration, builds the AWS
//! clients and the manifest fetchers once per cold start, says at cold start
//! which doors are closed and why, and hands every event to
//! [`ingest::Ingest::handle`]. Everything testable lives in the lib.

use std::sync::Arc;

use ingest::{DistributionFetcher, EcrSource, Ingest, ManifestSources, SqsRegistryEvents};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::adapters::{DynamoStore, SqsQueue};
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad configuration fails the cold start with a message naming the
    // variable (REGISTRY_AUTH without INGEST_TOKEN included), instead of
    // failing every invocation later.
    let config = Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    if config.ingest_token.is_none() {
        tracing::warn!(
            "INGEST_TOKEN is not set: the HTTP door is closed (every request is answered 401); \
             the SQS door works"
        );
    }
    match &config.registry_url {
        None => tracing::warn!(
            "REGISTRY_URL is not set: Distribution envelopes are rejected (no manifest is fetched)"
        ),
        Some(url) => tracing::info!(
            registry = %ingest::bounded::origin(url),
            "Distribution manifests are fetched only from this origin"
        ),
    }
    if config.registry_events_queue_url.is_none() {
        tracing::warn!(
            "REGISTRY_EVENTS_QUEUE_URL is not set: Distribution events that cannot be processed \
             now are answered 503 (the registry retries) instead of being deferred"
        );
    }
    if config.registry_events_dlq_url.is_none() {
        tracing::warn!(
            "REGISTRY_EVENTS_DLQ_URL is not set: rejected Distribution events are only logged"
        );
    }
    let sdk = shared::aws::load_config().await?;
    let sqs = shared::aws::sqs(&sdk);
    let store = DynamoStore::new(shared::aws::dynamodb(&sdk), &config.webhooks_table);
    let queue = SqsQueue::new(sqs.clone(), &config.delivery_queue_url);
    let manifests = ManifestSources {
        distribution: Arc::new(DistributionFetcher::new(
            config.registry_url.as_ref(),
            config.registry_auth.as_ref(),
        )?),
        ecr: Arc::new(EcrSource::from_config(&sdk)),
    };
    let registry_events = SqsRegistryEvents::new(
        sqs,
        config.registry_events_queue_url.clone(),
        config.registry_events_dlq_url.clone(),
    );
    let ingest = Ingest::new(Arc::new(store), Arc::new(queue), Arc::new(manifests))
        .with_token(config.ingest_token.as_ref())
        .with_registry_events(Arc::new(registry_events));
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        ingest.handle(event.payload).await
    }))
    .await
}
