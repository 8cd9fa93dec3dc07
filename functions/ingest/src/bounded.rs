//! Cutting attacker-controlled text before it reaches an error, a log line
//! or an answer: registry input can hold megabytes in one field, and echoing
//! it back would let a sender fill logs (and the bill) at will. Also the one
//! place that renders a URL as its origin only (no path, query or userinfo).

use std::borrow::Cow;

/// Characters kept from one attacker-controlled string.
pub const MAX_SHOWN_CHARS: usize = 200;

/// `s` cut to [`MAX_SHOWN_CHARS`] characters (on a char boundary), with `…`
/// and the original length in bytes when it was cut.
pub fn bounded(s: &str) -> Cow<'_, str> {
    bounded_to(s, MAX_SHOWN_CHARS)
}

/// `s` cut to `max` characters; see [`bounded`].
pub fn bounded_to(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}… ({} bytes)", &s[..end], s.len())),
    }
}

/// `scheme://host[:port]` of a URL: what logs may show of it.
pub fn origin(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{}:{p}", url.scheme(), bounded(host)),
        None => format!("{}://{}", url.scheme(), bounded(host)),
    }
}

/// The URL reduced to its origin (`scheme://host[:port]/`): what may be
/// kept of a URL an event names.
pub fn origin_url(url: &url::Url) -> url::Url {
    let mut o = url.clone();
    o.set_path("/");
    o.set_query(None);
    o.set_fragment(None);
    // Only fails for URLs that cannot have credentials, which have none.
    let _ = o.set_username("");
    let _ = o.set_password(None);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_char_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(500);
        let cut = bounded(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_SHOWN_CHARS)));
        assert!(cut.ends_with("… (1000 bytes)"), "{cut}");
        assert_eq!(bounded_to("abcdef", 3), "abc… (6 bytes)");
        assert_eq!(bounded_to("abc", 3), "abc");
    }

    #[test]
    fn origin_drops_path_query_and_credentials() {
        let u = url::Url::parse("https://u:p@r.example:8443/v2/x?token=s#f").unwrap();
        assert_eq!(origin(&u), "https://r.example:8443");
        assert_eq!(origin_url(&u).as_str(), "https://r.example:8443/");
        let u = url::Url::parse("http://r.example/").unwrap();
        assert_eq!(origin(&u), "http://r.example");
    }
}
