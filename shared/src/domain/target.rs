//! The webhook URL rule (docs/settings-api.md#webhook-urls), in one place for set time and delivery
//! time: the syntactic checks, and the address classes a webhook may never
//! reach (loopback, private, link-local, CGNAT, multicast, unspecified,
//! reserved, IPv4-mapped) unless `ALLOW_PRIVATE_TARGETS` is on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Longest URL accepted, in characters, as typed by the owner.
pub const MAX_URL_LEN: usize = 2048;

/// Why a webhook URL was refused. The message is the API's `error` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url is not a valid URL: {0}")]
    Invalid(String),
    #[error("url is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("url scheme must be http or https, not {0:?}")]
    Scheme(String),
    #[error("url has no host")]
    NoHost,
    #[error("url must not contain credentials (user:password@)")]
    Credentials,
    #[error("url host {host} is a {class} address, which webhooks may not target")]
    Forbidden { host: String, class: AddressClass },
    #[error("url host {0} did not resolve to any address webhooks may target")]
    NoAllowedAddress(String),
}

impl UrlError {
    /// A short machine-friendly tag for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::TooLong => "too_long",
            Self::Scheme(_) => "scheme",
            Self::NoHost => "no_host",
            Self::Credentials => "credentials",
            Self::Forbidden { .. } | Self::NoAllowedAddress(_) => "forbidden_address",
        }
    }
}

/// The class of an address webhooks may not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    Private,
    LinkLocal,
    Cgnat,
    Multicast,
    Unspecified,
    Reserved,
    Ipv4Mapped,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::Cgnat => "CGNAT",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Reserved => "reserved",
            Self::Ipv4Mapped => "IPv4-mapped",
        })
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> (Ipv4Addr, u8) {
    (Ipv4Addr::new(a, b, c, d), len)
}

/// IPv4 ranges refused, most specific first so the reason is the precise one.
const V4_RANGES: &[((Ipv4Addr, u8), AddressClass)] = &[
    (v4(0, 0, 0, 0, 8), AddressClass::Unspecified),
    (v4(127, 0, 0, 0, 8), AddressClass::Loopback),
    (v4(10, 0, 0, 0, 8), AddressClass::Private),
    (v4(172, 16, 0, 0, 12), AddressClass::Private),
    (v4(192, 168, 0, 0, 16), AddressClass::Private),
    (v4(169, 254, 0, 0, 16), AddressClass::LinkLocal),
    (v4(100, 64, 0, 0, 10), AddressClass::Cgnat),
    (v4(224, 0, 0, 0, 4), AddressClass::Multicast),
    (v4(192, 0, 0, 0, 24), AddressClass::Reserved),
    (v4(192, 0, 2, 0, 24), AddressClass::Reserved),
    (v4(198, 18, 0, 0, 15), AddressClass::Reserved),
    (v4(198, 51, 100, 0, 24), AddressClass::Reserved),
    (v4(203, 0, 113, 0, 24), AddressClass::Reserved),
    (v4(240, 0, 0, 0, 4), AddressClass::Reserved),
];

/// Classifies an address: `Some(class)` when webhooks may not reach it.
pub fn classify_ip(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(a: Ipv4Addr) -> Option<AddressClass> {
    V4_RANGES.iter().find_map(|&((net, len), class)| {
        Ipv4Net::new(net, len)
            .ok()
            .filter(|n| n.contains(&a))
            .map(|_| class)
    })
}

fn classify_v6(a: Ipv6Addr) -> Option<AddressClass> {
    if a.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if a.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    // Any address that carries an IPv4 address can smuggle a private one past
    // a v4-only check; none has a legitimate use as a webhook target.
    if a.to_ipv4_mapped().is_some() {
        return Some(AddressClass::Ipv4Mapped);
    }
    let seg = a.segments();
    let in_net = |net: Ipv6Addr, len: u8| Ipv6Net::new(net, len).is_ok_and(|n| n.contains(&a));
    if in_net(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96) // IPv4-compatible (deprecated)
        || in_net(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) // NAT64
        || in_net(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48) // local NAT64
        || in_net(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) // 6to4
        || in_net(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32) // Teredo
        || in_net(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32) // documentation
        || in_net(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64) // discard-only
        || in_net(Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0), 48)
    // benchmarking
    {
        return Some(AddressClass::Reserved);
    }
    if seg[0] & 0xfe00 == 0xfc00 || seg[0] & 0xffc0 == 0xfec0 {
        return Some(AddressClass::Private); // unique local, old site-local
    }
    if seg[0] & 0xffc0 == 0xfe80 {
        return Some(AddressClass::LinkLocal);
    }
    if seg[0] & 0xff00 == 0xff00 {
        return Some(AddressClass::Multicast);
    }
    None
}

/// A webhook URL that passed the syntactic rule and, for IP literals and
/// `localhost`, the address rule. Names are checked again when resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as a name to resolve, or `None` when the host is an IP literal.
    pub fn domain(&self) -> Option<&str> {
        self.0.domain()
    }

    /// `scheme://host:port`: the only part of a webhook URL that may be logged
    /// (paths and query strings often carry tokens).
    pub fn origin_for_logs(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    /// Key for per-host concurrency limits.
    pub fn host_key(&self) -> String {
        format!(
            "{}:{}",
            self.0.host_str().unwrap_or_default(),
            self.0.port_or_known_default().unwrap_or(0)
        )
    }
}

impl TryFrom<String> for WebhookUrl {
    type Error = UrlError;
    /// Deserialising trusts the stored value syntactically but still refuses
    /// forbidden literals: the address rule is applied again at delivery.
    fn try_from(value: String) -> Result<Self, Self::Error> {
        validate_webhook_url(&value, true)
    }
}

impl From<WebhookUrl> for String {
    fn from(value: WebhookUrl) -> Self {
        value.0.into()
    }
}

impl fmt::Display for WebhookUrl {
    /// Displays only the origin so that a stray `%` in a log never leaks a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin_for_logs())
    }
}

/// Validates a webhook URL per docs/settings-api.md#webhook-urls. With `allow_private` the address
/// classes are not checked (local development only).
pub fn validate_webhook_url(raw: &str, allow_private: bool) -> Result<WebhookUrl, UrlError> {
    if raw.chars().count() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    let url = Url::parse(raw.trim()).map_err(|e| UrlError::Invalid(e.to_string()))?;
    // The stored (normalised, percent-encoded) form is what delivery checks
    // again, so it must fit the limit too.
    if url.as_str().chars().count() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(url.scheme().chars().take(32).collect()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let host = url.host().ok_or(UrlError::NoHost)?;
    if !allow_private {
        match host {
            Host::Ipv4(a) => check_ip(IpAddr::V4(a), &a.to_string())?,
            Host::Ipv6(a) => check_ip(IpAddr::V6(a), &format!("[{a}]"))?,
            Host::Domain(d) => {
                let d = d.trim_end_matches('.');
                if d.is_empty() {
                    return Err(UrlError::NoHost);
                }
                if d == "localhost" || d.ends_with(".localhost") {
                    return Err(UrlError::Forbidden {
                        host: d.to_owned(),
                        class: AddressClass::Loopback,
                    });
                }
            }
        }
    }
    Ok(WebhookUrl(url))
}

/// Refuses an address that is in a forbidden class.
pub fn check_ip(ip: IpAddr, host: &str) -> Result<(), UrlError> {
    match classify_ip(ip) {
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

    fn refused(raw: &str) -> UrlError {
        match validate_webhook_url(raw, false) {
            Ok(u) => panic!("{raw} was accepted as {}", u.as_str()),
            Err(e) => e,
        }
    }

    fn class(raw: &str) -> AddressClass {
        match refused(raw) {
            UrlError::Forbidden { class, .. } => class,
            other => panic!("{raw}: expected an address refusal, got {other}"),
        }
    }

    #[test]
    fn url_table() {
        let valid = [
            "https://ci.example.com/hook",
            "http://ci.example.com/hook?token=abc&x=1",
            "https://ci.example.com:8443/a/b/c",
            "https://8.8.8.8/hook",
            "https://[2606:4700::1111]/hook",
            "https://example.com",
            "https://sub.domain.example.org/path?q=a%20b#frag",
            "HTTPS://EXAMPLE.COM/Upper",
            "https://1.1.1.1:444/",
            "http://xn--nxasmq6b.example/",
        ];
        for raw in valid {
            assert!(
                validate_webhook_url(raw, false).is_ok(),
                "{raw} should be valid"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        let cases: Vec<(&str, &str)> = vec![
            ("ftp://example.com/", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("gopher://example.com/", "scheme"),
            ("javascript:alert(1)", "scheme"),
            ("data:text/plain,hi", "scheme"),
            ("example.com/hook", "invalid"),
            ("", "invalid"),
            ("http://", "invalid"),
            ("https://:80/", "invalid"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://user@example.com/", "credentials"),
            (&long, "too_long"),
            ("http://localhost/", "forbidden_address"),
            ("http://LOCALHOST:8080/", "forbidden_address"),
            ("http://app.localhost/", "forbidden_address"),
            ("http://localhost./", "forbidden_address"),
            ("http://127.0.0.1/", "forbidden_address"),
            ("http://127.1.2.3:9000/", "forbidden_address"),
            ("http://[::1]/", "forbidden_address"),
            ("http://10.0.0.1/", "forbidden_address"),
            ("http://10.255.255.255/", "forbidden_address"),
            ("http://172.16.0.1/", "forbidden_address"),
            ("http://172.31.255.254/", "forbidden_address"),
            ("http://192.168.1.1/", "forbidden_address"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "forbidden_address",
            ),
            ("http://100.64.0.1/", "forbidden_address"),
            ("http://100.127.255.255/", "forbidden_address"),
            ("http://0.0.0.0/", "forbidden_address"),
            ("http://0/", "forbidden_address"),
            ("http://[::ffff:127.0.0.1]/", "forbidden_address"),
            ("http://[::ffff:169.254.169.254]/", "forbidden_address"),
            ("http://[fd00::1]/", "forbidden_address"),
            ("http://[fe80::1]/", "forbidden_address"),
            ("http://[ff02::1]/", "forbidden_address"),
            ("http://[::]/", "forbidden_address"),
            ("http://2130706433/", "forbidden_address"),
            ("http://0x7f.1/", "forbidden_address"),
            ("http://0x7f000001/", "forbidden_address"),
            ("http://017700000001/", "forbidden_address"),
            ("http://127.1/", "forbidden_address"),
            ("http://224.0.0.1/", "forbidden_address"),
            ("http://255.255.255.255/", "forbidden_address"),
            ("http://240.0.0.1/", "forbidden_address"),
            ("http://192.0.2.10/", "forbidden_address"),
            ("http://[64:ff9b::a00:1]/", "forbidden_address"),
            ("http://[2002:7f00:1::]/", "forbidden_address"),
        ];
        assert!(valid.len() + cases.len() >= 40);
        // Short as typed but long once percent-encoded: refused at set time,
        // or delivery would refuse what settings accepted.
        let encoded = format!("https://example.com/a{}b", " ".repeat(1000));
        assert_eq!(refused(&encoded).code(), "too_long");
        for (raw, code) in cases {
            assert_eq!(refused(raw).code(), code, "{raw}");
        }
    }

    #[test]
    fn refusals_name_the_address_class() {
        assert_eq!(class("http://127.0.0.1/"), AddressClass::Loopback);
        assert_eq!(class("http://2130706433/"), AddressClass::Loopback);
        assert_eq!(class("http://0x7f.1/"), AddressClass::Loopback);
        assert_eq!(class("http://10.1.2.3/"), AddressClass::Private);
        assert_eq!(class("http://[fd00::1]/"), AddressClass::Private);
        assert_eq!(class("http://169.254.169.254/"), AddressClass::LinkLocal);
        assert_eq!(class("http://100.64.0.1/"), AddressClass::Cgnat);
        assert_eq!(class("http://0.0.0.0/"), AddressClass::Unspecified);
        assert_eq!(
            class("http://[::ffff:127.0.0.1]/"),
            AddressClass::Ipv4Mapped
        );
        assert_eq!(class("http://224.0.0.1/"), AddressClass::Multicast);
        assert_eq!(class("http://240.0.0.1/"), AddressClass::Reserved);
        let msg = refused("http://169.254.169.254/").to_string();
        assert!(
            msg.contains("169.254.169.254") && msg.contains("link-local"),
            "{msg}"
        );
    }

    #[test]
    fn allow_private_lifts_only_the_address_rule() {
        assert!(validate_webhook_url("http://127.0.0.1:8080/x", true).is_ok());
        assert!(validate_webhook_url("http://localhost/", true).is_ok());
        assert_eq!(
            validate_webhook_url("ftp://127.0.0.1/", true)
                .unwrap_err()
                .code(),
            "scheme"
        );
        assert_eq!(
            validate_webhook_url("http://a:b@127.0.0.1/", true)
                .unwrap_err()
                .code(),
            "credentials"
        );
    }

    #[test]
    fn query_string_is_kept_and_never_displayed() {
        let u =
            validate_webhook_url("https://ci.example.com/hook?token=s3cr3t&a=b", false).unwrap();
        assert_eq!(u.as_str(), "https://ci.example.com/hook?token=s3cr3t&a=b");
        assert_eq!(u.to_string(), "https://ci.example.com");
        assert!(!format!("{u}").contains("s3cr3t"));
        assert_eq!(u.host_key(), "ci.example.com:443");
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify_ip(ip), None, "{ip}");
        }
    }
}
