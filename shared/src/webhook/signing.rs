//! Standard Webhooks secrets and signatures: `whsec_` + base64 of 32 random
//! bytes; `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with
//! the decoded bytes. hmac/sha2/base64 rather than hand-written crypto.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// Why a stored secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secret must start with whsec_")]
    Prefix,
    #[error("webhook secret is not valid base64")]
    Base64,
    #[error("webhook secret must decode to 24..=64 bytes")]
    Length,
}

/// A repository's signing secret. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new random secret from the OS random source.
    pub fn generate() -> Self {
        let bytes: [u8; SECRET_BYTES] = rand::random();
        let text = format!("{PREFIX}{}", STANDARD.encode(bytes));
        Self {
            text,
            key: bytes.to_vec(),
        }
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length);
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// The secret as the owner sees it in the settings API.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// `v1,<base64 signature>` over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Checks a `webhook-signature` header value (space-separated list) in
    /// constant time; used by tests and by receivers written in Rust.
    pub fn verify(&self, webhook_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        let expected = self.sign(webhook_id, timestamp, body);
        header
            .split(' ')
            .any(|sig| bool::from(sig.as_bytes().ct_eq(expected.as_bytes())))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published Standard Webhooks test vector (spec and every official
    /// library's tests): a known secret, id, timestamp and payload.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_are_random_and_round_trip() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(a.expose()).unwrap(), a);
        let sig = a.sign("evt_1", 10, b"{}");
        assert!(a.verify("evt_1", 10, b"{}", &format!("v1,bogus {sig}")));
        assert!(!a.verify("evt_1", 11, b"{}", &sig));
        assert!(!b.verify("evt_1", 10, b"{}", &sig));
    }

    #[test]
    fn refuses_bad_secrets_and_never_prints_them() {
        assert_eq!(WebhookSecret::parse("abc"), Err(SecretError::Prefix));
        assert_eq!(WebhookSecret::parse("whsec_!!!"), Err(SecretError::Base64));
        assert_eq!(WebhookSecret::parse("whsec_YWJj"), Err(SecretError::Length));
        let s = WebhookSecret::generate();
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
    }
}
