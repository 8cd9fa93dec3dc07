//! A moto server (the project venv's `moto_server`) standing in for DynamoDB,
//! SQS and the other AWS APIs: starting it on a free port, waiting until it
//! answers, SDK configuration pointing at it, creating a test's stack
//! resources (through [`crate::stack`]), and making sure the server dies
//! with the test process.
//!
//! moto runs under a tiny `sh` watchdog whose stdin is a pipe from this
//! process: when the pipe closes (the [`Moto`] is dropped, or the test
//! process exits or is killed, which closes it too) the watchdog kills moto.
//! That is what lets [`Moto::shared`] live in a `static` that is never
//! dropped without leaking a server per test run.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OnceCell;

use crate::util::{self, REGION};
use crate::{paths, DevstackError};

/// Overrides the moto server executable.
pub const MOTO_SERVER_BIN_ENV: &str = "MOTO_SERVER_BIN";
/// How long moto may take to answer after being started.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Port races (another process grabbing our probed port) are retried.
const START_ATTEMPTS: usize = 3;

/// Runs the command given as arguments with stdin from /dev/null, kills it
/// when our stdin reaches EOF, and exits with its status when it ends first.
const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- &
server=$!
( read -r _ <&3; kill "$server" 2>/dev/null ) &
reader=$!
exec 3<&-
wait "$server"
status=$?
kill "$reader" 2>/dev/null
exit "$status"
"#;

static SHARED: OnceCell<Moto> = OnceCell::const_new();

/// A running moto server; stopped on drop.
pub struct Moto {
    endpoint: String,
    port: u16,
    log_path: PathBuf,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl Moto {
    /// Starts a private moto server and waits until it answers.
    pub async fn start() -> Result<Moto, DevstackError> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(None).await {
                Ok(moto) => return Ok(moto),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| DevstackError::Moto("not started".into())))
    }

    /// Starts moto on a fixed `port` (the local stack that `events/local.env`
    /// names), failing clearly when something already listens there.
    pub async fn start_on(port: u16) -> Result<Moto, DevstackError> {
        if answers_http(port).await {
            return Err(DevstackError::Moto(format!(
                "127.0.0.1:{port} is already in use (another `devstack up`?)"
            )));
        }
        Self::start_once(Some(port)).await
    }

    /// A moto server shared by the whole process (started on first use), so
    /// a test binary pays the start-up once. Tests isolate themselves by
    /// using their own resource names/prefixes. If starting fails, the next
    /// call tries again.
    pub async fn shared() -> Result<&'static Moto, DevstackError> {
        SHARED.get_or_try_init(Moto::start).await
    }

    async fn start_once(port: Option<u16>) -> Result<Moto, DevstackError> {
        let server = moto_server_bin();
        if !server.is_file() {
            return Err(DevstackError::Moto(format!(
                "{} not found (run scripts/tools.sh, or set {MOTO_SERVER_BIN_ENV})",
                server.display()
            )));
        }
        let port = match port {
            Some(port) => port,
            None => util::free_port()?,
        };
        let log_path = log_dir().join(format!("moto-{port}.log"));
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| DevstackError::io(format!("creating {}", dir.display()), e))?;
        }
        let log = std::fs::File::create(&log_path)
            .map_err(|e| DevstackError::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| DevstackError::io("duplicating the moto log handle", e))?;
        let port_text = port.to_string();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("devstack-moto")
            .args(moto_command())
            .args(["-H", "127.0.0.1", "-p", &port_text])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| DevstackError::io(format!("spawning {}", server.display()), e))?;
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            return Err(DevstackError::Moto("watchdog has no stdin pipe".into()));
        };
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            log_path,
            watchdog: Mutex::new(Some((child, stdin))),
        };
        moto.wait_ready().await?;
        Ok(moto)
    }

    /// Polls until moto answers HTTP, failing fast if it exits.
    async fn wait_ready(&self) -> Result<(), DevstackError> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.exit_status() {
                return Err(DevstackError::Moto(format!(
                    "moto_server exited ({status}) before answering; log:\n{}",
                    util::log_tail(&self.log_path, 20)
                )));
            }
            if answers_http(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DevstackError::Moto(format!(
            "moto_server did not answer within {READY_TIMEOUT:?}; log:\n{}",
            util::log_tail(&self.log_path, 20)
        )))
    }

    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let mut guard = self.watchdog.lock().unwrap_or_else(PoisonError::into_inner);
        let (child, _) = guard.as_mut()?;
        child.try_wait().ok().flatten()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where moto's output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// An SDK configuration for moto: its endpoint, us-east-1 and static
    /// `testing` credentials (nothing is read from the developer's profile).
    /// Build clients from it inside the runtime that uses them: SDK clients
    /// keep connection pools tied to the tokio runtime they first ran on,
    /// and each `#[tokio::test]` has its own.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(&self.endpoint).await
    }

    /// The environment a function needs to reach this moto with the SDK
    /// (`AWS_ENDPOINT_URL` and test credentials), for `LocalFunction::start`.
    pub fn function_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_DEFAULT_REGION".into(), REGION.into()),
        ]
    }

    /// Creates the local stack's table and queues in this moto under
    /// `prefix`, with template parameter overrides (`Name=Value`); see
    /// [`crate::stack::create`] for the outputs. Give each test its own
    /// prefix to share one moto safely.
    pub async fn provision(
        &self,
        prefix: &str,
        overrides: &[&str],
    ) -> Result<Map<String, Value>, DevstackError> {
        crate::stack::create(&self.sdk_config().await, prefix, overrides).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let taken = self
            .watchdog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((mut child, stdin)) = taken else {
            return;
        };
        // EOF on the watchdog's stdin makes it kill moto and exit.
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        // Last resort; moto itself may then outlive us until its next request.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// An SDK configuration for the moto-compatible endpoint (moto itself, or
/// an `AwsProxy` in front of it): us-east-1 and static `testing` credentials,
/// nothing read from the developer's profile; a plain-HTTP client (moto and
/// the proxy speak HTTP; the workspace links no SDK default HTTPS client).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "devstack",
        ))
        .load()
        .await
}

fn repo_root() -> PathBuf {
    paths::repo_root().unwrap_or_else(|| PathBuf::from("."))
}

fn moto_server_bin() -> PathBuf {
    match std::env::var_os(MOTO_SERVER_BIN_ENV) {
        Some(bin) => PathBuf::from(bin),
        None => repo_root().join(".venv").join("bin").join("moto_server"),
    }
}

/// The command that runs moto: `scripts/moto_server.py` (moto with DynamoDB
/// writes applied atomically, as the real service does) under the venv's
/// Python, unless `MOTO_SERVER_BIN` names another server.
fn moto_command() -> Vec<PathBuf> {
    let wrapper = repo_root().join("scripts").join("moto_server.py");
    if std::env::var_os(MOTO_SERVER_BIN_ENV).is_none() && wrapper.is_file() {
        vec![paths::venv_python(), wrapper]
    } else {
        vec![moto_server_bin()]
    }
}

/// moto logs go under the repo's ignored `.devstack/` so CI can show them.
fn log_dir() -> PathBuf {
    match paths::repo_root() {
        Some(root) => root.join(".devstack").join("logs"),
        None => std::env::temp_dir().join("devstack-logs"),
    }
}

/// True when something on `port` answers an HTTP request.
async fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), attempt).await,
        Ok(Some(true))
    )
}
