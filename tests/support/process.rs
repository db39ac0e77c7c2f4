//! The processes a test starts: signals, liveness, exits, and polling for what they do.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Sends `signo` to `pid`.
pub fn signal(pid: libc::pid_t, signo: i32) {
    // SAFETY: plain syscall.
    unsafe {
        libc::kill(pid, signo);
    }
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Polls `check` every 50 ms until it returns a value or `limit` passes.
fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `check` becomes true within `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    poll(limit, || check().then_some(())).is_some()
}

/// The first value `check` returns within `limit`; panics naming `what` otherwise.
pub fn wait_for<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll(limit, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Waits for `child` to exit within `limit`; kills it and panics otherwise.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    poll(limit, || child.try_wait().expect("try_wait")).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("process did not exit within {limit:?}")
    })
}

/// Reads a pid written by a test command, once the file is complete.
/// Everything the child wrote to its piped stderr, once it has closed it (it has exited).
pub fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    err
}

pub fn read_pid(path: &Path) -> Option<libc::pid_t> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Whether process `pid` has a TCP connection to `port` on this machine: a sign that it got
/// as far as sending a request (a stopped server still accepts connections into its backlog).
pub fn connected_to(pid: libc::pid_t, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.to_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let port = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() > 9 && cols[2].ends_with(&port) && inodes.iter().any(|i| i == cols[9])
    })
}

/// Makes `dest` an executable with `contents`.
///
/// Written by a child process (`install`), never by the test itself: a file this process has
/// open for writing can be inherited by a child that another test thread is forking at that
/// moment, and executing it then fails with ETXTBSY ("Text file busy") until that child execs.
pub fn write_executable(dest: &Path, contents: impl AsRef<[u8]>) {
    // The bytes go to a sibling that is never executed, so the same race there is harmless.
    let source = dest.with_extension("source");
    std::fs::write(&source, contents).unwrap();
    copy_executable(&source, dest);
    std::fs::remove_file(&source).unwrap();
}

/// Copies `source` to `dest` as an executable, by a child process (see [`write_executable`]).
pub fn copy_executable(source: &Path, dest: &Path) {
    let status = std::process::Command::new("install")
        .args(["-m", "0755"])
        .arg(source)
        .arg(dest)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "install {} {}: {status}",
        source.display(),
        dest.display()
    );
}
