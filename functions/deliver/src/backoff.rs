//! When a failed job comes back: `RETRY_BASE_DELAY_SECS × 2^(attempt−1)`,
//! ±20% jitter, at most 900 s (the cap SQS message timers share), set as
//! the message's visibility timeout.
//!
//! `Retry-After` (delta seconds or an HTTP date) can only lengthen the wait,
//! up to the same cap: it is the receiver's "not before", while our schedule
//! protects the attempt budget — a `Retry-After: 0` must not burn all
//! `MAX_ATTEMPTS` within seconds. A value beyond the cap is cut to the cap
//! rather than ignored, so the receiver gets the longest wait we can give.

use std::time::Duration;

use shared::config::MAX_RETRY_DELAY;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// Jitter applied around the scheduled delay, as a fraction.
const JITTER: f64 = 0.2;

/// The scheduled delay before attempt `attempt + 1`, without jitter, capped.
pub fn scheduled_delay(base: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1);
    let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
    base.checked_mul(factor)
        .unwrap_or(MAX_RETRY_DELAY)
        .min(MAX_RETRY_DELAY)
}

/// The visibility timeout, in whole seconds, for a job whose attempt number
/// `attempt` failed and may be retried. `unit` is a uniform random number in
/// `[0, 1)` (injected so tests are exact).
pub fn retry_delay_secs(
    base: Duration,
    attempt: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> i32 {
    const CAP_MS: u64 = MAX_RETRY_DELAY.as_millis() as u64;
    let scheduled_ms = scheduled_delay(base, attempt).as_millis() as f64;
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    // Rounded to the millisecond first so float noise (120 × 1.2) does not
    // become a whole extra second; within 0..=1.2 × 900 s, the cast is exact.
    let jittered_ms = ((scheduled_ms * factor).round() as u64).min(CAP_MS);
    let wanted_ms = retry_after.map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).min(CAP_MS)
    });
    // Whole seconds, rounded up so a Retry-After is never undercut.
    jittered_ms.max(wanted_ms).div_ceil(1000) as i32
}

/// A random retry delay for `attempt` (see [`retry_delay_secs`]).
pub fn retry_delay(base: Duration, attempt: u32, retry_after: Option<Duration>) -> i32 {
    retry_delay_secs(base, attempt, retry_after, rand::random::<f64>())
}

/// Parses a `Retry-After` value: delta seconds or an HTTP date (RFC 9110
/// IMF-fixdate; the obsolete forms too, as far as RFC 2822 covers them). A
/// date in the past means "now". `None` for anything else.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 is "a very long time": the cap applies anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    let delta = at - now;
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(30);

    #[test]
    fn doubles_per_attempt_and_caps_at_900() {
        let secs: Vec<u64> = (1..=7)
            .map(|a| scheduled_delay(BASE, a).as_secs())
            .collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(scheduled_delay(BASE, 0).as_secs(), 30);
        assert_eq!(scheduled_delay(BASE, 1000).as_secs(), 900);
        assert_eq!(scheduled_delay(Duration::ZERO, 5).as_secs(), 0);
        assert_eq!(scheduled_delay(Duration::from_secs(900), 40).as_secs(), 900);
    }

    #[test]
    fn jitter_is_plus_minus_20_percent() {
        assert_eq!(retry_delay_secs(BASE, 1, None, 0.0), 24);
        assert_eq!(retry_delay_secs(BASE, 1, None, 0.5), 30);
        assert_eq!(retry_delay_secs(BASE, 1, None, 0.999_999), 36);
        assert_eq!(retry_delay_secs(BASE, 3, None, 0.0), 96);
        assert_eq!(retry_delay_secs(BASE, 3, None, 1.0), 144);
        for _ in 0..1000 {
            let d = retry_delay(BASE, 2, None);
            assert!((48..=72).contains(&d), "{d}");
        }
    }

    #[test]
    fn never_beyond_the_cap_even_with_jitter() {
        assert_eq!(retry_delay_secs(BASE, 6, None, 1.0), 900);
        assert_eq!(retry_delay_secs(BASE, 6, None, 0.0), 720);
        assert_eq!(retry_delay_secs(BASE, 60, None, 0.99), 900);
        for _ in 0..1000 {
            assert!((720..=900).contains(&retry_delay(BASE, 9, None)));
        }
    }

    #[test]
    fn retry_after_lengthens_within_the_cap() {
        let ra = |s| Some(Duration::from_secs(s));
        // Longer than the schedule: honoured exactly.
        assert_eq!(retry_delay_secs(BASE, 1, ra(120), 0.5), 120);
        // Shorter than the schedule: the schedule wins.
        assert_eq!(retry_delay_secs(BASE, 2, ra(5), 0.5), 60);
        assert_eq!(retry_delay_secs(BASE, 1, ra(0), 0.0), 24);
        // Beyond the cap: the cap.
        assert_eq!(retry_delay_secs(BASE, 1, ra(3600), 0.0), 900);
        assert_eq!(retry_delay_secs(BASE, 1, ra(u64::MAX), 0.0), 900);
        // Fractions round up so the receiver's wait is never undercut.
        assert_eq!(
            retry_delay_secs(Duration::ZERO, 1, Some(Duration::from_millis(1500)), 0.0),
            2
        );
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = OffsetDateTime::from_unix_timestamp(1_795_852_800).unwrap(); // 2026-11-28T08:00:00Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 08:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-5", "1.5", "soon", "Sat, 99 Nov 2026 08:05:00 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
