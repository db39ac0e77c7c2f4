//! Desktop notifications: which engine events deserve one (a pure function of the event and the
//! `[notifications]` settings) and posting them without ever blocking or breaking the agent.
//!
//! notify-rust's `show()` blocks on D-Bus (Linux) or Cocoa (macOS); called on a tokio worker it
//! stalls the server and can panic, so every post runs on the blocking pool. A missing
//! notification service is logged once, then ignored.
//!
//! On macOS the identity notifications are posted under is settled once per process, before any
//! post ([`prepare`]): always our bundle id, never mac-notification-sys' "use_default" lookup
//! (which pops up an AppleScript chooser); if macOS does not know the bundle, nothing is posted.

use crate::config::Notifications;
use crate::engine::{Event, EventKind};
use crate::time::Compact;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A notification's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub body: String,
}

/// The notification for `event`, if the settings ask for one. Renewals never notify.
pub fn message_for(event: &Event, settings: &Notifications) -> Option<Message> {
    let (job, holder) = (&event.job, &event.holder);
    let (wanted, title, body) = match &event.kind {
        EventKind::TakenOver {
            previous,
            lapsed_for,
            ..
        } => (
            settings.takeover,
            format!("{job} taken over"),
            format!(
                "{holder} took over from {previous} ({previous}'s lease lapsed {} ago)",
                Compact(round_to_secs(*lapsed_for))
            ),
        ),
        EventKind::ForceReleased => (
            settings.force_release,
            format!("{job} force-released"),
            format!("{holder} no longer holds {job} (token {})", event.token),
        ),
        EventKind::Acquired => (
            settings.acquire,
            format!("{job} acquired"),
            format!("{holder} holds {job} (token {})", event.token),
        ),
        EventKind::Released => (
            settings.release,
            format!("{job} released"),
            format!("{holder} released {job}"),
        ),
        EventKind::Expired => (
            settings.expire,
            format!("{job} lease expired"),
            format!("{holder}'s lease on {job} expired without renewal"),
        ),
        EventKind::Renewed => (false, String::new(), String::new()),
    };
    wanted.then_some(Message { title, body })
}

/// Whole seconds read better in a notification than `11.987s`.
fn round_to_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
}

/// Posts notifications on behalf of the agent. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced when the config file is read again (see `runtime`).
    settings: std::sync::Mutex<Notifications>,
    /// False when this process cannot post as foolock (macOS: the bundle is unknown).
    can_post: bool,
    /// "Pause notifications" in the menu.
    paused: AtomicBool,
    /// Set after the first failure, so a missing service is logged once.
    warned: AtomicBool,
}

impl Notifier {
    pub fn new(settings: Notifications) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                settings: std::sync::Mutex::new(settings),
                can_post: prepare(),
                paused: AtomicBool::new(false),
                warned: AtomicBool::new(false),
            }),
        }
    }

    /// Which events notify from now on.
    pub fn set_settings(&self, settings: Notifications) {
        *self.settings() = settings;
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Notifications> {
        // Plain data, never left half-written: a panic elsewhere cannot spoil it.
        self.inner
            .settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::Relaxed);
        tracing::info!(paused, "notifications");
    }

    /// Posts the notification `event` deserves, if any. Must be called inside a tokio runtime.
    pub fn event(&self, event: &Event) {
        let message = message_for(event, &self.settings());
        if let Some(message) = message {
            self.post(message);
        }
    }

    /// Posts `message` unless paused. Returns at once; delivery happens on the blocking pool.
    pub fn post(&self, message: Message) {
        if !self.inner.paused.load(Ordering::Relaxed) {
            self.alert(message);
        }
    }

    /// Posts `message` even while paused: for a failure of something the user just asked for
    /// (Pause is about lock events, not about hiding why a click did nothing).
    pub fn alert(&self, message: Message) {
        if !self.inner.can_post {
            return;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let result = notify_rust::Notification::new()
                .appname("foolock")
                .summary(&message.title)
                .body(&message.body)
                .show();
            if let Err(err) = result
                && !inner.warned.swap(true, Ordering::Relaxed)
            {
                tracing::warn!("cannot post desktop notifications: {err}");
            }
        });
    }
}

/// Settles, once per process, who notifications are posted as, and whether they can be: call it
/// on the main thread before anything may post (the agent does, before its event loop starts);
/// later calls return the same answer.
///
/// On macOS this always names our bundle id to mac-notification-sys, so it never falls back to
/// asking AppleScript for an app called "use_default" (that chooser would pop up in front of the
/// user); if macOS does not know the bundle, it logs why once and returns false.
pub fn prepare() -> bool {
    static CAN_POST: OnceLock<bool> = OnceLock::new();
    *CAN_POST.get_or_init(|| {
        #[cfg(target_os = "macos")]
        if let Err(why) = super::mac::sys::use_bundle_id_for_notifications() {
            let bundle = std::env::current_exe()
                .ok()
                .and_then(|exe| super::mac::program_bundle(&exe));
            tracing::warn!(
                "{}",
                super::mac::notifications_off_reason(bundle.as_deref(), &why)
            );
            return false;
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn event(kind: EventKind) -> Event {
        Event {
            kind,
            job: "backup".into(),
            holder: "laptop2".into(),
            token: 43,
            at: SystemTime::UNIX_EPOCH,
            acquired_at: SystemTime::UNIX_EPOCH,
            expires_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn takeover() -> Event {
        event(EventKind::TakenOver {
            previous: "laptop1".into(),
            previous_token: 42,
            lapsed_for: Duration::from_millis(11_800),
        })
    }

    #[test]
    fn takeover_names_job_new_and_previous_holder_and_lapse() {
        let m = message_for(&takeover(), &Notifications::default()).unwrap();
        assert_eq!(m.title, "backup taken over");
        assert_eq!(
            m.body,
            "laptop2 took over from laptop1 (laptop1's lease lapsed 12s ago)"
        );
    }

    #[test]
    fn defaults_notify_takeover_and_force_release_only() {
        let d = Notifications::default();
        assert!(message_for(&event(EventKind::ForceReleased), &d).is_some());
        for kind in [
            EventKind::Acquired,
            EventKind::Released,
            EventKind::Expired,
            EventKind::Renewed,
        ] {
            assert_eq!(message_for(&event(kind), &d), None);
        }
    }

    #[test]
    fn each_setting_switches_its_event() {
        let all = Notifications {
            takeover: true,
            force_release: true,
            acquire: true,
            release: true,
            expire: true,
        };
        for kind in [EventKind::Acquired, EventKind::Released, EventKind::Expired] {
            assert!(message_for(&event(kind), &all).is_some());
        }
        let none = Notifications {
            takeover: false,
            force_release: false,
            ..Notifications::default()
        };
        assert_eq!(message_for(&takeover(), &none), None);
        assert_eq!(message_for(&event(EventKind::ForceReleased), &none), None);
        assert_eq!(message_for(&event(EventKind::Renewed), &all), None);
    }
}
