//! The properties the fuzz targets check, shared with the property tests on stable
//! (`tests/properties.rs` includes this file), so both test exactly the same thing.
//!
//! Each `check_*` takes arbitrary input and panics only when foolock misbehaves on it: a panic
//! inside foolock, or an answer that breaks the stated property.

use foolock::api::Params;
use foolock::config::Config;
use foolock::engine::validate_name;
use foolock::time::{Compact, parse_go_duration, parse_non_negative};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::path::Path;
use std::time::Duration;

/// Query strings: parsing never panics, a job or client it yields is a valid name, and names
/// encoded as a client encodes them come back unchanged.
pub fn check_query(raw: &str) {
    if let Ok(params) = Params::parse(Some(raw)) {
        if let Ok(job) = params.job() {
            assert!(validate_name(job).is_ok(), "{raw:?} gave job {job:?}");
        }
        if let Ok(client) = params.client() {
            assert!(
                validate_name(client).is_ok(),
                "{raw:?} gave client {client:?}"
            );
        }
    }
    // Split the input into two names and send them as a client would.
    let (job, client) = raw.split_at(
        raw.char_indices()
            .nth(raw.chars().count() / 2)
            .map_or(0, |(i, _)| i),
    );
    let query = format!(
        "ttl=1s&job={}&client={}&job=ignored",
        utf8_percent_encode(job, NON_ALPHANUMERIC),
        utf8_percent_encode(client, NON_ALPHANUMERIC),
    );
    let params = Params::parse(Some(&query)).expect("an encoded query always parses");
    if validate_name(job).is_ok() {
        assert_eq!(params.job().ok(), Some(job), "{query}");
    }
    if validate_name(client).is_ok() {
        assert_eq!(params.client().ok(), Some(client), "{query}");
    }
}

/// Go durations: the parser never panics and agrees with [`go_reference`], an independent
/// reading of Go's documented grammar (`time.ParseDuration`) in exact arithmetic; and every
/// duration the config shows reads back as itself.
pub fn check_go_duration(input: &str) {
    let ours = parse_go_duration(input);
    match (go_reference(input), &ours) {
        (Reference::Invalid, Ok(v)) => panic!("{input:?}: Go rejects it, we read {v:?}"),
        (Reference::Valid { low, high }, Ok(v)) => assert!(
            low <= i128::from(v.0) && i128::from(v.0) <= high,
            "{input:?}: we read {}ns, Go reads {low}..={high}ns",
            v.0
        ),
        (Reference::Valid { low, high }, Err(e)) => assert!(
            // Only a value at the edge of the range may go either way (Go rounds in float64).
            high > i128::from(i64::MAX) || low < i128::from(i64::MIN),
            "{input:?}: Go reads {low}..={high}ns, we refused: {e}"
        ),
        (Reference::Invalid, Err(_)) => {}
    }
    if let Ok(v) = ours
        && v.0 >= 0
    {
        let d = Duration::from_nanos(v.0 as u64);
        let shown = Compact(d).to_string();
        assert_eq!(
            parse_non_negative(&shown),
            Ok(d),
            "{input:?} shown as {shown:?}"
        );
    }
}

/// What Go's `time.ParseDuration` makes of a string: its value to within the float64 rounding
/// Go uses for fractions (a nanosecond per fraction), or a refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Reference {
    Valid { low: i128, high: i128 },
    Invalid,
}

/// "A duration string is a possibly signed sequence of decimal numbers, each with optional
/// fraction and a unit suffix, such as "300ms", "-1.5h" or "2h45m". Valid time units are
/// "ns", "us" (or "µs"), "ms", "s", "m", "h"." A bare "0" needs no unit. The result must fit
/// an int64 of nanoseconds.
pub fn go_reference(input: &str) -> Reference {
    let (negative, rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Reference::Valid { low: 0, high: 0 };
    }
    if rest.is_empty() {
        return Reference::Invalid;
    }
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut chars = rest;
    let (mut low, mut high) = (0i128, 0i128);
    // Anything above this has overflowed, however the rounding went.
    const CAP: i128 = 1 << 64;
    while !chars.is_empty() {
        let number_len = chars.find(|c: char| !is_number(c)).unwrap_or(chars.len());
        let (number, after) = chars.split_at(number_len);
        let unit_len = after.find(is_number).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        chars = after;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
            return Reference::Invalid;
        }
        let nanos: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Reference::Invalid,
        };
        // Go refuses an integer part above 2^63 whatever its unit.
        let whole = whole.trim_start_matches('0');
        if whole.len() > 19 {
            return Reference::Invalid;
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().unwrap()
        };
        if whole > 1 << 63 {
            return Reference::Invalid;
        }
        // Digits past the 18th change the value by far less than a nanosecond.
        let kept = &fraction[..fraction.len().min(18)];
        let (numerator, scale) = if kept.is_empty() {
            (0, 1)
        } else {
            (kept.parse::<i128>().unwrap(), 10i128.pow(kept.len() as u32))
        };
        let exact = whole * nanos + numerator * nanos / scale;
        // Go computes a fraction in float64: its result may be a nanosecond either side.
        let slack = i128::from(numerator > 0);
        low = (low + exact - slack).min(CAP);
        high = (high + exact + slack).min(CAP);
        if low > 1 << 63 {
            return Reference::Invalid;
        }
    }
    let limit = if negative { 1 << 63 } else { (1 << 63) - 1 };
    if low > limit {
        return Reference::Invalid;
    }
    let low = low.max(0);
    if negative {
        Reference::Valid {
            low: -high,
            high: -low,
        }
    } else {
        Reference::Valid { low, high }
    }
}

/// The TOML config: parsing never panics; what parses is valid, and what `foolock config
/// check` prints for it reads back as the same settings.
pub fn check_config(text: &str) {
    let path = Path::new("fuzz.toml");
    let Ok(mut config) = Config::parse(text, path) else {
        return;
    };
    assert!(config.validate().is_ok(), "{text:?}");
    // The token is printed hidden, so it cannot read back.
    config.auth_token = None;
    let shown = config.to_string();
    let again = Config::parse(&shown, path)
        .unwrap_or_else(|e| panic!("{text:?} is shown as {shown:?}, which does not parse: {e}"));
    assert_eq!(again, config, "{text:?} is shown as {shown:?}");
}

/// The state file loader: whatever `state.json` holds, the server starts: it loads the table,
/// or moves the file aside (intact) and starts in quarantine. Nothing panics, and the table
/// it starts with keeps working.
pub fn check_state_file(bytes: &[u8]) {
    use foolock::engine::{Engine, Found, Restored, Rules};
    use foolock::store::{Batching, STATE_FILE, Store};
    use foolock::time::{Clock, SystemClock};

    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join(STATE_FILE);
    std::fs::write(&path, bytes).expect("write the state file");
    let (store, loaded) = Store::open(dir.path(), Batching::default())
        .unwrap_or_else(|e| panic!("a state file stopped the start: {e}"));
    let now = SystemClock.now();
    let lost = matches!(loaded.found, Found::Lost(_));
    let (mut engine, restored) = Engine::after_restart(Rules::default(), loaded.found, now);
    if lost {
        assert!(
            matches!(restored, Restored::Quarantined { .. }),
            "{restored:?}"
        );
        assert!(!path.exists(), "a lost state file is moved aside");
        let moved = loaded
            .lost
            .and_then(|l| l.moved_to)
            .expect("where it was moved");
        assert_eq!(std::fs::read(moved).expect("the moved file"), bytes);
    } else {
        assert!(path.exists());
    }
    let _ = engine.acquire("fuzz", "fuzzer", Duration::from_secs(1), now);
    let _ = engine.list(now);
    let saved = engine.export(now);
    assert!(saved.leases.iter().all(|l| l.token <= saved.last_token));
    drop(store);
}
