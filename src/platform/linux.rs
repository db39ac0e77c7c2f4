//! Linux: the login item is an XDG autostart entry; `--headless` is a systemd user unit.
//!
//! Reads what is on disk, builds the plan in [`super::xdg`], runs it. The only processes started
//! are `systemctl --user` for the headless unit; the autostart entry is just a file.

use super::generate::{
    TextPath, autostart_desktop, autostart_enabled, systemd_unit, systemd_unit_without_config,
};
use super::paths::{Layout, systemd_unit_name};
use super::status::{FileState, Item, Status};
use super::steps::{self, Cmd, Step};
use super::xdg::{self, Observed};
use super::{InstallOptions, Mode, current_program};
use std::io::Write;
use std::path::Path;

pub fn install(opts: &InstallOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    install_in(&Layout::from_env()?, &current_program()?, opts, out)
}

pub fn uninstall(opts: &InstallOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    uninstall_in(&Layout::from_env()?, opts, out)
}

pub fn status() -> anyhow::Result<Status> {
    status_in(&Layout::from_env()?, &current_program()?, true)
}

/// Reads files only (no `systemctl`), so the tray can ask on every menu open.
pub fn is_registered(mode: Mode) -> anyhow::Result<bool> {
    is_registered_in(&Layout::from_env()?, mode)
}

fn install_in(
    layout: &Layout,
    program: &TextPath,
    opts: &InstallOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let seen = Observed::read(layout)?;
    let mut steps = match opts.mode {
        Mode::LoginItem => xdg::install_login_item(layout, program, &seen)?,
        Mode::Headless => xdg::install_headless(layout, program, opts.config.as_ref(), &seen)?,
    };
    steps.extend(hints(opts.mode, |name| {
        std::env::var_os(name).is_some_and(|v| !v.is_empty())
    }));
    steps::apply(&steps, opts.dry_run, out)
}

fn uninstall_in(layout: &Layout, opts: &InstallOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let seen = Observed::read(layout)?;
    let steps = match opts.mode {
        Mode::LoginItem => xdg::uninstall_login_item(layout, &seen),
        Mode::Headless => xdg::uninstall_headless(layout, &seen),
    };
    steps::apply(&steps, opts.dry_run, out)
}

fn is_registered_in(layout: &Layout, mode: Mode) -> anyhow::Result<bool> {
    let seen = Observed::read(layout)?;
    Ok(match mode {
        Mode::LoginItem => seen.autostarts(),
        Mode::Headless => seen.unit.is_some(),
    })
}

fn status_in(layout: &Layout, program: &TextPath, ask_systemd: bool) -> anyhow::Result<Status> {
    let seen = Observed::read(layout)?;
    let login_item = Item {
        mode: Mode::LoginItem,
        what: "login item (XDG autostart)",
        path: layout.autostart_file(),
        file: FileState::of(seen.autostart.as_deref(), &autostart_desktop(program)),
        enabled: seen.autostart.as_deref().is_none_or(autostart_enabled),
        service: None,
    };
    let headless = Item {
        mode: Mode::Headless,
        what: "headless service (systemd user unit)",
        path: layout.systemd_unit_file(),
        // Current whatever config file it was installed with.
        file: FileState::of(
            seen.unit
                .as_deref()
                .map(systemd_unit_without_config)
                .as_deref(),
            &systemd_unit(program, None),
        ),
        enabled: true,
        service: (ask_systemd && seen.unit.is_some()).then(systemd_state),
    };
    Ok(Status {
        items: vec![login_item, headless],
    })
}

/// "systemd: enabled, active", as `systemctl --user` sees the unit. Never fails: a machine
/// without a user manager says so in place of an answer.
fn systemd_state() -> String {
    let unit = systemd_unit_name();
    let ask = |verb: &str| match Cmd::new("systemctl", &["--user", verb, &unit]).query() {
        Ok(out) => {
            let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if answer.is_empty() {
                let err = String::from_utf8_lossy(&out.stderr);
                format!(
                    "unknown ({})",
                    err.lines().next().unwrap_or("no answer").trim()
                )
            } else {
                answer
            }
        }
        Err(err) => format!("unknown ({err:#})"),
    };
    format!("systemd: {}, {}", ask("is-enabled"), ask("is-active"))
}

/// What to tell the user after the plan, given which environment variables are set.
fn hints(mode: Mode, is_set: impl Fn(&str) -> bool) -> Vec<Step> {
    let mut notes = vec![];
    match mode {
        Mode::LoginItem => {
            notes.push(
                "foolock will start at every desktop login; to start it now, open Foolock from \
                 your desktop's menu or run `foolock`"
                    .to_owned(),
            );
            if !is_set("DISPLAY") && !is_set("WAYLAND_DISPLAY") {
                notes.push(
                    "note: no desktop session here (DISPLAY and WAYLAND_DISPLAY are unset); on a \
                     machine without a desktop use `foolock install --headless` instead"
                        .to_owned(),
                );
            }
        }
        Mode::Headless => {
            notes.push(
                "foolock serve runs as the user service foolock.service: see \
                 `systemctl --user status foolock` and `journalctl --user -u foolock`"
                    .to_owned(),
            );
            if !lingering(std::env::var("USER").ok().as_deref()) {
                // Without lingering, systemd stops user services when the last session ends,
                // which on a server is right after the admin logs out.
                notes.push(
                    "note: user services run only while you are logged in; to run foolock from \
                     boot, run `loginctl enable-linger` once"
                        .to_owned(),
                );
            }
        }
    }
    notes.into_iter().map(Step::Note).collect()
}

fn lingering(user: Option<&str>) -> bool {
    user.is_some_and(|u| Path::new("/var/lib/systemd/linger").join(u).exists())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::path::PathBuf;

    /// A layout resolved the way the real one is, from HOME and XDG_CONFIG_HOME, but pointing
    /// into a temp dir.
    fn temp_layout(tmp: &Path) -> Layout {
        let vars: HashMap<&str, OsString> = [
            ("HOME", tmp.join("home").into_os_string()),
            (
                "XDG_CONFIG_HOME",
                tmp.join("home/.config dir").into_os_string(),
            ),
        ]
        .into();
        Layout::from_vars(|name| vars.get(name).cloned()).unwrap()
    }

    fn program() -> TextPath {
        TextPath::new(Path::new("/opt/foo lock/foolock")).unwrap()
    }

    fn opts(mode: Mode, dry_run: bool) -> InstallOptions {
        InstallOptions {
            mode,
            config: None,
            dry_run,
            launch: true,
        }
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut found = vec![];
        let Ok(entries) = std::fs::read_dir(dir) else {
            return found;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    fn output(f: impl FnOnce(&mut Vec<u8>) -> anyhow::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn login_item_install_uninstall_round_trip_in_a_temp_home() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = temp_layout(tmp.path());
        let entry = layout.autostart_file();
        assert!(!is_registered_in(&layout, Mode::LoginItem).unwrap());

        let said =
            output(|out| install_in(&layout, &program(), &opts(Mode::LoginItem, false), out));
        assert!(
            said.contains(&format!("wrote {}", entry.display())),
            "{said}"
        );
        assert_eq!(
            std::fs::read_to_string(&entry).unwrap(),
            autostart_desktop(&program())
        );
        assert_eq!(files_under(tmp.path()), std::slice::from_ref(&entry));
        assert!(is_registered_in(&layout, Mode::LoginItem).unwrap());
        let status = status_in(&layout, &program(), false).unwrap();
        assert_eq!(
            status.item(Mode::LoginItem).unwrap().file,
            FileState::Current
        );
        assert_eq!(
            status.item(Mode::Headless).unwrap().file,
            FileState::Missing
        );

        let again =
            output(|out| install_in(&layout, &program(), &opts(Mode::LoginItem, false), out));
        assert!(again.contains("already up to date"), "{again}");

        let said = output(|out| uninstall_in(&layout, &opts(Mode::LoginItem, false), out));
        assert!(
            said.contains(&format!("removed {}", entry.display())),
            "{said}"
        );
        assert_eq!(files_under(tmp.path()), Vec::<PathBuf>::new());
        assert!(!is_registered_in(&layout, Mode::LoginItem).unwrap());

        let again = output(|out| uninstall_in(&layout, &opts(Mode::LoginItem, false), out));
        assert!(
            again.contains("not installed; nothing to remove"),
            "{again}"
        );
    }

    #[test]
    fn headless_dry_run_shows_the_unit_and_systemctl_calls_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = temp_layout(tmp.path());
        let said = output(|out| install_in(&layout, &program(), &opts(Mode::Headless, true), out));
        let unit = layout.systemd_unit_file();
        assert!(
            said.contains(&format!("would write {}:", unit.display())),
            "{said}"
        );
        assert!(
            said.contains("    ExecStart=\"/opt/foo lock/foolock\" serve"),
            "{said}"
        );
        assert!(
            said.contains("would run: systemctl --user daemon-reload"),
            "{said}"
        );
        assert!(
            said.contains("would run: systemctl --user enable --now foolock.service"),
            "{said}"
        );
        assert_eq!(files_under(tmp.path()), Vec::<PathBuf>::new());
        assert!(!tmp.path().join("home").exists());

        // And the dry uninstall of a unit that is there names the calls without making them.
        std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
        std::fs::write(&unit, systemd_unit(&program(), None)).unwrap();
        let said = output(|out| uninstall_in(&layout, &opts(Mode::Headless, true), out));
        assert!(
            said.contains("would run: systemctl --user disable --now foolock.service"),
            "{said}"
        );
        assert!(
            said.contains(&format!("would remove {}", unit.display())),
            "{said}"
        );
        assert!(unit.exists());
    }

    #[test]
    fn an_entry_for_another_binary_shows_as_different() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = temp_layout(tmp.path());
        let old = TextPath::new(Path::new("/usr/bin/foolock")).unwrap();
        install_in(
            &layout,
            &old,
            &opts(Mode::LoginItem, false),
            &mut std::io::sink(),
        )
        .unwrap();
        let status = status_in(&layout, &program(), false).unwrap();
        assert_eq!(
            status.item(Mode::LoginItem).unwrap().file,
            FileState::Different
        );
        assert!(status.to_string().contains("run install again"), "{status}");
    }

    #[test]
    fn an_entry_turned_off_in_the_desktop_settings_is_not_registered() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = temp_layout(tmp.path());
        let entry = layout.autostart_file();
        std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
        let turned_off = autostart_desktop(&program()) + "X-GNOME-Autostart-enabled=false\n";
        std::fs::write(&entry, turned_off).unwrap();
        assert!(!is_registered_in(&layout, Mode::LoginItem).unwrap());
        let status = status_in(&layout, &program(), false).unwrap();
        assert!(status.to_string().contains("turned off"), "{status}");

        // Installing again turns it back on.
        install_in(
            &layout,
            &program(),
            &opts(Mode::LoginItem, false),
            &mut std::io::sink(),
        )
        .unwrap();
        assert!(is_registered_in(&layout, Mode::LoginItem).unwrap());
    }

    #[test]
    fn hints_point_a_display_less_machine_at_headless() {
        let notes = |set: &[&str]| {
            hints(Mode::LoginItem, |n| set.contains(&n))
                .iter()
                .any(|s| matches!(s, Step::Note(n) if n.contains("--headless")))
        };
        assert!(notes(&[]));
        assert!(!notes(&["DISPLAY"]));
        assert!(!notes(&["WAYLAND_DISPLAY"]));
    }
}
