//! The JSON bodies of the HTTP API, shared by the server and the CLI client.
//!
//! Field names and messages match the original Go foolock so existing scripts keep working;
//! fields it did not have (`token`, `expires_in_ms`, `acquired_at`, `state`, …) are additive.
//! `state` and `message` are enums here but plain strings on the wire, so clients match
//! variants while scripts keep comparing the same text.

use crate::engine::{self, Lease};
use crate::time::{Now, push_rfc3339, rfc3339};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::SystemTime;

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
    pub fn for_lease(job: String, lease: Lease, now: &Now) -> LockReply {
        let ttl_ms = u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX);
        let run = lease.run.as_deref().map(String::from);
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

    /// Appends the reply as JSON to `out`: the same bytes as serde_json writes for it (a test
    /// pins that), in a fraction of the instructions, because the keys are known and need no
    /// escaping. The server answers every `/lock` request with one of these.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Object::open(out);
        if let Some(v) = self.success {
            o.bool(key!("success"), v);
        }
        if let Some(v) = &self.error {
            o.str(key!("error"), v);
        }
        if let Some(v) = &self.job {
            o.str(key!("job"), v);
        }
        if let Some(v) = &self.holder {
            o.str(key!("holder"), v);
        }
        if let Some(v) = &self.run {
            o.str(key!("run"), v);
        }
        if let Some(v) = &self.message {
            o.message(key!("message"), v);
        }
        if let Some(v) = &self.status {
            o.message(key!("status"), v);
        }
        if let Some(v) = self.token {
            o.uint(key!("token"), v);
        }
        if let Some(v) = &self.acquired_at {
            o.str(key!("acquired_at"), v);
        }
        if let Some(v) = &self.expires_at {
            o.str(key!("expires_at"), v);
        }
        if let Some(v) = self.expires_in_ms {
            o.int(key!("expires_in_ms"), v);
        }
        if let Some(v) = self.ttl_ms {
            o.uint(key!("ttl_ms"), v);
        }
        if let Some(v) = self.is_expired {
            o.bool(key!("is_expired"), v);
        }
        if let Some(v) = &self.grace_until {
            o.str(key!("grace_until"), v);
        }
        if let Some(v) = self.state {
            o.str(key!("state"), v.as_str());
        }
        if let Some(v) = self.retry_after_ms {
            o.uint(key!("retry_after_ms"), v);
        }
        if let Some(v) = self.last_token {
            o.uint(key!("last_token"), v);
        }
        if let Some(v) = self.waiting {
            o.uint(key!("waiting"), v as u64);
        }
        if let Some(v) = self.max_wait_ms {
            o.uint(key!("max_wait_ms"), v);
        }
        o.close();
    }
}

/// A `/lock` reply about a lease, written straight from the lease: the bytes of the
/// [`LockReply`] that [`LockReply::for_lease`] plus these fields would give (a test pins
/// that), without making its strings. Status and renewal replies are most of what the server
/// sends, and building the owned reply cost more than writing it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseJson<'a> {
    pub job: &'a str,
    pub lease: &'a Lease,
    pub now: &'a Now,
    pub success: Option<bool>,
    pub error: Option<&'a str>,
    pub message: &'a Message,
    pub is_expired: Option<bool>,
    pub last_token: Option<u64>,
    pub waiting: Option<usize>,
}

impl LeaseJson<'_> {
    /// Appends the reply as JSON to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let (lease, now) = (self.lease, self.now);
        let state = lease.state(now.mono);
        let mut o = Object::open(out);
        if let Some(v) = self.success {
            o.bool(key!("success"), v);
        }
        if let Some(v) = self.error {
            o.str(key!("error"), v);
        }
        o.str(key!("job"), self.job);
        o.str(key!("holder"), &lease.holder);
        if let Some(v) = &lease.run {
            o.str(key!("run"), v);
        }
        o.message(key!("message"), self.message);
        o.uint(key!("token"), lease.token);
        o.time(key!("acquired_at"), lease.acquired_at);
        o.time(key!("expires_at"), now.wall_at(lease.expires));
        o.int(key!("expires_in_ms"), now.millis_until(lease.expires));
        o.uint(
            key!("ttl_ms"),
            u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX),
        );
        if let Some(v) = self.is_expired {
            o.bool(key!("is_expired"), v);
        }
        if state == engine::LeaseState::Grace {
            o.time(key!("grace_until"), now.wall_at(lease.grace_until));
        }
        o.str(key!("state"), LeaseState::from(state).as_str());
        if let Some(v) = self.last_token {
            o.uint(key!("last_token"), v);
        }
        if let Some(v) = self.waiting {
            o.uint(key!("waiting"), v as u64);
        }
        o.close();
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
            holder: String::from(&*lease.holder),
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

impl LockRow {
    /// Appends the row as JSON to `out`, byte for byte as serde_json writes it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Object::open(out);
        o.str(key!("job"), &self.job);
        o.str(key!("holder"), &self.holder);
        o.uint(key!("token"), self.token);
        o.str(key!("acquired_at"), &self.acquired_at);
        o.str(key!("expires_at"), &self.expires_at);
        o.int(key!("expires_in_ms"), self.expires_in_ms);
        o.str(key!("state"), self.state.as_str());
        if let Some(v) = &self.grace_until {
            o.str(key!("grace_until"), v);
        }
        o.close();
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

impl LocksReply {
    /// Appends the reply as JSON to `out`, byte for byte as serde_json writes it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"locks\":[");
        for (i, row) in self.locks.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            row.write_json(out);
        }
        out.push(b']');
        if let Some(next) = &self.next {
            out.extend_from_slice(key!("next").as_bytes());
            push_str(out, next);
        }
        out.push(b'}');
    }
}

/// `,"name":`, the bytes before a field's value; the comma is left out before the first.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}
use key;

/// A JSON object being written: keys are this file's field names (plain ASCII, given by
/// [`key!`] with their punctuation), values are escaped exactly as serde_json escapes them.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        let key = if std::mem::take(&mut self.empty) {
            &key[1..]
        } else {
            key
        };
        self.out.extend_from_slice(key.as_bytes());
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_str(self.out, value);
    }

    fn message(&mut self, key: &str, value: &Message) {
        self.key(key);
        match value {
            Message::AcquiredFrom(previous) => {
                self.out.push(b'"');
                push_escaped(self.out, Message::ACQUIRED_FROM);
                push_escaped(self.out, previous);
                self.out.push(b'"');
            }
            Message::Other(text) => push_str(self.out, text),
            fixed => push_str(self.out, fixed.fixed_text().unwrap_or_default()),
        }
    }

    fn time(&mut self, key: &str, value: SystemTime) {
        self.key(key);
        self.out.push(b'"');
        push_rfc3339(self.out, value);
        self.out.push(b'"');
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        push_uint(self.out, value);
    }

    fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        if value < 0 {
            self.out.push(b'-');
        }
        push_uint(self.out, value.unsigned_abs());
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// `value` as a JSON string.
fn push_str(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    push_escaped(out, value);
    out.push(b'"');
}

/// Whether serde_json escapes this byte of a string: `"`, `\\` and the control characters.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Where the first byte to escape is, if any, looking at eight bytes at a time: a reply's
/// strings are names and times, which almost never have one.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero exactly when some byte of `x` is below `n` (at most 0x80): such a byte borrows
    // into its high bit, and `!x` leaves out bytes that had it set already.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let x = u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        if below(x, 0x20) | below(quote, 1) | below(backslash, 1) != 0
            && let Some(at) = chunk.iter().position(|&b| needs_escape(b))
        {
            return Some(i * 8 + at);
        }
    }
    let tail = chunks.remainder();
    let start = bytes.len() - tail.len();
    tail.iter()
        .position(|&b| needs_escape(b))
        .map(|at| start + at)
}

/// `value` escaped as serde_json escapes strings: `"` and `\\` with a backslash, the control
/// characters below 0x20 as `\b`, `\t`, `\n`, `\f`, `\r` or `\u00xx`; everything else as is.
fn push_escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    // Names and times have nothing to escape: one look, one copy.
    let Some(first) = first_to_escape(bytes) else {
        out.extend_from_slice(bytes);
        return;
    };
    out.extend_from_slice(&bytes[..first]);
    let mut start = first;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                continue;
            }
        };
        out.push(b'\\');
        out.push(short);
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `value` in decimal, two digits at a time.
fn push_uint(out: &mut Vec<u8>, mut value: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while value >= 100 {
        let pair = usize::try_from(value % 100).expect("below 100") * 2;
        value /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if value >= 10 {
        let pair = usize::try_from(value).expect("below 100") * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + value as u8;
    }
    out.extend_from_slice(&digits[at..]);
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

    /// Every reply field set, to `text` where it is a string.
    fn full_reply(text: &str, message: Message, n: u64, ms: i64) -> LockReply {
        LockReply {
            success: Some(n.is_multiple_of(2)),
            error: Some(text.into()),
            job: Some(text.into()),
            holder: Some(format!("{text}-holder")),
            run: Some(text.into()),
            message: Some(message.clone()),
            status: Some(message),
            token: Some(n),
            acquired_at: Some("2026-11-23T12:19:43Z".into()),
            expires_at: Some(text.into()),
            expires_in_ms: Some(ms),
            ttl_ms: Some(n),
            is_expired: Some(!n.is_multiple_of(2)),
            grace_until: Some(text.into()),
            state: Some(LeaseState::Grace),
            retry_after_ms: Some(n),
            last_token: Some(n),
            waiting: Some(n as usize),
            max_wait_ms: Some(n),
        }
    }

    #[test]
    fn hand_written_json_is_serde_jsons_byte_for_byte() {
        let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
        every_ascii.push_str("é ∑ 🔒 \u{2028}");
        let texts = [
            "",
            "build",
            "a \"quoted\" \\ name",
            "\u{7f}\u{1}\u{1f}",
            &every_ascii,
        ];
        let messages = [
            Message::Acquired,
            Message::AcquiredFrom("nas \"2\"\n".into()),
            Message::Renewed,
            Message::HeldByAnother,
            Message::Grace,
            Message::Released,
            Message::Held,
            Message::Free,
            Message::Other("tab\there".into()),
        ];
        let numbers = [
            (0, 0),
            (1, -1),
            (42, 59_999),
            (u64::MAX, i64::MIN),
            (7, i64::MAX),
        ];
        let mut replies = vec![LockReply::default(), LockReply::error("no")];
        // Each character that needs escaping at each place of a string up to three words long.
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..24 {
                let mut text = "abcdefghijklmnopqrstuvwxyz".to_owned();
                text.insert(at, special);
                replies.push(LockReply::error(text));
            }
        }
        for text in texts {
            for message in &messages {
                for (n, ms) in numbers {
                    replies.push(full_reply(text, message.clone(), n, ms));
                }
            }
        }
        // Each field on its own, and each left out.
        let full = full_reply("x", Message::Renewed, 3, -3);
        let fields = serde_json::to_value(&full).unwrap();
        for key in fields.as_object().unwrap().keys() {
            let mut only = serde_json::Map::new();
            only.insert(key.clone(), fields[key].clone());
            replies.push(serde_json::from_value(only.into()).unwrap());
            let mut without = fields.clone();
            without.as_object_mut().unwrap().remove(key);
            replies.push(serde_json::from_value(without).unwrap());
        }
        for state in [LeaseState::Held, LeaseState::Grace, LeaseState::Expired] {
            replies.push(LockReply {
                state: Some(state),
                ..LockReply::default()
            });
        }
        for reply in &replies {
            let mut ours = Vec::new();
            reply.write_json(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(reply).unwrap()
            );
        }

        let row = |job: &str, grace: Option<&str>| LockRow {
            job: job.into(),
            holder: format!("{job}\r"),
            token: 9,
            acquired_at: "2026-11-23T12:19:43Z".into(),
            expires_at: "2026-11-23T12:20:43Z".into(),
            expires_in_ms: -12,
            state: LeaseState::Expired,
            grace_until: grace.map(str::to_owned),
        };
        let listings = [
            LocksReply {
                locks: vec![],
                next: None,
            },
            LocksReply {
                locks: vec![row("a", None), row(&every_ascii, Some("later"))],
                next: Some("b\"".into()),
            },
            LocksReply {
                locks: vec![row("only", Some(""))],
                next: None,
            },
        ];
        for listing in &listings {
            let mut ours = Vec::new();
            listing.write_json(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(listing).unwrap()
            );
        }
    }

    #[test]
    fn numbers_are_written_in_decimal_at_every_length() {
        let mut values = vec![0, 9, 10, 99, 100, u64::MAX];
        let mut power = 1u64;
        while let Some(next) = power.checked_mul(10) {
            values.extend([power - 1, power, power + 1, next / 2 + 7]);
            power = next;
        }
        for value in values {
            let mut out = Vec::new();
            push_uint(&mut out, value);
            assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
        }
    }

    /// Each way a handler describes a lease, written from the lease and built as a reply.
    #[test]
    fn a_lease_written_directly_is_the_reply_built_for_it() {
        use crate::time::Mono;
        use std::time::{Duration, SystemTime};
        let now = Now {
            mono: Mono::from_duration(Duration::from_secs(1_000)),
            awake: Duration::from_secs(900),
            wall: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_436_383_042),
        };
        let lease = |expires: u64, run: Option<&str>| Lease {
            holder: "mac \"mini\"".into(),
            run: run.map(Into::into),
            token: 17,
            ttl: Duration::from_millis(30_500),
            acquired_at: now.wall - Duration::from_secs(3_600),
            expires: Mono::from_duration(Duration::from_millis(expires)),
            grace_until: Mono::from_duration(Duration::from_millis(expires + 5_000)),
        };
        // Held, in grace, expired; with and without a run.
        let leases = [
            lease(1_030_000, None),
            lease(998_000, Some("r1")),
            lease(900_000, None),
        ];
        let messages = [
            Message::Renewed,
            Message::AcquiredFrom("pc".into()),
            Message::Held,
            Message::Grace,
        ];
        for lease in &leases {
            for message in &messages {
                for (success, error, is_expired, last_token, waiting) in [
                    (Some(true), None, None, None, None),
                    (Some(false), Some("grace period active"), None, None, None),
                    (Some(true), None, Some(false), Some(40), Some(2)),
                    (None, None, Some(true), Some(0), Some(0)),
                ] {
                    let direct = LeaseJson {
                        job: "build\n",
                        lease,
                        now: &now,
                        success,
                        error,
                        message,
                        is_expired,
                        last_token,
                        waiting,
                    };
                    let mut ours = Vec::new();
                    direct.write_json(&mut ours);
                    let built = LockReply {
                        success,
                        error: error.map(str::to_owned),
                        message: Some(message.clone()),
                        is_expired,
                        last_token,
                        waiting,
                        ..LockReply::for_lease("build\n".into(), lease.clone(), &now)
                    };
                    assert_eq!(
                        String::from_utf8(ours).unwrap(),
                        serde_json::to_string(&built).unwrap()
                    );
                }
            }
        }
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
