//! The Linux login item as a plan: an XDG autostart entry for desktop sessions (the tray needs a
//! display), or with `--headless` a systemd user unit running `foolock serve`.
//!
//! Pure and portable like [`super::launchd`]; the `linux` module reads the files, builds the plan
//! here and runs it. The two kinds exclude each other: both would serve on the same port.

use super::generate::{
    TextPath, autostart_desktop, autostart_enabled, systemd_refuses, systemd_unit,
};
use super::paths::{Layout, systemd_unit_name};
use super::steps::{Cmd, Step, read_if_exists};
use anyhow::bail;
use std::path::Path;

/// The files the plan depends on, as found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The autostart entry now at [`Layout::autostart_file`].
    pub autostart: Option<String>,
    /// The unit now at [`Layout::systemd_unit_file`].
    pub unit: Option<String>,
}

impl Observed {
    pub fn read(layout: &Layout) -> anyhow::Result<Observed> {
        Ok(Observed {
            autostart: read_if_exists(&layout.autostart_file())?,
            unit: read_if_exists(&layout.systemd_unit_file())?,
        })
    }

    /// Whether the desktop session will start the agent: the entry exists and the user has not
    /// turned it off in their desktop's startup settings.
    pub fn autostarts(&self) -> bool {
        self.autostart.as_deref().is_some_and(autostart_enabled)
    }
}

fn systemctl(args: &[&str]) -> Step {
    let mut all = vec!["--user"];
    all.extend_from_slice(args);
    Step::Run(Cmd::new("systemctl", &all))
}

fn parent(path: &Path) -> std::path::PathBuf {
    path.parent()
        .expect("install paths have a parent")
        .to_owned()
}

/// Writes the autostart entry. Nothing is started now: the session starts it at the next login,
/// and a tray started from a terminal would belong to that terminal.
pub fn install_login_item(
    layout: &Layout,
    program: &TextPath,
    seen: &Observed,
) -> anyhow::Result<Vec<Step>> {
    if seen.unit.is_some() {
        bail!(
            "the headless service is installed ({}); it and the desktop agent would both serve on \
             the same port. Remove it first with `foolock uninstall --headless`",
            layout.systemd_unit_file().display()
        );
    }
    let path = layout.autostart_file();
    Ok(vec![
        Step::CreateDir(parent(&path)),
        Step::Write {
            path,
            contents: autostart_desktop(program),
        },
    ])
}

/// Removes the autostart entry; a running agent keeps running until the user quits it.
pub fn uninstall_login_item(layout: &Layout, seen: &Observed) -> Vec<Step> {
    let mut steps = vec![];
    if seen.autostart.is_some() {
        steps.push(Step::Remove(layout.autostart_file()));
    } else {
        steps.push(Step::Note(
            "the login item is not installed; nothing to remove".to_owned(),
        ));
    }
    if seen.unit.is_some() {
        steps.push(Step::Note(
            "the headless service is still installed; remove it with `foolock uninstall --headless`".to_owned(),
        ));
    }
    steps
}

/// Writes the user unit, then enables and starts it. A changed unit is restarted if running,
/// so a reinstall after moving the binary takes effect; an unchanged one is left alone.
pub fn install_headless(
    layout: &Layout,
    program: &TextPath,
    config: Option<&TextPath>,
    seen: &Observed,
) -> anyhow::Result<Vec<Step>> {
    if let Some(why) = systemd_refuses(program) {
        bail!(why);
    }
    if seen.autostarts() {
        bail!(
            "the desktop login item is installed ({}); it and the headless service would both \
             serve on the same port. Remove it first with `foolock uninstall`",
            layout.autostart_file().display()
        );
    }
    let path = layout.systemd_unit_file();
    let contents = systemd_unit(program, config);
    let changed = seen.unit.as_ref().is_some_and(|old| *old != contents);
    let unit = systemd_unit_name();
    let mut steps = vec![
        Step::CreateDir(parent(&path)),
        Step::Write { path, contents },
        systemctl(&["daemon-reload"]),
    ];
    if changed {
        steps.push(systemctl(&["try-restart", &unit]));
    }
    steps.push(systemctl(&["enable", "--now", &unit]));
    Ok(steps)
}

/// Stops and disables the unit, removes it, and has systemd forget it.
pub fn uninstall_headless(layout: &Layout, seen: &Observed) -> Vec<Step> {
    let unit = systemd_unit_name();
    let mut steps = vec![];
    if seen.unit.is_some() {
        steps.push(systemctl(&["disable", "--now", &unit]));
        steps.push(Step::Remove(layout.systemd_unit_file()));
        steps.push(systemctl(&["daemon-reload"]));
    } else {
        steps.push(Step::Note(
            "the headless service is not installed; nothing to remove".to_owned(),
        ));
    }
    if seen.autostart.is_some() {
        steps.push(Step::Note(
            "the desktop login item is still installed; remove it with `foolock uninstall`"
                .to_owned(),
        ));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::steps::commands as runs;

    fn layout() -> Layout {
        Layout {
            home: "/home/ann".into(),
            config_home: "/home/ann/.config".into(),
        }
    }

    fn program() -> TextPath {
        TextPath::new(Path::new("/home/ann/.cargo/bin/foolock")).unwrap()
    }

    #[test]
    fn login_item_install_only_writes_the_autostart_entry() {
        let steps = install_login_item(&layout(), &program(), &Observed::default()).unwrap();
        assert_eq!(
            steps,
            [
                Step::CreateDir("/home/ann/.config/autostart".into()),
                Step::Write {
                    path: "/home/ann/.config/autostart/foolock.desktop".into(),
                    contents: autostart_desktop(&program()),
                },
            ]
        );
    }

    #[test]
    fn headless_install_enables_and_starts_the_unit() {
        let steps = install_headless(&layout(), &program(), None, &Observed::default()).unwrap();
        assert_eq!(
            steps[1],
            Step::Write {
                path: "/home/ann/.config/systemd/user/foolock.service".into(),
                contents: systemd_unit(&program(), None),
            }
        );
        assert_eq!(
            runs(&steps),
            [
                "systemctl --user daemon-reload",
                "systemctl --user enable --now foolock.service"
            ]
        );
    }

    #[test]
    fn headless_reinstall_with_a_changed_unit_restarts_it() {
        let seen = Observed {
            unit: Some("[Service]\nExecStart=/old/foolock serve\n".into()),
            ..Observed::default()
        };
        let steps = install_headless(&layout(), &program(), None, &seen).unwrap();
        assert_eq!(
            runs(&steps),
            [
                "systemctl --user daemon-reload",
                "systemctl --user try-restart foolock.service",
                "systemctl --user enable --now foolock.service",
            ]
        );
    }

    #[test]
    fn headless_uninstall_disables_removes_and_reloads() {
        let seen = Observed {
            unit: Some(systemd_unit(&program(), None)),
            ..Observed::default()
        };
        let steps = uninstall_headless(&layout(), &seen);
        assert_eq!(
            steps,
            [
                systemctl(&["disable", "--now", "foolock.service"]),
                Step::Remove(layout().systemd_unit_file()),
                systemctl(&["daemon-reload"]),
            ]
        );
    }

    #[test]
    fn uninstall_of_nothing_runs_nothing_and_says_so() {
        for steps in [
            uninstall_headless(&layout(), &Observed::default()),
            uninstall_login_item(&layout(), &Observed::default()),
        ] {
            assert!(
                matches!(&steps[..], [Step::Note(n)] if n.contains("not installed")),
                "{steps:?}"
            );
        }
    }

    #[test]
    fn the_two_kinds_refuse_each_other_loudly() {
        let with_unit = Observed {
            unit: Some(String::new()),
            ..Observed::default()
        };
        let err = install_login_item(&layout(), &program(), &with_unit).unwrap_err();
        assert!(
            err.to_string().contains("foolock uninstall --headless"),
            "{err}"
        );

        let with_entry = Observed {
            autostart: Some(autostart_desktop(&program())),
            ..Observed::default()
        };
        let err = install_headless(&layout(), &program(), None, &with_entry).unwrap_err();
        assert!(err.to_string().contains("`foolock uninstall`"), "{err}");
    }

    #[test]
    fn an_autostart_entry_turned_off_in_the_desktop_does_not_block_headless() {
        let seen = Observed {
            autostart: Some("[Desktop Entry]\nHidden=true\n".into()),
            ..Observed::default()
        };
        assert!(install_headless(&layout(), &program(), None, &seen).is_ok());
    }

    #[test]
    fn uninstalling_one_kind_mentions_the_other_still_installed() {
        let both = Observed {
            autostart: Some(String::new()),
            unit: Some(String::new()),
        };
        let steps = uninstall_login_item(&layout(), &both);
        assert!(matches!(&steps[1], Step::Note(n) if n.contains("--headless")));
        let steps = uninstall_headless(&layout(), &both);
        assert!(matches!(steps.last(), Some(Step::Note(n)) if n.contains("`foolock uninstall`")));
    }

    #[test]
    fn headless_refuses_a_path_systemd_would_reject() {
        let quoted = TextPath::new(Path::new("/home/ann/it's/foolock")).unwrap();
        let err = install_headless(&layout(), &quoted, None, &Observed::default()).unwrap_err();
        assert!(err.to_string().contains("quote or a backslash"), "{err}");
    }
}
