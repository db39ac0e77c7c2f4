//! The JSON bodies of the HTTP API, shared by the server and the CLI client.
//!
//! Field names and messages match the original Go foolock so existing scripts keep working;
//! fields it did not have (`token`, `expires_in_ms`, `acquired_at`, `state`, …) are additive.
//! `state` and `message` are enums here but plain strings on the wire, so clients match
//! variants while scripts keep comparing the same text.

use crate::engine::{self, Lease};
use crate::time::{Now, rfc3339};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Where a lease stands: the `state` field (`held`, `grace`, `expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    Held,
    Grace,
    Expired,
    /// A state this version does not know (a newer server's); never sent.
    #[serde(other)]
    Unknown,
}

impl LeaseState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LeaseState::Held => "held",
            LeaseState::Grace => "grace",
            LeaseState::Expired => "expired",
            LeaseState::Unknown => "unknown",
        }
    }
}

impl From<engine::LeaseState> for LeaseState {
    fn from(state: engine::LeaseState) -> LeaseState {
        match state {
            engine::LeaseState::Held => LeaseState::Held,
            engine::LeaseState::Grace => LeaseState::Grace,
            engine::LeaseState::Expired => LeaseState::Expired,
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `message` of a `/lock` reply (and the release reply's `status`), sent as the original's
/// exact strings. It is a JSON string, not a tagged value, so scripts compare it as before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `acquired`
    Acquired,
    /// `acquired from <previous>`: taken over from a holder whose lease and grace ran out.
    AcquiredFrom(String),
    /// `renewed`: the client already held the job.
    Renewed,
    /// `held by another client`
    HeldByAnother,
    /// `grace period active`
    Grace,
    /// `lock released`
    Released,
    /// `lock held`
    Held,
    /// `no lock held`
    Free,
    /// Text this version does not know (another server's), kept as is.
    Other(String),
}

impl Message {
    const ACQUIRED_FROM: &str = "acquired from ";

    /// The messages without text of their own, for parsing.
    const FIXED: [Message; 7] = [
        Message::Acquired,
        Message::Renewed,
        Message::HeldByAnother,
        Message::Grace,
        Message::Released,
        Message::Held,
        Message::Free,
    ];

    /// The exact wire text of a fixed message; `None` for those that carry text.
    fn fixed_text(&self) -> Option<&'static str> {
        Some(match self {
            Message::Acquired => "acquired",
            Message::Renewed => "renewed",
            Message::HeldByAnother => "held by another client",
            Message::Grace => "grace period active",
            Message::Released => "lock released",
            Message::Held => "lock held",
            Message::Free => "no lock held",
            Message::AcquiredFrom(_) | Message::Other(_) => return None,
        })
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::AcquiredFrom(previous) => write!(f, "{}{previous}", Message::ACQUIRED_FROM),
            Message::Other(text) => f.write_str(text),
            fixed => f.write_str(fixed.fixed_text().unwrap_or_default()),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        if let Some(fixed) = Message::FIXED
            .into_iter()
            .find(|m| m.fixed_text() == Some(text.as_str()))
        {
            return fixed;
        }
        match text.strip_prefix(Message::ACQUIRED_FROM) {
            Some(previous) => Message::AcquiredFrom(previous.to_owned()),
            None => Message::Other(text),
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.fixed_text() {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Message, D::Error> {
        String::deserialize(deserializer).map(Message::from)
    }
}

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
    /// The holder's run, when it was granted with `run=` (see [`crate::engine::Who`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// The original's release reply carried its message here; kept for old scripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Message>,
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
    pub state: Option<LeaseState>,
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
    /// A reply describing `lease` on `job` as of `now`: the fields of its [`LockRow`] plus
    /// the lease's ttl.
    pub fn for_lease(job: String, mut lease: Lease, now: &Now) -> LockReply {
        let ttl_ms = u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX);
        let run = lease.run.take();
        let row = LockRow::new(job, lease, now);
        LockReply {
            job: Some(row.job),
            holder: Some(row.holder),
            run,
            token: Some(row.token),
            acquired_at: Some(row.acquired_at),
            expires_at: Some(row.expires_at),
            expires_in_ms: Some(row.expires_in_ms),
            ttl_ms: Some(ttl_ms),
            state: Some(row.state),
            grace_until: row.grace_until,
            ..LockReply::default()
        }
    }

    pub(crate) fn error(message: impl Into<String>) -> LockReply {
        LockReply {
            error: Some(message.into()),
            ..LockReply::default()
        }
    }

    /// Whether this refusal is for a lease in its grace period. The original server says so
    /// only in `error`, which is why that is read too.
    pub fn in_grace(&self) -> bool {
        self.state == Some(LeaseState::Grace)
            || self.error.as_deref() == Message::Grace.fixed_text()
    }
}

/// One row of `GET /locks`, and the part of a `/lock` reply that describes a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRow {
    pub job: String,
    pub holder: String,
    pub token: u64,
    pub acquired_at: String,
    pub expires_at: String,
    pub expires_in_ms: i64,
    pub state: LeaseState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<String>,
}

impl LockRow {
    /// `lease` on `job` as of `now`; the one place these fields are computed. Takes the
    /// names by value: every caller has its own copy to give.
    pub fn new(job: String, lease: Lease, now: &Now) -> LockRow {
        let state = lease.state(now.mono);
        LockRow {
            job,
            holder: lease.holder,
            token: lease.token,
            acquired_at: rfc3339(lease.acquired_at),
            expires_at: rfc3339(now.wall_at(lease.expires)),
            expires_in_ms: now.millis_until(lease.expires),
            state: state.into(),
            grace_until: (state == engine::LeaseState::Grace)
                .then(|| rfc3339(now.wall_at(lease.grace_until))),
        }
    }
}

/// The body of `GET /locks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocksReply {
    pub locks: Vec<LockRow>,
    /// With `?limit=`: more rows follow; ask again with `after=` this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_originals_exact_strings_both_ways() {
        let cases = [
            (Message::Acquired, "acquired"),
            (Message::AcquiredFrom("nas 2".into()), "acquired from nas 2"),
            (Message::Renewed, "renewed"),
            (Message::HeldByAnother, "held by another client"),
            (Message::Grace, "grace period active"),
            (Message::Released, "lock released"),
            (Message::Held, "lock held"),
            (Message::Free, "no lock held"),
            (Message::Other("something new".into()), "something new"),
        ];
        for (message, text) in cases {
            let json = serde_json::to_string(&message).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), message);
        }
    }

    #[test]
    fn lease_states_are_lowercase_and_unknown_ones_still_parse() {
        for (state, text) in [
            (LeaseState::Held, "\"held\""),
            (LeaseState::Grace, "\"grace\""),
            (LeaseState::Expired, "\"expired\""),
        ] {
            assert_eq!(serde_json::to_string(&state).unwrap(), text);
            assert_eq!(serde_json::from_str::<LeaseState>(text).unwrap(), state);
        }
        let reply: LockReply = serde_json::from_str(r#"{"state":"frozen"}"#).unwrap();
        assert_eq!(reply.state, Some(LeaseState::Unknown));
    }

    #[test]
    fn grace_refusals_are_recognised_by_state_or_by_the_originals_error() {
        let by_state = LockReply {
            state: Some(LeaseState::Grace),
            ..LockReply::default()
        };
        assert!(by_state.in_grace());
        assert!(LockReply::error("grace period active").in_grace());
        assert!(!LockReply::error("client parameter required").in_grace());
        assert!(!LockReply::default().in_grace());
    }
}
