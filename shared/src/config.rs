//! Typed configuration (CONTRACT §2), read once at cold start. Bad values
//! fail the cold start with a message naming the variable, rather than
//! surfacing later as odd behaviour.

use std::fmt;
use std::time::Duration;

/// A configuration problem; always permanent (the function cannot start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A value that must never be logged (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(pub String);

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Every setting of every function; each function reads what it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub webhooks_table: String,
    pub delivery_queue_url: String,
    pub registry_host: String,
    pub ingest_token: Option<Sensitive>,
    /// `Authorization` value ingest sends when fetching manifests.
    pub registry_auth: Option<Sensitive>,
    pub failure_threshold: u32,
    pub delivery_timeout: Duration,
    pub delivery_concurrency: usize,
    pub per_host_concurrency: usize,
    pub retry_base_delay: Duration,
    pub max_attempts: u32,
    pub allow_private_targets: bool,
}

/// Longest wait SQS allows for a message to reappear through our retry path.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(900);

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let required = |k: &'static str| get(k).ok_or(ConfigError::Missing(k));
        Ok(Self {
            webhooks_table: required("WEBHOOKS_TABLE")?,
            delivery_queue_url: required("DELIVERY_QUEUE_URL")?,
            registry_host: get("REGISTRY_HOST").unwrap_or_else(|| "container.alin.io".into()),
            ingest_token: get("INGEST_TOKEN").map(Sensitive),
            registry_auth: get("REGISTRY_AUTH").map(Sensitive),
            failure_threshold: number(&get, "FAILURE_THRESHOLD", 5, 1, 1_000)?,
            delivery_timeout: Duration::from_secs(number(
                &get,
                "DELIVERY_TIMEOUT_SECS",
                10,
                1,
                900,
            )?),
            delivery_concurrency: number(&get, "DELIVERY_CONCURRENCY", 64, 1, 10_000)?,
            per_host_concurrency: number(&get, "PER_HOST_CONCURRENCY", 4, 1, 10_000)?,
            retry_base_delay: Duration::from_secs(number(
                &get,
                "RETRY_BASE_DELAY_SECS",
                30,
                0,
                900,
            )?),
            max_attempts: number(&get, "MAX_ATTEMPTS", 6, 1, 1_000)?,
            allow_private_targets: boolean(&get, "ALLOW_PRIVATE_TARGETS")?,
        })
    }
}

fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let v: T = raw.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("{raw:?} is not a whole number"),
    })?;
    if v < min || v > max {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("{v} is outside {min}..={max}"),
        });
    }
    Ok(v)
}

fn boolean(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            reason: format!("{other:?} is not true or false"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_per_contract() {
        let c = cfg(&[("WEBHOOKS_TABLE", "t"), ("DELIVERY_QUEUE_URL", "q")]).unwrap();
        assert_eq!(c.registry_host, "container.alin.io");
        assert_eq!(c.failure_threshold, 5);
        assert_eq!(c.delivery_timeout, Duration::from_secs(10));
        assert_eq!(c.delivery_concurrency, 64);
        assert_eq!(c.per_host_concurrency, 4);
        assert_eq!(c.retry_base_delay, Duration::from_secs(30));
        assert_eq!(c.max_attempts, 6);
        assert!(!c.allow_private_targets);
        assert!(c.ingest_token.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            cfg(&[("DELIVERY_QUEUE_URL", "q")]),
            Err(ConfigError::Missing("WEBHOOKS_TABLE"))
        );
        let e = cfg(&[
            ("WEBHOOKS_TABLE", "t"),
            ("DELIVERY_QUEUE_URL", "q"),
            ("MAX_ATTEMPTS", "x"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("MAX_ATTEMPTS"));
        let e = cfg(&[
            ("WEBHOOKS_TABLE", "t"),
            ("DELIVERY_QUEUE_URL", "q"),
            ("ALLOW_PRIVATE_TARGETS", "maybe"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("ALLOW_PRIVATE_TARGETS"));
        let e = cfg(&[
            ("WEBHOOKS_TABLE", "t"),
            ("DELIVERY_QUEUE_URL", "q"),
            ("DELIVERY_CONCURRENCY", "0"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("outside"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = cfg(&[
            ("WEBHOOKS_TABLE", "t"),
            ("DELIVERY_QUEUE_URL", "q"),
            ("INGEST_TOKEN", "tok-123"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("tok-123"));
    }
}
