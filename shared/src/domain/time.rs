//! Time formatting in one place: RFC 3339 UTC at second precision, the form
//! used in webhook bodies, records and the API. Parsing is checked end to
//! end: a time that parses but whose UTC instant cannot be represented or
//! written back as RFC 3339 (`9999-12-31T23:00:00-01:00` is year 10000 in
//! UTC) is refused here, so no caller can panic on registry input.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Formats an instant as `YYYY-MM-DDTHH:MM:SSZ`, truncated to the second so
/// the body's `timestamp` and the `webhook-timestamp` header name one instant.
/// Never panics: an instant with no UTC form in RFC 3339 (only reachable by
/// arithmetic far outside any real clock) falls back to Unix seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let Some(t) = t.checked_to_offset(UtcOffset::UTC) else {
        return t.unix_timestamp().to_string();
    };
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 time, as registries send it, into its UTC instant.
/// `None` when the text is not RFC 3339 or its UTC instant falls outside the
/// years RFC 3339 can write (0000–9999), so [`rfc3339`] of the result always
/// round-trips.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let utc = t.checked_to_offset(UtcOffset::UTC)?;
    (0..=9999).contains(&utc.year()).then_some(utc)
}

/// Parses and normalises to `YYYY-MM-DDTHH:MM:SSZ` in one checked step.
pub fn normalize_rfc3339(s: &str) -> Option<String> {
    parse_rfc3339(s).map(rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_utc_seconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_795_852_800_123_456_789).unwrap();
        assert_eq!(rfc3339(t), "2026-11-28T08:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-28T08:41:13.163967655Z").map(|t| t.unix_timestamp()),
            Some(1_795_855_273)
        );
    }

    #[test]
    fn out_of_range_utc_instants_are_refused_not_panics() {
        // Year 10000 in UTC: parsed by `time`, then `to_offset` used to panic.
        assert_eq!(parse_rfc3339("9999-12-31T23:00:00-01:00"), None);
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59-23:59"), None);
        // Year -1 in UTC: cannot be written back as RFC 3339.
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00+00:01"), None);
        // The edges that do fit.
        assert_eq!(
            normalize_rfc3339("9999-12-31T23:59:59.999+00:00").as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(
            normalize_rfc3339("0000-01-01T00:00:00-00:30").as_deref(),
            Some("0000-01-01T00:30:00Z")
        );
        assert_eq!(
            normalize_rfc3339("2026-11-28T09:00:00.5+01:00").as_deref(),
            Some("2026-11-28T08:00:00Z")
        );
    }

    /// Any date, time and offset RFC 3339 can spell, including the extremes.
    fn rfc3339_text() -> impl Strategy<Value = String> {
        (
            0u32..=9999,
            1u32..=12,
            1u32..=31,
            0u32..=23,
            0u32..=59,
            0u32..=60,
            proptest::option::of(0u32..1_000_000_000),
            prop_oneof![
                Just(None),
                (any::<bool>(), 0u32..=23, 0u32..=59).prop_map(Some)
            ],
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
                let frac = frac.map(|f| format!(".{f:09}")).unwrap_or_default();
                let off = match off {
                    None => "Z".to_owned(),
                    Some((neg, oh, om)) => {
                        format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' })
                    }
                };
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}")
            })
    }

    proptest! {
        /// Whatever parses normalises without a panic, to a text that parses
        /// again to the same instant (second precision).
        #[test]
        fn any_rfc3339_text_normalises_or_is_refused(s in rfc3339_text()) {
            if let Some(t) = parse_rfc3339(&s) {
                let text = rfc3339(t);
                let again = parse_rfc3339(&text);
                prop_assert!(again.is_some(), "{} -> {}", s, text);
                prop_assert_eq!(again.map(|a| a.unix_timestamp()), Some(t.unix_timestamp()));
                prop_assert!(text.ends_with('Z') && text.len() == 20, "{}", text);
            }
        }

        /// Arbitrary strings never panic the parser.
        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,64}") {
            let _ = normalize_rfc3339(&s);
        }

        /// Any representable instant seen from any offset formats without a
        /// panic (the formatting side of the same guarantee).
        #[test]
        fn any_instant_at_any_offset_formats(
            secs in -377_705_116_800i64..=253_402_300_799i64,
            off in -86_399i32..=86_399i32,
        ) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            if let Ok(off) = UtcOffset::from_whole_seconds(off) {
                if let Some(local) = t.checked_to_offset(off) {
                    let _ = rfc3339(local);
                }
            }
        }
    }
}
