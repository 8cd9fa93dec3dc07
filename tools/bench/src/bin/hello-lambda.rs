//! The cold-start floor: the smallest `lambda_runtime` function (what
//! `cargo lambda new` generates, less the comments), built with the workspace's
//! release profile so its init time is the baseline for ingest, deliver and
//! settings.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
