//! The macOS login item as a plan: a launchd agent plist in `~/Library/LaunchAgents`, booted
//! into the user's GUI domain with `launchctl`, and what `launchctl` says about it.
//!
//! Pure and portable, so it is compiled and tested on every platform; the `macos` module only
//! observes the machine through [`Launchctl::observe`], builds the plan here and runs it. Tests
//! run the same plans against a double of `launchctl` (tests/doubles/launchctl).
//!
//! launchd is asynchronous: `bootout` returns while launchd still holds the job (its process
//! may take seconds to exit), and a `bootstrap` of the same label meanwhile fails with
//! "Bootstrap failed: 5: Input/output error". So every unload is followed by a bounded wait until
//! `launchctl print` no longer finds the job, and every load is retried while launchd answers 5
//! or 37. A label turned off with `launchctl disable` (or, as far as launchd shows it, with the
//! "Allow in the Background" switch in System Settings) also refuses with 5, so install turns it
//! back on first.

use super::generate::{TextPath, launch_agent_plist};
use super::paths::Layout;
use super::status::{FileState, Item};
use super::steps::{Cmd, Retry, Step};
use super::{APP_NAME, BIN_NAME, BUNDLE_ID, Mode};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit codes `launchctl` passes on from launchd (errno values, plus launchd's own 113).
pub mod exit {
    /// `bootout`: the job is not there ("No such process").
    pub const NO_SUCH_PROCESS: i32 = 3;
    /// `bootstrap`: launchd still holds a job of that label, or the label is disabled.
    pub const IO_ERROR: i32 = 5;
    /// `bootout`: launchd has started unloading the job, which is still stopping.
    pub const IN_PROGRESS: i32 = 36;
    /// `bootstrap`: launchd is still busy with the previous job of that label.
    pub const ALREADY: i32 = 37;
    /// `print` and friends: no such service in the domain.
    pub const NOT_FOUND: i32 = 113;
}

/// How long install and uninstall wait for launchd to let go of a job or to take one: it
/// usually takes well under a second, but a job that is slow to exit holds its label until it
/// has (launchd allows 5 s before SIGKILL by default).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Where the "Allow in the Background" switch is, for messages.
const BACKGROUND_SWITCH: &str =
    "System Settings → General → Login Items & Extensions → Allow in the Background";

/// `launchctl` for the agent in one user's GUI domain: the commands the plans run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launchctl {
    /// The program: `launchctl` (from `PATH`), or a test double.
    pub program: String,
    pub uid: u32,
    /// How long to wait for launchd (normally [`PATIENCE`]).
    pub patience: Duration,
}

/// What the plan needs to know about the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The plist now at [`Layout::launch_agent_file`], if any.
    pub plist: Option<String>,
    /// Whether launchd has the agent loaded in the user's GUI domain.
    pub loaded: bool,
    /// The job's `state = …` line as `launchctl print` shows it (e.g. `state = running`).
    pub state: Option<String>,
    /// Whether launchd has the label disabled (`launchctl disable`, or "Allow in the Background"
    /// turned off): it will not load at login, and `bootstrap` refuses it.
    pub disabled: bool,
    /// Whether the log directory exists (uninstall mentions that it keeps it).
    pub logs_exist: bool,
}

impl Launchctl {
    /// The real `launchctl`, for user `uid`.
    pub fn new(uid: u32) -> Launchctl {
        Launchctl {
            program: "launchctl".to_owned(),
            uid,
            patience: PATIENCE,
        }
    }

    /// The user's GUI domain, `gui/<uid>`.
    pub fn domain(&self) -> String {
        format!("gui/{}", self.uid)
    }

    /// The agent's service target, `gui/<uid>/io.foolock.agent`.
    pub fn service(&self) -> String {
        format!("gui/{}/{BUNDLE_ID}", self.uid)
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        Cmd::new(&self.program, args)
    }

    /// `launchctl print gui/<uid>/io.foolock.agent`: exits 0 while loaded, 113 when not.
    pub fn print(&self) -> Cmd {
        self.cmd(&["print", &self.service()])
    }

    /// `launchctl print-disabled gui/<uid>`: the domain's disabled labels.
    pub fn print_disabled(&self) -> Cmd {
        self.cmd(&["print-disabled", &self.domain()])
    }

    /// Asks launchd to unload the agent (stopping it). Already gone, or "in progress" (the job
    /// is still exiting) are fine: [`Launchctl::wait_until_gone`] follows.
    pub fn bootout(&self) -> Step {
        Step::Retry(Retry {
            cmd: self.cmd(&["bootout", &self.service()]),
            done: vec![0, exit::NO_SUCH_PROCESS, exit::IN_PROGRESS, exit::NOT_FOUND],
            again: vec![],
            within: Duration::ZERO,
            outcome: String::new(),
            advice: String::new(),
        })
    }

    /// Waits until `launchctl print` no longer finds the agent: launchd has let go of the label.
    pub fn wait_until_gone(&self) -> Step {
        Step::Retry(Retry {
            cmd: self.print(),
            done: vec![exit::NOT_FOUND],
            again: vec![0],
            within: self.patience,
            outcome: format!("launchd has let go of {BUNDLE_ID}"),
            advice: format!(
                "the old agent is still stopping; run the command again in a moment, or see \
                 `launchctl print {}`",
                self.service()
            ),
        })
    }

    /// Loads the agent from `plist`, retrying while launchd is still busy with the label.
    pub fn bootstrap(&self, plist: &Path) -> Step {
        let plist = plist.to_string_lossy();
        Step::Retry(Retry {
            cmd: self.cmd(&["bootstrap", &self.domain(), &plist]),
            done: vec![0],
            again: vec![exit::IO_ERROR, exit::ALREADY],
            within: self.patience,
            outcome: String::new(),
            advice: format!(
                "if {APP_NAME} is switched off in {BACKGROUND_SWITCH}, switch it on and run \
                 `foolock install` again"
            ),
        })
    }

    /// Clears a `launchctl disable` of the label, so launchd loads it (now and at login).
    pub fn enable(&self) -> Step {
        Step::Run(self.cmd(&["enable", &self.service()]))
    }

    /// Reads the plist and asks launchd about the agent.
    pub fn observe(&self, layout: &Layout) -> anyhow::Result<Observed> {
        // `launchctl print` exits non-zero (113) when the service is not loaded; that is the
        // answer, not an error.
        let print = self.print().query()?;
        let loaded = print.status.success();
        let state = loaded
            .then(|| job_state(&String::from_utf8_lossy(&print.stdout)).map(str::to_owned))
            .flatten();
        // Without an answer (no GUI domain, e.g. over SSH before any login), assume not
        // disabled: a bootstrap that then fails says why itself.
        let disabled = self.is_disabled().unwrap_or(false);
        Ok(Observed {
            plist: super::steps::read_if_exists(&layout.launch_agent_file())?,
            loaded,
            state,
            disabled,
            logs_exist: layout.launchd_log_dir().is_dir(),
        })
    }

    /// Whether launchd has the agent's label disabled.
    pub fn is_disabled(&self) -> anyhow::Result<bool> {
        let output = self.print_disabled().run()?;
        Ok(disabled_in(&output, BUNDLE_ID))
    }
}

/// Whether `launchctl print-disabled` output lists `label` as disabled: `"label" => disabled`
/// (macOS 13 and later) or `"label" => true` (earlier). Only the `disabled services` block
/// counts; the `login item associations` block that may follow maps labels to bundle ids.
pub fn disabled_in(print_disabled: &str, label: &str) -> bool {
    let mut in_block = false;
    for line in print_disabled.lines().map(str::trim) {
        if line.ends_with('{') {
            in_block = line.starts_with("disabled services");
            continue;
        }
        if line == "}" {
            in_block = false;
            continue;
        }
        let Some((key, value)) = line.split_once("=>") else {
            continue;
        };
        if in_block && key.trim().trim_matches('"') == label {
            return matches!(value.trim(), "disabled" | "true");
        }
    }
    false
}

/// The job's own `state = …` line in `launchctl print` output (not a nested block's).
pub fn job_state(print: &str) -> Option<&str> {
    let mut depth = 0usize;
    for line in print.lines() {
        let line = line.trim();
        if line.ends_with('{') {
            depth += 1;
            continue;
        }
        if line.starts_with('}') {
            depth = depth.saturating_sub(1);
            continue;
        }
        if depth == 1 && line.starts_with("state = ") {
            return Some(line);
        }
    }
    None
}

/// The agent's log file (stdout and stderr together, so lines stay in order).
pub fn log_file(layout: &Layout) -> PathBuf {
    layout.launchd_log_dir().join(format!("{BIN_NAME}.log"))
}

/// Whether `program` sits inside an app bundle (`*.app/Contents/MacOS/<binary>`).
pub fn is_in_app_bundle(program: &Path) -> bool {
    app_bundle_of(program).is_some()
}

/// The app bundle `program` sits in (`X.app` for `X.app/Contents/MacOS/<binary>`), if any.
pub fn app_bundle_of(program: &Path) -> Option<&Path> {
    let mut up = program.ancestors().skip(1);
    let (macos, contents, app) = (up.next()?, up.next()?, up.next()?);
    let in_bundle = macos.file_name().is_some_and(|n| n == "MacOS")
        && contents.file_name().is_some_and(|n| n == "Contents")
        && app.extension().is_some_and(|e| e == "app");
    in_bundle.then_some(app)
}

/// Installs the agent. With `launch`, also (re)loads it into launchd so it starts now; without
/// (the tray's own "Start at login" switch, where the agent is already running) only the plist
/// is written (and the label enabled), and launchd picks it up at the next login.
pub fn install_plan(
    layout: &Layout,
    program: &TextPath,
    seen: &Observed,
    launchctl: &Launchctl,
    launch: bool,
) -> anyhow::Result<Vec<Step>> {
    let plist_path = layout.launch_agent_file();
    let log = TextPath::new(&log_file(layout))?;
    let contents = launch_agent_plist(program, &log);
    let changed = seen.plist.as_deref() != Some(contents.as_str());

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
            path: plist_path.clone(),
            contents,
        },
    ]);
    if seen.disabled {
        // Asking to start at login overrides an earlier "off"; launchd would refuse it else.
        steps.push(launchctl.enable());
    }
    if launch {
        if !seen.loaded {
            steps.push(launchctl.bootstrap(&plist_path));
        } else if changed {
            // launchd keeps the definition it loaded; swapping it in means unloading first,
            // which stops the running agent (it comes straight back with the new plist).
            steps.extend([
                launchctl.bootout(),
                launchctl.wait_until_gone(),
                launchctl.bootstrap(&plist_path),
            ]);
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

/// Removes the agent. With `launch`, also unloads it from launchd, which stops a running agent,
/// and waits until launchd has let go (so an `install` right after does not race it). Without
/// (the tray switch), the running agent is the one asking, so it stays loaded until logout;
/// only the plist goes, and with it the start at the next login.
///
/// Logs are kept: they are the user's record of what happened, not part of the install.
pub fn uninstall_plan(
    layout: &Layout,
    seen: &Observed,
    launchctl: &Launchctl,
    launch: bool,
) -> Vec<Step> {
    let mut steps = vec![];
    if launch && seen.loaded {
        steps.extend([launchctl.bootout(), launchctl.wait_until_gone()]);
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

/// The login item as `foolock install --status` shows it.
pub fn status_item(
    layout: &Layout,
    program: &TextPath,
    seen: &Observed,
    launchctl: &Launchctl,
) -> anyhow::Result<Item> {
    let log = TextPath::new(&log_file(layout))?;
    let mut service = match (&seen.loaded, &seen.state) {
        (false, _) => "launchd: not loaded".to_owned(),
        (true, Some(state)) => format!("launchd: loaded in {}, {state}", launchctl.domain()),
        (true, None) => format!("launchd: loaded in {}", launchctl.domain()),
    };
    if seen.disabled {
        service.push_str(&format!(
            "; switched off (in {BACKGROUND_SWITCH}, or with `launchctl disable`), so it will \
             not start at login; `foolock install` switches it back on"
        ));
    }
    Ok(Item {
        mode: Mode::LoginItem,
        what: "login item (launchd agent)",
        path: layout.launch_agent_file(),
        file: FileState::of(seen.plist.as_deref(), &launch_agent_plist(program, &log)),
        enabled: !seen.disabled,
        service: Some(service),
    })
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

    fn lc() -> Launchctl {
        Launchctl::new(501)
    }

    const PLIST: &str = "/Users/ann/Library/LaunchAgents/io.foolock.agent.plist";

    #[test]
    fn fresh_install_writes_the_plist_and_bootstraps_it() {
        let steps = install_plan(&layout(), &program(), &Observed::default(), &lc(), true).unwrap();
        assert_eq!(
            steps[..3],
            [
                Step::CreateDir("/Users/ann/Library/LaunchAgents".into()),
                Step::CreateDir("/Users/ann/Library/Logs/foolock".into()),
                Step::Write {
                    path: PLIST.into(),
                    contents: plist(),
                },
            ]
        );
        assert_eq!(
            runs(&steps),
            [format!("launchctl bootstrap gui/501 {PLIST}")]
        );
    }

    #[test]
    fn bootstrap_is_retried_while_launchd_answers_5_or_37() {
        let Step::Retry(retry) = lc().bootstrap(Path::new(PLIST)) else {
            panic!("bootstrap is not retried");
        };
        assert_eq!(retry.done, [0]);
        assert_eq!(retry.again, [5, 37]);
        assert_eq!(retry.within, PATIENCE);
        assert!(retry.advice.contains("Allow in the Background"));
    }

    #[test]
    fn reinstall_of_a_loaded_unchanged_agent_runs_nothing() {
        let seen = Observed {
            plist: Some(plist()),
            loaded: true,
            logs_exist: true,
            ..Observed::default()
        };
        let steps = install_plan(&layout(), &program(), &seen, &lc(), true).unwrap();
        assert!(runs(&steps).is_empty(), "{steps:?}");
    }

    #[test]
    fn reinstall_of_a_loaded_changed_agent_boots_out_waits_until_gone_then_boots_in() {
        let seen = Observed {
            plist: Some("old".into()),
            loaded: true,
            logs_exist: true,
            ..Observed::default()
        };
        let steps = install_plan(&layout(), &program(), &seen, &lc(), true).unwrap();
        assert_eq!(
            runs(&steps),
            [
                "launchctl bootout gui/501/io.foolock.agent".to_owned(),
                "launchctl print gui/501/io.foolock.agent".to_owned(),
                format!("launchctl bootstrap gui/501 {PLIST}"),
            ]
        );
        let Step::Retry(wait) = &steps[steps.len() - 3] else {
            panic!("{steps:?}");
        };
        // Loaded (0): ask again; not found (113): launchd has let go.
        assert_eq!((&wait.done[..], &wait.again[..]), (&[113][..], &[0][..]));
    }

    #[test]
    fn bootout_that_is_in_progress_or_already_gone_is_not_a_failure() {
        let Step::Retry(bootout) = lc().bootout() else {
            panic!();
        };
        assert_eq!(bootout.done, [0, 3, 36, 113]);
        assert!(bootout.again.is_empty());
    }

    #[test]
    fn a_disabled_label_is_enabled_first_even_from_the_tray_switch() {
        let seen = Observed {
            disabled: true,
            ..Observed::default()
        };
        let steps = install_plan(&layout(), &program(), &seen, &lc(), true).unwrap();
        assert_eq!(
            runs(&steps),
            [
                "launchctl enable gui/501/io.foolock.agent".to_owned(),
                format!("launchctl bootstrap gui/501 {PLIST}"),
            ]
        );
        let steps = install_plan(&layout(), &program(), &seen, &lc(), false).unwrap();
        assert_eq!(runs(&steps), ["launchctl enable gui/501/io.foolock.agent"]);
    }

    #[test]
    fn tray_switch_only_writes_the_plist_never_loading_or_unloading() {
        let seen = Observed {
            plist: Some("old".into()),
            loaded: true,
            logs_exist: true,
            ..Observed::default()
        };
        assert!(
            runs(&install_plan(&layout(), &program(), &seen, &lc(), false).unwrap()).is_empty()
        );
        assert_eq!(
            uninstall_plan(&layout(), &seen, &lc(), false),
            [Step::Remove(layout().launch_agent_file())]
        );
    }

    #[test]
    fn uninstall_boots_out_waits_until_gone_and_removes_the_plist_keeping_logs() {
        let seen = Observed {
            plist: Some(plist()),
            loaded: true,
            logs_exist: true,
            ..Observed::default()
        };
        let steps = uninstall_plan(&layout(), &seen, &lc(), true);
        assert_eq!(steps[..2], [lc().bootout(), lc().wait_until_gone()]);
        assert_eq!(steps[2], Step::Remove(layout().launch_agent_file()));
        assert!(matches!(&steps[3], Step::Note(n) if n.contains("kept the agent's logs")));
        assert_eq!(steps.len(), 4);
    }

    #[test]
    fn uninstall_when_nothing_is_there_says_so() {
        let steps = uninstall_plan(&layout(), &Observed::default(), &lc(), true);
        assert!(matches!(&steps[..], [Step::Note(n)] if n.contains("not installed")));
    }

    #[test]
    fn program_outside_a_bundle_gets_a_note_about_notifications() {
        let loose = TextPath::new(Path::new("/opt/homebrew/bin/foolock")).unwrap();
        let steps = install_plan(&layout(), &loose, &Observed::default(), &lc(), true).unwrap();
        assert!(matches!(&steps[0], Step::Note(n) if n.contains("not inside Foolock.app")));
        let bundled =
            install_plan(&layout(), &program(), &Observed::default(), &lc(), true).unwrap();
        assert!(!matches!(&bundled[0], Step::Note(_)));
    }

    #[test]
    fn app_bundle_is_recognised_by_its_layout() {
        assert!(is_in_app_bundle(Path::new(APP_BIN)));
        assert_eq!(
            app_bundle_of(Path::new("/Users/a b/Foolock.app/Contents/MacOS/foolock")),
            Some(Path::new("/Users/a b/Foolock.app"))
        );
        assert!(!is_in_app_bundle(Path::new("/usr/local/bin/foolock")));
        assert!(!is_in_app_bundle(Path::new("/x/Contents/MacOS/foolock")));
        assert!(!is_in_app_bundle(Path::new("foolock")));
    }

    /// `launchctl print-disabled gui/501` on macOS 13 and later.
    const PRINT_DISABLED: &str = "disabled services = {\n\
        \t\"com.apple.Siri.agent\" => disabled\n\
        \t\"io.foolock.agent\" => disabled\n\
        \t\"com.docker.helper\" => enabled\n\
        }\n\
        login item associations = {\n\
        \t\"io.foolock.agent.helper\" => \"io.foolock.agent\"\n\
        }\n";

    #[test]
    fn disabled_labels_are_read_in_both_print_disabled_formats() {
        assert!(disabled_in(PRINT_DISABLED, "io.foolock.agent"));
        assert!(!disabled_in(PRINT_DISABLED, "com.docker.helper"));
        assert!(!disabled_in(PRINT_DISABLED, "io.foolock.agent.helper"));
        assert!(!disabled_in(PRINT_DISABLED, "io.foolock"));
        // Before macOS 13: true means disabled.
        let old = "disabled services = {\n\t\"io.foolock.agent\" => true\n\t\"x\" => false\n}\n";
        assert!(disabled_in(old, "io.foolock.agent"));
        assert!(!disabled_in(old, "x"));
        assert!(!disabled_in("", "io.foolock.agent"));
    }

    #[test]
    fn job_state_is_the_jobs_own_not_a_nested_blocks() {
        let print = "gui/501/io.foolock.agent = {\n\tendpoints = {\n\t\tstate = active\n\t}\n\
                     \tstate = running\n}\n";
        assert_eq!(job_state(print), Some("state = running"));
        assert_eq!(job_state("gui/501/x = {\n}\n"), None);
    }

    #[test]
    fn status_says_when_the_login_item_is_switched_off() {
        let seen = Observed {
            plist: Some(plist()),
            loaded: true,
            state: Some("state = running".into()),
            disabled: true,
            logs_exist: true,
        };
        let item = status_item(&layout(), &program(), &seen, &lc()).unwrap();
        assert!(!item.enabled && !item.is_active());
        assert_eq!(item.file, FileState::Current);
        let service = item.service.unwrap();
        assert!(
            service.starts_with("launchd: loaded in gui/501, state = running; switched off")
                && service.contains("Allow in the Background"),
            "{service}"
        );
        let on = Observed {
            disabled: false,
            ..seen
        };
        assert!(
            status_item(&layout(), &program(), &on, &lc())
                .unwrap()
                .is_active()
        );
    }

    /// The plans carried out against tests/doubles/launchctl, which behaves like launchd where
    /// it matters (bootout is asynchronous, bootstrap of a still-loaded label fails with 5).
    #[cfg(unix)]
    mod against_a_launchd_double {
        use super::*;
        use crate::platform::steps::apply;
        use std::os::unix::fs::PermissionsExt;

        struct Double {
            tmp: tempfile::TempDir,
        }

        impl Double {
            /// A `launchctl` double with `config` (see the double's docstring).
            fn new(config: &str) -> Double {
                let tmp = tempfile::tempdir().unwrap();
                let bin = tmp.path().join("bin");
                let state = tmp.path().join("state");
                std::fs::create_dir_all(&bin).unwrap();
                std::fs::create_dir_all(&state).unwrap();
                let double = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles/launchctl");
                std::fs::copy(double, bin.join("launchctl")).unwrap();
                std::fs::set_permissions(
                    bin.join("launchctl"),
                    std::fs::Permissions::from_mode(0o755),
                )
                .unwrap();
                std::fs::write(state.join("config.json"), config).unwrap();
                Double { tmp }
            }

            fn launchctl(&self, patience: Duration) -> Launchctl {
                Launchctl {
                    program: self.tmp.path().join("bin/launchctl").display().to_string(),
                    uid: 501,
                    patience,
                }
            }

            fn layout(&self) -> Layout {
                let home = self.tmp.path().join("home");
                Layout {
                    config_home: home.join(".config"),
                    home,
                }
            }

            /// Runs the double directly, as a test's own look at launchd.
            fn ask(&self, args: &[&str]) -> std::process::Output {
                let lc = self.launchctl(PATIENCE);
                Cmd::new(&lc.program, args).query().unwrap()
            }

            /// Every call made so far, without the program name.
            fn calls(&self) -> Vec<String> {
                std::fs::read_to_string(self.tmp.path().join("state/calls.log"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect()
            }

            /// Puts an agent running `program` in launchd and its plist on disk, as an earlier
            /// install from another path would have.
            fn installed_from(&self, program: &str) {
                let layout = self.layout();
                let log = TextPath::new(&log_file(&layout)).unwrap();
                let old = launch_agent_plist(&TextPath::new(Path::new(program)).unwrap(), &log);
                let plist = layout.launch_agent_file();
                std::fs::create_dir_all(plist.parent().unwrap()).unwrap();
                std::fs::write(&plist, old).unwrap();
                let out = self.ask(&["bootstrap", "gui/501", &plist.display().to_string()]);
                assert!(out.status.success(), "{out:?}");
                std::fs::remove_file(self.tmp.path().join("state/calls.log")).unwrap();
            }

            /// The program launchd now runs for the agent, if it has one loaded.
            fn loaded_program(&self) -> Option<String> {
                let out = self.ask(&["print", "gui/501/io.foolock.agent"]);
                let text = String::from_utf8(out.stdout).unwrap();
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("program = "))
                    .map(str::to_owned)
            }

            fn install(&self, patience: Duration) -> anyhow::Result<String> {
                let lc = self.launchctl(patience);
                let layout = self.layout();
                let seen = lc.observe(&layout)?;
                let steps = install_plan(&layout, &program(), &seen, &lc, true)?;
                let mut out = Vec::new();
                apply(&steps, false, &mut out)?;
                Ok(String::from_utf8(out).unwrap())
            }

            fn uninstall(&self) -> anyhow::Result<String> {
                let lc = self.launchctl(PATIENCE);
                let layout = self.layout();
                let seen = lc.observe(&layout)?;
                let mut out = Vec::new();
                apply(&uninstall_plan(&layout, &seen, &lc, true), false, &mut out)?;
                Ok(String::from_utf8(out).unwrap())
            }
        }

        fn position(calls: &[String], prefix: &str) -> usize {
            calls
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no `{prefix}` in {calls:#?}"))
        }

        #[test]
        fn reinstall_from_a_moved_binary_waits_for_launchd_to_let_go_then_loads_the_new_one() {
            let d = Double::new(r#"{"unload_calls": 3}"#);
            d.installed_from("/Users/ann/Downloads/foolock");
            let out = d.install(PATIENCE).unwrap();
            assert!(
                out.contains("launchd has let go of io.foolock.agent"),
                "{out}"
            );
            assert_eq!(d.loaded_program().as_deref(), Some(APP_BIN));
            let calls = d.calls();
            let bootout = position(&calls, "bootout ");
            let bootstrap = position(&calls, "bootstrap ");
            // It asked launchd at least once more after the bootout, and loaded only after.
            assert!(
                calls[bootout + 1..bootstrap]
                    .iter()
                    .all(|c| c == "print gui/501/io.foolock.agent")
                    && bootstrap > bootout + 1,
                "{calls:#?}"
            );
            assert_eq!(
                calls.iter().filter(|c| c.starts_with("bootstrap")).count(),
                1
            );
        }

        #[test]
        fn bootstrap_is_tried_again_while_launchd_is_still_busy_with_the_label() {
            let d = Double::new(r#"{"unload_calls": 1, "bootstrap_refusals": 2}"#);
            d.installed_from("/old/foolock");
            d.install(PATIENCE).unwrap();
            assert_eq!(d.loaded_program().as_deref(), Some(APP_BIN));
            let bootstraps = d
                .calls()
                .iter()
                .filter(|c| c.starts_with("bootstrap"))
                .count();
            assert_eq!(bootstraps, 3, "{:#?}", d.calls());
        }

        #[test]
        fn bootout_answering_in_progress_is_waited_out_not_reported() {
            let d = Double::new(r#"{"unload_calls": 2, "bootout_exit": 36}"#);
            d.installed_from("/old/foolock");
            d.install(PATIENCE).unwrap();
            assert_eq!(d.loaded_program().as_deref(), Some(APP_BIN));
        }

        #[test]
        fn a_disabled_label_is_enabled_then_loaded_and_status_says_so_before() {
            let d = Double::new("{}");
            d.ask(&["disable", "gui/501/io.foolock.agent"]);
            let lc = d.launchctl(PATIENCE);
            let seen = lc.observe(&d.layout()).unwrap();
            assert!(seen.disabled && !seen.loaded);
            d.install(PATIENCE).unwrap();
            let calls = d.calls();
            assert!(position(&calls, "enable ") < position(&calls, "bootstrap "));
            let seen = lc.observe(&d.layout()).unwrap();
            assert!(!seen.disabled && seen.loaded);
            let item = status_item(&d.layout(), &program(), &seen, &lc).unwrap();
            assert!(item.is_active(), "{item:?}");
            assert_eq!(
                item.service.as_deref(),
                Some("launchd: loaded in gui/501, state = running")
            );
        }

        #[test]
        fn uninstall_returns_only_once_launchd_has_let_go_so_install_right_after_works() {
            let d = Double::new(r#"{"unload_calls": 3}"#);
            d.install(PATIENCE).unwrap();
            d.uninstall().unwrap();
            let print = d.ask(&["print", "gui/501/io.foolock.agent"]);
            assert_eq!(print.status.code(), Some(exit::NOT_FOUND));
            assert!(!d.layout().launch_agent_file().exists());
            d.install(PATIENCE).unwrap();
            assert_eq!(d.loaded_program().as_deref(), Some(APP_BIN));
        }

        #[test]
        fn a_job_that_never_lets_go_is_given_up_on_with_advice() {
            let d = Double::new(r#"{"unload_calls": 1000000}"#);
            d.installed_from("/old/foolock");
            let err = d.install(Duration::from_secs(1)).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("gave up after 1s waiting until launchd has let go")
                    && msg.contains("run the command again in a moment"),
                "{msg}"
            );
            assert!(d.calls().iter().all(|c| !c.starts_with("bootstrap")));
        }
    }
}
