//! devstack runs the alin-webhooks Lambda binaries locally as plain
//! processes, with no Docker: the Runtime API, Function URL and SQS event
//! source mapping emulations, moto with template.yaml's table and queues
//! (made by moto's CloudFormation), a counting, fault-injecting proxy,
//! programmable receivers, the independent signature verifier and
//! registries. Tests, the benchmark
//! and `devstack up` use it; it never builds binaries itself.

pub mod aws_proxy;
pub mod esm;
pub mod function_url;
mod http_server;
pub mod moto;
pub mod paths;
pub mod receiver;
pub mod registry;
pub mod runtime_api;

pub use moto::sdk_config;
pub use paths::free_port;
pub use receiver::verify_standardwebhooks;
pub use runtime_api::{invoker_fn, Invocation, Invoker, Outcome};

/// What went wrong while running a piece of the local stack. devstack
/// retries nothing itself; its callers report these. Variants are the
/// failures callers tell apart; everything else is `Setup`.
#[derive(Debug, thiserror::Error)]
pub enum DevstackError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The function never took the invocation (`GET /next`) in time.
    #[error("the function did not poll /next for the invocation within {waited:?}")]
    NotPolled { waited: std::time::Duration },
    #[error("function process exited ({status}); last log lines:\n{log_tail}")]
    ProcessExited { status: String, log_tail: String },
    #[error("binary not found at {0} (build it first, or set DEVSTACK_BIN_DIR)")]
    BinaryNotFound(std::path::PathBuf),
    #[error("the Runtime API server has stopped")]
    RuntimeApiStopped,
    /// moto, the stack, an outside tool or a background task failed, or a
    /// signature did not verify.
    #[error("{0}")]
    Setup(String),
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
}

impl DevstackError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DevstackError::Io {
            context: context.into(),
            source,
        }
    }
}
