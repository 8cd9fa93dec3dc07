//! A Lambda function running locally: a binary spawned as a child process
//! with the environment Lambda would give it, polling its own [`RuntimeApi`]
//! (one execution environment), its output appended to a log file, its
//! memory high-water mark read from `/proc`, and killed when dropped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::process::{Child, Command};

use super::{Invocation, Invoker, RuntimeApi};
use crate::paths::{self, lock, REGION};
use crate::DevstackError;

/// What a stopped process left behind.
#[derive(Clone, Debug)]
pub struct ProcessReport {
    /// Peak resident set size (VmHWM) just before it was killed, if readable.
    pub peak_rss_kib: Option<u64>,
    /// How it ended (normally killed by devstack's SIGKILL).
    pub status: Option<ExitStatus>,
}

/// A function binary running against its own Runtime API; the process is
/// killed on drop.
pub struct LocalFunction {
    // Drop order: kill the process before its Runtime API goes away.
    child: Mutex<Child>,
    api: RuntimeApi,
    pid: u32,
    spawned_at: Instant,
    log_path: PathBuf,
    /// The timeout when invoked as an [`Invoker`]: 30 s by default, as our
    /// functions are configured longer than Lambda's 3 s and debug builds are slow.
    timeout: Duration,
}

impl LocalFunction {
    /// Starts a Runtime API named after the binary's file stem and `binary`
    /// against it. The developer's own `AWS_*` variables are removed so their
    /// credentials never reach a local function; `env` wins over the Lambda
    /// defaults. stdout and stderr are appended to `log_path`.
    pub async fn start(
        binary: &Path,
        env: &[(String, String)],
        log_path: &Path,
    ) -> Result<LocalFunction, DevstackError> {
        if !binary.is_file() {
            return Err(DevstackError::BinaryNotFound(binary.to_path_buf()));
        }
        let name = binary.file_stem().and_then(|s| s.to_str()).unwrap_or("function");
        let api = RuntimeApi::start(name).await?;
        let failed = |e| DevstackError::io(format!("opening log {}", log_path.display()), e);
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).map_err(failed)?;
        let stamp = paths::epoch_millis(SystemTime::now());
        writeln!(log, "=== devstack: starting {} (epoch ms {stamp}) ===", binary.display()).map_err(failed)?;
        let log_err = log.try_clone().map_err(failed)?;
        let mut cmd = Command::new(binary);
        // Lambda sets none of these; a developer's shell often does (a CA
        // bundle in SSL_CERT_FILE would have every cold start parse it).
        // What `env` names explicitly is set again below.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("AWS_") || k.starts_with("_X_AMZN") || k == "SSL_CERT_FILE" || k == "SSL_CERT_DIR" {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(lambda_env(name, &api)).envs(env.iter().cloned()).stdin(Stdio::null());
        cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log_err)).kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = cmd.spawn().map_err(|e| DevstackError::io(format!("spawning {}", binary.display()), e))?;
        Ok(LocalFunction {
            // None only once the child has been reaped, which cannot have happened yet.
            pid: child.id().unwrap_or(0),
            child: Mutex::new(child),
            api,
            spawned_at,
            log_path: log_path.to_path_buf(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Sets the timeout used when invoked as an [`Invoker`].
    pub fn with_timeout(mut self, timeout: Duration) -> LocalFunction {
        self.timeout = timeout;
        self
    }

    pub fn api(&self) -> &RuntimeApi {
        &self.api
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The instant just before the spawn; with [`RuntimeApi::first_poll_at`]
    /// it gives the cold-start (init) time.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit_status(&self) -> Result<Option<ExitStatus>, DevstackError> {
        let status = lock(&self.child).try_wait();
        status.map_err(|e| DevstackError::io(format!("checking process {}", self.pid), e))
    }

    /// Peak resident set size in KiB (`VmHWM`); `None` once the process is gone.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        paths::peak_rss_kib(self.pid)
    }

    /// [`RuntimeApi::invoke`], except that a process exiting meanwhile fails
    /// the invocation at once with [`DevstackError::ProcessExited`] and its
    /// log tail instead of waiting out the timeout.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Invocation, DevstackError> {
        let invocation = self.api.invoke(event, timeout);
        tokio::pin!(invocation);
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                biased;
                result = &mut invocation => return result,
                _ = ticker.tick() => if let Some(status) = self.try_exit_status()? {
                    let log_tail = paths::log_tail(&self.log_path, 40);
                    return Err(DevstackError::ProcessExited { status: status.to_string(), log_tail });
                }
            }
        }
    }

    /// Reads the peak RSS, kills the process with SIGKILL (Lambda gives
    /// environments no graceful signal either) and waits for it.
    pub async fn stop(self) -> Result<ProcessReport, DevstackError> {
        let peak_rss_kib = self.peak_rss_kib();
        let mut child = self.child.into_inner().unwrap_or_else(|e| e.into_inner());
        // kill() on an already ended child is a no-op that still reaps it.
        let _ = child.start_kill();
        let status = child.wait().await.map_err(|e| DevstackError::io("waiting for the function process", e))?;
        Ok(ProcessReport { peak_rss_kib, status: Some(status) })
    }
}

impl Invoker for LocalFunction {
    async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
        self.invoke(event, self.timeout).await
    }
}

/// The variables Lambda sets for a function: those `lambda_runtime` needs,
/// plus region and dummy credentials that an explicit `env` overrides.
fn lambda_env(name: &str, api: &RuntimeApi) -> Vec<(&'static str, String)> {
    let date = time::OffsetDateTime::now_utc().date();
    let (y, m, d) = (date.year(), u8::from(date.month()), date.day());
    let stream = format!("{y:04}/{m:02}/{d:02}/[$LATEST]{}", paths::random_hex(16));
    let fixed = [
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let mut env = vec![
        ("AWS_LAMBDA_RUNTIME_API", api.addr().to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
    ];
    env.extend(fixed.map(|(k, v)| (k, v.to_owned())));
    env
}
