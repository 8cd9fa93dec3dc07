//! Running a Lambda binary as a child process wired to a [`RuntimeApi`]: the
//! environment Lambda would give it, its output appended to a log file, its
//! memory high-water mark, and killing it when the handle is dropped.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tokio::process::{Child, Command};

use super::RuntimeApi;
use crate::util::{self, REGION};
use crate::DevstackError;

/// What a stopped process left behind.
#[derive(Clone, Debug)]
pub struct ProcessReport {
    /// Peak resident set size (VmHWM) just before it was killed, if readable.
    pub peak_rss_kib: Option<u64>,
    /// How it ended (normally killed by devstack's SIGKILL).
    pub status: Option<ExitStatus>,
}

/// A Lambda binary running locally against a Runtime API; killed on drop.
pub struct FunctionProcess {
    child: Mutex<Child>,
    pid: u32,
    spawned_at: Instant,
    name: String,
    log_path: PathBuf,
}

impl FunctionProcess {
    /// Starts `binary` with the Lambda environment pointing at `api`.
    ///
    /// Inherited `AWS_*` variables are removed first so the developer's own
    /// credentials or profile never leak into a local function; then come the
    /// Lambda defaults, then `env`, which wins over both. stdout and stderr
    /// are appended to `log_path` (its directory is created).
    pub fn spawn(
        binary: &Path,
        api: &RuntimeApi,
        env: &[(String, String)],
        log_path: &Path,
    ) -> Result<FunctionProcess, DevstackError> {
        if !binary.is_file() {
            return Err(DevstackError::BinaryNotFound(binary.to_path_buf()));
        }
        let name = binary
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("function")
            .to_owned();
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
        for (key, value) in lambda_env(&name, api) {
            cmd.env(key, value);
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| DevstackError::io(format!("spawning {}", binary.display()), e))?;
        // id() is None only once the child has been reaped, which cannot
        // have happened yet.
        let pid = child.id().unwrap_or(0);
        Ok(FunctionProcess {
            child: Mutex::new(child),
            pid,
            spawned_at,
            name,
            log_path: log_path.to_path_buf(),
        })
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The instant just before the process was spawned; with
    /// [`RuntimeApi::first_poll_at`] it gives the cold-start (init) time.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// The function name (the binary's file stem).
    pub fn function_name(&self) -> &str {
        &self.name
    }

    /// Where the process output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        util::log_tail(&self.log_path, lines)
    }

    /// Peak resident set size in KiB (`VmHWM` of `/proc/<pid>/status`);
    /// `None` once the process is gone. Read it before dropping the handle.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmHWM:")
    }

    /// Current resident set size in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmRSS:")
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit_status(&self) -> Result<Option<ExitStatus>, DevstackError> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        child
            .try_wait()
            .map_err(|e| DevstackError::io(format!("checking process {}", self.pid), e))
    }

    /// Reads the peak RSS, kills the process and waits for it to end.
    pub async fn stop(self) -> Result<ProcessReport, DevstackError> {
        let peak_rss_kib = self.peak_rss_kib();
        let mut child = self
            .child
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if child
            .try_wait()
            .map_err(|e| DevstackError::io("checking the function process", e))?
            .is_none()
        {
            // Lambda freezes/kills environments without a graceful signal;
            // a SIGKILL is the faithful equivalent.
            child
                .kill()
                .await
                .map_err(|e| DevstackError::io("killing the function process", e))?;
        }
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

/// The variables the Lambda service sets for a function (those
/// `lambda_runtime` requires, plus region and dummy credentials that an
/// explicit `env` entry overrides).
fn lambda_env(name: &str, api: &RuntimeApi) -> Vec<(String, String)> {
    let date = time::OffsetDateTime::now_utc().date();
    let stream = format!(
        "{:04}/{:02}/{:02}/[$LATEST]{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        util::random_hex(16)
    );
    [
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
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn open_log(log_path: &Path, binary: &Path) -> Result<std::fs::File, DevstackError> {
    if let Some(dir) = log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            DevstackError::io(format!("creating log directory {}", dir.display()), e)
        })?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| DevstackError::io(format!("opening log {}", log_path.display()), e))?;
    // Logs are appended across runs; a banner shows where each run starts.
    let stamp = util::epoch_millis(std::time::SystemTime::now());
    writeln!(
        log,
        "=== devstack: starting {} (epoch ms {stamp}) ===",
        binary.display()
    )
    .map_err(|e| DevstackError::io(format!("writing log {}", log_path.display()), e))?;
    Ok(log)
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vmhwm_from_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  10000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(4321));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(4000));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_has_a_peak_rss() {
        let kib = proc_status_kib(std::process::id(), "VmHWM:").expect("linux /proc");
        assert!(kib > 100, "{kib}");
    }
}
