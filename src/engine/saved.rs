//! The table's durable form, and the rules for bringing it back after a restart.

use super::{Engine, Entry, JobLease, Phase, validate_name};
use crate::time::{Now, from_unix_ms, unix_ms};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Everything needed to restore the table: leases with wall-clock times (the monotonic clock
/// restarts with the machine) and the token counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    pub last_token: u64,
    pub leases: Vec<SavedLease>,
    /// Unix milliseconds until which grants are refused (see [`Engine::quarantine`]): a
    /// restart during a quarantine must not end it early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_until_ms: Option<u64>,
    /// How much of the quarantine was left when saved: caps a restored quarantine if the wall
    /// clock is wrong, without depending on settings that may have changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_left_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLease {
    pub job: String,
    pub holder: String,
    pub token: u64,
    pub ttl_ms: u64,
    /// Unix milliseconds.
    pub acquired_at_ms: u64,
    /// Unix milliseconds.
    pub expires_at_ms: u64,
}

impl Engine {
    /// The table as it should be saved.
    pub fn export(&mut self, now: Now) -> SavedState {
        let leases = self
            .list(now)
            .into_iter()
            .map(|JobLease { job, lease }| SavedLease {
                job,
                holder: lease.holder,
                token: lease.token,
                ttl_ms: u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX),
                acquired_at_ms: unix_ms(lease.acquired_at),
                expires_at_ms: unix_ms(now.wall_at(lease.expires)),
            })
            .collect();
        SavedState {
            last_token: self.last_token,
            leases,
            quarantine_until_ms: self
                .quarantined_until(now.mono)
                .map(|until| unix_ms(now.wall_at(until))),
            quarantine_left_ms: self
                .quarantined_until(now.mono)
                .map(|until| u64::try_from(now.mono.until(until).as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Loads saved leases into an empty table after a restart.
    ///
    /// Each lease counts as held until the later of its saved expiry and `now + ttl`: the
    /// holder may have renewed just before the crash without that renewal reaching the file.
    /// The token counter resumes above every token saved. Entries with invalid names, a zero
    /// ttl or a job seen twice are skipped; the number skipped is returned. `max_jobs` is not
    /// enforced here (it may have been lowered since the save): dropping a saved holder could
    /// double-grant its job, so the table may start over the limit and new jobs wait for room.
    /// A saved quarantine continues until its saved end, capped at what was left of it when
    /// saved (or, for files without that, `max_ttl + grace`).
    pub fn restore(&mut self, saved: SavedState, now: Now) -> usize {
        self.advance(now);
        if let Some(ms) = saved.quarantine_until_ms {
            let cap = saved
                .quarantine_left_ms
                .map_or(self.rules.max_ttl + self.rules.grace, Duration::from_millis);
            let until = now.mono_at(from_unix_ms(ms)).min(now.mono + cap);
            if self.quarantined_until(now.mono).is_none_or(|q| q < until) && until > now.mono {
                self.quarantine(until);
            }
        }
        let mut skipped = 0;
        let max_saved_token = saved.leases.iter().map(|l| l.token).max().unwrap_or(0);
        self.last_token = self.last_token.max(saved.last_token).max(max_saved_token);
        for l in saved.leases {
            let ttl = Duration::from_millis(l.ttl_ms);
            if validate_name(&l.job).is_err()
                || validate_name(&l.holder).is_err()
                || ttl.is_zero()
                || self.jobs.contains_key(&l.job)
            {
                skipped += 1;
                continue;
            }
            // A lease saved before now ends by now + its ttl, so a saved expiry beyond that (and
            // beyond max_ttl) can only come from a wrong wall clock: cap it. The saved ttl may
            // exceed today's max_ttl if that was lowered; the holder was promised it.
            let latest = now.mono + ttl.max(self.rules.max_ttl);
            let expires = now
                .mono_at(from_unix_ms(l.expires_at_ms))
                .min(latest)
                .max(now.mono + ttl);
            let lease = super::Lease {
                holder: l.holder,
                token: l.token,
                ttl,
                acquired_at: from_unix_ms(l.acquired_at_ms),
                expires,
                grace_until: expires + self.rules.grace,
            };
            self.jobs.insert(
                l.job.clone(),
                Entry {
                    lease,
                    phase: Phase::Held,
                },
            );
            self.schedule(&l.job);
        }
        skipped
    }
}
