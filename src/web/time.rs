//! How the page and the stream write instants and spans: RFC 3339 UTC with milliseconds for
//! machines (a countdown needs better than whole seconds), a readable UTC form for the page
//! without JavaScript, and short spans ("4 min 05 s").

use std::time::{Duration, SystemTime};

/// 9999-12-31T23:59:59.999Z: the formatter writes four-digit years only.
const LAST_MS_OF_9999: Duration = Duration::from_millis(253_402_300_799_999);

/// Clamps to what RFC 3339 can write: a machine whose clock is that far off must still get a
/// page.
fn clamp(t: SystemTime) -> SystemTime {
    t.clamp(
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH + LAST_MS_OF_9999,
    )
}

/// `2026-12-01T00:27:02.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(clamp(t)).to_string()
}

/// `2026-12-01 00:27:02 UTC`, for readers without JavaScript (which shows local time).
pub fn readable_utc(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(clamp(t)).to_string();
    format!("{} UTC", s.replace('T', " ").trim_end_matches('Z'))
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A short span for a countdown or an uptime: `42 s`, `4 min 05 s`, `3 h 07 min`, `2 d 5 h`.
/// The page's script writes the same forms (see `status.js`).
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if s < 60 {
        format!("{secs} s")
    } else if s < 3600 {
        format!("{mins} min {secs:02} s")
    } else if s < 86_400 {
        format!("{hours} h {mins:02} min")
    } else {
        format!("{days} d {hours} h")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_in_utc_with_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_436_383_042);
        assert_eq!(rfc3339_millis(t), "2026-11-23T12:19:43.042Z");
        assert_eq!(readable_utc(t), "2026-11-23 12:19:43 UTC");
        assert_eq!(unix_ms(t), 1_795_436_383_042);
    }

    #[test]
    fn instants_beyond_year_9999_are_clamped_not_refused() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339_millis(far), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn spans_use_two_units_at_most() {
        let s = |secs| span(Duration::from_secs(secs));
        assert_eq!(s(0), "0 s");
        assert_eq!(s(59), "59 s");
        assert_eq!(s(60), "1 min 00 s");
        assert_eq!(s(245), "4 min 05 s");
        assert_eq!(s(3600 * 3 + 7 * 60 + 59), "3 h 07 min");
        assert_eq!(s(86_400 * 2 + 3600 * 5 + 1), "2 d 5 h");
    }
}
