//! A Lambda function running locally: a binary spawned as a child process
//! with the environment Lambda would give it, polling its own [`RuntimeApi`]
//! (one execution environment), its output appended to a log file, its
//! memory high-water mark read from `/proc`, and killed when dropped.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::process::{Child, Command};

use super::{Invocation, RuntimeApi};
use crate::invoker::Invoker;
use crate::paths::{self, lock, REGION};
use crate::DevstackError;

/// Lambda's default is 3 s; our functions are configured longer, and debug
/// builds are slow, so local invocations default to 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting invoke checks that the process is still alive.
const LIVENESS_POLL: Duration = Duration::from_millis(50);

/// What a stopped process left behind.
#[derive(Clone, Debug)]
pub struct ProcessReport {
    /// Peak resident set size (VmHWM) just before it was killed, if readable.
    pub peak_rss_kib: Option<u64>,
    /// How it ended (normally killed by devstack's SIGKILL).
    pub status: Option<ExitStatus>,
}

/// A Lambda binary running against a Runtime API; killed on drop.
pub struct FunctionProcess {
    child: Mutex<Child>,
    pid: u32,
    spawned_at: Instant,
    log_path: PathBuf,
}

impl FunctionProcess {
    /// Starts `binary` with the Lambda environment pointing at `api`.
    /// Inherited `AWS_*` variables are removed first so the developer's own
    /// credentials or profile never leak into a local function; then come
    /// the Lambda defaults, then `env`, which wins over both. stdout and
    /// stderr are appended to `log_path` (its directory is created).
    pub fn spawn(
        binary: &Path,
        api: &RuntimeApi,
        env: &[(String, String)],
        log_path: &Path,
    ) -> Result<FunctionProcess, DevstackError> {
        if !binary.is_file() {
            return Err(DevstackError::BinaryNotFound(binary.to_path_buf()));
        }
        let log = open_log(log_path, binary)?;
        let log_err = log
            .try_clone()
            .map_err(|e| DevstackError::io(format!("duplicating log {}", log_path.display()), e))?;
        let mut cmd = Command::new(binary);
        for (key, _) in std::env::vars_os() {
            if key
                .to_str()
                .is_some_and(|k| k.starts_with("AWS_") || k.starts_with("_X_AMZN"))
            {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(lambda_env(&stem(binary), api))
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| DevstackError::io(format!("spawning {}", binary.display()), e))?;
        Ok(FunctionProcess {
            // None only once the child has been reaped, which cannot have happened yet.
            pid: child.id().unwrap_or(0),
            child: Mutex::new(child),
            spawned_at,
            log_path: log_path.to_path_buf(),
        })
    }

    /// The instant just before the process was spawned; with
    /// [`RuntimeApi::first_poll_at`] it gives the cold-start (init) time.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        paths::log_tail(&self.log_path, lines)
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit_status(&self) -> Result<Option<ExitStatus>, DevstackError> {
        lock(&self.child)
            .try_wait()
            .map_err(|e| DevstackError::io(format!("checking process {}", self.pid), e))
    }
}

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
        let api = RuntimeApi::start(&stem(binary)).await?;
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

    /// The Runtime API the process polls.
    pub fn api(&self) -> &RuntimeApi {
        &self.api
    }

    /// The running process.
    pub fn process(&self) -> &FunctionProcess {
        &self.process
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Peak resident set size in KiB (`VmHWM` of `/proc/<pid>/status`);
    /// `None` once the process is gone.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
        line.split_whitespace().next()?.parse().ok()
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

    /// Reads the peak RSS, kills the process (Lambda freezes or kills
    /// environments without a graceful signal; SIGKILL is the faithful
    /// equivalent) and waits for it to end.
    pub async fn stop(self) -> Result<ProcessReport, DevstackError> {
        let peak_rss_kib = self.peak_rss_kib();
        let mut child = (self.process.child)
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        // kill() on an already ended child is a no-op that still reaps it.
        let _ = child.start_kill();
        let status = child
            .wait()
            .await
            .map_err(|e| DevstackError::io("waiting for the function process", e))?;
        Ok(ProcessReport {
            peak_rss_kib,
            status: Some(status),
        })
    }
}

impl Invoker for LocalFunction {
    async fn invoke_event(&self, event: Value) -> Result<Invocation, DevstackError> {
        self.invoke(event, self.timeout).await
    }
}

fn stem(binary: &Path) -> String {
    let stem = binary.file_stem().and_then(|s| s.to_str());
    stem.unwrap_or("function").to_owned()
}

/// The variables the Lambda service sets for a function (those
/// `lambda_runtime` requires, plus region and dummy credentials that an
/// explicit `env` entry overrides).
fn lambda_env(name: &str, api: &RuntimeApi) -> Vec<(&'static str, String)> {
    let date = time::OffsetDateTime::now_utc().date();
    let (y, m, d) = (date.year(), u8::from(date.month()), date.day());
    let stream = format!("{y:04}/{m:02}/{d:02}/[$LATEST]{}", paths::random_hex(16));
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.addr().to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}

/// Opens `log_path` for appending, with a banner showing where this run starts.
fn open_log(log_path: &Path, binary: &Path) -> Result<std::fs::File, DevstackError> {
    let failed = |e| DevstackError::io(format!("opening log {}", log_path.display()), e);
    if let Some(dir) = log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(failed)?;
    let stamp = paths::epoch_millis(SystemTime::now());
    let banner = format!(
        "=== devstack: starting {} (epoch ms {stamp}) ===",
        binary.display()
    );
    writeln!(log, "{banner}").map_err(failed)?;
    Ok(log)
}
