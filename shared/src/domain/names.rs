//! Repository names, tags and digests, validated with the CNCF Distribution
//! reference grammar. Hand-written matchers rather than the `regex` crate: the
//! grammar is tiny and this keeps regex compilation out of every cold start.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest repository name Distribution accepts.
const MAX_NAME_LEN: usize = 255;
/// Longest tag Distribution accepts.
const MAX_TAG_LEN: usize = 128;

/// Why a name, tag or digest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name is empty")]
    EmptyName,
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("repository name must be <username>/<repository>")]
    MissingUsername,
    #[error("repository name component {0:?} is not valid (lowercase letters, digits and single . _ __ or - separators)")]
    BadComponent(String),
    #[error(
        "tag {0:?} is not valid (letters, digits, _ . -; at most 128, not starting with . or -)"
    )]
    BadTag(String),
    #[error("digest {0:?} is not valid (sha256:<64 hex> or sha512:<128 hex>)")]
    BadDigest(String),
}

/// What every validated name shares: it is read as a `&str`, displayed as
/// itself, and (de)serialized as a string that must parse.
macro_rules! validated_string {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

/// `<username>/<repository>`; the repository part may itself contain `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Parses a full name that must already carry a username segment.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        validate_path(raw)?;
        if !raw.contains('/') {
            return Err(NameError::MissingUsername);
        }
        Ok(Self(raw.to_owned()))
    }

    /// Builds the name from a native event's separate username and repository.
    pub fn from_parts(username: &str, repository: &str) -> Result<Self, NameError> {
        if username.contains('/') {
            return Err(NameError::BadComponent(username.to_owned()));
        }
        Self::parse(&format!("{username}/{repository}"))
    }

    /// Distribution's rule: a single-segment path means `library/<name>`.
    pub fn from_registry_path(path: &str) -> Result<Self, NameError> {
        validate_path(path)?;
        if path.contains('/') {
            Ok(Self(path.to_owned()))
        } else {
            Self::parse(&format!("library/{path}"))
        }
    }

    /// The first segment: the owner's username.
    pub fn username(&self) -> &str {
        self.0.split_once('/').map_or(&self.0, |(u, _)| u)
    }

    /// Everything after the username.
    pub fn repository(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, r)| r)
    }
}

validated_string!(RepositoryName);

fn validate_path(raw: &str) -> Result<(), NameError> {
    if raw.is_empty() {
        return Err(NameError::EmptyName);
    }
    if raw.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong);
    }
    for component in raw.split('/') {
        if !is_path_component(component) {
            return Err(NameError::BadComponent(
                component.chars().take(64).collect(),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let b = raw.as_bytes();
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let ok = !b.is_empty()
            && b.len() <= MAX_TAG_LEN
            && word(b[0])
            && b.iter().all(|&x| word(x) || x == b'.' || x == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NameError::BadTag(raw.chars().take(140).collect()))
        }
    }
}

validated_string!(Tag);

/// A content digest, `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let hex_ok = |h: &str, n: usize| {
            h.len() == n
                && h.bytes()
                    .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
        };
        let ok = match raw.split_once(':') {
            Some(("sha256", h)) => hex_ok(h, 64),
            Some(("sha512", h)) => hex_ok(h, 128),
            _ => false,
        };
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(NameError::BadDigest(raw.chars().take(140).collect()))
        }
    }
}

validated_string!(Digest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_distribution_grammar() {
        for ok in [
            "alice/app",
            "alice/team/app",
            "a1/b-c",
            "a/b__c",
            "a/b.c",
            "a/b---c",
            "x/y_z",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "app",
            "Alice/app",
            "alice/",
            "/app",
            "alice//app",
            "alice/-app",
            "alice/app-",
            "alice/a..b",
            "alice/a___b",
            "alice/a b",
            "alice/a:b",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
        let long = format!("alice/{}", "a".repeat(300));
        assert_eq!(RepositoryName::parse(&long), Err(NameError::NameTooLong));
    }

    #[test]
    fn username_and_repository_split_at_the_first_slash() {
        let n = RepositoryName::parse("alice/team/app").unwrap();
        assert_eq!(n.username(), "alice");
        assert_eq!(n.repository(), "team/app");
        assert_eq!(RepositoryName::from_parts("alice", "team/app").unwrap(), n);
        assert!(RepositoryName::from_parts("al/ice", "app").is_err());
    }

    #[test]
    fn single_segment_registry_paths_mean_library() {
        let n = RepositoryName::from_registry_path("hello-world").unwrap();
        assert_eq!(n.as_str(), "library/hello-world");
        assert_eq!(
            RepositoryName::from_registry_path("alice/app")
                .unwrap()
                .as_str(),
            "alice/app"
        );
    }

    #[test]
    fn tags_and_digests() {
        for ok in ["1.0", "latest", "_x", "v1.2.3-rc.1", &"a".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129), "ü"] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(Digest::parse("md5:abc").is_err());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<RepositoryName>("\"alice/app\"").is_ok());
        assert!(serde_json::from_str::<RepositoryName>("\"NOPE\"").is_err());
    }
}
