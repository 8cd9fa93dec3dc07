//! Small helpers shared by the emulations: AWS-shaped identifiers, epoch
//! timestamps, free ports and log tails. Kept separate so each emulation file
//! holds only its own protocol.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;

use crate::DevstackError;

/// The account id moto and the emulated ARNs use, matching moto's default so
/// ARNs built here and ARNs returned by moto agree.
pub(crate) const ACCOUNT_ID: &str = "123456789012";
/// The only region the local stack pretends to run in.
pub(crate) const REGION: &str = "us-east-1";

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A random UUID v4 string, the shape Lambda uses for request ids.
pub(crate) fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Random lowercase hex of `len` bytes.
pub(crate) fn random_hex(len: usize) -> String {
    let mut b = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut b);
    hex(&b)
}

/// An X-Ray trace header like the one Lambda passes in
/// `Lambda-Runtime-Trace-Id` (`Root=1-<epoch hex>-<96 bit>;Parent=…;Sampled=0`).
pub(crate) fn trace_header() -> String {
    let secs = epoch_millis(SystemTime::now()) / 1000;
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        random_hex(12),
        random_hex(8)
    )
}

/// Milliseconds since the Unix epoch (0 for times before it, which only a
/// badly wrong clock produces).
pub(crate) fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for child processes
/// (moto) that must be told their port up front. Listeners of our own bind
/// port 0 directly instead, which has no race.
pub fn free_port() -> Result<u16, DevstackError> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| DevstackError::io("binding a probe socket to find a free port", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| DevstackError::io("reading the probe socket's port", e))
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_the_v4_shape() {
        let id = uuid_v4();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn trace_header_has_root_parent_and_sampled() {
        let t = trace_header();
        assert!(t.starts_with("Root=1-"), "{t}");
        assert!(t.contains(";Parent=") && t.ends_with(";Sampled=0"), "{t}");
    }
}
