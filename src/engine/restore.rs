//! Bringing the table back after a restart: the one place that decides what a restart
//! starts from (nothing, the saved table, or a quarantine after the saved table was lost)
//! and for how long a quarantine lasts.

use super::{Engine, Entry, Lease, Rules, SavedState, Watermarks, validate_name};
use crate::time::{Now, from_unix_ms};
use std::sync::Arc;
use std::time::Duration;

/// What a restart found where the table is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing was ever saved there: a first start.
    Nothing,
    /// The table as saved.
    Saved(SavedState),
    /// A table was saved there but is lost (unreadable, corrupt or deleted). What is known of
    /// it comes from its watermarks, if they could be read.
    Lost(Option<Watermarks>),
}

/// What [`Engine::after_restart`] made of it, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    Fresh,
    /// The saved table, less `skipped` invalid entries.
    Saved {
        leases: usize,
        skipped: usize,
    },
    /// Grants are refused for `length` so that leases the lost table held can run out.
    Quarantined {
        length: Duration,
    },
}

/// How long a lease this server can no longer see may still run: a ttl of at most
/// `longest_ttl`, then its grace period. Every quarantine is this long, whatever its cause.
pub fn unseen_lease_may_run(longest_ttl: Duration, rules: &Rules) -> Duration {
    longest_ttl + rules.grace
}

impl Engine {
    /// The table a restart at `now` begins with, given what was `found` on disk.
    ///
    /// After a loss, every grant waits until any lease the lost table could have held has run
    /// out: one of the longest ttl its watermarks record (at least `default_ttl`, the ttl of a
    /// client that names none), plus grace. Tokens resume above the watermarks' ceiling, so
    /// they never go backwards even though the counter itself was lost.
    pub fn after_restart(rules: Rules, found: Found, now: Now) -> (Engine, Restored) {
        let mut engine = Engine::new(rules);
        let restored = match found {
            Found::Nothing => Restored::Fresh,
            Found::Saved(saved) => {
                let count = saved.leases.len();
                let skipped = engine.restore(saved, now);
                Restored::Saved {
                    leases: count - skipped,
                    skipped,
                }
            }
            Found::Lost(watermarks) => {
                let marks = watermarks.unwrap_or_default();
                let longest_ttl =
                    Duration::from_millis(marks.max_ttl_ms).max(engine.rules.default_ttl);
                let length = unseen_lease_may_run(longest_ttl, &engine.rules);
                engine.advance(now);
                engine.quarantine(now.mono + length);
                engine.last_token = engine.last_token.max(marks.token_ceiling);
                Restored::Quarantined { length }
            }
        };
        (engine, restored)
    }

    /// Loads saved leases into an empty table after a restart.
    ///
    /// Each lease counts as held until the later of its saved expiry and `now + ttl`: the
    /// holder may have renewed just before the crash without that renewal reaching the file.
    /// The token counter resumes above every token saved. Entries with invalid names, a zero
    /// ttl or a job seen twice are skipped; the number skipped is returned. `max_jobs` is not
    /// enforced here (it may have been lowered since the save): dropping a saved holder could
    /// double-grant its job, so the table may start over the limit and new jobs wait for room.
    /// A saved quarantine continues for all that was left of it when saved, whatever the wall
    /// clock says (a file without that continues until its saved end, capped at
    /// [`unseen_lease_may_run`] for `max_ttl`).
    pub fn restore(&mut self, saved: SavedState, now: Now) -> usize {
        self.advance(now);
        if let Some(ms) = saved.quarantine_until_ms {
            let cap = saved.quarantine_left_ms.map_or_else(
                || unseen_lease_may_run(self.rules.max_ttl, &self.rules),
                Duration::from_millis,
            );
            // All that was left when saved is left now. The saved wall-clock end cannot say
            // how long the server was down: a clock set forward after the restart (NTP on a
            // Raspberry Pi without a battery) would end the quarantine early. So the downtime
            // is not credited.
            let until = match saved.quarantine_left_ms {
                Some(_) => now.mono + cap,
                // A file from before `quarantine_left_ms` has only the wall-clock end.
                None => now.mono_at(from_unix_ms(ms)).min(now.mono + cap),
            };
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
                || l.run.as_deref().is_some_and(|r| validate_name(r).is_err())
                || ttl.is_zero()
                || self.jobs.contains_key(l.job.as_str())
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
            let lease = Lease {
                holder: Arc::from(l.holder),
                run: l.run.map(Arc::from),
                token: l.token,
                ttl,
                acquired_at: from_unix_ms(l.acquired_at_ms),
                expires,
                grace_until: expires + self.rules.grace,
            };
            let name: Arc<str> = Arc::from(l.job);
            self.jobs
                .insert(Arc::clone(&name), Entry::held(Arc::clone(&name), lease));
            self.schedule(&name);
        }
        skipped
    }
}
