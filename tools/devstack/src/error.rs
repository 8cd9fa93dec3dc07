//! The one error type of the crate: every fallible devstack call returns
//! [`DevstackError`], so tests can `?` or `unwrap()` them uniformly and the
//! message says which piece of the local stack failed and why.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while running a piece of the local stack.
#[derive(Debug, thiserror::Error)]
pub enum DevstackError {
    /// An OS-level operation (bind, spawn, file open, …) failed.
    #[error("{context}: {source}")]
    Io {
        /// What devstack was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The function never asked for the queued invocation (`/next`) in time:
    /// it is still initialising, hung, or dead.
    #[error("the function did not poll /next for the invocation within {waited:?}")]
    NotPolled {
        /// How long the invocation waited in the queue.
        waited: Duration,
    },
    /// The function process exited while an invocation was queued or running.
    #[error("function process exited ({status}); last log lines:\n{log_tail}")]
    ProcessExited {
        /// The exit status as printed by the OS.
        status: String,
        /// The end of the function's log file, for diagnosis.
        log_tail: String,
    },
    /// A binary that should have been built beforehand is missing.
    #[error("binary not found at {0} (build it first, or set DEVSTACK_BIN_DIR)")]
    BinaryNotFound(PathBuf),
    /// The Runtime API server is gone (its task ended), so nothing can be invoked.
    #[error("the Runtime API server has stopped")]
    RuntimeApiStopped,
    /// moto could not be started or did not answer.
    #[error("moto: {0}")]
    Moto(String),
    /// Creating the local stack's table or queues failed, or a parameter
    /// override was refused.
    #[error("create_stack: {0}")]
    CreateStack(String),
    /// The `standardwebhooks` library did not verify a webhook's signature.
    #[error("signature not verified: {0}")]
    NotVerified(String),
    /// An outside tool (docker-registry, skopeo) is missing or failed.
    #[error("{0}")]
    Tool(String),
    /// An SQS call made by the event source mapping failed.
    #[error("sqs {operation}: {message}")]
    Sqs {
        /// The SQS operation (ReceiveMessage, DeleteMessageBatch, …).
        operation: &'static str,
        /// The SDK's error, rendered with its sources.
        message: String,
    },
    /// Waiting for something (requests at a receiver, …) took too long.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long devstack waited.
        after: Duration,
    },
    /// A background task of devstack panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl DevstackError {
    /// Wraps an I/O error with what devstack was doing at the time.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DevstackError::Io {
            context: context.into(),
            source,
        }
    }
}
