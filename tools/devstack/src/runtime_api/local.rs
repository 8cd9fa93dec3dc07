//! A Lambda function running locally: one [`RuntimeApi`] plus the
//! [`FunctionProcess`] polling it, i.e. one execution environment. This is
//! what tests, the benchmark and the local stack hand to a Function URL or an
//! event source mapping.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{FunctionProcess, Invocation, ProcessReport, RuntimeApi};
use crate::invoker::Invoker;
use crate::DevstackError;

/// Lambda's default is 3 s; our functions are configured longer, and debug
/// builds are slow, so local invocations default to 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a waiting invoke checks that the process is still alive.
const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// A function binary and its Runtime API; the process is killed on drop.
pub struct LocalFunction {
    // Field order matters for drop: kill the process before the API goes away,
    // so the function never sees its Runtime API vanish mid-request.
    process: FunctionProcess,
    api: RuntimeApi,
    timeout: Duration,
}

impl LocalFunction {
    /// Starts a Runtime API named after the binary's file stem and the binary
    /// against it. `env` is added to (and overrides) the Lambda environment.
    pub async fn start(
        binary: &Path,
        env: &[(String, String)],
        log_path: &Path,
    ) -> Result<LocalFunction, DevstackError> {
        let name = binary
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("function");
        let api = RuntimeApi::start_named(name).await?;
        let process = FunctionProcess::spawn(binary, &api, env, log_path)?;
        Ok(LocalFunction {
            process,
            api,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the timeout used when invoked through [`Invoker`] (Function URL,
    /// event source mapping).
    pub fn with_timeout(mut self, timeout: Duration) -> LocalFunction {
        self.timeout = timeout;
        self
    }

    /// The timeout used when invoked through [`Invoker`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The Runtime API the process polls.
    pub fn api(&self) -> &RuntimeApi {
        &self.api
    }

    /// Mutable access, e.g. to change the dispatch timeout.
    pub fn api_mut(&mut self) -> &mut RuntimeApi {
        &mut self.api
    }

    /// The running process.
    pub fn process(&self) -> &FunctionProcess {
        &self.process
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Peak RSS of the process in KiB, while it is alive.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.process.peak_rss_kib()
    }

    /// Invokes the function with `event`; like [`RuntimeApi::invoke`], but a
    /// process that exits while the invocation is outstanding fails it
    /// promptly with [`DevstackError::ProcessExited`] (and its log tail)
    /// instead of waiting out the timeout.
    pub async fn invoke(
        &self,
        event: Value,
        timeout: Duration,
    ) -> Result<Invocation, DevstackError> {
        let invocation = self.api.invoke(event, timeout);
        tokio::pin!(invocation);
        let mut ticker = tokio::time::interval(LIVENESS_POLL);
        loop {
            tokio::select! {
                biased;
                result = &mut invocation => return result,
                _ = ticker.tick() => {
                    if let Some(status) = self.process.try_exit_status()? {
                        return Err(DevstackError::ProcessExited {
                            status: status.to_string(),
                            log_tail: self.process.log_tail(40),
                        });
                    }
                }
            }
        }
    }

    /// Kills the process (reading its peak RSS first) and stops the API.
    pub async fn stop(self) -> Result<ProcessReport, DevstackError> {
        self.process.stop().await
    }
}

impl Invoker for LocalFunction {
    async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
        self.invoke(event, self.timeout).await
    }
}
