//! Durations in Go's `time.ParseDuration` syntax, which existing foolock clients send
//! (`300ms`, `1.5s`, `1h30m`, `2m0.5s`, `1us`, `1µs`), and their display.

use std::fmt;
use std::time::Duration;

/// Why a string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

/// A signed duration in nanoseconds, exactly the range Go's `time.Duration` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub i64);

impl GoDuration {
    /// The duration if it is positive, `None` for zero or negative values.
    pub(crate) fn positive(self) -> Option<Duration> {
        (self.0 > 0).then(|| Duration::from_nanos(self.0 as u64))
    }
}

const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // micro sign
    ("\u{3bc}s", 1_000), // Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration the way Go's `time.ParseDuration` does, including its signs, fractions,
/// unit spellings and overflow rules. Negative values parse; callers decide what they accept.
pub fn parse_go_duration(input: &str) -> Result<GoDuration, ParseDurationError> {
    let fail = |reason| ParseDurationError {
        input: input.to_owned(),
        reason,
    };
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    // Go special-cases a bare zero, the only number allowed without a unit.
    if s == "0" {
        return Ok(GoDuration(0));
    }
    if s.is_empty() {
        return Err(fail("empty"));
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if first != b'.' && !first.is_ascii_digit() {
            return Err(fail("expected a number"));
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for digit in s[..int_len].bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(digit - b'0')))
                .filter(|w| *w <= LIMIT)
                .ok_or_else(|| fail("out of range"))?;
        }
        s = &s[int_len..];
        // The fraction keeps as many digits as fit and ignores the rest, as Go does.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflowed = false;
            for digit in s[..frac_len].bytes() {
                if overflowed {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                    .filter(|f| *f <= LIMIT)
                {
                    Some(f) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    None => overflowed = true,
                }
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(fail("expected a number"));
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(fail("missing unit (ns, us, ms, s, m or h)"));
        }
        let unit_name = &s[..unit_len];
        s = &s[unit_len..];
        let unit = UNITS
            .iter()
            .find(|(name, _)| *name == unit_name)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| fail("unknown unit (use ns, us, ms, s, m or h)"))?;
        if whole > LIMIT / unit {
            return Err(fail("out of range"));
        }
        let mut value = whole * unit;
        if frac > 0 {
            // Go computes the fractional part in float64; doing the same keeps results identical.
            value += (frac as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(fail("out of range"));
            }
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(|| fail("out of range"))?;
    }
    if negative {
        return Ok(GoDuration((total as i64).wrapping_neg()));
    }
    if total > LIMIT - 1 {
        return Err(fail("out of range"));
    }
    Ok(GoDuration(total as i64))
}

/// Parses a strictly positive duration; used for configuration values and flags.
pub fn parse_positive(input: &str) -> Result<Duration, String> {
    let parsed = parse_go_duration(input).map_err(|e| e.to_string())?;
    parsed
        .positive()
        .ok_or_else(|| format!("duration {input:?} must be greater than zero"))
}

/// Parses a zero-or-positive duration.
pub fn parse_non_negative(input: &str) -> Result<Duration, String> {
    let parsed = parse_go_duration(input).map_err(|e| e.to_string())?;
    if parsed.0 < 0 {
        return Err(format!("duration {input:?} must not be negative"));
    }
    Ok(Duration::from_nanos(parsed.0 as u64))
}

/// Displays a duration compactly in Go's style for whole units: `1h30m`, `45s`, `1.5s`, `300ms`,
/// exactly (`1.000000001s`), so that the text reads back as the same duration.
pub struct Compact(pub Duration);

impl fmt::Display for Compact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d < Duration::from_secs(1) {
            let nanos = d.as_nanos();
            return if nanos.is_multiple_of(1_000_000) {
                write!(f, "{}ms", nanos / 1_000_000)
            } else if nanos.is_multiple_of(1_000) {
                write!(f, "{}us", nanos / 1_000)
            } else {
                write!(f, "{nanos}ns")
            };
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        // Every digit of the fraction, down to nanoseconds: `config check` prints what the
        // file says, and what it prints must read back as the same value.
        let nanos = d.subsec_nanos();
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || nanos > 0 {
            if nanos > 0 {
                let frac = format!("{nanos:09}");
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))?;
            } else {
                write!(f, "{s}s")?;
            }
        }
        Ok(())
    }
}

/// A serde adapter for `Duration` fields written as Go duration strings in config files.
pub mod serde_go {
    use super::{Compact, parse_non_negative};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Compact(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_non_negative(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> i64 {
        parse_go_duration(s).unwrap().0
    }

    #[test]
    fn accepts_the_forms_existing_clients_send() {
        assert_eq!(ns("300ms"), 300_000_000);
        assert_eq!(ns("1.5s"), 1_500_000_000);
        assert_eq!(ns("1h30m"), 5_400_000_000_000);
        assert_eq!(ns("2m0.5s"), 120_500_000_000);
        assert_eq!(ns("1us"), 1_000);
        assert_eq!(ns("1µs"), 1_000);
        assert_eq!(ns("1μs"), 1_000);
        assert_eq!(ns("30s"), 30_000_000_000);
        assert_eq!(ns("0"), 0);
        assert_eq!(ns("+5s"), 5_000_000_000);
        assert_eq!(ns("-5s"), -5_000_000_000);
        assert_eq!(ns(".5s"), 500_000_000);
        assert_eq!(ns("5.s"), 5_000_000_000);
        assert_eq!(ns("1h1m1s1ms1us1ns"), 3_661_001_001_001);
        assert_eq!(ns("0.000000001s"), 1);
        assert_eq!(ns("9223372036854775807ns"), i64::MAX);
        assert_eq!(ns("-9223372036854775808ns"), i64::MIN);
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "s",
            "5",
            "-",
            "+",
            ".",
            ".s",
            "5x",
            "5 s",
            " 5s",
            "5s ",
            "1e3s",
            "0x10s",
            "5sm",
            "1.2.3s",
            "9223372036854775808ns",
            "2562048h",
            "--5s",
            "五s",
        ] {
            assert!(
                parse_go_duration(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn positive_and_non_negative_helpers_enforce_sign() {
        assert_eq!(parse_positive("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_positive("0s").is_err());
        assert!(parse_positive("-1s").is_err());
        assert_eq!(parse_non_negative("0"), Ok(Duration::ZERO));
        assert!(parse_non_negative("-1ms").is_err());
    }

    #[test]
    fn compact_display_round_trips() {
        for (d, text) in [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
            (Duration::from_micros(5_396_038_701), "1h29m56.038701s"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_secs(86400), "24h"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(Compact(d).to_string(), text);
            assert_eq!(parse_non_negative(text), Ok(d));
        }
    }
}
