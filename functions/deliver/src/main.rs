//! The `deliver` Lambda binary: configuration, the AWS clients and the one
//! webhook HTTP client are made once at cold start, then every SQS batch
//! goes to [`deliver::Deliverer::handle`].

use std::sync::Arc;

use deliver::{Deliverer, SqsBatch};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::adapters::{DynamoStore, SqsQueue};
use shared::net::SystemLookup;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = shared::aws::load_config().await?;
    let store = DynamoStore::new(shared::aws::dynamodb(&aws), config.webhooks_table.clone());
    let queue = SqsQueue::new(shared::aws::sqs(&aws), config.delivery_queue_url.clone());
    let deliverer = Deliverer::new(
        deliver::Config::from_env_config(&config),
        Arc::new(store),
        Arc::new(queue),
        Arc::new(SystemLookup),
    )?;
    let deliverer = &deliverer;
    run(service_fn(move |event: LambdaEvent<SqsBatch>| async move {
        deliverer.handle(event).await
    }))
    .await
}
