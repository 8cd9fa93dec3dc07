//! Locating things on disk (workspace root, venv, scripts, target directory
//! and binaries) and the small values the emulations and the benchmark
//! share: ids, trace headers, epoch times, free ports, log tails, /proc figures.

use std::env;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::DevstackError;

/// Points [`workspace_binary`] at another directory (`target/release` for
/// the benchmark, a cross-build output, …).
pub const BIN_DIR_ENV: &str = "DEVSTACK_BIN_DIR";
/// moto's default account id, so ARNs built here and moto's agree.
pub(crate) const ACCOUNT_ID: &str = "123456789012";
/// The only region the local stack pretends to run in.
pub(crate) const REGION: &str = "us-east-1";

/// The Cargo workspace root: the nearest ancestor with a `[workspace]`
/// `Cargo.toml` of the running package, the current directory, or this
/// crate's source, so a binary started anywhere in the checkout finds it.
pub fn workspace_root() -> Option<PathBuf> {
    let starts = [
        env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        env::current_dir().ok(),
    ];
    let is_root = |dir: &&Path| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"));
        manifest.is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
    };
    let mut starts = starts
        .into_iter()
        .flatten()
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR"))]);
    starts.find_map(|start| start.ancestors().find(is_root).map(Path::to_path_buf))
}

pub(crate) fn in_repo(path: &str) -> PathBuf {
    workspace_root().unwrap_or_default().join(path)
}

/// The project venv's Python (moto, `standardwebhooks`), else `python3`.
pub(crate) fn venv_python() -> PathBuf {
    Some(in_repo(".venv/bin/python"))
        .filter(|venv| venv.is_file())
        .unwrap_or_else(|| "python3".into())
}

/// The cargo target directory the current executable was built into: test
/// and bench executables live in `<target>/<profile>/deps`, examples in
/// `…/examples`, which honours `CARGO_TARGET_DIR` and `--target-dir`.
pub fn target_dir() -> Option<PathBuf> {
    let exe = env::current_exe().ok();
    let from_exe = exe.as_deref().and_then(Path::parent).and_then(|parent| {
        let name = parent.file_name()?.to_str()?;
        matches!(name, "deps" | "examples")
            .then(|| parent.parent()?.parent().map(Path::to_path_buf))?
    });
    from_exe
        .or_else(|| env::var_os("CARGO_TARGET_DIR").map(|dir| in_repo("").join(dir)))
        .or_else(|| workspace_root().map(|root| root.join("target")))
}

/// Path of a workspace binary built by the caller: `$DEVSTACK_BIN_DIR/<name>`
/// when set, else `<target dir>/debug/<name>`.
pub fn workspace_binary(name: &str) -> PathBuf {
    match env::var_os(BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir).join(name),
        None => target_dir()
            .unwrap_or_else(|| "target".into())
            .join("debug")
            .join(name),
    }
}

/// A port on 127.0.0.1 free a moment ago, for child processes (moto,
/// docker-registry) told their port up front; our own servers bind port 0.
pub fn free_port() -> Result<u16, DevstackError> {
    let port =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|listener| listener.local_addr());
    port.map(|addr| addr.port())
        .map_err(|e| DevstackError::io("binding a probe socket to find a free port", e))
}

/// Locks `m`. Nothing here panics holding a lock; if something did, the
/// maps and counters inside are still consistent, so carry on.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `ready` every 20 ms until it gives a value, or fails with a
/// timeout naming `what`.
pub(crate) async fn wait_until<T>(
    timeout: Duration,
    what: impl FnOnce() -> String,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, DevstackError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DevstackError::Timeout {
                what: what(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Peak resident set size (`VmHWM`) of process `pid` in KiB; `None` once
/// the process is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// CPU time (user + system) of process `pid` so far, in ms (10 ms ticks).
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) * 10.0)
}

pub(crate) fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A random UUID v4 string, the shape Lambda uses for request ids.
pub(crate) fn uuid_v4() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// An X-Ray trace header like Lambda's `Lambda-Runtime-Trace-Id`.
pub(crate) fn trace_header() -> String {
    let secs = epoch_millis(SystemTime::now()) / 1000;
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        random_hex(12),
        random_hex(8)
    )
}

pub fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
