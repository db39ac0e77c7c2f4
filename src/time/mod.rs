//! Time, in one place: the clocks the engine reads through [`Clock`] (deadlines on a
//! suspend-inclusive monotonic clock, wall time only for display), Go-style durations as users
//! and old clients write them, and wall-clock formatting for the wire and the state file.
//!
//! - [`clock`]: [`Mono`], [`Now`], the [`Clock`] trait and [`SystemClock`] (whose per-OS calls
//!   live in [`crate::platform::clock`]).
//! - [`duration`]: Go's `time.ParseDuration` syntax and its compact display.
//! - [`wall`]: RFC 3339 (whole seconds, milliseconds, a readable form) and Unix milliseconds.

pub mod clock;
pub mod duration;
pub mod wall;

pub use clock::{Clock, Mono, Now, SystemClock};
pub use duration::{
    Compact, GoDuration, ParseDurationError, parse_go_duration, parse_non_negative, parse_positive,
    serde_go,
};
pub use wall::{from_unix_ms, push_rfc3339, readable_utc, rfc3339, rfc3339_millis, unix_ms};
