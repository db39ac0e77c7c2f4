//! What the agent does differently on macOS, decided by portable functions (tested on every OS)
//! and carried out by a small `sys` part that only macOS compiles.
//!
//! - A session without access to the window server (a login over SSH) cannot show a menu bar
//!   icon: the agent runs headless there, as on a Linux machine without a display.
//! - Notifications are posted under the app's bundle id. mac-notification-sys must be told it
//!   before the first post, or it asks AppleScript for an app called "use_default", which pops
//!   up a "Where is use_default?" chooser. When macOS does not know the bundle, notifications
//!   are switched off with one log line saying why.
//! - App Nap would throttle the server's timers while the agent sits in the menu bar; an
//!   activity assertion (held as long as the agent runs) keeps it out.

use crate::platform::{APP_NAME, BUNDLE_ID, launchd};
use std::path::{Path, PathBuf};

/// `sessionHasGraphicAccess` from Security/AuthSession.h.
const SESSION_HAS_GRAPHIC_ACCESS: u32 = 0x0010;

/// Why the agent cannot show its icon in this security session, if it cannot: `status` and
/// `attributes` are what `SessionGetInfo(callerSecuritySession, …)` returned.
pub fn session_problem(status: i32, attributes: u32) -> Option<String> {
    if status != 0 {
        return Some(format!(
            "cannot tell whether this session can show a menu bar icon (SessionGetInfo failed \
             with {status})"
        ));
    }
    (attributes & SESSION_HAS_GRAPHIC_ACCESS == 0).then(|| {
        "no GUI session (this login, e.g. over SSH, has no access to the menu bar)".to_owned()
    })
}

/// The app bundle the running program belongs to, with symlinks resolved: Homebrew's
/// `/opt/homebrew/bin/foolock` is a link into `/Applications/Foolock.app`.
pub fn program_bundle(exe: &Path) -> Option<PathBuf> {
    let real = exe.canonicalize().ok()?;
    launchd::app_bundle_of(&real).map(Path::to_path_buf)
}

/// The one log line saying why notifications are off: macOS would not attribute them to
/// `BUNDLE_ID` (`why` is mac-notification-sys' error). `bundle` is [`program_bundle`]'s answer.
pub fn notifications_off_reason(bundle: Option<&Path>, why: &str) -> String {
    match bundle {
        Some(app) => format!(
            "desktop notifications are off: macOS does not know {} as the app {BUNDLE_ID} yet \
             ({why}); open it once from the Finder, then restart foolock",
            app.display()
        ),
        None => format!(
            "desktop notifications are off: they are posted as {APP_NAME}.app ({BUNDLE_ID}), \
             which macOS does not know ({why}); install {APP_NAME}.app (e.g. `brew install \
             --cask foolock`) and open it once"
        ),
    }
}

/// The calls only macOS has.
#[cfg(target_os = "macos")]
pub mod sys {
    use crate::platform::BUNDLE_ID;
    use objc2::rc::Retained;
    use objc2::runtime::{NSObjectProtocol, ProtocolObject};
    use objc2_app_kit::NSWorkspace;
    use objc2_foundation::{NSActivityOptions, NSProcessInfo, NSString};

    #[link(name = "Security", kind = "framework")]
    unsafe extern "C" {
        // Security/AuthSession.h: OSStatus SessionGetInfo(SecuritySessionId session,
        //     SecuritySessionId *sessionId, SessionAttributeBits *attributes);
        fn SessionGetInfo(session: u32, session_id: *mut u32, attributes: *mut u32) -> i32;
    }

    /// `callerSecuritySession`: the session of the calling process.
    const CALLER_SECURITY_SESSION: u32 = u32::MAX;

    /// Why this process cannot show a menu bar icon, if it cannot.
    pub fn gui_session_problem() -> Option<String> {
        let (mut id, mut attributes) = (0u32, 0u32);
        // SAFETY: both out-pointers point at live u32s we own.
        let status = unsafe { SessionGetInfo(CALLER_SECURITY_SESSION, &mut id, &mut attributes) };
        super::session_problem(status, attributes)
    }

    /// Keeps the process out of App Nap (timer throttling, lowered priority) for as long as the
    /// returned token lives. Idle system sleep stays allowed: that is `keep_awake`'s business.
    pub fn stay_out_of_app_nap() -> Retained<ProtocolObject<dyn NSObjectProtocol>> {
        let reason = NSString::from_str("foolock referees locks for other devices on time");
        NSProcessInfo::processInfo().beginActivityWithOptions_reason(
            NSActivityOptions::UserInitiatedAllowingIdleSystemSleep,
            &reason,
        )
    }

    /// Posts notifications as `BUNDLE_ID` from now on; an error when macOS does not know it.
    pub fn use_bundle_id_for_notifications() -> Result<(), String> {
        // Ask Launch Services first: mac-notification-sys swaps NSBundle's `bundleIdentifier`
        // before its own check and leaves the swap in place when that fails (the process's main
        // bundle then answers "com.apple.Terminal").
        let id = NSString::from_str(BUNDLE_ID);
        if NSWorkspace::sharedWorkspace()
            .URLForApplicationWithBundleIdentifier(&id)
            .is_none()
        {
            return Err("Launch Services has no app with that bundle id".to_owned());
        }
        notify_rust::set_application(BUNDLE_ID).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_without_graphic_access_is_headless() {
        // An SSH login: a TTY and remote, but no window server.
        assert!(
            session_problem(0, 0x0020 | 0x1000)
                .unwrap()
                .starts_with("no GUI session")
        );
        // The console login (root bit set too, as for an admin), or a login item.
        assert_eq!(session_problem(0, 0x0010 | 0x0001), None);
        assert_eq!(session_problem(0, 0x0010 | 0x0020), None);
        assert!(session_problem(-60_500, 0x0010).unwrap().contains("-60500"));
    }

    #[test]
    fn the_bundle_is_found_through_a_symlink_to_its_binary() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("Apps/Foolock.app");
        let binary = app.join("Contents/MacOS/foolock");
        std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
        std::fs::write(&binary, "").unwrap();
        let link = tmp.path().join("bin/foolock");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&binary, &link).unwrap();
        #[cfg(unix)]
        assert_eq!(program_bundle(&link), Some(app.canonicalize().unwrap()));
        assert_eq!(program_bundle(&binary), Some(app.canonicalize().unwrap()));
        let loose = tmp.path().join("foolock");
        std::fs::write(&loose, "").unwrap();
        assert_eq!(program_bundle(&loose), None);
        assert_eq!(program_bundle(&tmp.path().join("gone")), None);
    }

    #[test]
    fn the_notifications_off_line_says_what_to_do() {
        let app = Path::new("/Applications/Foolock.app");
        let inside = notifications_off_reason(Some(app), "CouldNotSet");
        assert!(
            inside.contains("/Applications/Foolock.app")
                && inside.contains("open it once from the Finder")
                && inside.contains("CouldNotSet"),
            "{inside}"
        );
        let loose = notifications_off_reason(None, "CouldNotSet");
        assert!(loose.contains("brew install --cask foolock"), "{loose}");
    }
}
