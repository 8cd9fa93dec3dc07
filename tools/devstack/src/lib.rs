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
pub mod esm;
pub mod function_url;
mod http_server;
pub mod moto;
pub mod paths;
pub mod receiver;
pub mod registry;
pub mod runtime_api;
/// The stack's table and queues, defined alongside moto.
pub use moto as stack;

pub use moto::sdk_config;
pub use paths::free_port;
pub use receiver::verify_standardwebhooks;
pub use runtime_api::{invoker_fn, FnInvoker, Invocation, Invoker, Outcome};

/// What went wrong while running a piece of the local stack: every fallible
/// devstack call returns it. devstack retries none itself; its callers
/// (tests, the benchmark, `devstack up`) report them.
#[derive(Debug, thiserror::Error)]
pub enum DevstackError {
    /// An OS-level operation (bind, spawn, file open, …) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The function never took the invocation (`GET /next`) in time:
    /// still initialising, hung, or dead.
    #[error("the function did not poll /next for the invocation within {waited:?}")]
    NotPolled { waited: std::time::Duration },
    /// The function process exited while an invocation was outstanding.
    #[error("function process exited ({status}); last log lines:\n{log_tail}")]
    ProcessExited { status: String, log_tail: String },
    /// A binary that should have been built beforehand is missing.
    #[error("binary not found at {0} (build it first, or set DEVSTACK_BIN_DIR)")]
    BinaryNotFound(std::path::PathBuf),
    /// The Runtime API server is gone, so nothing can be invoked.
    #[error("the Runtime API server has stopped")]
    RuntimeApiStopped,
    /// moto, the stack, or an outside tool (docker-registry, skopeo) could
    /// not be set up or refused a parameter.
    #[error("{0}")]
    Setup(String),
    /// The `standardwebhooks` library did not verify a webhook's signature.
    #[error("signature not verified: {0}")]
    NotVerified(String),
    /// Waiting for something (requests at a receiver, …) took too long.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: std::time::Duration },
    /// A background task of devstack panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl DevstackError {
    /// Wraps an I/O error with what devstack was doing at the time.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DevstackError::Io { context: context.into(), source }
    }
}
