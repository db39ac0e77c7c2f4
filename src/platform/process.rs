//! Tying a child process's life to ours, where the OS can: Linux sends the child a signal when
//! its parent dies; other systems have no such call, and there the child is left as it is.

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
pub fn end_with_parent(_cmd: &mut Command, _orphan_exit: i32) {}

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
