//! The benchmark's receiver: answers `204 No Content` at once and only
//! counts, on one or more ports (several ports spread the load the way
//! several subscriber endpoints would).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::http_server::{self, response, Reply, ServerHandle};
use crate::DevstackError;

/// Fast counting receivers; stopped on drop.
pub struct Sink {
    servers: Vec<ServerHandle>,
    counts: Vec<Arc<AtomicU64>>,
    bytes: Arc<AtomicU64>,
}

impl Sink {
    /// Starts `ports` listeners (at least one).
    pub async fn start(ports: usize) -> Result<Sink, DevstackError> {
        let bytes = Arc::new(AtomicU64::new(0));
        let mut servers = Vec::new();
        let mut counts = Vec::new();
        for _ in 0..ports.max(1) {
            let count = Arc::new(AtomicU64::new(0));
            let (c, b) = (count.clone(), bytes.clone());
            let server = http_server::serve("sink", false, move |req, _info| {
                let (c, b) = (c.clone(), b.clone());
                async move {
                    // Read the body fully so keep-alive connections stay reusable.
                    let n = match req.into_body().collect().await {
                        Ok(body) => body.to_bytes().len(),
                        Err(_) => 0,
                    };
                    b.fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
                    c.fetch_add(1, Ordering::Relaxed);
                    Reply::Response(response(204, "text/plain", ""))
                }
            })
            .await?;
            servers.push(server);
            counts.push(count);
        }
        Ok(Sink {
            servers,
            counts,
            bytes,
        })
    }

    /// The listening addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(ServerHandle::addr).collect()
    }

    /// URL of `path` on listener `index` (taken modulo the number of
    /// listeners, so callers can round-robin with a plain counter).
    pub fn url(&self, index: usize, path: &str) -> String {
        let addrs = self.addrs();
        let addr = addrs[index % addrs.len()];
        let sep = if path.starts_with('/') { "" } else { "/" };
        format!("http://{addr}{sep}{path}")
    }

    /// Requests answered so far, all listeners together.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Requests answered per listener.
    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Request body bytes received, all listeners together.
    pub fn body_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests were answered.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> Result<u64, DevstackError> {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.count();
            if count >= n {
                return Ok(count);
            }
            if Instant::now() >= deadline {
                return Err(DevstackError::Timeout {
                    what: format!("{n} requests at the sink (got {count})"),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
