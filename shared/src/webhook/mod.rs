//! The webhook request contract (docs/webhook.md): Standard Webhooks signing,
//! the payload formats, custom headers, and the exact headers and body a
//! receiver gets.

pub mod format;
pub mod headers;
pub mod request;
pub mod signing;

pub use format::{PayloadFormat, UnknownFormat};
pub use headers::{CustomHeaders, HeaderError};
pub use request::{
    build_request, build_request_as, WebhookRequest, GITHUB_API_VERSION, USER_AGENT,
};
pub use signing::{SecretError, WebhookSecret};
