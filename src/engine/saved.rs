//! The table's durable form: the state file's contents and the watermarks that bound them.

use super::{Engine, JobLease};
use crate::time::{Now, unix_ms};
use serde::{Deserialize, Serialize};

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

/// Upper bounds on what the state file holds, kept in a small file of their own so that they
/// survive the loss of the state file: the quarantine after such a loss, and the token counter
/// after it, are taken from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Watermarks {
    /// The longest ttl among saved leases (or what was left of a saved quarantine, if longer),
    /// in milliseconds.
    pub max_ttl_ms: u64,
    /// Every token issued so far is at most this.
    pub token_ceiling: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLease {
    pub job: String,
    pub holder: String,
    /// The holder's run (see [`super::Who`]); absent in files written before runs existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
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
            // The file keeps plain strings: its format does not depend on how the table shares
            // its names.
            .map(|JobLease { job, lease }| SavedLease {
                job: String::from(&*job),
                holder: String::from(&*lease.holder),
                run: lease.run.as_deref().map(String::from),
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
}
