//! The supervisor of `foolock lock`'s command: start CMD in a process group of its own, pass
//! SIGINT, SIGTERM and SIGHUP on to that group, stop it (SIGTERM, then SIGKILL after a grace)
//! and map how it ended to an exit code. With `--stdin` on a terminal, CMD's group is the
//! terminal's foreground job while it runs, and the terminal comes back to us when it ends.
//! It knows nothing of leases or HTTP: the flow tells it when to stop, and it tells the flow
//! how CMD exited.

use crate::client::ClientError;
use crate::exit::Exit;
use crate::platform::process;
use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Starts CMD (`command`: the program, then its arguments) in its own process group with
/// `env` added to its environment. With `stdin`, CMD gets our stdin; if that is the terminal
/// we run in the foreground of, CMD's group becomes its foreground job. Without, a terminal on
/// stdin is replaced by `/dev/null`. On failure, the exit code a shell would use (126 not
/// executable, 127 not found; 2 for an empty command) and a message.
pub(super) fn spawn(
    command: &[OsString],
    env: &[(&str, &str)],
    stdin: bool,
) -> Result<Running, (u8, String)> {
    let (program, args) = command
        .split_first()
        .ok_or((2, "no command given".to_owned()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().copied())
        // Its own group, so a lost lock stops everything CMD started, not just CMD.
        .process_group(0);
    let foreground = stdin && process::owns_terminal();
    if foreground {
        process::child_takes_terminal(cmd.as_std_mut());
    } else if !stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // A background process group reading the terminal would be stopped (SIGTTIN) and
        // hang while we keep renewing; EOF is the better failure.
        cmd.stdin(Stdio::null());
    }
    // If foolock itself is killed (SIGKILL), CMD must not run on unlocked.
    process::end_with_parent(cmd.as_std_mut(), Exit::LockLost as i32);
    let child = cmd.spawn().map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        };
        (
            code,
            format!("cannot run {}: {e}", program.to_string_lossy()),
        )
    })?;
    // Its pid is its process group's id (process_group(0) above).
    let pgid = child.id().map(|id| id as libc::pid_t);
    let terminal = match (foreground, pgid) {
        (true, Some(pgid)) => {
            process::give_terminal(pgid);
            true
        }
        _ => false,
    };
    Ok(Running {
        child,
        pgid,
        terminal,
    })
}

/// CMD, running in its own process group.
pub(super) struct Running {
    child: Child,
    /// None only if the child was already reaped when we asked.
    pgid: Option<libc::pid_t>,
    /// Whether CMD's group holds our terminal (`--stdin`), to be given back when it ends.
    terminal: bool,
}

impl Running {
    /// Waits for CMD to exit. Cancel-safe.
    pub(super) async fn wait(&mut self) -> Result<ExitStatus, ClientError> {
        let status = self.child.wait().await.map_err(wait_error);
        self.take_terminal_back();
        status
    }

    /// Makes our group the terminal's foreground job again, if CMD's group had it.
    fn take_terminal_back(&mut self) {
        if std::mem::take(&mut self.terminal) {
            process::give_terminal(process::own_process_group());
        }
    }

    /// Sends `signo` to CMD's whole process group.
    pub(super) fn signal(&self, signo: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: plain syscall; a group that is already gone just yields ESRCH.
            unsafe {
                libc::kill(-pgid, signo);
            }
        }
    }

    /// Whether any process of CMD's group is still around.
    fn group_alive(&self) -> bool {
        // SAFETY: kill with signal 0 only checks that the group exists.
        self.pgid
            .is_some_and(|pgid| unsafe { libc::kill(-pgid, 0) == 0 })
    }

    /// SIGTERM to the group, SIGKILL after `grace`; returns how CMD ended.
    pub(super) async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, ClientError> {
        self.signal(libc::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, self.wait()).await {
            return status;
        }
        self.signal(libc::SIGKILL);
        if self.pgid.is_none() {
            let _ = self.child.start_kill();
        }
        self.wait().await
    }

    /// After CMD has exited: processes it left in its group get SIGTERM, then SIGKILL.
    pub(super) async fn stop_leftovers(&self, grace: Duration) {
        if !self.group_alive() {
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.group_alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.group_alive() {
            self.signal(libc::SIGKILL);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.take_terminal_back();
    }
}

fn wait_error(e: std::io::Error) -> ClientError {
    ClientError::Local(format!("cannot wait for the command: {e}"))
}

/// The shell's convention: the exit code, or 128+N for death by signal N.
pub(super) fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signo)) => 128u8.wrapping_add(signo as u8),
        (None, None) => 1,
    }
}

pub(super) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with {code}"),
        (None, Some(signo)) => format!("it ended by {}", signal_name(signo)),
        (None, None) => "it ended".to_owned(),
    }
}

pub(super) fn signal_name(signo: i32) -> &'static str {
    match signo {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// The signals `foolock lock` passes on to CMD. Installed before acquiring, so a signal
/// while waiting cancels the wait instead of killing us mid-request.
pub(super) struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, ClientError> {
        let make = |kind| {
            signal(kind).map_err(|e| ClientError::Local(format!("cannot handle signals: {e}")))
        };
        Ok(Signals {
            int: make(SignalKind::interrupt())?,
            term: make(SignalKind::terminate())?,
            hup: make(SignalKind::hangup())?,
        })
    }

    /// The next signal's number. Cancel-safe.
    pub(super) async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;

    fn sh(script: &str) -> Vec<OsString> {
        ["sh", "-c", script].map(OsString::from).to_vec()
    }

    /// Waits (up to a generous limit) for `path` to appear: the child's sign that it is ready.
    async fn wait_for_file(path: &Path) {
        for _ in 0..1000 {
            if path.exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never appeared", path.display());
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 128 + 15);
        assert_eq!(describe(ExitStatus::from_raw(7 << 8)), "it exited with 7");
        assert_eq!(
            describe(ExitStatus::from_raw(libc::SIGKILL)),
            "it ended by SIGKILL"
        );
    }

    #[tokio::test]
    async fn the_command_runs_in_its_own_group_with_the_given_environment() {
        let mut running = spawn(
            &sh(r#"test "$FOOLOCK_JOB" = nightly && exit 7"#),
            &[("FOOLOCK_JOB", "nightly")],
            false,
        )
        .expect("sh starts");
        let pgid = running.pgid.expect("not reaped yet");
        // SAFETY: plain syscall on our own child.
        assert_eq!(unsafe { libc::getpgid(pgid) }, pgid, "leads its own group");
        let status = running.wait().await.expect("waited");
        assert_eq!(exit_code(status), 7);
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_gets_the_shells_exit_code() {
        let dir = tempfile::tempdir().expect("temp dir");
        let not_executable = dir.path().join("script");
        std::fs::write(&not_executable, "#!/bin/sh\n").expect("written");
        let code = |command: &[OsString]| spawn(command, &[], false).err().map(|(code, _)| code);
        assert_eq!(code(&[dir.path().join("missing").into()]), Some(127));
        assert_eq!(code(&[not_executable.into()]), Some(126));
        assert_eq!(code(&[]), Some(2));
    }

    #[tokio::test]
    async fn stop_ends_a_command_that_honours_sigterm_with_sigterm() {
        let mut running = spawn(&sh("exec sleep 60"), &[], false).expect("sh starts");
        let status = running
            .stop(Duration::from_secs(60))
            .await
            .expect("stopped");
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    }

    #[tokio::test]
    async fn stop_kills_a_command_that_ignores_sigterm_after_the_grace() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready");
        let script = format!(
            r#"trap "" TERM; touch "{}"; exec sleep 60"#,
            ready.display()
        );
        let mut running = spawn(&sh(&script), &[], false).expect("sh starts");
        wait_for_file(&ready).await;
        let status = running
            .stop(Duration::from_millis(200))
            .await
            .expect("stopped");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert_eq!(exit_code(status), 128 + 9);
    }

    #[tokio::test]
    async fn signals_are_passed_to_the_commands_group() {
        let mut running = spawn(&sh("exec sleep 60"), &[], false).expect("sh starts");
        running.signal(libc::SIGHUP);
        let status = running.wait().await.expect("waited");
        assert_eq!(status.signal(), Some(libc::SIGHUP), "{status:?}");
    }
}
