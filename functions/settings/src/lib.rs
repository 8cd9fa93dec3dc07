//! The `settings` function: the per-repository webhook settings API of
//! docs/settings-api.md, served over a Lambda Function URL (payload format 2.0, IAM
//! auth when deployed).
//!
//! | request | answer |
//! |---|---|
//! | `PUT /repositories/{name}/webhook`, body `{"url": "..."}` | 200 config: created, or URL replaced; enabled, count 0 |
//! | `GET /repositories/{name}/webhook` | 200 config, or 404 |
//! | `DELETE /repositories/{name}/webhook` | 204 (empty body), or 404 |
//! | `POST /repositories/{name}/webhook/enable` | 200 config (enabled, count 0), or 404 |
//! | `POST /repositories/{name}/webhook/test` | 202 `{"queued":true,"event":"ping","repository":"alice/app","webhook_id":"evt_…","enabled":true}`, or 404 |
//!
//! `{name}` is `<username>/<repository>`; the repository part may hold any
//! number of `/`. Every answer is `content-type: application/json`; errors
//! are `{"error": "<reason>"}`: 400 (not a Function URL event, malformed or
//! non-object JSON, a body without a string `url`, an unknown body field, a
//! bad repository name, a bad URL: the reason is the rule that failed), 404
//! (unknown route, or no webhook for the repository), 405 (with an `allow`
//! header), 413 (body over 16 KiB), 503 with `retry-after` (the store or
//! queue failed in a way that passes), 500 (one that does not).
//!
//! Decisions where the contract is silent:
//! - **Path decoding.** Function URLs give `rawPath` undecoded. The route is
//!   matched on the raw path; then the name alone is percent-decoded once
//!   (so `alice%2Fapp` works for clients that encode the name as one
//!   segment) and validated with the Distribution grammar. An escape can
//!   never change the route, and double encoding is refused. No trailing
//!   slash. See [`route`].
//! - **PUT body.** Exactly `{"url": "<string>"}`: an unknown field is a 400
//!   naming it, not silently ignored (a caller sending `enabled` or
//!   `secret` would otherwise believe it applied). `content-type` is not
//!   checked. The stored URL is the parser's normalised form (lowercase
//!   scheme and host, query kept); it is what the config shows.
//! - **Name resolution at set time.** The URL's host is resolved once
//!   (3 s limit): if any address is forbidden the URL is refused; if it
//!   does not resolve (or not in time) it is accepted, because delivery
//!   applies the same rule ([`shared::net::check_resolved`] and the guarded
//!   resolver share `classify_ip`) to the addresses it connects to.
//! - **Test delivery.** A ping job (`DeliveryJob::ping`, fresh `evt_` id) on
//!   the delivery queue, answered 202 before it is sent. The answer's
//!   `enabled` says whether the webhook is enabled: the deliver function
//!   drops events for a disabled webhook (§5), so enable it first.
//!
//! **Secret.** Created with the webhook, kept when the URL is replaced or the
//! webhook re-enabled, new after a delete: `whsec_` followed by the standard
//! base64 of 32 random bytes (Standard Webhooks). Receivers verify
//! `webhook-signature` with the decoded bytes; see `docs/verifying-signatures.md`.

pub mod error;
pub mod handler;
pub mod route;

pub use error::ApiError;
pub use handler::{Settings, MAX_BODY_BYTES, RESOLVE_TIMEOUT};

#[cfg(test)]
mod tests;
