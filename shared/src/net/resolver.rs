//! Name resolution behind the address rule. `NameLookup` is the seam tests
//! use to make a public-looking name resolve to a private address.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::target::{classify_ip, UrlError};
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

/// A reqwest resolver that drops every forbidden address and fails when
/// none is left, so a connection can only be made to an allowed address.
#[derive(Clone)]
pub struct GuardedResolver {
    lookup: Arc<dyn NameLookup>,
    allow_private: bool,
}

impl GuardedResolver {
    pub fn new(lookup: Arc<dyn NameLookup>, allow_private: bool) -> Self {
        Self {
            lookup,
            allow_private,
        }
    }

    /// The addresses of `host` a webhook may connect to.
    pub async fn allowed(&self, host: &str) -> Result<Vec<SocketAddr>, UrlError> {
        let addrs = self
            .lookup
            .lookup(host)
            .await
            .map_err(|e| UrlError::Invalid(format!("could not resolve {host}: {e}")))?;
        if self.allow_private {
            return Ok(addrs);
        }
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| classify_ip(a.ip()).is_none())
            .collect();
        if allowed.is_empty() {
            if let Some(class) = addrs.iter().find_map(|a| classify_ip(a.ip())) {
                return Err(UrlError::Forbidden {
                    host: host.to_owned(),
                    class,
                });
            }
            return Err(UrlError::NoAllowedAddress(host.to_owned()));
        }
        Ok(allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.allowed(name.as_str()).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Set-time check (CONTRACT §6): a name that resolves to any forbidden
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
    match addrs.iter().find_map(|a| classify_ip(a.ip())) {
        Some(class) => Err(UrlError::Forbidden {
            host: host.to_owned(),
            class,
        }),
        None => Ok(()),
    }
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
            Err(UrlError::Forbidden { .. })
        ));
        assert!(matches!(
            g.allowed("meta.example").await,
            Err(UrlError::Forbidden { .. })
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
}
