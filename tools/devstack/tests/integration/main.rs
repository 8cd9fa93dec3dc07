//! devstack's own integration tests: each emulation exercised for real
//! (the echo Lambda binary, HTTP clients, moto) in one test binary so moto
//! starts once and linking happens once.

mod esm;
mod function_url;
mod moto;
mod receiver;
mod runtime_api;

use std::path::PathBuf;

/// The echo Lambda cargo built for these tests.
pub fn echo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_devstack-echo"))
}

/// A per-test log file under the target directory.
pub fn log_path(test: &str) -> PathBuf {
    devstack::paths::target_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("devstack-test-logs")
        .join(format!("{test}.log"))
}
