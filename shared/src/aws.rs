//! AWS SDK setup shared by the binaries: one config load at cold start, with
//! `AWS_ENDPOINT_URL` honoured by the SDK itself for local endpoints.

use aws_config::BehaviorVersion;

/// Loads the SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`).
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A DynamoDB client from a loaded config.
pub fn dynamodb(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An SQS client from a loaded config.
pub fn sqs(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
