//! Platform integration: starting foolock at login, the files the packages ship, and the few
//! other calls that differ by OS (the machine's name, opening a file for the user).
//!
//! The rest of the program calls [`install`], [`uninstall`], [`status()`], [`is_registered`] and
//! the tray's [`set_start_at_login`] / [`start_at_login`]; which OS module answers is chosen
//! here with `cfg`. Outside this folder only the desktop agent's GUI code says `target_os`
//! (`src/agent`: the display check, the event loop and tray, the notification identity).
//!
//! - [`generate`]: the plist, desktop-entry and systemd-unit text, from plain portable functions
//!   (the checked-in files under `packaging/` are tested equal to their output).
//! - [`steps`]: install and uninstall as a list of steps, printed by `--dry-run` or carried out.
//! - [`launchd`], [`xdg`]: the macOS and Linux plans, pure, so both are tested on every OS.
//! - `macos`, `linux`: observe the machine, build the plan, run it (`launchctl`, `systemctl`).
//! - [`paths`]: where things go, from `HOME` and `XDG_CONFIG_HOME`.
//! - [`process`]: a child that must not outlive us (`foolock lock`'s command).
//! - [`host`]: the machine's name (the CLI's default client id) and the program that opens a
//!   file in the user's default app.
//! - [`local_time`]: an instant in the user's time zone, for the CLI's messages.
//! - [`cli`]: the `install` and `uninstall` subcommands.
//! - [`clock`]: the monotonic clocks that do and do not count sleep, per OS.
//! - [`socket`]: the server's open-file limit, and noticing a client that hung up.
//! - [`watch`]: waiting for a file to change (inotify, kqueue), for the agent's config file.
//! - `awake` (feature `tray`): holding off idle sleep while jobs are held (IOKit, logind).
//!
//! Invariants: install is idempotent (a second run changes nothing and says so); uninstall
//! removes exactly the files install wrote (directories are shared XDG/macOS locations and stay,
//! as do the agent's logs); anything refused is refused with an error saying why and what to do.

#[cfg(feature = "tray")]
pub mod awake;
pub mod cli;
pub mod clock;
pub mod generate;
pub mod host;
pub mod launchd;
pub mod local_time;
pub mod paths;
pub mod process;
pub mod socket;
pub mod status;
pub mod steps;
pub mod watch;
pub mod xdg;

#[cfg(test)]
mod tests;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as os;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod unsupported;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
use unsupported as os;

pub use generate::{TextPath, autostart_desktop, info_plist, launch_agent_plist, systemd_unit};
pub use host::{OPENER, browse_command, hostname, open_command, open_failure};
pub use os::{install, is_registered, status, uninstall};
pub use status::{FileState, Item, Status};

use anyhow::Context;

/// The macOS bundle identifier: the app's `CFBundleIdentifier`, the launchd label, and the
/// identity notifications are posted under.
pub const BUNDLE_ID: &str = "io.foolock.agent";
/// The app's name as users see it (`Foolock.app`, menu entries).
pub(crate) const APP_NAME: &str = "Foolock";
/// The binary's name, also used for the icon, the desktop entry and the systemd unit.
pub(crate) const BIN_NAME: &str = "foolock";

/// The argument the login items pass (the desktop autostart entry, the LaunchAgent): plain
/// `foolock` started this way runs its server even where it finds no display, instead of
/// explaining itself to a terminal that is not there.
pub(crate) const AUTOSTART_FLAG: &str = "--autostart";

/// Which kind of install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The tray agent, started by the desktop session at login.
    LoginItem,
    /// Linux only: `foolock serve` as a systemd user service, for machines without a desktop.
    Headless,
}

/// How to install or uninstall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    pub mode: Mode,
    /// The config file `install` was pointed at (`--config`, `FOOLOCK_CONFIG`), kept in the
    /// headless unit so the service reads the same settings.
    pub config: Option<TextPath>,
    /// Only print what would be written and run.
    pub dry_run: bool,
    /// Also start (or stop) it now through the service manager, as the CLI does. The tray's
    /// switch passes false: the agent asking is already running, and on macOS unloading its own
    /// launchd job would kill it.
    pub launch: bool,
}

/// Does what `foolock install`/`uninstall` does for the login item, without starting or
/// stopping anything now: for the tray's "Start at login" check item.
pub fn set_start_at_login(enabled: bool) -> anyhow::Result<()> {
    let opts = InstallOptions {
        mode: Mode::LoginItem,
        config: None,
        dry_run: false,
        launch: false,
    };
    let mut report = Vec::new();
    if enabled {
        install(&opts, &mut report)?;
    } else {
        uninstall(&opts, &mut report)?;
    }
    for line in String::from_utf8_lossy(&report).lines() {
        tracing::info!("start at login: {line}");
    }
    Ok(())
}

/// Whether the login item is installed and not turned off: the tray's check mark. Cheap (a
/// file or two; on macOS one `launchctl print-disabled`), asked once when the tray starts.
pub fn start_at_login() -> bool {
    is_registered(Mode::LoginItem).unwrap_or_else(|err| {
        tracing::warn!("cannot tell whether foolock starts at login: {err:#}");
        false
    })
}

/// The running binary as a login item should name it: symlinks resolved (so a Homebrew or
/// `/usr/local/bin` link does not pin the login item to the link), and still on disk (Linux
/// reports a binary replaced by an upgrade as "… (deleted)").
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn current_program() -> anyhow::Result<TextPath> {
    let exe = std::env::current_exe().context("cannot find the running foolock binary")?;
    let exe = exe.canonicalize().with_context(|| {
        format!(
            "the running foolock binary {} is no longer there (replaced by an upgrade?); \
             run install again with the new one",
            exe.display()
        )
    })?;
    TextPath::new(&exe).context("cannot name the foolock binary in a login item")
}
