//! `deliver`'s configuration: what it takes from the environment (the
//! service's settings, read once by `shared::Config`) plus its own margins,
//! as one plain struct so tests can set a short timeout or deadline directly.

use std::time::Duration;

pub use shared::DeliveryPolicy;

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
    pub delivery: DeliveryPolicy,
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
            delivery: c.delivery.clone(),
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
            delivery: DeliveryPolicy::default(),
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
            host_breaker: DEFAULT_HOST_BREAKER,
        }
    }
}
