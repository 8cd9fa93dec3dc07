//! The payload formats a webhook can be sent in (docs/webhook.md#payload-formats):
//! the one place that knows their names, their bodies' envelopes and the
//! headers each one owns. Stored on the repository record by name.

use std::fmt;

/// How a webhook's request is shaped. `Alin` is the service's own request,
/// byte for byte; the others wrap the same body for a receiver that expects
/// its own envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PayloadFormat {
    /// The alin request of docs/webhook.md#the-request.
    #[default]
    Alin,
    /// GitHub's `repository_dispatch`: `{"event_type", "client_payload"}`.
    GithubDispatch,
    /// CloudEvents 1.0, structured mode.
    CloudEvents,
}

/// A format name the service does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"format\" must be one of \"alin\", \"github-dispatch\", \"cloudevents\"")]
pub struct UnknownFormat;

impl PayloadFormat {
    /// Every format, in the order the docs list them.
    pub const ALL: [PayloadFormat; 3] = [Self::Alin, Self::GithubDispatch, Self::CloudEvents];

    /// The name used in the settings API and stored on the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alin => "alin",
            Self::GithubDispatch => "github-dispatch",
            Self::CloudEvents => "cloudevents",
        }
    }

    /// The format named `name` (exact, lower-case).
    pub fn parse(name: &str) -> Result<Self, UnknownFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .ok_or(UnknownFormat)
    }

    /// Headers this format sets besides the ones every format sets: a
    /// custom header may not carry these names either.
    pub fn own_headers(self) -> &'static [&'static str] {
        match self {
            Self::GithubDispatch => &["Accept", "X-GitHub-Api-Version"],
            Self::Alin | Self::CloudEvents => &[],
        }
    }
}

impl fmt::Display for PayloadFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for f in PayloadFormat::ALL {
            assert_eq!(PayloadFormat::parse(f.as_str()), Ok(f));
        }
        assert_eq!(PayloadFormat::default(), PayloadFormat::Alin);
        for bad in ["", "Alin", "github", "cloudevent", "github_dispatch"] {
            assert_eq!(PayloadFormat::parse(bad), Err(UnknownFormat), "{bad}");
        }
        let why = UnknownFormat.to_string();
        for f in PayloadFormat::ALL {
            assert!(why.contains(f.as_str()), "{why}");
        }
    }
}
