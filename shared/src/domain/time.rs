//! Time formatting in one place: RFC 3339 UTC at second precision, the form
//! used in webhook bodies, records and the API.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Formats an instant as `YYYY-MM-DDTHH:MM:SSZ`, truncated to the second so
/// the body's `timestamp` and the `webhook-timestamp` header name one instant.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 time, as registries send it.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_seconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_852_800_123_456_789).unwrap();
        assert_eq!(rfc3339(t), "2026-11-28T08:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-28T08:41:13.163967655Z").map(|t| t.unix_timestamp()),
            Some(1_795_855_273)
        );
    }
}
