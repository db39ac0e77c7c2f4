//! Commands under a pseudo-terminal (`script` from util-linux), for what foolock does only on
//! a terminal: messages for people, `--stdin`, the terminal's foreground job.

use super::{Server, eventually};
use std::process::{Child, Command};
use std::time::Duration;

/// `sh -c SCRIPT` under a pseudo-terminal: `script -qec`, whose exit code is the command's.
pub fn on_a_terminal(server: &Server, command_line: &str) -> Command {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", command_line, "/dev/null"])
        .env("FOOLOCK_SERVER", &server.url)
        .env("FOOLOCK_CONFIG", server.dir().join("client.toml"))
        .env_remove("FOOLOCK_CLIENT")
        .env_remove("RUST_LOG");
    cmd
}

/// Waits up to 20 s for `child` (under `script`) to end and returns its output; kills it and
/// fails if it does not end (a command stopped on the terminal would hang the test).
pub fn finish(mut child: Child) -> std::process::Output {
    drop(child.stdin.take());
    let ended = eventually(Duration::from_secs(20), || {
        child.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("script");
    assert!(
        ended,
        "still running after 20 s: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}
