//! The webhook request contract (docs/webhook.md#the-request): Standard Webhooks signing and
//! the exact headers and body a receiver gets.

pub mod request;
pub mod signing;

pub use request::{build_request, WebhookRequest, USER_AGENT};
pub use signing::{SecretError, WebhookSecret};
