//! Install and uninstall as data: a plan is a list of [`Step`]s, built by pure functions and then
//! either printed (`--dry-run`) or carried out.
//!
//! Keeping the plan separate is what lets the macOS plan be tested on Linux, makes `--dry-run`
//! show exactly what a real run would do, and keeps every step idempotent: writing a file that
//! already has the contents, or creating a directory that exists, changes nothing.

use anyhow::{Context, bail};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One thing install or uninstall does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a directory and its parents if missing.
    CreateDir(PathBuf),
    /// Write a file (atomically: a hidden temporary file renamed over it), unless it already has
    /// exactly these contents.
    Write { path: PathBuf, contents: String },
    /// Remove a file; one that is already gone is fine.
    Remove(PathBuf),
    /// Run a command; a failure stops the plan and is reported with the command's stderr.
    Run(Cmd),
    /// Run a command that may answer "not yet", again until it gives its final answer.
    Retry(Retry),
    /// Tell the user something; printed in dry runs too.
    Note(String),
}

/// A command line, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
}

impl Cmd {
    pub(crate) fn new(program: &str, args: &[&str]) -> Cmd {
        Cmd {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Runs the command and returns its stdout; a non-zero exit is an error carrying stderr.
    pub(crate) fn run(&self) -> anyhow::Result<String> {
        let output = self.query()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("`{self}` failed ({}): {}", output.status, stderr.trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs the command and returns whatever it said, whatever its exit status: for questions
    /// like `systemctl is-active`, which answer "inactive" with a non-zero exit.
    pub(crate) fn query(&self) -> anyhow::Result<std::process::Output> {
        Command::new(&self.program)
            .args(&self.args)
            .output()
            .with_context(|| format!("cannot run `{self}`"))
    }
}

/// Pause between two tries of a [`Retry`]: short, since launchd usually lets go within a second.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A command run again while it answers "not yet" (launchd still busy with a job), until it exits
/// with one of `done` or `within` has passed. Any other answer stops the plan at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub cmd: Cmd,
    /// Exit codes that end the step successfully.
    pub done: Vec<i32>,
    /// Exit codes meaning "not yet": pause and run it again.
    pub again: Vec<i32>,
    /// How long to keep trying before giving up with the command's last answer.
    pub within: Duration,
    /// What success means, for the report (e.g. "launchd has let go of the old agent"); empty
    /// when the command says it all.
    pub outcome: String,
    /// What to tell the user when it gives up (e.g. where a switch that blocks it lives).
    pub advice: String,
}

impl Retry {
    /// Runs the command until it gives a final answer; an error for anything but `done`.
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.within;
        loop {
            let output = self.cmd.query()?;
            let code = output.status.code();
            if code.is_some_and(|c| self.done.contains(&c)) {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !code.is_some_and(|c| self.again.contains(&c)) {
                bail!(
                    "`{}` failed ({}): {}",
                    self.cmd,
                    output.status,
                    stderr.trim()
                );
            }
            if Instant::now() >= deadline {
                let waiting = if self.outcome.is_empty() {
                    String::new()
                } else {
                    format!(" waiting until {}", self.outcome)
                };
                let advice = if self.advice.is_empty() {
                    "try again in a moment"
                } else {
                    &self.advice
                };
                bail!(
                    "gave up after {}s{waiting}: `{}` still answers {} {}; {advice}",
                    self.within.as_secs(),
                    self.cmd,
                    output.status,
                    stderr.trim()
                );
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    /// How `--dry-run` describes it.
    fn describe(&self) -> String {
        let mut text = self.cmd.to_string();
        if !self.again.is_empty() {
            let codes: Vec<String> = self.again.iter().map(ToString::to_string).collect();
            text.push_str(&format!(
                ", again while it exits {} (for up to {}s)",
                codes.join(" or "),
                self.within.as_secs()
            ));
        }
        if !self.outcome.is_empty() {
            text.push_str(&format!(", until {}", self.outcome));
        }
        text
    }
}

/// Shell-quoted, so a printed command can be pasted into a terminal as is.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Carries out `steps` in order, or only describes them when `dry_run`, reporting to `out`.
///
/// Stops at the first failure; what was done before it has been reported, so the user can see
/// where things stand.
pub(crate) fn apply(steps: &[Step], dry_run: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    for step in steps {
        match step {
            Step::CreateDir(dir) => {
                if dir.is_dir() {
                    continue;
                }
                if dry_run {
                    writeln!(out, "would create directory {}", dir.display())?;
                } else {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    writeln!(out, "created directory {}", dir.display())?;
                }
            }
            Step::Write { path, contents } => {
                let existing = read_if_exists(path)?;
                if existing.as_deref() == Some(contents.as_str()) {
                    writeln!(out, "{} is already up to date", path.display())?;
                    continue;
                }
                let verb = if existing.is_some() {
                    "replace"
                } else {
                    "write"
                };
                if dry_run {
                    writeln!(out, "would {verb} {}:", path.display())?;
                    for line in contents.lines() {
                        writeln!(out, "    {line}")?;
                    }
                } else {
                    write_atomically(path, contents)?;
                    let done = if existing.is_some() {
                        "replaced"
                    } else {
                        "wrote"
                    };
                    writeln!(out, "{done} {}", path.display())?;
                }
            }
            Step::Remove(path) => {
                if dry_run {
                    writeln!(out, "would remove {}", path.display())?;
                    continue;
                }
                match std::fs::remove_file(path) {
                    Ok(()) => writeln!(out, "removed {}", path.display())?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        writeln!(out, "{} was already gone", path.display())?
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                    }
                }
            }
            Step::Run(cmd) => {
                if dry_run {
                    writeln!(out, "would run: {cmd}")?;
                } else {
                    cmd.run()?;
                    writeln!(out, "ran: {cmd}")?;
                }
            }
            Step::Retry(retry) => {
                if dry_run {
                    writeln!(out, "would run: {}", retry.describe())?;
                } else {
                    retry.run()?;
                    if retry.outcome.is_empty() {
                        writeln!(out, "ran: {}", retry.cmd)?;
                    } else {
                        writeln!(out, "ran: {}: {}", retry.cmd, retry.outcome)?;
                    }
                }
            }
            Step::Note(text) => writeln!(out, "{text}")?,
        }
    }
    Ok(())
}

/// A file's contents, or `None` when it does not exist.
pub(crate) fn read_if_exists(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes via a hidden sibling and a rename, so a crash never leaves a half-written plist or
/// unit for launchd or systemd to choke on. The temporary name does not end in `.plist`,
/// `.desktop` or `.service`, so no loader picks it up meanwhile.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(name);
    partial_name.push(".partial");
    let partial = path.with_file_name(partial_name);
    std::fs::write(&partial, contents)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot move {} into place", partial.display()))
}

/// The commands among `steps`, as `--dry-run` prints them: what plan tests compare.
#[cfg(test)]
pub(crate) fn commands(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Run(c) | Step::Retry(Retry { cmd: c, .. }) => Some(c.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[Step], dry_run: bool) -> String {
        let mut out = Vec::new();
        apply(steps, dry_run, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dry_run_describes_and_touches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a b");
        let file = dir.join("f.txt");
        let steps = [
            Step::CreateDir(dir.clone()),
            Step::Write {
                path: file.clone(),
                contents: "one\ntwo\n".into(),
            },
            Step::Run(Cmd::new("systemctl", &["--user", "daemon-reload"])),
            Step::Note("hello".into()),
        ];
        let out = run(&steps, true);
        assert_eq!(
            out,
            format!(
                "would create directory {0}\nwould write {1}:\n    one\n    two\n\
                 would run: systemctl --user daemon-reload\nhello\n",
                dir.display(),
                file.display()
            )
        );
        assert!(!dir.exists());
    }

    #[test]
    fn writing_twice_reports_up_to_date_and_leaves_no_partial_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f.desktop");
        let steps = [Step::Write {
            path: file.clone(),
            contents: "x\n".into(),
        }];
        assert_eq!(run(&steps, false), format!("wrote {}\n", file.display()));
        assert_eq!(
            run(&steps, false),
            format!("{} is already up to date\n", file.display())
        );
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.desktop"]);
    }

    #[test]
    fn writing_different_contents_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "old").unwrap();
        let steps = [Step::Write {
            path: file.clone(),
            contents: "new".into(),
        }];
        assert_eq!(run(&steps, false), format!("replaced {}\n", file.display()));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
    }

    #[test]
    fn removing_a_missing_file_is_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("gone");
        assert_eq!(
            run(&[Step::Remove(file.clone())], false),
            format!("{} was already gone\n", file.display())
        );
    }

    #[test]
    fn failed_command_stops_the_plan_and_reports_stderr() {
        let tmp = tempfile::tempdir().unwrap();
        let after = tmp.path().join("after");
        let steps = [
            Step::Run(Cmd::new("sh", &["-c", "echo broken bus >&2; exit 3"])),
            Step::CreateDir(after.clone()),
        ];
        let err = apply(&steps, false, &mut Vec::new()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("broken bus") && msg.contains("sh -c"), "{msg}");
        assert!(!after.exists());
    }

    /// A command that exits 5 on its first `fails` runs (counted in a file), then 0.
    fn flaky(dir: &Path, fails: u32) -> Cmd {
        let counter = dir.join("runs");
        let script = format!(
            "n=$(cat '{0}' 2>/dev/null || echo 0); echo $((n + 1)) > '{0}'; \
             if [ \"$n\" -lt {fails} ]; then echo busy >&2; exit 5; fi",
            counter.display()
        );
        Cmd::new("sh", &["-c", &script])
    }

    fn runs(dir: &Path) -> u32 {
        std::fs::read_to_string(dir.join("runs"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn retry_runs_again_while_the_answer_is_not_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let step = Step::Retry(Retry {
            cmd: flaky(tmp.path(), 2),
            done: vec![0],
            again: vec![5],
            within: Duration::from_secs(30),
            outcome: "it worked".into(),
            advice: String::new(),
        });
        let out = run(std::slice::from_ref(&step), false);
        assert!(out.ends_with(": it worked\n"), "{out}");
        assert_eq!(runs(tmp.path()), 3);
    }

    #[test]
    fn retry_fails_at_once_on_an_answer_that_is_not_not_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let retry = Retry {
            cmd: flaky(tmp.path(), 1),
            done: vec![0],
            again: vec![37],
            within: Duration::from_secs(30),
            outcome: String::new(),
            advice: String::new(),
        };
        let err = retry.run().unwrap_err();
        assert!(format!("{err:#}").contains("busy"), "{err:#}");
        assert_eq!(runs(tmp.path()), 1);
    }

    #[test]
    fn retry_gives_up_after_its_time_with_the_last_answer() {
        let tmp = tempfile::tempdir().unwrap();
        let retry = Retry {
            cmd: flaky(tmp.path(), u32::MAX),
            done: vec![0],
            again: vec![5],
            within: Duration::from_secs(1),
            outcome: "launchd has let go".into(),
            advice: "check the switch".into(),
        };
        let msg = format!("{:#}", retry.run().unwrap_err());
        assert!(
            msg.contains("gave up after 1s waiting until launchd has let go")
                && msg.contains("busy; check the switch"),
            "{msg}"
        );
        assert!(runs(tmp.path()) >= 2);
    }

    #[test]
    fn dry_run_describes_a_retry_without_running_it() {
        let tmp = tempfile::tempdir().unwrap();
        let step = Step::Retry(Retry {
            cmd: Cmd::new("launchctl", &["print", "gui/501/x"]),
            done: vec![113],
            again: vec![0],
            within: Duration::from_secs(10),
            outcome: "launchd has let go of x".into(),
            advice: String::new(),
        });
        assert_eq!(
            run(&[step], true),
            "would run: launchctl print gui/501/x, again while it exits 0 (for up to 10s), \
             until launchd has let go of x\n"
        );
        assert!(!tmp.path().join("runs").exists());
    }

    #[test]
    fn missing_program_is_reported_by_name() {
        let err = Cmd::new("foolock-no-such-tool", &[]).run().unwrap_err();
        assert!(format!("{err:#}").contains("cannot run `foolock-no-such-tool`"));
    }

    #[test]
    fn commands_print_shell_quoted() {
        let cmd = Cmd::new(
            "launchctl",
            &["bootstrap", "gui/501", "/Users/a b/it's.plist"],
        );
        assert_eq!(
            cmd.to_string(),
            r"launchctl bootstrap gui/501 '/Users/a b/it'\''s.plist'"
        );
    }
}
