//! `deliver`'s configuration: what it takes from the environment (the
//! service's settings, read once by `shared::Config`) plus its own margins,
//! as one plain struct so tests can set a short timeout or deadline directly.

use std::time::Duration;

/// Time kept back at the end of an invocation, after the last request may
/// finish, for the visibility changes, the outcome writes and the response.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// Transport failures (timeouts, connection errors) in a row to one host,
/// with no answer in between, after which the rest of that host's jobs in
/// the batch are not sent but retried later with backoff.
pub const DEFAULT_HOST_BREAKER: u32 = 3;

/// `deliver`'s configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub registry_host: String,
    pub failure_threshold: u32,
    pub delivery_timeout: Duration,
    pub delivery_concurrency: usize,
    pub per_host_concurrency: usize,
    pub retry_base_delay: Duration,
    pub max_attempts: u32,
    pub allow_private_targets: bool,
    /// See [`DEFAULT_DEADLINE_MARGIN`].
    pub deadline_margin: Duration,
    /// See [`DEFAULT_HOST_BREAKER`]; 0 turns the breaker off.
    pub host_breaker: u32,
}

impl Config {
    /// The configuration from the service's loaded environment, with the
    /// default margins.
    pub fn from_env_config(c: &shared::Config) -> Self {
        Self {
            registry_host: c.registry_host.clone(),
            failure_threshold: c.failure_threshold,
            delivery_timeout: c.delivery_timeout,
            delivery_concurrency: c.delivery_concurrency.max(1),
            per_host_concurrency: c.per_host_concurrency.max(1),
            retry_base_delay: c.retry_base_delay,
            max_attempts: c.max_attempts.max(1),
            allow_private_targets: c.allow_private_targets,
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
            host_breaker: DEFAULT_HOST_BREAKER,
        }
    }
}

impl Default for Config {
    /// The contract's defaults.
    fn default() -> Self {
        Self {
            registry_host: "container.alin.io".to_owned(),
            failure_threshold: 5,
            delivery_timeout: Duration::from_secs(10),
            delivery_concurrency: 64,
            per_host_concurrency: 4,
            retry_base_delay: Duration::from_secs(30),
            max_attempts: 6,
            allow_private_targets: false,
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
            host_breaker: DEFAULT_HOST_BREAKER,
        }
    }
}
