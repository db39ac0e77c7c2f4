//! The desktop agent: a tray icon over the same lock server `foolock serve` runs.
//!
//! Two threads, two halves:
//! - the main thread runs the tao event loop and owns the tray ([`ui`]); tao and the macOS
//!   status bar insist on the main thread, and nothing there is `Send`;
//! - a background thread runs a tokio runtime with the server, the notifications and the
//!   menu's commands ([`runtime`]).
//!
//! The runtime wakes the UI with [`UserEvent`]s through tao's `EventLoopProxy`; menu clicks go
//! back as [`Command`]s over a tokio channel. Quit, SIGINT, SIGTERM and (on macOS) a quit by
//! Apple Event all cancel one token; the runtime then finishes in-flight requests, saves, stops,
//! and the UI exits after it.
//!
//! macOS specifics (session check, notification identity, App Nap) are in [`mac`]; holding
//! off idle sleep while jobs are held, in [`keep_awake`].

// Portable on purpose, so its decisions are tested on every OS; only macOS calls it.
mod keep_awake;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod mac;
mod menu;
mod notifications;
mod runtime;
mod ui;

pub use menu::{IconKind, JobEntry, Listening, MenuModel};

use crate::cli::ServerFlags;
use crate::config::{Config, ConfigError};
use crate::engine::JobLease;
use std::path::Path;
use std::process::ExitCode;

/// What the runtime tells the UI.
#[derive(Debug)]
pub enum UserEvent {
    /// The server bound (with the addresses to show) or failed to.
    Listening(Listening),
    /// The jobs with a recorded lease, after any change. The UI hides lapsed ones itself.
    Jobs(Vec<JobLease>),
    /// A countdown label is due to change (the alarm the UI set has gone off).
    Tick,
    /// The runtime has finished: the server stopped and in-flight requests completed.
    Stopped,
    /// A menu entry was clicked (forwarded from muda's handler).
    Menu(tray_icon::menu::MenuEvent),
    /// The icon was clicked (macOS: the menu is opening).
    IconClicked,
    /// Whether "Keep awake while jobs are held" starts ticked: sent once the config is read
    /// (the item is added then).
    KeepAwake(bool),
}

/// What the UI asks of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ForceRelease(String),
    PauseNotifications(bool),
    /// Hold off idle sleep while jobs are held (true), or never (false), until restart.
    KeepAwake(bool),
    OpenConfig,
    /// Read the config file again now, if it had an error (the icon was clicked: the user may
    /// have fixed it where the file watch cannot see).
    CheckConfig,
    /// Open the server's status page in the default browser.
    OpenStatusPage,
    /// Register (true) or remove (false) the login item, as `foolock install`/`uninstall` do.
    StartAtLogin(bool),
}

/// Why the agent cannot show a tray here, if it cannot: then the caller serves headless.
/// Call on the main thread (on Linux it initialises GTK, which tao then reuses).
pub fn desktop_unavailable() -> Option<String> {
    #[cfg(target_os = "macos")]
    if let Some(problem) = mac::sys::gui_session_problem() {
        return Some(problem);
    }
    #[cfg(target_os = "linux")]
    {
        let set = |var| std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
            return Some("no display (neither DISPLAY nor WAYLAND_DISPLAY is set)".into());
        }
        // tao panics if GTK cannot open the display; ask first.
        if let Err(err) = gtk::init() {
            return Some(format!("cannot open the display ({})", err.message));
        }
    }
    None
}

/// Runs the agent until Quit or a signal: the server of the config file at `config_path` with
/// `flags` over it, a tray icon and notifications. A bad flag is an error, as for `foolock
/// serve`; a config file with an error is shown in the menu until it is fixed (see
/// [`runtime`]). Returns at once, successfully, if another agent already runs.
pub fn run(config_path: &Path, flags: &ServerFlags) -> anyhow::Result<ExitCode> {
    let first = Config::load(config_path).and_then(|config| flags.apply(config));
    if let Err(err @ ConfigError::Flag { .. }) = first {
        return Err(err.into());
    }
    ui::run(runtime::Settings {
        path: config_path.to_owned(),
        flags: flags.clone(),
        first,
    })
}
