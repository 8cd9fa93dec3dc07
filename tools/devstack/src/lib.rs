//! devstack runs the alin-webhooks Lambda binaries locally as plain
//! processes, with no Docker: it owns the emulations those binaries talk to
//! (Lambda Runtime API, Function URL, SQS event source mapping), a moto
//! server for AWS APIs with the stack's table and queues ([`stack`]), a
//! counting, fault-injecting proxy in front of it, programmable HTTP
//! receivers standing in for webhook endpoints, the independent signature
//! verifier, and registries (a real one and a stub) for ingest to fetch
//! from. Integration tests, the benchmark and `devstack up` (the local
//! stack, its binary) are its users; it never builds binaries itself.

pub mod aws_proxy;
mod error;
pub mod esm;
pub mod function_url;
mod http_server;
mod invoker;
pub mod moto;
pub mod paths;
pub mod receiver;
pub mod registry;
pub mod runtime_api;
/// The stack's table and queues, defined alongside moto.
pub use moto as stack;

pub use error::DevstackError;
pub use invoker::{invoker_fn, FnInvoker, Invoker};
pub use moto::sdk_config;
pub use paths::free_port;
pub use receiver::verify_standardwebhooks;
pub use runtime_api::{Invocation, Outcome};
