//! What happened in the lock table. The service logs each event and broadcasts it to
//! subscribers (the agent's tray and notifications). Persistence does not subscribe: the
//! service decides under its lock what must be on disk before a reply (`service/saving.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A free job got a holder.
    Acquired,
    /// The holder extended its lease.
    Renewed,
    /// The holder released the job.
    Released,
    /// Someone at the server freed the job regardless of its holder.
    ForceReleased,
    /// The lease ran out; its grace period (if any) starts.
    Expired,
    /// A new holder took a job whose previous lease had lapsed past its grace period.
    TakenOver {
        previous: Arc<str>,
        previous_token: u64,
        /// How long before the takeover the previous lease expired.
        lapsed_for: Duration,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Acquired => "acquired",
            EventKind::Renewed => "renewed",
            EventKind::Released => "released",
            EventKind::ForceReleased => "force_released",
            EventKind::Expired => "expired",
            EventKind::TakenOver { .. } => "taken_over",
        }
    }
}

/// One change to one job. `holder` and `token` are those of the lease the event is about:
/// the new holder for grants, the old one for releases and expiry. The names are shared with
/// the table, so that making, broadcasting and receiving an event copies no string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub job: Arc<str>,
    pub holder: Arc<str>,
    pub token: u64,
    /// Wall-clock time of the event.
    pub at: SystemTime,
    pub acquired_at: SystemTime,
    pub expires_at: SystemTime,
}

impl Event {
    /// True when the job changed hands (or became free): such changes must be durable before
    /// anyone is told; renewals and expiry only move deadlines.
    pub fn changes_holder(&self) -> bool {
        !matches!(self.kind, EventKind::Renewed | EventKind::Expired)
    }
}
