//! The machine's monotonic clocks, read through each OS's own call: one that keeps counting while
//! the machine sleeps ([`suspend_inclusive`]) and one that stops ([`suspend_exclusive`]).
//! [`crate::time::SystemClock`] turns them into the engine's [`crate::time::Now`].

pub use sys::{suspend_exclusive, suspend_inclusive};

#[cfg(target_os = "linux")]
mod sys {
    use std::time::Duration;

    fn read(clock: libc::clockid_t) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; both clock ids exist on every kernel
        // this program supports (CLOCK_BOOTTIME since Linux 2.6.39).
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime failed");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// CLOCK_BOOTTIME counts time spent suspended; CLOCK_MONOTONIC does not.
    pub fn suspend_inclusive() -> Duration {
        read(libc::CLOCK_BOOTTIME)
    }

    pub fn suspend_exclusive() -> Duration {
        read(libc::CLOCK_MONOTONIC)
    }
}

#[cfg(target_os = "macos")]
mod sys {
    use std::sync::OnceLock;
    use std::time::Duration;

    /// Declared here: libc's binding of this struct is deprecated.
    #[repr(C)]
    struct TimebaseInfo {
        numer: u32,
        denom: u32,
    }

    unsafe extern "C" {
        fn mach_continuous_time() -> u64;
        fn mach_absolute_time() -> u64;
        fn mach_timebase_info(info: *mut TimebaseInfo) -> libc::c_int;
    }

    fn to_duration(ticks: u64) -> Duration {
        static TIMEBASE: OnceLock<(u64, u64)> = OnceLock::new();
        let (numer, denom) = *TIMEBASE.get_or_init(|| {
            let mut info = TimebaseInfo { numer: 0, denom: 0 };
            // SAFETY: `info` is a valid, writable struct.
            unsafe { mach_timebase_info(&mut info) };
            (u64::from(info.numer.max(1)), u64::from(info.denom.max(1)))
        });
        Duration::from_nanos((u128::from(ticks) * u128::from(numer) / u128::from(denom)) as u64)
    }

    /// `mach_continuous_time` keeps counting while the Mac sleeps (unlike `Instant`,
    /// rust-lang/rust#87906); `mach_absolute_time` stops.
    pub fn suspend_inclusive() -> Duration {
        // SAFETY: no arguments, no preconditions.
        to_duration(unsafe { mach_continuous_time() })
    }

    pub fn suspend_exclusive() -> Duration {
        // SAFETY: no arguments, no preconditions.
        to_duration(unsafe { mach_absolute_time() })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod sys {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    // Elsewhere there is no portable suspend-inclusive clock; `Instant` is the best we have.
    fn origin() -> Instant {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }

    pub fn suspend_inclusive() -> Duration {
        origin().elapsed()
    }

    pub fn suspend_exclusive() -> Duration {
        origin().elapsed()
    }
}
