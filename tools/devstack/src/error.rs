//! The one error type of the crate: every fallible devstack call returns
//! [`DevstackError`], saying which piece of the local stack failed and why.
//! devstack retries none itself; its callers (tests, the benchmark,
//! `devstack up`) report them.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while running a piece of the local stack.
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
    NotPolled { waited: Duration },
    /// The function process exited while an invocation was outstanding.
    #[error("function process exited ({status}); last log lines:\n{log_tail}")]
    ProcessExited { status: String, log_tail: String },
    /// A binary that should have been built beforehand is missing.
    #[error("binary not found at {0} (build it first, or set DEVSTACK_BIN_DIR)")]
    BinaryNotFound(PathBuf),
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
    Timeout { what: String, after: Duration },
    /// A background task of devstack panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl DevstackError {
    /// Wraps an I/O error with what devstack was doing at the time.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let context = context.into();
        DevstackError::Io { context, source }
    }
}
