//! The user's time zone: a wall-clock instant as the calendar date and time of day on this
//! machine (`localtime_r`), for the CLI's messages on a terminal.

use std::time::SystemTime;

/// A date and time of day in the user's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalTime {
    pub year: i32,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// `t` in the user's time zone; `None` where the OS cannot say (the caller falls back to UTC).
#[cfg(unix)]
pub(crate) fn local_time(t: SystemTime) -> Option<LocalTime> {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let time = libc::time_t::try_from(secs).ok()?;
    // SAFETY: localtime_r only writes into the zeroed `tm` we own, and reads `time`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
        return None;
    }
    let field = |v: libc::c_int| u32::try_from(v).ok();
    Some(LocalTime {
        year: tm.tm_year.checked_add(1900)?,
        month: field(tm.tm_mon)? + 1,
        day: field(tm.tm_mday)?,
        hour: field(tm.tm_hour)?,
        minute: field(tm.tm_min)?,
        second: field(tm.tm_sec)?,
    })
}

#[cfg(not(unix))]
pub(crate) fn local_time(_t: SystemTime) -> Option<LocalTime> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn local_time_is_utc_shifted_by_a_whole_zone_offset() {
        // 2026-11-23T12:19:43Z. Whatever this machine's zone, local time differs from UTC by
        // less than a day and by whole quarter hours, and keeps the seconds.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_436_383);
        let local = local_time(t).expect("the OS knows the local time");
        assert_eq!(local.second, 43);
        assert_eq!(local.minute % 15, 19 % 15);
        assert_eq!((local.year, local.month), (2026, 11));
        assert!((22..=24).contains(&local.day), "{local:?}");
        let minutes = |day: u32, hour: u32, minute: u32| (day * 24 + hour) * 60 + minute;
        let offset =
            minutes(local.day, local.hour, local.minute) as i64 - minutes(23, 12, 19) as i64;
        assert!(offset.abs() <= 14 * 60, "{local:?}");
    }
}
