//! macOS: the login item is a launchd agent in the user's GUI domain.
//!
//! Kept tiny because it cannot be built on Linux CI: it asks `launchctl` whether the agent is
//! loaded, builds the plan in [`super::launchd`] (tested everywhere) and runs it.

use super::generate::launch_agent_plist;
use super::launchd::{self, Observed};
use super::paths::Layout;
use super::status::{FileState, Item, Status};
use super::steps::{self, Cmd, read_if_exists};
use super::{InstallOptions, Mode, current_program};
use anyhow::bail;
use std::io::Write;

pub fn install(opts: &InstallOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    refuse_headless(opts.mode)?;
    let layout = Layout::from_env()?;
    let program = current_program()?;
    let uid = uid();
    let steps =
        launchd::install_plan(&layout, &program, &observe(&layout, uid)?, uid, opts.launch)?;
    steps::apply(&steps, opts.dry_run, out)
}

pub fn uninstall(opts: &InstallOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    refuse_headless(opts.mode)?;
    let layout = Layout::from_env()?;
    let uid = uid();
    let steps = launchd::uninstall_plan(&layout, &observe(&layout, uid)?, uid, opts.launch);
    steps::apply(&steps, opts.dry_run, out)
}

pub fn status() -> anyhow::Result<Status> {
    let layout = Layout::from_env()?;
    let program = current_program()?;
    let uid = uid();
    let seen = observe(&layout, uid)?;
    let log = super::generate::TextPath::new(&launchd::log_file(&layout))?;
    let service = if seen.loaded {
        let print = Cmd::new("launchctl", &["print", &launchd::service_target(uid)]).query()?;
        let text = String::from_utf8_lossy(&print.stdout);
        // `launchctl print` has no stable format; its `state = running` line is all we show.
        match text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("state = "))
        {
            Some(state) => format!("launchd: loaded in {}, {state}", launchd::domain(uid)),
            None => format!("launchd: loaded in {}", launchd::domain(uid)),
        }
    } else {
        "launchd: not loaded".to_owned()
    };
    Ok(Status {
        items: vec![Item {
            mode: Mode::LoginItem,
            what: "login item (launchd agent)",
            path: layout.launch_agent_file(),
            file: FileState::of(seen.plist.as_deref(), &launch_agent_plist(&program, &log)),
            enabled: true,
            service: Some(service),
        }],
    })
}

/// Reads the plist only (no `launchctl`), so the tray can ask on every menu open.
pub fn is_registered(mode: Mode) -> anyhow::Result<bool> {
    Ok(mode == Mode::LoginItem && Layout::from_env()?.launch_agent_file().exists())
}

fn refuse_headless(mode: Mode) -> anyhow::Result<()> {
    if mode == Mode::Headless {
        bail!(
            "--headless is for Linux machines without a desktop; on macOS run `foolock install` without it"
        );
    }
    Ok(())
}

fn observe(layout: &Layout, uid: u32) -> anyhow::Result<Observed> {
    // `launchctl print` exits non-zero when the service is not loaded; that is the answer.
    let print = Cmd::new("launchctl", &["print", &launchd::service_target(uid)]).query()?;
    Ok(Observed {
        plist: read_if_exists(&layout.launch_agent_file())?,
        loaded: print.status.success(),
        logs_exist: layout.launchd_log_dir().is_dir(),
    })
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}
