//! The `ingest` Lambda binary: reads the configuration, builds the AWS
//! clients and the manifest fetchers once per cold start, and hands every
//! event to [`ingest::Ingest::handle`]. Everything testable lives in the lib.

use std::sync::Arc;

use ingest::{DistributionFetcher, EcrSource, Ingest, ManifestSources};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::adapters::{DynamoStore, SqsQueue};
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad configuration fails the cold start with a message naming the
    // variable, instead of failing every invocation later.
    let config = Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    if config.registry_auth.is_some() && config.ingest_token.is_none() {
        tracing::warn!(
            "REGISTRY_AUTH is set but INGEST_TOKEN is not: anyone who can reach the function URL \
             can make ingest send the registry credentials to a URL of their choosing"
        );
    }
    let sdk = shared::aws::load_config().await;
    let store = DynamoStore::new(shared::aws::dynamodb(&sdk), &config.webhooks_table);
    let queue = SqsQueue::new(shared::aws::sqs(&sdk), &config.delivery_queue_url);
    let manifests = ManifestSources {
        distribution: Arc::new(DistributionFetcher::new(config.registry_auth.as_ref())?),
        ecr: Arc::new(EcrSource::from_config(&sdk)),
    };
    let ingest = Ingest::new(Arc::new(store), Arc::new(queue), Arc::new(manifests))
        .with_token(config.ingest_token.as_ref());
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        ingest.handle(event.payload).await
    }))
    .await
}
