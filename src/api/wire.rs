//! The JSON bodies of the HTTP API, shared by the server and the CLI client.
//!
//! Field names and messages match the original Go foolock so existing scripts keep working;
//! fields it did not have (`token`, `expires_in_ms`, `acquired_at`, `state`, …) are additive.

use crate::engine::{Lease, LeaseState};
use crate::time::{Now, rfc3339};
use serde::{Deserialize, Serialize};

pub const MSG_ACQUIRED: &str = "acquired";
pub const MSG_RENEWED: &str = "renewed";
pub const MSG_HELD_BY_ANOTHER: &str = "held by another client";
pub const MSG_GRACE: &str = "grace period active";
pub const MSG_RELEASED: &str = "lock released";
pub const MSG_HELD: &str = "lock held";
pub const MSG_FREE: &str = "no lock held";

/// The body of every `/lock` reply. Absent fields are omitted from the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The original's release reply carried its message here; kept for old scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquired_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Milliseconds until expiry, negative once expired. Count from your own clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_expired: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For 503 replies while the server refuses grants: milliseconds until it accepts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// On `GET /lock`: the newest fencing token the server has issued (for any job). A lease
    /// with a larger token was granted after this reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_token: Option<u64>,
    /// On `GET /lock`: how many clients are waiting for the job (`wait=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<usize>,
    /// For a 400 on `wait`: the longest wait this server allows, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_ms: Option<u64>,
}

impl LockReply {
    /// A reply describing `lease` on `job` as of `now`.
    pub fn for_lease(job: &str, lease: &Lease, now: &Now) -> LockReply {
        let state = lease.state(now.mono);
        LockReply {
            job: Some(job.to_owned()),
            holder: Some(lease.holder.clone()),
            token: Some(lease.token),
            acquired_at: Some(rfc3339(lease.acquired_at)),
            expires_at: Some(rfc3339(now.wall_at(lease.expires))),
            expires_in_ms: Some(now.millis_until(lease.expires)),
            ttl_ms: Some(u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX)),
            state: Some(state.as_str().to_owned()),
            grace_until: (state == LeaseState::Grace)
                .then(|| rfc3339(now.wall_at(lease.grace_until))),
            ..LockReply::default()
        }
    }

    pub fn error(message: impl Into<String>) -> LockReply {
        LockReply {
            error: Some(message.into()),
            ..LockReply::default()
        }
    }
}

/// One row of `GET /locks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRow {
    pub job: String,
    pub holder: String,
    pub token: u64,
    pub acquired_at: String,
    pub expires_at: String,
    pub expires_in_ms: i64,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<String>,
}

impl LockRow {
    pub fn new(job: &str, lease: &Lease, now: &Now) -> LockRow {
        let state = lease.state(now.mono);
        LockRow {
            job: job.to_owned(),
            holder: lease.holder.clone(),
            token: lease.token,
            acquired_at: rfc3339(lease.acquired_at),
            expires_at: rfc3339(now.wall_at(lease.expires)),
            expires_in_ms: now.millis_until(lease.expires),
            state: state.as_str().to_owned(),
            grace_until: (state == LeaseState::Grace)
                .then(|| rfc3339(now.wall_at(lease.grace_until))),
        }
    }
}

/// The body of `GET /locks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocksReply {
    pub locks: Vec<LockRow>,
}
