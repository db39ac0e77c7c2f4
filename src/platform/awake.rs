//! Holding off idle sleep (the agent's `keep_awake`): while an [`Inhibitor`] lives, the machine
//! does not go to sleep for lack of user activity. Dropping it lets the OS decide again.
//! Neither OS keeps the display on for it, and a closed lid still sleeps a laptop.
//! - macOS: an IOKit power assertion of type `PreventUserIdleSystemSleep` (what `caffeinate -i`
//!   takes): only idle sleep is held off; closing the lid or choosing Sleep still sleeps the Mac.
//! - Linux: a logind inhibitor lock, `Inhibit("idle:sleep", "foolock", why, "block")`, on the
//!   system bus (`DBUS_SYSTEM_BUS_ADDRESS` if set). logind gives back a file descriptor; the
//!   lock lasts until every copy of it is closed. `sleep` covers suspend requests that respect
//!   inhibitor locks; no `handle-lid-switch` lock is taken, and by default
//!   (`LidSwitchIgnoreInhibited=yes`) logind suspends on a closed lid regardless.

/// What the inhibitor says it is for, as `systemd-inhibit --list` or `pmset -g assertions`
/// show it.
pub const REASON: &str = "foolock is refereeing locks that other devices hold";

/// A held idle-sleep inhibitor; dropping it releases it.
pub struct Inhibitor {
    _os: os::Inhibitor,
}

/// Takes an idle-sleep inhibitor saying `why`.
pub async fn prevent_idle_sleep(why: &str) -> anyhow::Result<Inhibitor> {
    Ok(Inhibitor {
        _os: os::prevent_idle_sleep(why).await?,
    })
}

/// logind's terms: what to inhibit and how. `idle` holds off logind's own idle action
/// (`IdleAction=`), `sleep` holds off suspend and hibernation; "block" holds them off for as
/// long as the lock lives ("delay" would only postpone a suspend by a few seconds).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const LOGIND_WHAT: &str = "idle:sleep";
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const LOGIND_MODE: &str = "block";

#[cfg(target_os = "linux")]
mod os {
    use anyhow::Context;

    /// The write end of logind's FIFO for this lock: closing it (the drop) releases the lock.
    pub(crate) struct Inhibitor {
        _fd: std::os::fd::OwnedFd,
    }

    pub(crate) async fn prevent_idle_sleep(why: &str) -> anyhow::Result<Inhibitor> {
        // A connection for the call only: the lock lives in the descriptor, not the
        // connection, and an idle open connection is a thread and a socket for nothing.
        let bus = zbus::Connection::system()
            .await
            .context("cannot connect to the system bus")?;
        let reply = bus
            .call_method(
                Some("org.freedesktop.login1"),
                "/org/freedesktop/login1",
                Some("org.freedesktop.login1.Manager"),
                "Inhibit",
                &(super::LOGIND_WHAT, "foolock", why, super::LOGIND_MODE),
            )
            .await
            .context("logind did not grant an idle-sleep inhibitor")?;
        // Deserializing duplicates the descriptor; the reply's own copy closes with it.
        let fd: zbus::zvariant::OwnedFd = reply
            .body()
            .deserialize()
            .context("logind's Inhibit reply carries no file descriptor")?;
        Ok(Inhibitor { _fd: fd.into() })
    }
}

#[cfg(target_os = "macos")]
mod os {
    use std::ffi::c_void;

    /// `CFStringRef`: an immutable Core Foundation string.
    type CfStringRef = *const c_void;

    #[link(name = "CoreFoundation", kind = "framework")]
    unsafe extern "C" {
        // CFString.h: CFStringRef CFStringCreateWithBytes(CFAllocatorRef alloc,
        //     const UInt8 *bytes, CFIndex numBytes, CFStringEncoding encoding,
        //     Boolean isExternalRepresentation);
        fn CFStringCreateWithBytes(
            alloc: *const c_void,
            bytes: *const u8,
            num_bytes: isize,
            encoding: u32,
            is_external_representation: u8,
        ) -> CfStringRef;
        // CFBase.h: void CFRelease(CFTypeRef cf);
        fn CFRelease(cf: *const c_void);
    }

    #[link(name = "IOKit", kind = "framework")]
    unsafe extern "C" {
        // IOPMLib.h: IOReturn IOPMAssertionCreateWithName(CFStringRef AssertionType,
        //     IOPMAssertionLevel AssertionLevel, CFStringRef AssertionName,
        //     IOPMAssertionID *AssertionID);
        fn IOPMAssertionCreateWithName(
            assertion_type: CfStringRef,
            level: u32,
            name: CfStringRef,
            id: *mut u32,
        ) -> i32;
        // IOPMLib.h: IOReturn IOPMAssertionRelease(IOPMAssertionID AssertionID);
        fn IOPMAssertionRelease(id: u32) -> i32;
    }

    /// `kCFStringEncodingUTF8`.
    const UTF8: u32 = 0x0800_0100;
    /// `kIOPMAssertionLevelOn`.
    const LEVEL_ON: u32 = 255;
    /// The value of `kIOPMAssertionTypePreventUserIdleSystemSleep`.
    const PREVENT_USER_IDLE_SYSTEM_SLEEP: &str = "PreventUserIdleSystemSleep";

    /// A CFString we created, released on drop.
    struct CfString(CfStringRef);

    impl CfString {
        fn new(text: &str) -> anyhow::Result<CfString> {
            // SAFETY: `text` is valid UTF-8 for its whole length; CF copies the bytes.
            let s = unsafe {
                CFStringCreateWithBytes(
                    std::ptr::null(),
                    text.as_ptr(),
                    text.len() as isize,
                    UTF8,
                    0,
                )
            };
            anyhow::ensure!(!s.is_null(), "cannot make a CFString of {text:?}");
            Ok(CfString(s))
        }
    }

    impl Drop for CfString {
        fn drop(&mut self) {
            // SAFETY: we own one reference to this non-null string (the Create rule).
            unsafe { CFRelease(self.0) }
        }
    }

    /// An IOKit power assertion, released on drop.
    pub struct Inhibitor {
        id: u32,
    }

    pub async fn prevent_idle_sleep(why: &str) -> anyhow::Result<Inhibitor> {
        let kind = CfString::new(PREVENT_USER_IDLE_SYSTEM_SLEEP)?;
        let name = CfString::new(why)?;
        let mut id = 0u32;
        // SAFETY: both strings are live CFStrings; `id` is a live u32 for the out-parameter.
        let status = unsafe { IOPMAssertionCreateWithName(kind.0, LEVEL_ON, name.0, &mut id) };
        anyhow::ensure!(
            status == 0,
            "IOPMAssertionCreateWithName failed (IOReturn {status:#x})"
        );
        Ok(Inhibitor { id })
    }

    impl Drop for Inhibitor {
        fn drop(&mut self) {
            // SAFETY: `id` came from a successful IOPMAssertionCreateWithName, released once.
            let status = unsafe { IOPMAssertionRelease(self.id) };
            if status != 0 {
                tracing::warn!("IOPMAssertionRelease failed (IOReturn {status:#x})");
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod os {
    /// No idle-sleep inhibitor on this OS.
    pub(crate) enum Inhibitor {}

    pub(crate) async fn prevent_idle_sleep(_why: &str) -> anyhow::Result<Inhibitor> {
        anyhow::bail!("keeping the machine awake is not supported on this OS")
    }
}
