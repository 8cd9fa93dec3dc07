//! Routing: from a method and a raw (undecoded) Function URL path to an
//! [`Operation`] on a [`RepositoryName`], or the 404 / 405 / 400 that says
//! why not.
//!
//! The route is decided on the raw path, by its fixed suffix
//! (`/webhook`, `/webhook/enable`, `/webhook/test`, `/webhook/deliveries`) under the
//! `/repositories/` prefix; only then is the name between them
//! percent-decoded, once, and validated with the Distribution grammar.
//! Escapes can therefore never change the route (`…/webhook%2Ftest` is not
//! the test route), `alice%2Fapp` and `alice/app` name the same repository,
//! and a double-encoded `%252F` decodes to `%2F`, which the grammar refuses.
//! No trailing slash, no empty segment and no other prefix is accepted.

use shared::domain::RepositoryName;

use crate::error::ApiError;

const PREFIX: &str = "/repositories/";

/// The three resources of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/repositories/{name}/webhook`
    Webhook,
    /// `/repositories/{name}/webhook/enable`
    Enable,
    /// `/repositories/{name}/webhook/test`
    Test,
    /// `/repositories/{name}/webhook/deliveries`
    Deliveries,
    /// `/repositories/{name}/webhook/deliveries/{webhook-id}/redeliver`
    /// (matched by [`match_redeliver`], not by a fixed suffix).
    Redeliver,
}

impl Endpoint {
    /// The path suffix after the name, with its leading slash.
    fn suffix(self) -> &'static str {
        match self {
            Self::Webhook => "/webhook",
            Self::Enable => "/webhook/enable",
            Self::Test => "/webhook/test",
            Self::Deliveries => "/webhook/deliveries",
            Self::Redeliver => "/redeliver",
        }
    }

    /// The route template, for logs and error messages.
    pub fn template(self) -> &'static str {
        match self {
            Self::Webhook => "/repositories/{name}/webhook",
            Self::Enable => "/repositories/{name}/webhook/enable",
            Self::Test => "/repositories/{name}/webhook/test",
            Self::Deliveries => "/repositories/{name}/webhook/deliveries",
            Self::Redeliver => "/repositories/{name}/webhook/deliveries/{webhook-id}/redeliver",
        }
    }

    /// The methods the resource answers, as the `allow` header lists them.
    pub fn allowed_methods(self) -> &'static [&'static str] {
        match self {
            Self::Webhook => &["GET", "PUT", "DELETE"],
            Self::Enable | Self::Test | Self::Redeliver => &["POST"],
            Self::Deliveries => &["GET"],
        }
    }

    /// The operation for `method` (case-sensitive, as HTTP methods are).
    pub fn operation(self, method: &str) -> Result<Operation, ApiError> {
        let op = match (self, method) {
            (Self::Webhook, "GET") => Operation::Get,
            (Self::Webhook, "PUT") => Operation::Put,
            (Self::Webhook, "DELETE") => Operation::Delete,
            (Self::Enable, "POST") => Operation::Enable,
            (Self::Test, "POST") => Operation::Test,
            (Self::Deliveries, "GET") => Operation::Deliveries,
            (Self::Redeliver, "POST") => Operation::Redeliver,
            _ => {
                return Err(ApiError::MethodNotAllowed {
                    method: method.chars().take(32).collect(),
                    route: self.template(),
                    allow: self.allowed_methods(),
                })
            }
        };
        Ok(op)
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    Put,
    Delete,
    Enable,
    Test,
    Deliveries,
    Redeliver,
}

impl Operation {
    /// `METHOD /template`, the `route` field of the request log.
    pub fn route(self) -> &'static str {
        match self {
            Self::Get => "GET /repositories/{name}/webhook",
            Self::Put => "PUT /repositories/{name}/webhook",
            Self::Delete => "DELETE /repositories/{name}/webhook",
            Self::Enable => "POST /repositories/{name}/webhook/enable",
            Self::Test => "POST /repositories/{name}/webhook/test",
            Self::Deliveries => "GET /repositories/{name}/webhook/deliveries",
            Self::Redeliver => {
                "POST /repositories/{name}/webhook/deliveries/{webhook-id}/redeliver"
            }
        }
    }
}

/// Splits a raw path into its endpoint and the still-encoded name, or
/// `None` for a path outside the API (a 404).
pub fn match_path(raw_path: &str) -> Option<(Endpoint, &str)> {
    let rest = raw_path.strip_prefix(PREFIX)?;
    // The suffixes are pairwise distinct endings, so at most one matches.
    [
        Endpoint::Enable,
        Endpoint::Test,
        Endpoint::Deliveries,
        Endpoint::Webhook,
    ]
    .into_iter()
    .find_map(|e| rest.strip_suffix(e.suffix()).map(|name| (e, name)))
}

/// Splits a raw redelivery path into the still-encoded name and the
/// webhook id: `/repositories/{name}/webhook/deliveries/{id}/redeliver`.
pub fn match_redeliver(raw_path: &str) -> Option<(&str, &str)> {
    let rest = raw_path
        .strip_prefix(PREFIX)?
        .strip_suffix(Endpoint::Redeliver.suffix())?;
    let (before, id) = rest.rsplit_once('/')?;
    let name = before.strip_suffix(Endpoint::Deliveries.suffix())?;
    Some((name, id))
}

/// Percent-decodes the name once and validates it as `<username>/<repository>`.
pub fn parse_name(raw: &str) -> Result<RepositoryName, ApiError> {
    let decoded = percent_decode(raw).ok_or_else(|| {
        ApiError::BadName("repository name has an invalid percent-escape".to_owned())
    })?;
    RepositoryName::parse(&decoded).map_err(|e| ApiError::BadName(e.to_string()))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
/// `+` stays `+`: this is a path, not a form.
fn percent_decode(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_decided_by_the_raw_suffix() {
        let cases = [
            (
                "/repositories/alice/app/webhook",
                Some((Endpoint::Webhook, "alice/app")),
            ),
            (
                "/repositories/alice/app/webhook/enable",
                Some((Endpoint::Enable, "alice/app")),
            ),
            (
                "/repositories/alice/app/webhook/test",
                Some((Endpoint::Test, "alice/app")),
            ),
            (
                "/repositories/a/b/c/d/webhook",
                Some((Endpoint::Webhook, "a/b/c/d")),
            ),
            // A repository may be called `webhook`, `enable` or `test`.
            (
                "/repositories/alice/webhook/webhook",
                Some((Endpoint::Webhook, "alice/webhook")),
            ),
            (
                "/repositories/alice/webhook/enable/webhook",
                Some((Endpoint::Webhook, "alice/webhook/enable")),
            ),
            (
                "/repositories/alice/test/webhook/test",
                Some((Endpoint::Test, "alice/test")),
            ),
            (
                "/repositories/alice%2Fapp/webhook",
                Some((Endpoint::Webhook, "alice%2Fapp")),
            ),
            (
                "/repositories/alice/app/webhook/deliveries",
                Some((Endpoint::Deliveries, "alice/app")),
            ),
            (
                "/repositories/alice/deliveries/webhook",
                Some((Endpoint::Webhook, "alice/deliveries")),
            ),
            ("/repositories//webhook", Some((Endpoint::Webhook, ""))),
            ("/repositories/alice/app/webhook/", None),
            ("/repositories/alice/app/webhook%2Ftest", None),
            ("/repositories/alice/app/webhooks", None),
            ("/repositories/alice/app", None),
            ("/repositories/webhook", None),
            ("/repository/alice/app/webhook", None),
            ("/Repositories/alice/app/webhook", None),
            ("//repositories/alice/app/webhook", None),
            ("/", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(match_path(path), want, "{path}");
        }
    }

    #[test]
    fn redelivery_paths_split_into_name_and_id() {
        assert_eq!(
            match_redeliver("/repositories/alice/app/webhook/deliveries/evt_1/redeliver"),
            Some(("alice/app", "evt_1"))
        );
        assert_eq!(
            match_redeliver("/repositories/a/b/c/webhook/deliveries/evt_x/redeliver"),
            Some(("a/b/c", "evt_x"))
        );
        for none in [
            "/repositories/alice/app/webhook/deliveries/redeliver",
            "/repositories/alice/app/webhook/deliveries/evt_1/redeliver/",
            "/repositories/alice/app/webhook/evt_1/redeliver",
            "/repositories/alice/app/webhook/deliveries/evt_1",
            "/repositories/alice/redeliver/webhook",
        ] {
            assert_eq!(match_redeliver(none), None, "{none}");
        }
        assert_eq!(
            Endpoint::Redeliver.operation("POST").unwrap(),
            Operation::Redeliver
        );
        assert!(Endpoint::Redeliver.operation("GET").is_err());
    }

    #[test]
    fn names_are_decoded_once_then_validated() {
        assert_eq!(parse_name("alice/app").unwrap().as_str(), "alice/app");
        assert_eq!(parse_name("alice%2Fapp").unwrap().as_str(), "alice/app");
        assert_eq!(
            parse_name("alice%2fteam%2Fapp").unwrap().as_str(),
            "alice/team/app"
        );
        assert_eq!(parse_name("alice/%61pp").unwrap().as_str(), "alice/app");
        for bad in [
            "",
            "app",
            "Alice/app",
            "alice/",
            "alice//app",
            "alice/a%20b",
            "alice%252Fapp",
            "alice/a+b",
            "alice/%",
            "alice/%2",
            "alice/%zz",
            "alice/%ff",
            "../etc/passwd",
        ] {
            assert!(
                matches!(parse_name(bad), Err(ApiError::BadName(_))),
                "{bad} should be refused"
            );
        }
        let ApiError::BadName(why) = parse_name("app").unwrap_err() else {
            unreachable!()
        };
        assert!(why.contains("<username>/<repository>"), "{why}");
    }

    #[test]
    fn methods_map_to_operations_or_405() {
        assert_eq!(Endpoint::Webhook.operation("GET").unwrap(), Operation::Get);
        assert_eq!(Endpoint::Webhook.operation("PUT").unwrap(), Operation::Put);
        assert_eq!(
            Endpoint::Webhook.operation("DELETE").unwrap(),
            Operation::Delete
        );
        assert_eq!(
            Endpoint::Enable.operation("POST").unwrap(),
            Operation::Enable
        );
        assert_eq!(Endpoint::Test.operation("POST").unwrap(), Operation::Test);
        assert_eq!(
            Endpoint::Deliveries.operation("GET").unwrap(),
            Operation::Deliveries
        );
        for (e, m) in [
            (Endpoint::Webhook, "POST"),
            (Endpoint::Webhook, "get"),
            (Endpoint::Webhook, "PATCH"),
            (Endpoint::Webhook, "HEAD"),
            (Endpoint::Enable, "GET"),
            (Endpoint::Test, "PUT"),
            (Endpoint::Test, ""),
            (Endpoint::Deliveries, "POST"),
        ] {
            assert!(
                matches!(e.operation(m), Err(ApiError::MethodNotAllowed { .. })),
                "{m} {}",
                e.template()
            );
        }
    }
}
