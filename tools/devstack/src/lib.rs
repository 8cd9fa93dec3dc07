//! devstack runs the alin-webhooks Lambda binaries locally as plain
//! processes, with no Docker: it owns the emulations those binaries talk to
//! (Lambda Runtime API, Function URL, SQS event source mapping), a moto
//! server for AWS APIs with the stack's table and queues ([`stack`]),
//! programmable HTTP receivers standing in for webhook endpoints, the
//! independent signature verifier and a real registry for end-to-end runs.
//! Integration tests, the benchmark and `devstack up` (the local stack, its
//! binary) are its users; it never builds binaries itself.
//!
//! Typical use from a test:
//!
//! ```no_run
//! # async fn demo() -> Result<(), devstack::DevstackError> {
//! use devstack::{runtime_api::{workspace_binary, LocalFunction}, function_url::FunctionUrl};
//! let function = LocalFunction::start(
//!     &workspace_binary("ingest"),
//!     &[("TABLE_NAME".to_string(), "t".to_string())],
//!     std::path::Path::new("target/devstack-logs/ingest.log"),
//! )
//! .await?;
//! let url = FunctionUrl::serve(function).await?;
//! println!("POST to {}/", url.url());
//! # Ok(()) }
//! ```

pub mod aws_proxy;
pub mod error;
pub mod esm;
pub mod function_url;
mod http_server;
pub mod invoker;
pub mod moto;
pub mod paths;
pub mod receiver;
pub mod registry;
pub mod runtime_api;
pub mod signature;
pub mod stack;
mod util;

pub use error::DevstackError;
pub use invoker::{invoker_fn, FnInvoker, Invoker};
pub use moto::sdk_config;
pub use runtime_api::{Invocation, Outcome};
pub use signature::verify_standardwebhooks;
pub use util::free_port;
