//! Wall-clock time as foolock writes it: RFC 3339 for people and the wire (with milliseconds
//! where a countdown needs them), Unix milliseconds in the state file.

use std::cell::Cell;
use std::time::{Duration, SystemTime};

/// Formats a wall-clock time as RFC 3339 in UTC with whole seconds (`2026-11-23T12:19:43Z`), like
/// the original's `time.RFC3339` (sub-second precision is in `expires_in_ms`).
///
/// Times outside 1970–9999 are shown as the nearest end of that range: only a machine whose
/// wall clock is set that far off produces them, and a reply must not fail over a display.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_SECOND_OF_9999);
    Rfc3339::new(secs, None).as_str().to_owned()
}

/// Appends [`rfc3339`] of `t` to `out`, for JSON written by hand without a `String` per time.
pub fn push_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_SECOND_OF_9999);
    out.extend_from_slice(&recent_seconds(secs));
}

thread_local! {
    /// The last two whole-second times this thread wrote, newest first: a reply carries a
    /// lease's start and its end, and the same two recur for every request in that second, so
    /// a cache of two turns the calendar arithmetic into a compare (a tenth of a renewal's
    /// JSON before). `u64::MAX` is never a key: keys are at most [`LAST_SECOND_OF_9999`].
    static RECENT: Cell<[(u64, [u8; 20]); 2]> = const { Cell::new([(u64::MAX, [0; 20]); 2]) };
}

/// The 20 bytes of `secs` (at most [`LAST_SECOND_OF_9999`]) as RFC 3339, from [`RECENT`] if
/// this thread wrote them lately.
fn recent_seconds(secs: u64) -> [u8; 20] {
    RECENT.with(|recent| {
        let [newest, older] = recent.get();
        if newest.0 == secs {
            return newest.1;
        }
        if older.0 == secs {
            recent.set([older, newest]);
            return older.1;
        }
        let mut bytes = [0; 20];
        bytes.copy_from_slice(Rfc3339::new(secs, None).as_bytes());
        recent.set([(secs, bytes), newest]);
        bytes
    })
}

/// 9999-12-31T23:59:59Z: the formatter writes four-digit years only.
const LAST_SECOND_OF_9999: u64 = 253_402_300_799;

/// An RFC 3339 timestamp in UTC, formatted on the stack: every reply carries two or three of
/// these, `/locks` two per row and every event four, so they are written digit by digit into
/// fixed places instead of through `fmt` (a fifth of a renewal's cost before).
struct Rfc3339 {
    bytes: [u8; 24],
    len: usize,
}

impl Rfc3339 {
    /// `secs` after the Unix epoch (at most [`LAST_SECOND_OF_9999`]), with `millis` (below
    /// 1000) if given: `…T12:19:43Z` or `…T12:19:43.042Z`.
    fn new(secs: u64, millis: Option<u32>) -> Rfc3339 {
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = (secs % 86_400) as u32;
        let mut out = *b"0000-00-00T00:00:00.000Z";
        // Every field's place is fixed, so each digit is one store.
        let year = year as u32;
        put_two(&mut out, 0, year / 100);
        put_two(&mut out, 2, year % 100);
        put_two(&mut out, 5, month as u32);
        put_two(&mut out, 8, day as u32);
        put_two(&mut out, 11, of_day / 3600);
        put_two(&mut out, 14, of_day / 60 % 60);
        put_two(&mut out, 17, of_day % 60);
        let len = match millis {
            Some(ms) => {
                out[20] = b'0' + (ms / 100) as u8;
                put_two(&mut out, 21, ms % 100);
                24
            }
            None => {
                out[19] = b'Z';
                20
            }
        };
        Rfc3339 { bytes: out, len }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("only ASCII digits and separators")
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Writes `value` (below 100) as two digits at `at`.
fn put_two(out: &mut [u8; 24], at: usize, value: u32) {
    out[at] = b'0' + (value / 10) as u8;
    out[at + 1] = b'0' + (value % 10) as u8;
}

/// The Gregorian (year, month, day) of the day `days` after 1970-01-01, counted in 400-year
/// eras that start on a 1 March, so the leap day falls at the end of each year of the era.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719 468 days from 0000-03-01 to 1970-01-01; an era has 146 097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March (0) to February (11), each of 30.6 days on average.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// Clamps to the years RFC 3339 can write, like [`rfc3339`] does.
fn clamp(t: SystemTime) -> SystemTime {
    let last = SystemTime::UNIX_EPOCH + Duration::from_millis(LAST_SECOND_OF_9999 * 1000 + 999);
    t.clamp(SystemTime::UNIX_EPOCH, last)
}

/// RFC 3339 in UTC with milliseconds (`2026-11-23T12:19:43.042Z`), for the event stream and
/// the status page, whose countdowns need better than whole seconds. Clamped like [`rfc3339`].
pub fn rfc3339_millis(t: SystemTime) -> String {
    let since = clamp(t)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Rfc3339::new(since.as_secs(), Some(since.subsec_millis()))
        .as_str()
        .to_owned()
}

/// `2026-11-23 12:19:43 UTC`: what the status page shows readers without JavaScript (whose
/// script shows local time instead). Clamped like [`rfc3339`].
pub fn readable_utc(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(clamp(t)).to_string();
    format!("{} UTC", s.replace('T', " ").trim_end_matches('Z'))
}

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
        let mut out = b"at ".to_vec();
        push_rfc3339(
            &mut out,
            SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400),
        );
        assert_eq!(out, b"at 2000-02-29T00:00:00Z");
    }

    /// The cache of recent times answers what the formatter would, in any order of asking,
    /// including a key that drops out and comes back.
    #[test]
    fn recent_times_are_written_as_if_formatted_afresh() {
        let fresh = |s: u64| Rfc3339::new(s, None).as_bytes().to_vec();
        for secs in [
            5,
            9,
            5,
            9,
            9,
            5,
            7,
            5,
            9,
            0,
            LAST_SECOND_OF_9999,
            0,
            86_399,
            86_400,
        ] {
            assert_eq!(recent_seconds(secs).to_vec(), fresh(secs), "{secs}");
            let mut out = Vec::new();
            push_rfc3339(&mut out, SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(out, fresh(secs), "{secs}");
        }
    }

    #[test]
    fn rfc3339_shows_times_outside_its_years_at_the_nearest_end_instead_of_failing() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_SECOND_OF_9999 + 86_400);
        assert_eq!(rfc3339(after), "9999-12-31T23:59:59Z");
    }

    /// The fixed-width formatter against humantime's, at every boundary where a digit carries
    /// (days, months, leap days, centuries, the 400-year rule) and at spread-out instants.
    #[test]
    fn rfc3339_matches_humantime_across_the_calendar() {
        let humantime = |s: u64| {
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                .to_string()
        };
        let mut seconds: Vec<u64> = Vec::new();
        // Every day of 1970-2500 at its first and last second (leap years, 2100, 2400).
        for day in 0..193_000u64 {
            seconds.extend([day * 86_400, day * 86_400 + 86_399]);
        }
        // Spread across 1970-9999 by a step that is prime to every unit.
        let mut s = 0u64;
        while s <= LAST_SECOND_OF_9999 {
            seconds.push(s);
            s += 1_000_003 * 17;
        }
        seconds.push(LAST_SECOND_OF_9999);
        for (i, s) in seconds.into_iter().enumerate() {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(s);
            assert_eq!(rfc3339(at), humantime(s), "{s}");
            let mut pushed = Vec::new();
            push_rfc3339(&mut pushed, at);
            assert_eq!(pushed, humantime(s).as_bytes(), "{s}");
            // Milliseconds too, from .000 to .999 (and a nanosecond part they must not round).
            let at = at + Duration::from_nanos((i as u64 * 7_919_993) % 1_000_000_000);
            assert_eq!(
                rfc3339_millis(at),
                humantime::format_rfc3339_millis(at).to_string(),
                "{at:?}"
            );
        }
    }

    #[test]
    fn millisecond_and_readable_forms_are_utc_and_clamped_like_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_436_383_042);
        assert_eq!(rfc3339_millis(t), "2026-11-23T12:19:43.042Z");
        assert_eq!(readable_utc(t), "2026-11-23 12:19:43 UTC");
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339_millis(far), "9999-12-31T23:59:59.999Z");
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_millis(before), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn unix_ms_round_trips_and_counts_times_before_the_epoch_as_zero() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        assert_eq!(unix_ms(t), 1_800_000_000_123);
        assert_eq!(from_unix_ms(unix_ms(t)), t);
        assert_eq!(unix_ms(SystemTime::UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
