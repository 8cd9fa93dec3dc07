//! The independent Standard Webhooks verifier: a received webhook checked by
//! the PyPI `standardwebhooks` library (`scripts/verify_signature.py` under
//! the project venv), so our signer is never checked only by our own code.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

use crate::{paths, DevstackError};

/// `Ok` when `standardwebhooks` verifies `body` with `headers` (name, value)
/// under `secret` (`whsec_…`); the library's reason otherwise.
pub fn verify_standardwebhooks(
    secret: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), DevstackError> {
    let script = paths::repo_root()
        .unwrap_or_default()
        .join("scripts")
        .join("verify_signature.py");
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let input = json!({ "secret": secret, "headers": headers, "body": body }).to_string();
    let mut child = Command::new(paths::venv_python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            DevstackError::io(
                format!("running {} (run scripts/tools.sh)", script.display()),
                e,
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| DevstackError::io("writing to the verifier", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DevstackError::io("waiting for the verifier", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DevstackError::NotVerified(
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        ))
    }
}
