//! The shared webhook HTTP client: one keep-alive pool per process, HTTP/1.1,
//! rustls with the process's TLS configuration ([`super::tls`]), no
//! redirects, no proxies from the environment (a proxy would bypass the
//! resolver's address rule), and the guarded resolver.

use std::sync::Arc;
use std::time::Duration;

use super::resolver::{GuardedResolver, NameLookup};
use super::tls::{self, TlsError};

/// How to build the client.
pub struct ClientOptions {
    pub timeout: Duration,
    pub allow_private: bool,
    pub lookup: Arc<dyn NameLookup>,
    pub max_idle_per_host: usize,
}

/// Why the webhook client could not be built (permanent: a cold start fails).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Builds the client every delivery in a process shares.
pub fn webhook_client(opts: ClientOptions) -> Result<reqwest::Client, ClientError> {
    let tls = tls::client_config()?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(&tls))
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(opts.max_idle_per_host)
        .tcp_nodelay(true)
        .dns_resolver(Arc::new(GuardedResolver::new(
            opts.lookup,
            opts.allow_private,
        )))
        .build()?;
    Ok(client)
}
