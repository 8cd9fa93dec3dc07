//! A moto server (`scripts/moto_server.py` under the project venv: moto with
//! DynamoDB writes applied atomically, as the real service does) standing in
//! for DynamoDB and SQS: started on a free port, awaited until it answers,
//! SDK configuration and function environment pointing at it, the stack's
//! resources created in it ([`crate::stack`]), and killed with the process.
//!
//! moto runs under a tiny `sh` watchdog whose stdin is a pipe from this
//! process: when the pipe closes (the [`Moto`] is dropped, or the test
//! process exits or is killed, which closes it too) the watchdog kills moto.
//! That is what lets [`Moto::shared`] live in a `static` that is never
//! dropped without leaking a server per test run.

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::paths::{self, REGION};
use crate::DevstackError;

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
        let mut last_error = DevstackError::Setup("moto not started".into());
        for _ in 0..START_ATTEMPTS {
            match Self::start_on(paths::free_port()?).await {
                Ok(moto) => return Ok(moto),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// A moto server shared by the whole process (started on first use), so
    /// a test binary pays the start-up once. Tests isolate themselves by
    /// resource name prefixes. If starting fails, the next call tries again.
    pub async fn shared() -> Result<&'static Moto, DevstackError> {
        SHARED.get_or_try_init(Moto::start).await
    }

    /// Starts moto on a fixed `port` (`devstack up` uses the one
    /// `events/local.env` names), failing clearly when something already
    /// answers there.
    pub async fn start_on(port: u16) -> Result<Moto, DevstackError> {
        let endpoint = format!("http://127.0.0.1:{port}");
        if answers_http(&endpoint).await {
            return Err(DevstackError::Setup(format!(
                "127.0.0.1:{port} is already in use (another `devstack up`?)"
            )));
        }
        let script = paths::in_repo("scripts/moto_server.py");
        let log_path = paths::in_repo(".devstack/logs").join(format!("moto-{port}.log"));
        let log = log_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(&log_path))
            .and_then(|log| Ok((log.try_clone()?, log)))
            .map_err(|e| DevstackError::io(format!("creating {}", log_path.display()), e))?;
        let mut child = Command::new("sh")
            .args(["-c", WATCHDOG, "devstack-moto"])
            .arg(paths::venv_python())
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(log.0)
            .stderr(log.1)
            .spawn()
            .map_err(|e| {
                DevstackError::io(
                    format!("spawning {} (run scripts/tools.sh)", script.display()),
                    e,
                )
            })?;
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            return Err(DevstackError::Setup(
                "moto watchdog has no stdin pipe".into(),
            ));
        };
        let moto = Moto {
            endpoint,
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
        let why = loop {
            let exited = {
                let mut guard = self.watchdog.lock().unwrap_or_else(PoisonError::into_inner);
                guard
                    .as_mut()
                    .and_then(|(child, _)| child.try_wait().ok().flatten())
            };
            if let Some(status) = exited {
                break format!("exited ({status}) before answering");
            }
            if answers_http(&self.endpoint).await {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                break format!("did not answer within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let log = paths::log_tail(&self.log_path, 20);
        Err(DevstackError::Setup(format!(
            "moto {why} (run scripts/tools.sh); log:\n{log}"
        )))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An SDK configuration for this moto (see [`sdk_config`]). Build clients
    /// from it inside the runtime that uses them: SDK clients keep
    /// connection pools tied to the tokio runtime they first ran on, and
    /// each `#[tokio::test]` has its own.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(&self.endpoint).await
    }

    /// The environment a function needs to reach this moto with the SDK
    /// (`AWS_ENDPOINT_URL` and test credentials), for `LocalFunction::start`.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec()
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
        let watchdog = self
            .watchdog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((mut child, stdin)) = watchdog.take() else {
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
    let credentials =
        aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "devstack");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(credentials)
        .load()
        .await
}

/// True when something at `endpoint` answers an HTTP request.
async fn answers_http(endpoint: &str) -> bool {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build();
    match client {
        Ok(client) => client
            .get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_ok(),
        Err(_) => false,
    }
}
