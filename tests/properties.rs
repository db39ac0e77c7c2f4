//! Property tests on stable for the inputs foolock takes from the network and from files:
//! the same properties the fuzz targets check under libFuzzer (`fuzz/`), here driven by
//! generated inputs shaped like real ones.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use checks::{Reference, go_reference};
use proptest::prelude::*;
use std::time::Duration;

/// A number as a Go duration may spell it: digits, maybe a fraction, sometimes neither.
fn number() -> impl Strategy<Value = String> {
    ("[0-9]{0,21}", prop::option::of("[0-9]{0,21}")).prop_map(|(whole, fraction)| match fraction {
        Some(f) => format!("{whole}.{f}"),
        None => whole,
    })
}

fn unit() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "ns", "us", "µs", "μs", "ms", "s", "m", "h", "", "S", "sec", "d", "mss", "u", "µ",
    ])
}

/// Strings close to Go durations: a sign, numbers with units, and now and then a stray
/// character.
fn duration_like() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "", "-", "+", "--", " "]),
        prop::collection::vec((number(), unit()), 1..4),
        prop::option::weighted(0.1, "[ .0-9a-zµ+-]"),
    )
        .prop_map(|(sign, parts, stray)| {
            let mut s = sign.to_owned();
            for (n, u) in parts {
                s.push_str(&n);
                s.push_str(u);
            }
            if let Some(c) = stray {
                s.push_str(&c);
            }
            s
        })
}

fn query_like() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["job", "client", "ttl", "wait", "x", "", "jo%62"]);
    let value = "([a-zA-Z0-9 +&=/-]|%[0-9a-fA-F]{0,2}|\\PC){0,12}";
    prop::collection::vec((key, prop::option::of(value)), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn config_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        (
            prop::sample::select(vec![
                "default_ttl",
                "grace_period",
                "max_ttl",
                "retention",
                "max_wait"
            ]),
            duration_like()
        )
            .prop_map(|(k, v)| format!("{k} = {v:?}")),
        "[0-9]{1,6}".prop_map(|n| format!("max_jobs = {n}")),
        "[0-9.:]{0,24}".prop_map(|a| format!("listen = {a:?}")),
        "\\PC{0,16}".prop_map(|p| format!("state_dir = {p:?}")),
        "\\PC{0,16}".prop_map(|s| format!("server = {s:?}")),
        "\\PC{0,16}".prop_map(|s| format!("client = {s:?}")),
        "\\PC{0,16}".prop_map(|s| format!("auth_token = {s:?}")),
        prop::sample::select(vec!["[notifications]", "acquire = true", "grace = 1", "x"])
            .prop_map(String::from),
    ];
    prop::collection::vec(line, 0..6).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn go_durations_agree_with_the_reference(input in duration_like()) {
        checks::check_go_duration(&input);
    }

    #[test]
    fn any_string_is_a_go_duration_or_refused_without_panicking(input in "\\PC{0,24}") {
        checks::check_go_duration(&input);
    }

    #[test]
    fn every_displayed_duration_reads_back(nanos in 0..=i64::MAX as u64) {
        let d = Duration::from_nanos(nanos);
        let shown = foolock::time::Compact(d).to_string();
        prop_assert_eq!(foolock::time::parse_non_negative(&shown), Ok(d), "shown as {}", shown);
    }

    #[test]
    fn queries_parse_or_are_refused_and_names_round_trip(raw in query_like()) {
        checks::check_query(&raw);
    }

    #[test]
    fn any_query_string_parses_or_is_refused(raw in "\\PC{0,40}") {
        checks::check_query(&raw);
    }

    #[test]
    fn config_files_parse_or_are_refused_and_read_back_as_shown(text in config_like()) {
        checks::check_config(&text);
    }
}

#[test]
fn the_reference_reads_go_s_documented_examples() {
    let exact = |ns: i128| Reference::Valid { low: ns, high: ns };
    assert_eq!(go_reference("300ms"), exact(300_000_000));
    assert_eq!(go_reference("2h45m"), exact(9_900_000_000_000));
    assert_eq!(
        go_reference("-9223372036854775808ns"),
        exact(i64::MIN.into())
    );
    // A fraction is computed in float64 by Go: a nanosecond either way.
    assert_eq!(
        go_reference("-1.5h"),
        Reference::Valid {
            low: -5_400_000_000_001,
            high: -5_399_999_999_999,
        }
    );
    assert_eq!(go_reference("0"), Reference::Valid { low: 0, high: 0 });
    for bad in [
        "",
        "5",
        "1d",
        ".s",
        "--1s",
        "1.2.3s",
        "9223372036854775808ns",
    ] {
        assert_eq!(go_reference(bad), Reference::Invalid, "{bad:?}");
    }
}

/// A valid state file as the server writes it, with odd but well-formed values.
fn state_file_like() -> impl Strategy<Value = Vec<u8>> {
    let lease = (
        "\\PC{0,8}",
        "\\PC{0,8}",
        any::<u64>(),
        prop_oneof![Just(0u64), 1..100_000u64, any::<u64>()],
        any::<u64>(),
        any::<u64>(),
    );
    (
        any::<u64>(),
        prop::collection::vec(lease, 0..4),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(last_token, leases, until, left)| {
            let leases: Vec<_> = leases
                .into_iter()
                .map(|(job, holder, token, ttl, acquired, expires)| {
                    serde_json::json!({
                        "job": job, "holder": holder, "token": token, "ttl_ms": ttl,
                        "acquired_at_ms": acquired, "expires_at_ms": expires,
                    })
                })
                .collect();
            let mut state = serde_json::json!({ "last_token": last_token, "leases": leases });
            if let Some(until) = until {
                state["quarantine_until_ms"] = until.into();
            }
            if let Some(left) = left {
                state["quarantine_left_ms"] = left.into();
            }
            serde_json::to_vec(&state).unwrap()
        })
}

proptest! {
    // Each case starts a store on disk (with an fsync), so fewer of them.
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn any_state_file_loads_or_is_moved_aside_into_a_quarantine(
        file in state_file_like(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let mut file = file;
        for (at, byte) in flips {
            let i = at.index(file.len());
            file[i] = byte;
        }
        checks::check_state_file(&file);
    }

    #[test]
    fn random_bytes_as_a_state_file_never_stop_the_start(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        checks::check_state_file(&bytes);
    }
}
