//! Human-readable lines for lock replies: durations as people say them ("2.4s", "4m12s"),
//! instants in local time when a person is reading (a terminal), else as the server sent them
//! (RFC 3339, UTC). Scripts use `--json`, which prints the server's JSON as is; these strings
//! may change.

use crate::api::wire::{LeaseState, LockReply, LockRow, Message};
use crate::platform::local_time::local_time;
use std::fmt;
use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

/// How instants are shown: in the user's time zone (for a person at a terminal), or as the
/// server's RFC 3339 UTC text (for logs and scripts, which should not depend on our zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub local_time: bool,
}

impl Style {
    /// For lines printed on stdout.
    pub(crate) fn stdout() -> Style {
        Style {
            local_time: std::io::stdout().is_terminal(),
        }
    }

    /// For messages printed on stderr.
    pub fn stderr() -> Style {
        Style {
            local_time: std::io::stderr().is_terminal(),
        }
    }

    /// RFC 3339 as sent, whatever the output is (for tests).
    pub const UTC: Style = Style { local_time: false };
}

/// A duration as a person says it, rounded to what matters at its size: `0.6s`, `2.4s`, `42s`,
/// `4m12s`, `1h5m`. Never nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms < 9_950 {
            // Tenths of a second, rounded half up.
            let tenths = (ms + 50) / 100;
            return match tenths % 10 {
                0 => write!(f, "{}s", tenths / 10),
                t => write!(f, "{}.{t}s", tenths / 10),
            };
        }
        let secs = (ms + 500) / 1000;
        if secs < 3600 {
            let (m, s) = (secs / 60, secs % 60);
            return match (m, s) {
                (0, s) => write!(f, "{s}s"),
                (m, 0) => write!(f, "{m}m"),
                (m, s) => write!(f, "{m}m{s}s"),
            };
        }
        let minutes = (secs + 30) / 60;
        match (minutes / 60, minutes % 60) {
            (h, 0) => write!(f, "{h}h"),
            (h, m) => write!(f, "{h}h{m}m"),
        }
    }
}

/// `in 21s` or `3s ago`, from the server's signed `expires_in_ms`.
pub(crate) fn relative(ms: i64) -> String {
    let d = Human(Duration::from_millis(ms.unsigned_abs()));
    if ms >= 0 {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

/// An instant the server sent (RFC 3339, UTC): in local time for a person (`10:32:05` today,
/// `2026-11-25 10:32:05` on another day), else as sent.
pub(crate) fn instant(rfc3339: &str, style: Style) -> String {
    if !style.local_time {
        return rfc3339.to_owned();
    }
    let Some(local) = parse_rfc3339(rfc3339).and_then(local_time) else {
        return rfc3339.to_owned();
    };
    let today = local_time(SystemTime::now());
    let time = format!("{:02}:{:02}:{:02}", local.hour, local.minute, local.second);
    if today.is_some_and(|t| (t.year, t.month, t.day) == (local.year, local.month, local.day)) {
        time
    } else {
        format!(
            "{:04}-{:02}-{:02} {time}",
            local.year, local.month, local.day
        )
    }
}

/// Reads the server's `YYYY-MM-DDTHH:MM:SSZ` (fractional seconds are ignored).
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.splitn(3, ':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How long a grace period has left, from a refusal or status: the server's grace length
/// (`grace_until - expires_at`, both on its clock) less how long ago the lease expired.
fn grace_left(body: &LockReply) -> Option<Duration> {
    let until = parse_rfc3339(body.grace_until.as_deref()?)?;
    let expired = parse_rfc3339(body.expires_at.as_deref()?)?;
    let grace_ms = i64::try_from(until.duration_since(expired).ok()?.as_millis()).ok()?;
    let left = grace_ms + body.expires_in_ms?;
    Some(Duration::from_millis(u64::try_from(left.max(0)).ok()?))
}

/// `since 10:32:05`, when the reply says when the holder got the job.
fn since(body: &LockReply, style: Style) -> String {
    body.acquired_at
        .as_deref()
        .map_or(String::new(), |t| format!(" since {}", instant(t, style)))
}

/// Why `job` was refused, from a 409 reply: who holds it, since when, and until when.
pub fn denial(job: &str, body: &LockReply, style: Style) -> String {
    let holder = body.holder.as_deref().unwrap_or("another client");
    if body.in_grace() {
        let expired = body
            .expires_in_ms
            .map_or(String::new(), |ms| format!(" {}", relative(ms)));
        let left = grace_left(body).map_or(String::new(), |d| format!(", for {} more", Human(d)));
        format!(
            "{job} is in its grace period: the lease of {holder} expired{expired}, and only \
             {holder} may take it back{left}"
        )
    } else {
        let expires = body
            .expires_in_ms
            .map_or(String::new(), |ms| format!(" (expires {})", relative(ms)));
        format!("{job} is held by {holder}{}{expires}", since(body, style))
    }
}

/// A granted or renewed lease.
pub fn granted(job: &str, client: &str, body: &LockReply) -> String {
    let verb = match body.message {
        Some(Message::Renewed) => "renewed",
        _ => "acquired",
    };
    let mut line = format!("{verb} {job} as {client}");
    if let Some(token) = body.token {
        line.push_str(&format!(" (token {token})"));
    }
    if let Some(ms) = body.expires_in_ms {
        line.push_str(&format!(", expires {}", relative(ms)));
    }
    line
}

/// Whether a `GET /lock` reply shows the job as taken: held, or in a grace period that only
/// its holder may use. A lapsed lease (state `expired`) is free, as in `list`.
pub(crate) fn is_taken(body: &LockReply) -> bool {
    match body.state {
        Some(LeaseState::Held | LeaseState::Grace) => true,
        Some(LeaseState::Expired) => false,
        // An older server without `state`: its `is_expired` says it.
        Some(LeaseState::Unknown) | None => {
            body.holder.as_deref().is_some_and(|h| !h.is_empty()) && body.is_expired != Some(true)
        }
    }
}

/// `GET /lock` for one job.
pub fn status(job: &str, body: &LockReply, style: Style) -> String {
    let holder = match body.holder.as_deref() {
        None | Some("") => return format!("{job}: free"),
        Some(h) => h,
    };
    let token = body
        .token
        .map_or(String::new(), |t| format!(" (token {t})"));
    let when = body.expires_in_ms.map(relative).unwrap_or_default();
    if !is_taken(body) {
        return format!("{job}: free (the lease of {holder}{token} expired {when})");
    }
    if body.state == Some(LeaseState::Grace) {
        let left = grace_left(body).map_or(String::new(), |d| format!(" ends in {}", Human(d)));
        return format!(
            "{job}: the lease of {holder}{token} expired {when}; its grace period{left} (only \
             {holder} may take it until then)"
        );
    }
    let at = body
        .expires_at
        .as_deref()
        .map_or(String::new(), |t| format!(" ({})", instant(t, style)));
    format!(
        "{job}: held by {holder}{token}{}, expires {when}{at}",
        since(body, style)
    )
}

/// Whether a `GET /locks` row counts as held: the same rule as [`is_taken`].
pub fn row_is_taken(row: &LockRow) -> bool {
    matches!(row.state, LeaseState::Held | LeaseState::Grace)
}

/// `GET /locks` as an aligned table: the held jobs, or with `all` also the free ones whose
/// lapsed lease the server still remembers (shown as `free`).
pub fn table(rows: &[LockRow], all: bool, style: Style) -> String {
    let rows: Vec<&LockRow> = rows.iter().filter(|r| all || row_is_taken(r)).collect();
    if rows.is_empty() {
        return "no locks held\n".to_owned();
    }
    let header = ["JOB", "HOLDER", "TOKEN", "STATE", "SINCE", "EXPIRES"];
    let lines: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let state = if row_is_taken(r) {
                r.state.to_string()
            } else {
                "free".to_owned()
            };
            [
                r.job.clone(),
                r.holder.clone(),
                r.token.to_string(),
                state,
                instant(&r.acquired_at, style),
                relative(r.expires_in_ms),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    push(&header);
    for line in &lines {
        push(&line.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_round_to_what_matters_and_never_show_nanoseconds() {
        let h = |ms: u64| Human(Duration::from_millis(ms)).to_string();
        assert_eq!(h(0), "0s");
        assert_eq!(h(49), "0s");
        assert_eq!(h(598), "0.6s");
        assert_eq!(Human(Duration::from_nanos(598_602_636)).to_string(), "0.6s");
        assert_eq!(h(2_400), "2.4s");
        assert_eq!(h(3_000), "3s");
        assert_eq!(h(9_949), "9.9s");
        assert_eq!(h(9_950), "10s");
        assert_eq!(h(42_400), "42s");
        assert_eq!(h(59_600), "1m");
        assert_eq!(h(252_000), "4m12s");
        assert_eq!(h(3_599_400), "59m59s");
        assert_eq!(h(3_600_000), "1h");
        assert_eq!(h(3_900_000), "1h5m");
        assert_eq!(h(93_600_000), "26h");
    }

    #[test]
    fn relative_times_say_in_or_ago() {
        assert_eq!(relative(21_000), "in 21s");
        assert_eq!(relative(90_001), "in 1m30s");
        assert_eq!(relative(0), "in 0s");
        assert_eq!(relative(-3_000), "3s ago");
        assert_eq!(relative(-2_400), "2.4s ago");
    }

    #[test]
    fn rfc3339_from_the_server_parses_back() {
        let t = parse_rfc3339("2026-11-23T12:19:43Z").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_795_436_383);
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        for bad in [
            "",
            "2026-11-23 12:19:43",
            "2026-13-01T00:00:00Z",
            "x-1-1T0:0:0Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn instants_are_shown_as_sent_off_a_terminal_and_as_a_time_of_day_on_one() {
        let sent = "2026-11-23T12:19:43Z";
        assert_eq!(instant(sent, Style::UTC), sent);
        let local = instant(sent, Style { local_time: true });
        // Another day than today: the date, then the local time of day.
        assert!(local.starts_with("2026-11-2"), "{local}");
        assert!(local.ends_with(":43"), "{local}");
        assert!(!local.contains('T') && !local.contains('Z'), "{local}");
        assert_eq!(instant("garbage", Style { local_time: true }), "garbage");
    }

    fn held_by(holder: &str) -> LockReply {
        LockReply {
            holder: Some(holder.into()),
            token: Some(7),
            acquired_at: Some("2026-11-23T12:19:43Z".into()),
            expires_at: Some("2026-11-23T12:20:13Z".into()),
            expires_in_ms: Some(12_000),
            state: Some(LeaseState::Held),
            ..LockReply::default()
        }
    }

    #[test]
    fn denial_names_the_holder_and_since_when() {
        assert_eq!(
            denial("backup", &held_by("nas"), Style::UTC),
            "backup is held by nas since 2026-11-23T12:19:43Z (expires in 12s)"
        );
    }

    #[test]
    fn a_grace_denial_says_how_long_is_left_as_in_4s_not_a_timestamp() {
        let grace = LockReply {
            state: Some(LeaseState::Grace),
            expires_in_ms: Some(-1_000),
            grace_until: Some("2026-11-23T12:20:18Z".into()),
            ..held_by("nas")
        };
        assert_eq!(
            denial("backup", &grace, Style::UTC),
            "backup is in its grace period: the lease of nas expired 1s ago, and only nas may \
             take it back, for 4s more"
        );
        assert_eq!(
            status("backup", &grace, Style::UTC),
            "backup: the lease of nas (token 7) expired 1s ago; its grace period ends in 4s \
             (only nas may take it until then)"
        );
    }

    #[test]
    fn status_and_list_agree_that_a_lapsed_lease_is_free() {
        let lapsed = LockReply {
            state: Some(LeaseState::Expired),
            expires_in_ms: Some(-180_000),
            ..held_by("nas")
        };
        assert!(!is_taken(&lapsed));
        assert_eq!(
            status("backup", &lapsed, Style::UTC),
            "backup: free (the lease of nas (token 7) expired 3m ago)"
        );
        assert!(is_taken(&held_by("nas")));
        assert_eq!(
            status("backup", &held_by("nas"), Style::UTC),
            "backup: held by nas (token 7) since 2026-11-23T12:19:43Z, expires in 12s \
             (2026-11-23T12:20:13Z)"
        );
        let free = LockReply {
            holder: Some(String::new()),
            is_expired: Some(true),
            ..LockReply::default()
        };
        assert!(!is_taken(&free));
        assert_eq!(status("backup", &free, Style::UTC), "backup: free");

        let row = |job: &str, state| LockRow {
            job: job.into(),
            holder: "nas".into(),
            token: 3,
            acquired_at: "2026-11-23T12:19:43Z".into(),
            expires_at: String::new(),
            expires_in_ms: 5_000,
            state,
            grace_until: None,
        };
        let rows = [row("a", LeaseState::Held), row("b", LeaseState::Expired)];
        let held = table(&rows, false, Style::UTC);
        assert!(held.contains("\na ") && !held.contains("\nb "), "{held}");
        let all = table(&rows, true, Style::UTC);
        assert!(all.contains("free"), "{all}");
        assert_eq!(
            table(&rows[1..], false, Style::UTC),
            "no locks held\n",
            "a lapsed lease alone is not held"
        );
    }

    #[test]
    fn table_aligns_columns() {
        let row = |job: &str, holder: &str| LockRow {
            job: job.into(),
            holder: holder.into(),
            token: 3,
            acquired_at: "2026-11-23T12:19:43Z".into(),
            expires_at: String::new(),
            expires_in_ms: 5_000,
            state: LeaseState::Held,
            grace_until: None,
        };
        let t = table(&[row("a", "laptop"), row("backup", "n")], false, Style::UTC);
        assert_eq!(
            t,
            "JOB     HOLDER  TOKEN  STATE  SINCE                 EXPIRES\n\
             a       laptop  3      held   2026-11-23T12:19:43Z  in 5s\n\
             backup  n       3      held   2026-11-23T12:19:43Z  in 5s\n"
        );
        assert_eq!(table(&[], false, Style::UTC), "no locks held\n");
    }
}
