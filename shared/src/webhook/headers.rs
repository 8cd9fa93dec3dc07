//! A webhook's custom request headers (docs/settings-api.md#custom-headers):
//! validated once when set, kept in the order given, sent after the
//! service's own headers. Their values are secrets (typically an
//! `Authorization` token): `Debug` shows names only, and no error message
//! ever quotes a value.

use std::fmt;

use super::format::PayloadFormat;

/// At most this many custom headers per webhook.
pub const MAX_HEADERS: usize = 10;
/// Longest header name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest header value, in bytes (a long bearer token or JWT fits).
pub const MAX_VALUE_LEN: usize = 2048;

/// Names the service sets in every format, or that frame or route the
/// message (hop-by-hop): never replaceable, compared case-insensitively.
const SERVICE_OWNED: [&str; 13] = [
    "Host",
    "Content-Length",
    "Content-Type",
    "Connection",
    "Transfer-Encoding",
    "User-Agent",
    "x-alin-webhook",
    "Keep-Alive",
    "TE",
    "Trailer",
    "Upgrade",
    "Expect",
    "Proxy-Connection",
];
/// The Standard Webhooks headers (`webhook-id`, `-timestamp`, `-signature`
/// and any future one) are all the service's.
const SERVICE_PREFIX: &str = "webhook-";

/// Why custom headers were refused. Names may be quoted (cut short);
/// values never are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("at most {MAX_HEADERS} custom headers are allowed, got {0}")]
    TooMany(usize),
    #[error("custom header name {0:?} is not a valid HTTP header name (1..={MAX_NAME_LEN} token characters)")]
    BadName(String),
    #[error("custom header {0} is set by the service and cannot be sent as a custom header")]
    Owned(String),
    #[error(
        "custom header {name} is set by the {format} format and cannot be sent as a custom header"
    )]
    OwnedByFormat { name: String, format: PayloadFormat },
    #[error("custom header {0} is given twice (names are case-insensitive)")]
    Duplicate(String),
    #[error("the value of custom header {0} must be a string")]
    NotString(String),
    #[error("the value of custom header {0} is longer than {MAX_VALUE_LEN} bytes")]
    ValueTooLong(String),
    #[error("the value of custom header {0} contains a control character (CR, LF, NUL, ...)")]
    BadValue(String),
}

/// Validated custom headers, in the order given. `Debug` never shows a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(Vec<(String, String)>);

impl CustomHeaders {
    /// Validates `pairs` (names, values, count, duplicates) for a webhook
    /// sent in `format`.
    pub fn new(pairs: Vec<(String, String)>, format: PayloadFormat) -> Result<Self, HeaderError> {
        let headers = Self::checked(pairs)?;
        headers.check_format(format)?;
        Ok(headers)
    }

    /// Validates everything that does not depend on the format.
    fn checked(pairs: Vec<(String, String)>) -> Result<Self, HeaderError> {
        if pairs.len() > MAX_HEADERS {
            return Err(HeaderError::TooMany(pairs.len()));
        }
        for (i, (name, value)) in pairs.iter().enumerate() {
            check_name(name)?;
            if pairs[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(HeaderError::Duplicate(name.clone()));
            }
            check_value(name, value)?;
        }
        Ok(Self(pairs))
    }

    /// Refuses names the service or `format` owns.
    pub fn check_format(&self, format: PayloadFormat) -> Result<(), HeaderError> {
        for name in self.names() {
            if let Some(owned) = format
                .own_headers()
                .iter()
                .find(|o| o.eq_ignore_ascii_case(name))
            {
                return Err(HeaderError::OwnedByFormat {
                    name: (*owned).to_owned(),
                    format,
                });
            }
        }
        Ok(())
    }

    /// The stored form: a JSON array of `[name, value]` pairs (order kept).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Reads the stored form back, checked again. The error never quotes
    /// the text (it holds secrets).
    pub fn from_stored(text: &str) -> Result<Self, &'static str> {
        let pairs: Vec<(String, String)> =
            serde_json::from_str(text).map_err(|_| "stored custom headers are not readable")?;
        Self::checked(pairs).map_err(|_| "stored custom headers are not valid")
    }

    /// The names, in order: what the settings API shows.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Names and values, in order: only for building the request.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.names().map(|n| format!("{n}: <redacted>")))
            .finish()
    }
}

/// Whether a custom header named `name` is one the service sets.
pub fn is_service_owned(name: &str) -> bool {
    SERVICE_OWNED.iter().any(|o| o.eq_ignore_ascii_case(name))
        || name
            .get(..SERVICE_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(SERVICE_PREFIX))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

/// RFC 9110 `token`: what a header field name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_name(name: &str) -> Result<(), HeaderError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(is_tchar) {
        return Err(HeaderError::BadName(
            name.chars().take(MAX_NAME_LEN).collect(),
        ));
    }
    if is_service_owned(name) {
        return Err(HeaderError::Owned(name.to_owned()));
    }
    Ok(())
}

/// Any control character but HTAB is refused (CR, LF and NUL would split or
/// cut the request); other text, non-ASCII included, is sent as UTF-8.
fn check_value(name: &str, value: &str) -> Result<(), HeaderError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(HeaderError::ValueTooLong(name.to_owned()));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(HeaderError::BadValue(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keeps_valid_headers_in_order_and_never_prints_values() {
        let h = CustomHeaders::new(
            pairs(&[("Authorization", "Bearer s3cr3t"), ("X-Team", "a\tb é")]),
            PayloadFormat::Alin,
        )
        .unwrap();
        assert_eq!(h.names().collect::<Vec<_>>(), ["Authorization", "X-Team"]);
        let shown = format!("{h:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("Authorization"),
            "{shown}"
        );
        assert_eq!(CustomHeaders::from_stored(&h.to_stored()).unwrap(), h);
        assert!(CustomHeaders::from_stored("[[\"a b\",\"s3cr3t\"]]").is_err());
        assert!(CustomHeaders::from_stored("{").is_err());
    }

    #[test]
    fn refuses_owned_bad_and_too_many_headers_without_quoting_values() {
        let alin = PayloadFormat::Alin;
        let gh = PayloadFormat::GithubDispatch;
        for (name, format) in [
            ("host", alin),
            ("CONTENT-LENGTH", alin),
            ("Content-Type", alin),
            ("connection", alin),
            ("Transfer-Encoding", alin),
            ("user-agent", alin),
            ("X-Alin-Webhook", alin),
            ("webhook-id", alin),
            ("Webhook-Anything", alin),
            ("Proxy-Authorization", alin),
            ("accept", gh),
            ("x-github-api-version", gh),
        ] {
            let e = CustomHeaders::new(pairs(&[(name, "s3cr3t")]), format).unwrap_err();
            assert!(
                matches!(e, HeaderError::Owned(_) | HeaderError::OwnedByFormat { .. }),
                "{name}: {e}"
            );
        }
        assert!(CustomHeaders::new(pairs(&[("Accept", "x")]), alin).is_ok());
        for bad in ["", "a b", "a:b", "é", &"a".repeat(MAX_NAME_LEN + 1)] {
            let e = CustomHeaders::new(pairs(&[(bad, "v")]), alin).unwrap_err();
            assert!(matches!(e, HeaderError::BadName(_)), "{bad:?}: {e}");
        }
        for bad in ["s3cr3t\r\nX: y", "s3cr3t\n", "s3cr3t\0", "s3cr3t\u{7f}"] {
            let e = CustomHeaders::new(pairs(&[("X-A", bad)]), alin).unwrap_err();
            assert_eq!(e, HeaderError::BadValue("X-A".into()));
            assert!(!e.to_string().contains("s3cr3t"));
        }
        let long = "s".repeat(MAX_VALUE_LEN + 1);
        let e = CustomHeaders::new(pairs(&[("X-A", &long)]), alin).unwrap_err();
        assert!(matches!(e, HeaderError::ValueTooLong(_)) && !e.to_string().contains(&long));
        let e = CustomHeaders::new(pairs(&[("X-A", "1"), ("x-a", "2")]), alin).unwrap_err();
        assert_eq!(e, HeaderError::Duplicate("x-a".into()));
        let many: Vec<(String, String)> = (0..=MAX_HEADERS)
            .map(|i| (format!("X-{i}"), "v".to_owned()))
            .collect();
        assert_eq!(
            CustomHeaders::new(many.clone(), alin).unwrap_err(),
            HeaderError::TooMany(MAX_HEADERS + 1)
        );
        assert!(CustomHeaders::new(many[..MAX_HEADERS].to_vec(), alin).is_ok());
    }
}
