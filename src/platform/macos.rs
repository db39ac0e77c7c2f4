//! macOS: the login item is a launchd agent in the user's GUI domain.
//!
//! Kept tiny because it cannot be built on Linux CI: it asks `launchctl` about the agent, builds
//! the plan in [`super::launchd`] (tested everywhere, also against a `launchctl` double) and
//! runs it.

use super::launchd::{self, Launchctl};
use super::paths::Layout;
use super::status::Status;
use super::steps;
use super::{InstallOptions, Mode, current_program};
use anyhow::bail;
use std::io::Write;

pub fn install(opts: &InstallOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    refuse_headless(opts.mode)?;
    let layout = Layout::from_env()?;
    let program = current_program()?;
    let launchctl = Launchctl::new(uid());
    let seen = launchctl.observe(&layout)?;
    let steps = launchd::install_plan(&layout, &program, &seen, &launchctl, opts.launch)?;
    steps::apply(&steps, opts.dry_run, out)
}

pub fn uninstall(opts: &InstallOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    refuse_headless(opts.mode)?;
    let layout = Layout::from_env()?;
    let launchctl = Launchctl::new(uid());
    let seen = launchctl.observe(&layout)?;
    let steps = launchd::uninstall_plan(&layout, &seen, &launchctl, opts.launch);
    steps::apply(&steps, opts.dry_run, out)
}

pub fn status() -> anyhow::Result<Status> {
    let layout = Layout::from_env()?;
    let launchctl = Launchctl::new(uid());
    let seen = launchctl.observe(&layout)?;
    let item = launchd::status_item(&layout, &current_program()?, &seen, &launchctl)?;
    Ok(Status { items: vec![item] })
}

/// Whether the agent will start at login: its plist is there and launchd has not got the label
/// switched off ("Allow in the Background" in System Settings, or `launchctl disable`).
pub fn is_registered(mode: Mode) -> anyhow::Result<bool> {
    if mode != Mode::LoginItem || !Layout::from_env()?.launch_agent_file().exists() {
        return Ok(false);
    }
    // No answer from launchd is no evidence it is off.
    Ok(!Launchctl::new(uid()).is_disabled().unwrap_or(false))
}

fn refuse_headless(mode: Mode) -> anyhow::Result<()> {
    if mode == Mode::Headless {
        bail!(
            "--headless is for Linux machines without a desktop; on macOS run `foolock install` without it"
        );
    }
    Ok(())
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}
