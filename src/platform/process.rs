//! Tying a child process's life to ours, where the OS can: Linux sends the child a signal when
//! its parent dies; other systems have no such call, and there the child is left as it is.
//! And handing the terminal to a child's process group and back (job control, as a shell
//! does), for `foolock lock --stdin`.

use std::process::Command;

/// Arranges for the child `cmd` starts to get SIGTERM if this process dies (even by SIGKILL)
/// while the child runs; if we died before the child got going, it exits with `orphan_exit`
/// instead of running. Linux ties this to the *thread* that spawns the child, so spawn from
/// one that lives as long as the child should. Does nothing on other systems.
#[cfg(target_os = "linux")]
pub fn end_with_parent(cmd: &mut Command, orphan_exit: i32) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The parent may have died between fork and prctl: then no signal will come.
            if libc::getppid() != parent {
                libc::_exit(orphan_exit);
            }
            Ok(())
        });
    }
}

/// See the Linux version: elsewhere there is no parent-death signal, so nothing is arranged.
#[cfg(not(target_os = "linux"))]
pub(crate) fn end_with_parent(_cmd: &mut Command, _orphan_exit: i32) {}

/// Whether stdin is a terminal whose foreground process group is ours: a shell started us as
/// its foreground job, so we may hand the terminal to a child and take it back.
#[cfg(unix)]
pub fn owns_terminal() -> bool {
    // SAFETY: plain queries on fd 0 and our own process group.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// Makes the process group the child of `cmd` leads (`process_group(0)`) the foreground group
/// of the terminal on stdin, from inside the child before it runs: so it can never read the
/// terminal as a background job (which would stop it with SIGTTIN).
#[cfg(unix)]
pub fn child_takes_terminal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (setpgid, getpid, sigprocmask, tcsetpgrp) between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Idempotent with process_group(0), whichever runs first.
            libc::setpgid(0, 0);
            with_sigttou_blocked(|| {
                libc::tcsetpgrp(0, libc::getpid());
            });
            Ok(())
        });
    }
}

/// Hands the terminal on stdin to process group `pgid`: the child's right after spawning it
/// (the child does the same; whichever is first wins the race harmlessly), ours when it is done.
#[cfg(unix)]
pub fn give_terminal(pgid: libc::pid_t) {
    // SAFETY: tcsetpgrp on fd 0 with SIGTTOU blocked, which a background group needs to call it.
    unsafe {
        with_sigttou_blocked(|| {
            libc::tcsetpgrp(0, pgid);
        });
    }
}

/// Our own process group, to take the terminal back.
#[cfg(unix)]
pub fn own_process_group() -> libc::pid_t {
    // SAFETY: plain query.
    unsafe { libc::getpgrp() }
}

/// Runs `f` with SIGTTOU blocked: a process outside the terminal's foreground group may then
/// change it instead of being stopped. Async-signal-safe.
#[cfg(unix)]
unsafe fn with_sigttou_blocked(f: impl FnOnce()) {
    // SAFETY: sigset operations on sets we own; the old mask is restored before returning.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old);
        f();
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_child_tied_to_us_still_runs_and_exits_normally() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 7"]);
        end_with_parent(&mut cmd, 75);
        let status = cmd.status().expect("sh runs");
        assert_eq!(status.code(), Some(7));
    }
}
