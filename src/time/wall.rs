//! Wall-clock time as foolock writes it: RFC 3339 for people and the wire, Unix milliseconds in
//! the state file.

use std::time::{Duration, SystemTime};

/// Formats a wall-clock time as RFC 3339 in UTC with whole seconds (`2026-11-23T12:19:43Z`), like
/// the original's `time.RFC3339` (sub-second precision is in `expires_in_ms`).
///
/// Times outside 1970–9999 are shown as the nearest end of that range: only a machine whose
/// wall clock is set that far off produces them, and a reply must not fail over a display.
pub fn rfc3339(t: SystemTime) -> String {
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_SECOND_OF_9999);
    let t = t.clamp(SystemTime::UNIX_EPOCH, last);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// 9999-12-31T23:59:59Z: the formatter writes four-digit years only.
const LAST_SECOND_OF_9999: u64 = 253_402_300_799;

/// Milliseconds since the Unix epoch (0 before it), as saved.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The wall-clock time `ms` milliseconds after the Unix epoch.
pub fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_whole_seconds() {
        let at = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_436_383), "2026-11-23T12:19:43Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(1_999)),
            "1970-01-01T00:00:01Z"
        );
    }

    #[test]
    fn rfc3339_shows_times_outside_its_years_at_the_nearest_end_instead_of_failing() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_SECOND_OF_9999 + 86_400);
        assert_eq!(rfc3339(after), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn unix_ms_round_trips_and_counts_times_before_the_epoch_as_zero() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        assert_eq!(unix_ms(t), 1_800_000_000_123);
        assert_eq!(from_unix_ms(unix_ms(t)), t);
        assert_eq!(unix_ms(SystemTime::UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
