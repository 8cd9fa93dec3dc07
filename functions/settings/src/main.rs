//! The `settings` Lambda binary: reads the configuration, builds the
//! DynamoDB store and SQS queue once, and serves Function URL requests with
//! [`settings::Settings`].

use std::sync::Arc;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use settings::Settings;
use shared::adapters::{DynamoStore, SqsQueue};
use shared::net::SystemLookup;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = shared::aws::load_config().await?;
    let settings = Settings::new(
        Arc::new(DynamoStore::new(
            shared::aws::dynamodb(&aws),
            config.webhooks_table.clone(),
        )),
        Arc::new(SqsQueue::new(
            shared::aws::sqs(&aws),
            config.delivery_queue_url.clone(),
        )),
        Arc::new(SystemLookup),
        config.delivery.allow_private_targets,
    );
    let settings = &settings;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(settings.handle_event(event.payload).await)
    }))
    .await
}
