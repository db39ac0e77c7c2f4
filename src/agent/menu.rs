//! The tray menu as data: a pure function from (server status, job snapshot, now) to the text
//! of every entry, the icon, the tooltip and when the text next changes. No GUI types here, so
//! the whole menu is unit-tested without a display.
//!
//! Names are shown literally: `&` is doubled because muda reads a single `&` as a mnemonic
//! marker, and long names are cut with an ellipsis so the menu keeps a sane width.

use crate::config::Problem;
use crate::engine::{JobLease, LeaseState};
use crate::time::{Mono, Now};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Longest job or holder name shown before it is cut with `…` (in characters).
pub const MAX_NAME_CHARS: usize = 32;

/// Most jobs the menu lists (the first by name); the rest are counted in one note. A menu of
/// thousands of submenus took the agent over a gigabyte, and their countdowns kept it redrawing.
pub const MAX_JOB_ENTRIES: usize = 20;

/// Where the server stands, as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listening {
    /// Not bound yet (the first instant after start).
    Starting,
    /// Bound; the addresses other devices should use.
    On(Vec<SocketAddr>),
    /// Binding failed; the reason, in one line.
    Failed(String),
    /// The config file cannot be used, so nothing is served until it is fixed. `reloads`:
    /// the file is watched, and saving it fixed starts the server (else: restart foolock).
    BadConfig { problem: Problem, reloads: bool },
}

/// Which tray icon to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IconKind {
    Idle,
    Held,
    Error,
}

/// Everything the tray shows, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuModel {
    /// The disabled first entry: where to point clients, or why the server is not running.
    pub header: String,
    /// One entry per job that is held or in grace, sorted by job name, at most
    /// [`MAX_JOB_ENTRIES`] of them.
    pub jobs: Vec<JobEntry>,
    /// Disabled lines shown after the jobs: "No locks held" when there are none, how many
    /// more are held than listed, or what is wrong with the config file.
    pub notes: Vec<String>,
    pub icon: IconKind,
    pub tooltip: String,
    /// How long until some listed label changes (a countdown ticks or a lease lapses); `None`
    /// when nothing will change without a new event, so the UI can sleep indefinitely. Jobs
    /// that are only counted in a note do not wake it.
    pub next_change: Option<Duration>,
}

/// One job's entry and its submenu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEntry {
    /// The job's real name, for "Force release" (never shown: it is not escaped).
    pub job: String,
    /// e.g. `backup — laptop1 · 25s left`
    pub label: String,
    /// e.g. `Held since 10:32:05`
    pub since: String,
    /// e.g. `Token 42`
    pub token: String,
}

/// Shown instead of job entries when no job is held.
pub const NO_LOCKS: &str = "No locks held";

/// The header while the config file has an error.
pub const BAD_CONFIG: &str = "Not serving: the config file has an error";

/// The last line under a config error: what the user does next.
pub const FIX_CONFIG: &str = "Fix it and save it: foolock then starts serving";
/// The same where the file cannot be watched.
pub const FIX_CONFIG_RESTART: &str = "Fix it, then quit and start foolock again";

/// Longest note line (a path, an error message) before it is cut with `…`, in characters.
pub const MAX_NOTE_CHARS: usize = 90;

/// Builds the menu for `jobs` as of `now`. `time_of_day` renders a wall-clock instant in the
/// user's local time (e.g. `10:32:05`); it is a parameter so tests need no time zone.
pub fn build(
    listening: &Listening,
    jobs: &[JobLease],
    now: &Now,
    time_of_day: &dyn Fn(SystemTime) -> String,
) -> MenuModel {
    let mut shown: Vec<(&JobLease, Mono, bool)> = jobs
        .iter()
        .filter_map(|j| match j.lease.state(now.mono) {
            LeaseState::Held => Some((j, j.lease.expires, true)),
            LeaseState::Grace => Some((j, j.lease.grace_until, false)),
            LeaseState::Expired => None,
        })
        .collect();
    let live = shown.len();
    let by_name = |a: &(&JobLease, Mono, bool), b: &(&JobLease, Mono, bool)| a.0.job.cmp(&b.0.job);
    if live > MAX_JOB_ENTRIES {
        // The first MAX_JOB_ENTRIES by name, without sorting all of them.
        shown.select_nth_unstable_by(MAX_JOB_ENTRIES - 1, by_name);
        shown.truncate(MAX_JOB_ENTRIES);
    }
    shown.sort_by(by_name);

    let entries: Vec<JobEntry> = shown
        .iter()
        .map(|(j, deadline, held)| {
            let left = now.mono.until(*deadline);
            let status = if *held {
                format!("{} left", countdown(left))
            } else {
                format!("expired, grace {}", countdown(left))
            };
            JobEntry {
                job: j.job.to_string(),
                label: format!(
                    "{} — {} · {status}",
                    display_name(&j.job),
                    display_name(&j.lease.holder)
                ),
                since: format!("Held since {}", time_of_day(j.lease.acquired_at)),
                token: format!("Token {}", j.lease.token),
            }
        })
        .collect();

    // Labels show whole seconds rounded up, so each changes when its remaining time crosses
    // a whole second; wake exactly then rather than on a free-running 1 s tick.
    let next_change = shown
        .iter()
        .map(|(_, deadline, _)| until_next_second_boundary(now.mono.until(*deadline)))
        .min();

    let notes = match listening {
        Listening::BadConfig { problem, reloads } => config_notes(problem, *reloads),
        _ if entries.is_empty() => vec![NO_LOCKS.to_owned()],
        _ if live > MAX_JOB_ENTRIES => vec![more_jobs(live - MAX_JOB_ENTRIES)],
        _ => Vec::new(),
    };
    let (header, icon, tooltip) = match listening {
        Listening::BadConfig { .. } => (
            BAD_CONFIG.to_owned(),
            IconKind::Error,
            "foolock — not running: the config file has an error".to_owned(),
        ),
        Listening::Failed(why) => (
            why.clone(),
            IconKind::Error,
            format!("foolock — not running: {why}"),
        ),
        Listening::Starting => (
            "Starting…".to_owned(),
            IconKind::Idle,
            "foolock — starting".to_owned(),
        ),
        Listening::On(addrs) => {
            let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            let icon = if live == 0 {
                IconKind::Idle
            } else {
                IconKind::Held
            };
            let held = match live {
                0 => "no jobs held".to_owned(),
                1 => "1 job held".to_owned(),
                n => format!("{n} jobs held"),
            };
            (
                format!("Listening on {}", list.join(", ")),
                icon,
                format!("foolock — {held}"),
            )
        }
    };

    MenuModel {
        header,
        jobs: entries,
        notes,
        icon,
        tooltip,
        next_change,
    }
}

/// The note for jobs held beyond those listed.
fn more_jobs(unlisted: usize) -> String {
    format!("…and {unlisted} more — open the status page")
}

/// The lines saying what is wrong with the config file: the file (its end, if the path is
/// long), where in it and what, and what to do.
fn config_notes(problem: &Problem, reloads: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(path) = &problem.path {
        notes.push(literal(&cut_start(&path.display().to_string())));
    }
    let what = match problem.location() {
        Some(at) => format!("{at}: {}", problem.problem),
        None => problem.problem.clone(),
    };
    notes.push(literal(&cut_end(&what, MAX_NOTE_CHARS)));
    notes.push(
        if reloads {
            FIX_CONFIG
        } else {
            FIX_CONFIG_RESTART
        }
        .to_owned(),
    );
    notes
}

/// `text` cut to `max` characters with a trailing `…`.
fn cut_end(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `text` cut to [`MAX_NOTE_CHARS`] from the left (`…` first): a path's end says the most.
fn cut_start(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_NOTE_CHARS {
        return text.to_owned();
    }
    let kept: String = text.chars().skip(count - (MAX_NOTE_CHARS - 1)).collect();
    format!("…{kept}")
}

/// Text shown literally by muda, which reads a single `&` as a mnemonic marker.
fn literal(text: &str) -> String {
    text.replace('&', "&&")
}

/// A remaining time as the menu shows it, rounded up to whole seconds so a held lease never
/// reads "0s left": `25s`, `4m 05s`, `1h 02m`.
pub fn countdown(left: Duration) -> String {
    let secs = ceil_secs(left);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Time until `left` drops to the next lower whole second (what `countdown` shows changes).
fn until_next_second_boundary(left: Duration) -> Duration {
    let frac = Duration::from_nanos(u64::from(left.subsec_nanos()));
    if left.is_zero() {
        Duration::ZERO
    } else if frac.is_zero() {
        Duration::from_secs(1)
    } else {
        frac
    }
}

/// A name as a menu label: literal (`&` doubled for muda), and cut to [`MAX_NAME_CHARS`].
pub fn display_name(name: &str) -> String {
    literal(&cut_end(name, MAX_NAME_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lease;

    const T0: Duration = Duration::from_secs(1_000);

    fn now_at(secs_after_t0: f64) -> Now {
        let since = Duration::from_secs_f64(secs_after_t0);
        Now {
            mono: Mono::from_duration(T0 + since),
            awake: T0 + since,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(36_000) + since,
        }
    }

    /// A lease granted at t0 (wall 10:00:00 UTC) for `ttl` with `grace`.
    fn job(name: &str, holder: &str, token: u64, ttl: u64, grace: u64) -> JobLease {
        let expires = Mono::from_duration(T0 + Duration::from_secs(ttl));
        JobLease {
            job: name.into(),
            lease: Lease {
                holder: holder.into(),
                run: None,
                token,
                ttl: Duration::from_secs(ttl),
                acquired_at: SystemTime::UNIX_EPOCH + Duration::from_secs(36_000),
                expires,
                grace_until: expires + Duration::from_secs(grace),
            },
        }
    }

    fn utc(t: SystemTime) -> String {
        let s = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }

    fn lan() -> Listening {
        Listening::On(vec!["192.168.1.20:8080".parse().unwrap()])
    }

    #[test]
    fn header_names_the_lan_address_to_point_clients_at() {
        let m = build(&lan(), &[], &now_at(0.0), &utc);
        assert_eq!(m.header, "Listening on 192.168.1.20:8080");
    }

    #[test]
    fn no_jobs_means_idle_icon_and_nothing_ticks() {
        let m = build(&lan(), &[], &now_at(0.0), &utc);
        assert!(m.jobs.is_empty());
        assert_eq!(m.icon, IconKind::Idle);
        assert_eq!(m.tooltip, "foolock — no jobs held");
        assert_eq!(m.next_change, None);
    }

    #[test]
    fn held_job_shows_holder_countdown_since_and_token() {
        let m = build(
            &lan(),
            &[job("backup", "laptop1", 42, 30, 5)],
            &now_at(5.0),
            &utc,
        );
        assert_eq!(
            m.jobs,
            vec![JobEntry {
                job: "backup".into(),
                label: "backup — laptop1 · 25s left".into(),
                since: "Held since 10:00:00".into(),
                token: "Token 42".into(),
            }]
        );
        assert_eq!(m.icon, IconKind::Held);
        assert_eq!(m.tooltip, "foolock — 1 job held");
    }

    #[test]
    fn countdown_rounds_up_and_changes_on_the_second_boundary() {
        let jobs = [job("backup", "laptop1", 1, 30, 5)];
        let m = build(&lan(), &jobs, &now_at(4.75), &utc);
        assert_eq!(m.jobs[0].label, "backup — laptop1 · 26s left");
        assert_eq!(m.next_change, Some(Duration::from_millis(250)));
        let m = build(&lan(), &jobs, &now_at(5.0), &utc);
        assert_eq!(m.jobs[0].label, "backup — laptop1 · 25s left");
        assert_eq!(m.next_change, Some(Duration::from_secs(1)));
        let m = build(&lan(), &jobs, &now_at(29.9), &utc);
        assert_eq!(m.jobs[0].label, "backup — laptop1 · 1s left");
    }

    #[test]
    fn job_in_grace_says_expired_and_counts_down_the_grace() {
        let m = build(
            &lan(),
            &[job("backup", "laptop1", 1, 30, 5)],
            &now_at(32.0),
            &utc,
        );
        assert_eq!(m.jobs[0].label, "backup — laptop1 · expired, grace 3s");
        assert_eq!(m.icon, IconKind::Held);
    }

    #[test]
    fn lapsed_job_is_not_shown_and_ticking_stops() {
        let m = build(
            &lan(),
            &[job("backup", "laptop1", 1, 30, 5)],
            &now_at(35.0),
            &utc,
        );
        assert!(m.jobs.is_empty());
        assert_eq!(m.next_change, None);
        assert_eq!(m.icon, IconKind::Idle);
    }

    #[test]
    fn jobs_are_sorted_by_name_and_counted_in_the_tooltip() {
        let m = build(
            &lan(),
            &[
                job("sync", "phone", 2, 60, 0),
                job("backup", "laptop1", 1, 30, 5),
                job("old", "x", 3, 1, 0),
            ],
            &now_at(2.0),
            &utc,
        );
        let names: Vec<&str> = m.jobs.iter().map(|j| j.job.as_str()).collect();
        assert_eq!(names, ["backup", "sync"]);
        assert_eq!(m.tooltip, "foolock — 2 jobs held");
    }

    #[test]
    fn many_jobs_list_the_first_by_name_and_count_the_rest() {
        let many: Vec<JobLease> = (0..MAX_JOB_ENTRIES + 5)
            .rev()
            .map(|i| job(&format!("job{i:03}"), "h", i as u64, 30, 5))
            .collect();
        let m = build(&lan(), &many, &now_at(0.25), &utc);
        let names: Vec<&str> = m.jobs.iter().map(|j| j.job.as_str()).collect();
        let first: Vec<String> = (0..MAX_JOB_ENTRIES).map(|i| format!("job{i:03}")).collect();
        assert_eq!(names, first);
        assert_eq!(m.notes, ["…and 5 more — open the status page"]);
        assert_eq!(
            m.tooltip,
            format!("foolock — {} jobs held", MAX_JOB_ENTRIES + 5)
        );
        let few = build(&lan(), &many[5..], &now_at(0.25), &utc);
        assert_eq!(few.jobs.len(), MAX_JOB_ENTRIES);
        assert!(few.notes.is_empty());
    }

    #[test]
    fn only_listed_jobs_schedule_a_redraw() {
        // The listed jobs' countdowns change on whole seconds; an unlisted one, granted a
        // quarter second later, would change a quarter second earlier, and must not wake the UI.
        let mut jobs: Vec<JobLease> = (0..MAX_JOB_ENTRIES)
            .map(|i| job(&format!("a{i:02}"), "h", 1, 30, 5))
            .collect();
        let mut late = job("z", "h", 2, 30, 5);
        late.lease.expires = late.lease.expires - Duration::from_millis(250);
        late.lease.grace_until = late.lease.grace_until - Duration::from_millis(250);
        jobs.push(late);
        let m = build(&lan(), &jobs, &now_at(5.5), &utc);
        assert!(m.jobs.iter().all(|j| j.job != "z"));
        assert_eq!(m.next_change, Some(Duration::from_millis(500)));
    }

    #[test]
    fn ampersands_are_doubled_and_long_names_cut_with_an_ellipsis() {
        let long = "a".repeat(40);
        let m = build(&lan(), &[job("R&D", &long, 1, 30, 0)], &now_at(0.0), &utc);
        let cut = format!("{}…", "a".repeat(MAX_NAME_CHARS - 1));
        assert_eq!(m.jobs[0].label, format!("R&&D — {cut} · 30s left"));
        assert_eq!(m.jobs[0].job, "R&D");
    }

    #[test]
    fn name_of_exactly_the_limit_is_not_cut() {
        let name = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(display_name(&name), name);
    }

    #[test]
    fn bind_failure_shows_in_header_icon_and_tooltip() {
        let why = "Cannot listen on 0.0.0.0:8080: address in use".to_owned();
        let m = build(&Listening::Failed(why.clone()), &[], &now_at(0.0), &utc);
        assert_eq!(m.header, why);
        assert_eq!(m.icon, IconKind::Error);
        assert!(m.tooltip.contains("address in use"));
    }

    fn bad_config(path: &str, line: Option<usize>, key: Option<&str>, what: &str) -> Listening {
        Listening::BadConfig {
            problem: Problem {
                path: Some(path.into()),
                line,
                key: key.map(str::to_owned),
                problem: what.to_owned(),
            },
            reloads: true,
        }
    }

    #[test]
    fn a_config_error_shows_file_line_key_and_what_to_do_instead_of_jobs() {
        let listening = bad_config(
            "/home/ann/.config/foolock/config.toml",
            Some(2),
            Some("grace"),
            "unknown field `grace`",
        );
        let m = build(&listening, &[], &now_at(0.0), &utc);
        assert_eq!(m.header, BAD_CONFIG);
        assert_eq!(m.icon, IconKind::Error);
        assert_eq!(
            m.tooltip,
            "foolock — not running: the config file has an error"
        );
        assert_eq!(
            m.notes,
            [
                "/home/ann/.config/foolock/config.toml",
                "line 2, key `grace`: unknown field `grace`",
                FIX_CONFIG,
            ]
        );
        assert!(m.jobs.is_empty() && m.next_change.is_none());

        let Listening::BadConfig { problem, .. } = listening else {
            unreachable!()
        };
        let unwatched = Listening::BadConfig {
            problem,
            reloads: false,
        };
        let m = build(&unwatched, &[], &now_at(0.0), &utc);
        assert_eq!(m.notes.last().map(String::as_str), Some(FIX_CONFIG_RESTART));
    }

    #[test]
    fn long_config_errors_are_cut_keeping_the_end_of_the_path() {
        let dir = "d".repeat(100);
        let what = format!(
            "unknown field `R&D`, expected one of {}",
            "`x`, ".repeat(40)
        );
        let m = build(
            &bad_config(&format!("/{dir}/config.toml"), None, None, &what),
            &[],
            &now_at(0.0),
            &utc,
        );
        assert!(m.notes[0].starts_with('…') && m.notes[0].ends_with("d/config.toml"));
        assert_eq!(m.notes[0].chars().count(), MAX_NOTE_CHARS);
        assert!(m.notes[1].starts_with("unknown field `R&&D`, expected one of `x`"));
        assert!(m.notes[1].ends_with('…'), "{}", m.notes[1]);
    }

    #[test]
    fn no_locks_held_is_the_note_when_serving_nothing() {
        let m = build(&lan(), &[], &now_at(0.0), &utc);
        assert_eq!(m.notes, [NO_LOCKS]);
        let m = build(&lan(), &[job("backup", "l", 1, 30, 0)], &now_at(0.0), &utc);
        assert!(m.notes.is_empty());
    }

    #[test]
    fn long_countdowns_use_minutes_and_hours() {
        assert_eq!(countdown(Duration::from_secs(59)), "59s");
        assert_eq!(countdown(Duration::from_secs(245)), "4m 05s");
        assert_eq!(countdown(Duration::from_secs(3725)), "1h 02m");
        assert_eq!(countdown(Duration::from_millis(1)), "1s");
    }
}
