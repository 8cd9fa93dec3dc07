//! Typed configuration (the contract's environment table), read once at cold start. Bad values
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
    /// `INGEST_TOKEN`, trimmed as the presented token is. `None` closes
    /// ingest's HTTP door.
    pub ingest_token: Option<Sensitive>,
    /// `Authorization` value ingest sends when fetching manifests, only to
    /// [`Config::registry_url`]'s origin.
    pub registry_auth: Option<Sensitive>,
    /// `REGISTRY_URL`: the Distribution registry's origin (`scheme://host[:port]`,
    /// nothing else). `None`: Distribution envelopes are rejected.
    pub registry_url: Option<url::Url>,
    /// `REGISTRY_EVENTS_QUEUE_URL`: ingest's own SQS trigger, where the HTTP
    /// door defers Distribution events it cannot process now.
    pub registry_events_queue_url: Option<String>,
    /// `REGISTRY_EVENTS_DLQ_URL`: that queue's dead-letter queue, where the
    /// HTTP door keeps Distribution events that can never be processed.
    pub registry_events_dlq_url: Option<String>,
    pub delivery: DeliveryPolicy,
}

/// How webhooks are sent, retried and counted: the settings deliver runs by
/// (and settings' address rule, through `allow_private_targets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    pub failure_threshold: u32,
    pub delivery_timeout: Duration,
    pub delivery_concurrency: usize,
    pub per_host_concurrency: usize,
    pub retry_base_delay: Duration,
    pub max_attempts: u32,
    pub allow_private_targets: bool,
}

impl Default for DeliveryPolicy {
    /// The contract's defaults.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            delivery_timeout: Duration::from_secs(10),
            delivery_concurrency: 64,
            per_host_concurrency: 4,
            retry_base_delay: Duration::from_secs(30),
            max_attempts: 6,
            allow_private_targets: false,
        }
    }
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
        let secs = Duration::from_secs;
        let d = DeliveryPolicy::default();
        let (timeout, base) = (d.delivery_timeout.as_secs(), d.retry_base_delay.as_secs());
        let ingest_token = get("INGEST_TOKEN").map(|t| Sensitive(t.trim().to_owned()));
        let registry_auth = get("REGISTRY_AUTH").map(Sensitive);
        if registry_auth.is_some() && ingest_token.is_none() {
            // Without a token anyone reaching the function URL could make
            // ingest fetch with the registry's credentials.
            return Err(ConfigError::Invalid {
                name: "REGISTRY_AUTH",
                reason: "REGISTRY_AUTH is set but INGEST_TOKEN is not; set INGEST_TOKEN too \
                         (or unset REGISTRY_AUTH)"
                    .into(),
            });
        }
        Ok(Self {
            webhooks_table: required("WEBHOOKS_TABLE")?,
            delivery_queue_url: required("DELIVERY_QUEUE_URL")?,
            registry_host: get("REGISTRY_HOST").unwrap_or_else(|| "container.alin.io".into()),
            ingest_token,
            registry_auth,
            registry_url: get("REGISTRY_URL")
                .map(|raw| registry_origin(&raw))
                .transpose()?,
            registry_events_queue_url: get("REGISTRY_EVENTS_QUEUE_URL").map(|v| v.trim().into()),
            registry_events_dlq_url: get("REGISTRY_EVENTS_DLQ_URL").map(|v| v.trim().into()),
            delivery: DeliveryPolicy {
                failure_threshold: number(
                    &get,
                    "FAILURE_THRESHOLD",
                    d.failure_threshold,
                    1,
                    1_000,
                )?,
                delivery_timeout: secs(number(&get, "DELIVERY_TIMEOUT_SECS", timeout, 1, 900)?),
                delivery_concurrency: number(
                    &get,
                    "DELIVERY_CONCURRENCY",
                    d.delivery_concurrency,
                    1,
                    10_000,
                )?,
                per_host_concurrency: number(
                    &get,
                    "PER_HOST_CONCURRENCY",
                    d.per_host_concurrency,
                    1,
                    10_000,
                )?,
                retry_base_delay: secs(number(&get, "RETRY_BASE_DELAY_SECS", base, 0, 900)?),
                max_attempts: number(&get, "MAX_ATTEMPTS", d.max_attempts, 1, 1_000)?,
                allow_private_targets: boolean(&get, "ALLOW_PRIVATE_TARGETS")?,
            },
        })
    }
}

/// `REGISTRY_URL` must be an origin: http(s), a host, an optional port and
/// nothing else (a path, query or credentials would be silently dropped or,
/// worse, sent somewhere).
fn registry_origin(raw: &str) -> Result<url::Url, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "REGISTRY_URL",
        reason,
    };
    let url =
        url::Url::parse(raw.trim()).map_err(|e| invalid(format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL (use REGISTRY_AUTH for the Authorization value)".into(),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "only an origin is allowed (scheme://host[:port]), no path, query or fragment".into(),
        ));
    }
    Ok(url)
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
        assert_eq!(c.delivery.failure_threshold, 5);
        assert_eq!(c.delivery.delivery_timeout, Duration::from_secs(10));
        assert_eq!(c.delivery.delivery_concurrency, 64);
        assert_eq!(c.delivery.per_host_concurrency, 4);
        assert_eq!(c.delivery.retry_base_delay, Duration::from_secs(30));
        assert_eq!(c.delivery.max_attempts, 6);
        assert!(!c.delivery.allow_private_targets);
        assert!(c.ingest_token.is_none());
        assert!(c.registry_url.is_none());
        assert!(c.registry_events_queue_url.is_none());
        assert!(c.registry_events_dlq_url.is_none());
    }

    #[test]
    fn registry_auth_needs_an_ingest_token() {
        let e = cfg(&[
            ("WEBHOOKS_TABLE", "t"),
            ("DELIVERY_QUEUE_URL", "q"),
            ("REGISTRY_AUTH", "Basic eDp5"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("REGISTRY_AUTH") && e.contains("INGEST_TOKEN"),
            "{e}"
        );
        let c = cfg(&[
            ("WEBHOOKS_TABLE", "t"),
            ("DELIVERY_QUEUE_URL", "q"),
            ("REGISTRY_AUTH", "Basic eDp5"),
            ("INGEST_TOKEN", "  tok-123 \n"),
        ])
        .unwrap();
        assert_eq!(c.ingest_token, Some(Sensitive("tok-123".into())));
    }

    #[test]
    fn registry_url_is_an_origin() {
        let base = [("WEBHOOKS_TABLE", "t"), ("DELIVERY_QUEUE_URL", "q")];
        let with = |v: &str| {
            let mut pairs = base.to_vec();
            pairs.push(("REGISTRY_URL", v));
            cfg(&pairs)
        };
        for ok in [
            "https://registry.example.com",
            "http://127.0.0.1:5000/",
            " https://REGISTRY.example.com:443 ",
        ] {
            let c = with(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(c.registry_url.is_some());
        }
        assert_eq!(
            with("HTTPS://Registry.Example.com:443")
                .unwrap()
                .registry_url
                .unwrap()
                .as_str(),
            "https://registry.example.com/"
        );
        for bad in [
            "registry.example.com",
            "ftp://registry.example.com",
            "https://user:pw@registry.example.com",
            "https://registry.example.com/v2",
            "https://registry.example.com/?x=1",
            "https://registry.example.com/#f",
            "file:///etc/passwd",
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("REGISTRY_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            cfg(&[("DELIVERY_QUEUE_URL", "q")]),
            Err(ConfigError::Missing("WEBHOOKS_TABLE"))
        );
        for (name, value, says) in [
            ("MAX_ATTEMPTS", "x", "MAX_ATTEMPTS"),
            ("ALLOW_PRIVATE_TARGETS", "maybe", "ALLOW_PRIVATE_TARGETS"),
            ("DELIVERY_CONCURRENCY", "0", "outside"),
        ] {
            let base = [("WEBHOOKS_TABLE", "t"), ("DELIVERY_QUEUE_URL", "q")];
            let e = cfg(&[base[0], base[1], (name, value)]).unwrap_err();
            assert!(e.to_string().contains(says), "{name}={value}: {e}");
        }
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
