//! The seam between event sources (Function URL, SQS event source mapping)
//! and what they invoke: a [`LocalFunction`](crate::runtime_api::LocalFunction)
//! process, or a plain async closure so a test can exercise an event source
//! without building any binary.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runtime_api::{Invocation, Outcome};
use crate::{paths, DevstackError};

/// Something that can be invoked with an event, like a Lambda function.
pub trait Invoker: Send + Sync + 'static {
    /// Invokes with `event`. `Err` means the invocation could not be carried
    /// out at all (process gone, …); a failing function is an
    /// `Outcome::FunctionError`.
    fn invoke_event(
        &self,
        event: Value,
    ) -> impl Future<Output = Result<Invocation, DevstackError>> + Send;
}

impl<T: Invoker> Invoker for Arc<T> {
    fn invoke_event(
        &self,
        event: Value,
    ) -> impl Future<Output = Result<Invocation, DevstackError>> + Send {
        (**self).invoke_event(event)
    }
}

/// An [`Invoker`] backed by an async closure; build it with [`invoker_fn`].
pub struct FnInvoker<F>(F);

/// Wraps `f` as an [`Invoker`]: each invocation calls `f(event)` and reports
/// its [`Outcome`] with a fresh request id and the measured duration.
pub fn invoker_fn<F, Fut>(f: F) -> FnInvoker<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    FnInvoker(f)
}

impl<F, Fut> Invoker for FnInvoker<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
        let started_at = Instant::now();
        Ok(Invocation {
            outcome: (self.0)(event).await,
            request_id: paths::uuid_v4(),
            duration: started_at.elapsed(),
            queued: Duration::ZERO,
            started_at,
            timed_out: false,
        })
    }
}
