//! AWS SDK setup shared by the binaries: one config load at cold start, with
//! `AWS_ENDPOINT_URL` honoured by the SDK itself for local endpoints, and the
//! SDK's HTTP client built over the process's TLS configuration
//! ([`crate::net::sdk_http`]), so one crypto provider and one root store
//! serve the SDK and the webhook client.

use aws_config::BehaviorVersion;

use crate::net::{sdk_http, tls, TlsError};

/// Loads the SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`). Fails only when `SSL_CERT_FILE` names an unusable
/// bundle.
pub async fn load_config() -> Result<aws_config::SdkConfig, TlsError> {
    let http = sdk_http::client(tls::client_config()?);
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await)
}

/// A DynamoDB client from a loaded config.
pub fn dynamodb(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An SQS client from a loaded config.
pub fn sqs(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
