//! Time as the engine sees it: a monotonic clock that keeps counting while the machine sleeps
//! (for deadlines), a monotonic clock that does not (to notice that it slept), and wall-clock
//! time (only for display). The engine never reads a clock itself; callers pass a [`Now`] read
//! from a [`Clock`]: [`SystemClock`] in the program, a fake in the engine's tests.

use crate::platform::clock;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime};

/// A reading of the suspend-inclusive monotonic clock, as time since an arbitrary origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mono(Duration);

impl Mono {
    pub const fn from_duration(since_origin: Duration) -> Self {
        Mono(since_origin)
    }

    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// Time from `self` until `later`, zero if `later` is not after `self`.
    pub fn until(self, later: Mono) -> Duration {
        later.0.saturating_sub(self.0)
    }
}

impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, rhs: Duration) -> Mono {
        Mono(self.0.saturating_add(rhs))
    }
}

impl Sub<Duration> for Mono {
    type Output = Mono;
    fn sub(self, rhs: Duration) -> Mono {
        Mono(self.0.saturating_sub(rhs))
    }
}

/// One instant read from all three clocks at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Suspend-inclusive monotonic time: every deadline is on this clock.
    pub mono: Mono,
    /// Monotonic time that stops while the machine sleeps. Only its progress relative to
    /// `mono` matters: when `mono` advances further than `awake`, the machine slept.
    pub awake: Duration,
    /// Wall-clock time, used only to display instants.
    pub wall: SystemTime,
}

impl Now {
    /// The wall-clock time at which the monotonic instant `at` happens (or happened), as
    /// seen from this reading. Wall-clock jumps move displayed times, never deadlines.
    pub fn wall_at(&self, at: Mono) -> SystemTime {
        if at >= self.mono {
            self.wall + self.mono.until(at)
        } else {
            self.wall
                .checked_sub(at.until(self.mono))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    /// The monotonic instant matching a wall-clock time, as seen from this reading.
    pub fn mono_at(&self, at: SystemTime) -> Mono {
        match at.duration_since(self.wall) {
            Ok(ahead) => self.mono + ahead,
            Err(behind) => self.mono - behind.duration(),
        }
    }

    /// Signed milliseconds from now until `at`: negative once `at` has passed.
    pub fn millis_until(&self, at: Mono) -> i64 {
        if at >= self.mono {
            i64::try_from(self.mono.until(at).as_millis()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from(at.until(self.mono).as_millis()).unwrap_or(i64::MAX)
        }
    }
}

/// A source of [`Now`] readings.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Now;
}

/// The real clocks of this machine (read in [`crate::platform::clock`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Now {
        Now {
            mono: Mono(clock::suspend_inclusive()),
            awake: clock::suspend_exclusive(),
            wall: SystemTime::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic_and_counts_at_least_awake_time() {
        let a = SystemClock.now();
        std::thread::sleep(Duration::from_millis(20));
        let b = SystemClock.now();
        assert!(b.mono > a.mono);
        assert!(b.awake > a.awake);
        assert!(a.mono.until(b.mono) + Duration::from_millis(5) >= b.awake - a.awake);
    }

    #[test]
    fn wall_and_mono_conversions_are_inverse() {
        let now = Now {
            mono: Mono::from_duration(Duration::from_secs(1000)),
            awake: Duration::from_secs(900),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let later = now.mono + Duration::from_secs(30);
        let earlier = now.mono - Duration::from_secs(30);
        assert_eq!(now.mono_at(now.wall_at(later)), later);
        assert_eq!(now.mono_at(now.wall_at(earlier)), earlier);
        assert_eq!(now.millis_until(later), 30_000);
        assert_eq!(now.millis_until(earlier), -30_000);
    }
}
