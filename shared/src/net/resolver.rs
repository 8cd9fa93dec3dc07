//! Name resolution behind the address rule. `NameLookup` is the seam tests
//! use to make a public-looking name resolve to a private address, or fail.
//!
//! Two ways a name can keep a webhook from connecting, kept apart because
//! delivery treats them oppositely:
//! - it does not resolve now (NXDOMAIN, SERVFAIL, no address, the resolver
//!   timing out): [`ResolveError::Lookup`], a passing fault as far as we can
//!   tell, retried with backoff like a connection error;
//! - it resolves only to addresses the rule forbids: a [`UrlError`], the
//!   address-rule refusal, never retried.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::target::{check_ip, classify_ip, UrlError};
use crate::domain::WebhookUrl;

/// Resolves a host name to addresses.
#[async_trait]
pub trait NameLookup: Send + Sync + 'static {
    async fn lookup(&self, host: &str) -> io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

#[async_trait]
impl NameLookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.collect())
    }
}

/// Fixed answers, falling back to the system resolver for other names.
#[derive(Debug, Default, Clone)]
pub struct StaticLookup {
    answers: HashMap<String, Vec<std::net::IpAddr>>,
}

impl StaticLookup {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, host: &str, ips: &[std::net::IpAddr]) -> Self {
        self.answers.insert(host.to_ascii_lowercase(), ips.to_vec());
        self
    }
}

#[async_trait]
impl NameLookup for StaticLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        match self.answers.get(&host.to_ascii_lowercase()) {
            Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect()),
            None => SystemLookup.lookup(host).await,
        }
    }
}

/// Longest wait for a name to resolve before the attempt counts as a
/// lookup failure (the client's own timeouts stay the outer bound).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest resolver message kept in a [`ResolveError`].
const MAX_REASON_CHARS: usize = 200;

/// Why a name gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name did not resolve now: retryable.
    #[error("could not resolve {host}: {reason}")]
    Lookup { host: String, reason: String },
    /// Every address breaks the address rule: permanent.
    #[error(transparent)]
    Refused(#[from] UrlError),
}

impl ResolveError {
    /// Whether resolving again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Lookup { .. })
    }
}

/// A reqwest resolver that drops every forbidden address and fails when
/// none is left, so a connection can only be made to an allowed address.
#[derive(Clone)]
pub struct GuardedResolver {
    lookup: Arc<dyn NameLookup>,
    allow_private: bool,
    timeout: Duration,
}

impl GuardedResolver {
    pub fn new(lookup: Arc<dyn NameLookup>, allow_private: bool) -> Self {
        Self {
            lookup,
            allow_private,
            timeout: LOOKUP_TIMEOUT,
        }
    }

    /// The same resolver with another lookup timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The addresses of `host` a webhook may connect to.
    pub async fn allowed(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let failed = |reason: String| ResolveError::Lookup {
            host: host.to_owned(),
            reason,
        };
        let addrs = tokio::time::timeout(self.timeout, self.lookup.lookup(host))
            .await
            .map_err(|_| failed("lookup timed out".to_owned()))?
            .map_err(|e| failed(e.to_string().chars().take(MAX_REASON_CHARS).collect()))?;
        if addrs.is_empty() {
            return Err(failed("no address".to_owned()));
        }
        if self.allow_private {
            return Ok(addrs);
        }
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| classify_ip(a.ip()).is_none())
            .collect();
        if allowed.is_empty() {
            let refusal = match addrs.iter().find_map(|a| classify_ip(a.ip())) {
                Some(class) => UrlError::Forbidden {
                    host: host.to_owned(),
                    class,
                },
                None => UrlError::NoAllowedAddress(host.to_owned()),
            };
            return Err(refusal.into());
        }
        Ok(allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            // A refusal travels as the bare `UrlError` so the client's caller
            // finds it in the error chain and does not retry.
            let addrs = match this.allowed(name.as_str()).await {
                Ok(addrs) => addrs,
                Err(ResolveError::Refused(refusal)) => return Err(Box::new(refusal) as _),
                Err(e) => return Err(Box::new(e) as _),
            };
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Set-time check (the settings API): a name that resolves to any forbidden
/// address is refused; one that does not resolve (yet) is accepted, since
/// delivery checks again at connect time.
pub async fn check_resolved(
    url: &WebhookUrl,
    lookup: &dyn NameLookup,
    allow_private: bool,
) -> Result<(), UrlError> {
    if allow_private {
        return Ok(());
    }
    let Some(host) = url.domain() else {
        return Ok(()); // IP literals were checked when the URL was parsed.
    };
    let Ok(addrs) = lookup.lookup(host).await else {
        return Ok(());
    };
    addrs.iter().try_for_each(|a| check_ip(a.ip(), host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate_webhook_url;

    #[tokio::test]
    async fn forbidden_resolutions_are_refused() {
        let lookup = StaticLookup::new()
            .with("evil.example", &["127.0.0.1".parse().unwrap()])
            .with("meta.example", &["169.254.169.254".parse().unwrap()])
            .with(
                "mixed.example",
                &["10.0.0.1".parse().unwrap(), "8.8.8.8".parse().unwrap()],
            )
            .with("good.example", &["8.8.4.4".parse().unwrap()]);
        let g = GuardedResolver::new(Arc::new(lookup.clone()), false);
        assert!(matches!(
            g.allowed("evil.example").await,
            Err(ResolveError::Refused(UrlError::Forbidden { .. }))
        ));
        assert!(matches!(
            g.allowed("meta.example").await,
            Err(ResolveError::Refused(UrlError::Forbidden { .. }))
        ));
        let mixed = g.allowed("mixed.example").await.unwrap();
        assert_eq!(mixed, vec!["8.8.8.8:0".parse().unwrap()]);
        assert!(GuardedResolver::new(Arc::new(lookup.clone()), true)
            .allowed("evil.example")
            .await
            .is_ok());

        let url = |s: &str| validate_webhook_url(s, false).unwrap();
        assert!(
            check_resolved(&url("http://evil.example/x"), &lookup, false)
                .await
                .is_err()
        );
        assert!(
            check_resolved(&url("http://mixed.example/x"), &lookup, false)
                .await
                .is_err()
        );
        assert!(
            check_resolved(&url("http://good.example/x"), &lookup, false)
                .await
                .is_ok()
        );
        assert!(check_resolved(&url("http://evil.example/x"), &lookup, true)
            .await
            .is_ok());
        assert!(
            check_resolved(&url("http://does-not-exist.invalid/x"), &lookup, false)
                .await
                .is_ok()
        );
    }

    type Answer = fn() -> io::Result<Vec<SocketAddr>>;

    /// Answers a lookup the way a failing resolver does.
    struct Failing(Answer, Duration);

    #[async_trait]
    impl NameLookup for Failing {
        async fn lookup(&self, _host: &str) -> io::Result<Vec<SocketAddr>> {
            tokio::time::sleep(self.1).await;
            (self.0)()
        }
    }

    /// NXDOMAIN, SERVFAIL, an empty answer and a resolver that does not
    /// answer are lookup failures (retryable), never the address-rule refusal.
    #[tokio::test]
    async fn a_failing_lookup_is_retryable_not_a_refusal() {
        let cases: [(Answer, Duration); 4] = [
            (
                || {
                    Err(io::Error::other(
                        "failed to lookup address information: Name or service not known",
                    ))
                },
                Duration::ZERO,
            ),
            (
                || Err(io::Error::other("Temporary failure in name resolution")),
                Duration::ZERO,
            ),
            (|| Ok(Vec::new()), Duration::ZERO),
            (
                || Ok(vec!["8.8.8.8:0".parse().unwrap()]),
                Duration::from_secs(5),
            ),
        ];
        for (i, (answer, delay)) in cases.into_iter().enumerate() {
            for allow_private in [false, true] {
                let g = GuardedResolver::new(Arc::new(Failing(answer, delay)), allow_private)
                    .with_timeout(Duration::from_millis(100));
                let e = g.allowed("hooks.example").await.unwrap_err();
                assert!(matches!(e, ResolveError::Lookup { .. }), "case {i}: {e:?}");
                assert!(e.is_retryable(), "case {i}");
                // The error a client sees carries no `UrlError`.
                let boxed = g
                    .resolve("hooks.example".parse().unwrap())
                    .await
                    .err()
                    .unwrap();
                assert!(boxed.downcast_ref::<UrlError>().is_none(), "case {i}");
            }
        }
        let g = GuardedResolver::new(
            Arc::new(StaticLookup::new().with("evil.example", &["10.0.0.1".parse().unwrap()])),
            false,
        );
        let refusal = g
            .resolve("evil.example".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(refusal.downcast_ref::<UrlError>().is_some());
        assert!(!ResolveError::from(UrlError::NoAllowedAddress("x".into())).is_retryable());
    }
}
