//! The macOS login item as a plan: a launchd agent plist in `~/Library/LaunchAgents`, booted
//! into the user's GUI domain with `launchctl`.
//!
//! Pure and portable, so it is compiled and tested on every platform; the `macos` module only
//! observes the machine (the plist on disk, whether launchd has the agent loaded), builds the
//! plan here and runs it.

use super::generate::{TextPath, launch_agent_plist};
use super::paths::Layout;
use super::steps::{Cmd, Step};
use super::{APP_NAME, BIN_NAME, BUNDLE_ID};
use std::path::{Path, PathBuf};

/// What the plan needs to know about the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The plist now at [`Layout::launch_agent_file`], if any.
    pub plist: Option<String>,
    /// Whether launchd has the agent loaded in the user's GUI domain.
    pub loaded: bool,
    /// Whether the log directory exists (uninstall mentions that it keeps it).
    pub logs_exist: bool,
}

/// The user's GUI launchd domain, `gui/<uid>`.
pub fn domain(uid: u32) -> String {
    format!("gui/{uid}")
}

/// The agent's launchd service target, `gui/<uid>/io.foolock.agent`.
pub fn service_target(uid: u32) -> String {
    format!("gui/{uid}/{BUNDLE_ID}")
}

/// The agent's log file (stdout and stderr together, so lines stay in order).
pub fn log_file(layout: &Layout) -> PathBuf {
    layout.launchd_log_dir().join(format!("{BIN_NAME}.log"))
}

/// Whether `program` sits inside an app bundle (`*.app/Contents/MacOS/<binary>`).
pub fn is_in_app_bundle(program: &Path) -> bool {
    let mut up = program.ancestors().skip(1);
    let (Some(macos), Some(contents), Some(app)) = (up.next(), up.next(), up.next()) else {
        return false;
    };
    macos.file_name().is_some_and(|n| n == "MacOS")
        && contents.file_name().is_some_and(|n| n == "Contents")
        && app.extension().is_some_and(|e| e == "app")
}

/// Installs the agent. With `launch`, also (re)loads it into launchd so it starts now; without
/// (the tray's own "Start at login" switch, where the agent is already running) only the plist
/// is written, and launchd picks it up at the next login.
pub fn install_plan(
    layout: &Layout,
    program: &TextPath,
    seen: &Observed,
    uid: u32,
    launch: bool,
) -> anyhow::Result<Vec<Step>> {
    let plist_path = layout.launch_agent_file();
    let log = TextPath::new(&log_file(layout))?;
    let contents = launch_agent_plist(program, &log);
    let changed = seen.plist.as_deref() != Some(contents.as_str());
    let plist_arg = plist_path.to_string_lossy().into_owned();

    let mut steps = vec![];
    if !is_in_app_bundle(program.as_path()) {
        steps.push(Step::Note(format!(
            "note: {program} is not inside {APP_NAME}.app, so notifications will not show the app's \
             name and icon; install {APP_NAME}.app and run `foolock install` from it for that"
        )));
    }
    steps.extend([
        Step::CreateDir(
            plist_path
                .parent()
                .expect("agent path has a parent")
                .to_owned(),
        ),
        Step::CreateDir(layout.launchd_log_dir()),
        Step::Write {
            path: plist_path,
            contents,
        },
    ]);
    if launch {
        let bootstrap = Step::Run(Cmd::new(
            "launchctl",
            &["bootstrap", &domain(uid), &plist_arg],
        ));
        if !seen.loaded {
            steps.push(bootstrap);
        } else if changed {
            // launchd keeps the definition it loaded; swapping it in means unloading first,
            // which stops the running agent (it comes straight back with the new plist).
            steps.push(Step::Run(Cmd::new(
                "launchctl",
                &["bootout", &service_target(uid)],
            )));
            steps.push(bootstrap);
        } else {
            steps.push(Step::Note(
                "launchd already has this agent loaded; left it running".to_owned(),
            ));
        }
        steps.push(Step::Note(format!(
            "foolock runs as a login item: it starts at every login, logs to {log}"
        )));
    }
    Ok(steps)
}

/// Removes the agent. With `launch`, also unloads it from launchd, which stops a running agent.
/// Without (the tray switch), the running agent is the one asking, so it stays loaded until
/// logout; only the plist goes, and with it the start at the next login.
///
/// Logs are kept: they are the user's record of what happened, not part of the install.
pub fn uninstall_plan(layout: &Layout, seen: &Observed, uid: u32, launch: bool) -> Vec<Step> {
    let mut steps = vec![];
    if launch && seen.loaded {
        steps.push(Step::Run(Cmd::new(
            "launchctl",
            &["bootout", &service_target(uid)],
        )));
    }
    if seen.plist.is_some() {
        steps.push(Step::Remove(layout.launch_agent_file()));
    }
    if steps.is_empty() {
        steps.push(Step::Note(
            "the login item is not installed; nothing to remove".to_owned(),
        ));
    } else if launch && seen.logs_exist {
        steps.push(Step::Note(format!(
            "kept the agent's logs in {}; delete them by hand if you like",
            layout.launchd_log_dir().display()
        )));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::steps::commands as runs;

    fn layout() -> Layout {
        Layout {
            home: "/Users/ann".into(),
            config_home: "/Users/ann/.config".into(),
        }
    }

    const APP_BIN: &str = "/Applications/Foolock.app/Contents/MacOS/foolock";

    fn program() -> TextPath {
        TextPath::new(Path::new(APP_BIN)).unwrap()
    }

    fn plist() -> String {
        launch_agent_plist(&program(), &TextPath::new(&log_file(&layout())).unwrap())
    }

    #[test]
    fn fresh_install_writes_the_plist_and_bootstraps_it() {
        let steps = install_plan(&layout(), &program(), &Observed::default(), 501, true).unwrap();
        assert_eq!(
            steps[..3],
            [
                Step::CreateDir("/Users/ann/Library/LaunchAgents".into()),
                Step::CreateDir("/Users/ann/Library/Logs/foolock".into()),
                Step::Write {
                    path: "/Users/ann/Library/LaunchAgents/io.foolock.agent.plist".into(),
                    contents: plist(),
                },
            ]
        );
        assert_eq!(
            runs(&steps),
            ["launchctl bootstrap gui/501 /Users/ann/Library/LaunchAgents/io.foolock.agent.plist"]
        );
    }

    #[test]
    fn reinstall_of_a_loaded_unchanged_agent_runs_nothing() {
        let seen = Observed {
            plist: Some(plist()),
            loaded: true,
            logs_exist: true,
        };
        let steps = install_plan(&layout(), &program(), &seen, 501, true).unwrap();
        assert!(runs(&steps).is_empty(), "{steps:?}");
    }

    #[test]
    fn reinstall_of_a_loaded_changed_agent_boots_out_then_in() {
        let seen = Observed {
            plist: Some("old".into()),
            loaded: true,
            logs_exist: true,
        };
        let steps = install_plan(&layout(), &program(), &seen, 501, true).unwrap();
        assert_eq!(
            runs(&steps),
            [
                "launchctl bootout gui/501/io.foolock.agent",
                "launchctl bootstrap gui/501 /Users/ann/Library/LaunchAgents/io.foolock.agent.plist",
            ]
        );
    }

    #[test]
    fn tray_switch_only_writes_the_plist_never_touching_launchd() {
        let seen = Observed {
            plist: Some("old".into()),
            loaded: true,
            logs_exist: true,
        };
        assert!(runs(&install_plan(&layout(), &program(), &seen, 501, false).unwrap()).is_empty());
        assert_eq!(
            uninstall_plan(&layout(), &seen, 501, false),
            [Step::Remove(layout().launch_agent_file())]
        );
    }

    #[test]
    fn uninstall_boots_out_a_loaded_agent_and_removes_the_plist_keeping_logs() {
        let seen = Observed {
            plist: Some(plist()),
            loaded: true,
            logs_exist: true,
        };
        let steps = uninstall_plan(&layout(), &seen, 501, true);
        assert_eq!(
            steps[0],
            Step::Run(Cmd::new(
                "launchctl",
                &["bootout", "gui/501/io.foolock.agent"]
            ))
        );
        assert_eq!(steps[1], Step::Remove(layout().launch_agent_file()));
        assert!(matches!(&steps[2], Step::Note(n) if n.contains("kept the agent's logs")));
        assert_eq!(steps.len(), 3);
    }

    #[test]
    fn uninstall_when_nothing_is_there_says_so() {
        let steps = uninstall_plan(&layout(), &Observed::default(), 501, true);
        assert!(matches!(&steps[..], [Step::Note(n)] if n.contains("not installed")));
    }

    #[test]
    fn program_outside_a_bundle_gets_a_note_about_notifications() {
        let loose = TextPath::new(Path::new("/opt/homebrew/bin/foolock")).unwrap();
        let steps = install_plan(&layout(), &loose, &Observed::default(), 501, true).unwrap();
        assert!(matches!(&steps[0], Step::Note(n) if n.contains("not inside Foolock.app")));
        let bundled = install_plan(&layout(), &program(), &Observed::default(), 501, true).unwrap();
        assert!(!matches!(&bundled[0], Step::Note(_)));
    }

    #[test]
    fn app_bundle_is_recognised_by_its_layout() {
        assert!(is_in_app_bundle(Path::new(APP_BIN)));
        assert!(is_in_app_bundle(Path::new(
            "/Users/a b/Foolock.app/Contents/MacOS/foolock"
        )));
        assert!(!is_in_app_bundle(Path::new("/usr/local/bin/foolock")));
        assert!(!is_in_app_bundle(Path::new("/x/Contents/MacOS/foolock")));
        assert!(!is_in_app_bundle(Path::new("foolock")));
    }
}
