//! Human-readable lines for lock replies. Scripts use `--json`, which prints the server's
//! JSON as is; these strings may change.

use crate::api::wire::{LeaseState, LockReply, LockRow, Message};
use crate::time::Compact;
use std::time::Duration;

/// `in 21s` or `3s ago`, from the server's signed `expires_in_ms`.
pub fn relative(ms: i64) -> String {
    let secs = |ms: u64| Compact(Duration::from_secs(ms.div_ceil(1000)));
    if ms >= 0 {
        format!("in {}", secs(ms as u64))
    } else {
        format!("{} ago", secs(ms.unsigned_abs()))
    }
}

/// Why `job` was refused, from a 409 reply: who holds it and until when.
pub fn denial(job: &str, body: &LockReply) -> String {
    let holder = body.holder.as_deref().unwrap_or("another client");
    let expires = body.expires_in_ms.map(relative);
    if body.in_grace() {
        let until = body
            .grace_until
            .as_deref()
            .map_or(String::new(), |t| format!(" until {t}"));
        format!(
            "{job} is in its grace period: the lease of {holder} expired{}, and only {holder} \
             may take it back{until}",
            expires.map_or(String::new(), |e| format!(" {e}"))
        )
    } else {
        format!(
            "{job} is held by {holder}{}",
            expires.map_or(String::new(), |e| format!(" (expires {e})"))
        )
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

/// `GET /lock` for one job.
pub fn status(job: &str, body: &LockReply) -> String {
    let holder = match body.holder.as_deref() {
        None | Some("") => return format!("{job}: free"),
        Some(h) => h,
    };
    let token = body
        .token
        .map_or(String::new(), |t| format!(" (token {t})"));
    let at = body
        .expires_at
        .as_deref()
        .map_or(String::new(), |t| format!(" at {t}"));
    let when = body.expires_in_ms.map(relative).unwrap_or_default();
    match body.state {
        Some(LeaseState::Grace) => format!(
            "{job}: lease of {holder}{token} expired {when}; grace period{} (only {holder} may \
             take it)",
            body.grace_until
                .as_deref()
                .map_or(String::new(), |t| format!(" until {t}"))
        ),
        Some(LeaseState::Expired) => {
            format!("{job}: free (lease of {holder}{token} expired {when})")
        }
        _ => format!("{job}: held by {holder}{token}, expires {when}{at}"),
    }
}

/// `GET /locks` as an aligned table.
pub fn table(rows: &[LockRow]) -> String {
    if rows.is_empty() {
        return "no locks held\n".to_owned();
    }
    let header = ["JOB", "HOLDER", "TOKEN", "STATE", "EXPIRES"];
    let lines: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.job.clone(),
                r.holder.clone(),
                r.token.to_string(),
                r.state.to_string(),
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
    fn relative_times_round_up_to_whole_seconds() {
        assert_eq!(relative(21_000), "in 21s");
        assert_eq!(relative(90_001), "in 1m31s");
        assert_eq!(relative(0), "in 0s");
        assert_eq!(relative(-3_000), "3s ago");
    }

    #[test]
    fn denial_names_the_holder() {
        let body = LockReply {
            holder: Some("nas".into()),
            expires_in_ms: Some(12_000),
            state: Some(LeaseState::Held),
            ..LockReply::default()
        };
        assert_eq!(
            denial("backup", &body),
            "backup is held by nas (expires in 12s)"
        );
        let grace = LockReply {
            state: Some(LeaseState::Grace),
            expires_in_ms: Some(-1000),
            ..body
        };
        assert!(denial("backup", &grace).contains("grace period"));
    }

    #[test]
    fn table_aligns_columns() {
        let row = |job: &str, holder: &str| LockRow {
            job: job.into(),
            holder: holder.into(),
            token: 3,
            acquired_at: String::new(),
            expires_at: String::new(),
            expires_in_ms: 5_000,
            state: LeaseState::Held,
            grace_until: None,
        };
        let t = table(&[row("a", "laptop"), row("backup", "n")]);
        assert_eq!(
            t,
            "JOB     HOLDER  TOKEN  STATE  EXPIRES\n\
             a       laptop  3      held   in 5s\n\
             backup  n       3      held   in 5s\n"
        );
        assert_eq!(table(&[]), "no locks held\n");
    }
}
