//! Shared by the client's integration tests: a real `foolock serve` on an ephemeral port and
//! the real CLI binary pointed at it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_foolock");

/// A `foolock serve` child process, killed on drop.
pub struct TestServer {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0 with `flags` (e.g. `--max-wait 2s`).
    pub fn start(flags: &[&str]) -> TestServer {
        Self::start_logging(flags, "foolock=info")
    }

    /// As [`TestServer::start`], logging at `filter` (e.g. `foolock=debug` to see renewals).
    pub fn start_logging(flags: &[&str], filter: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path().join("state"))
            .args(flags)
            .env("FOOLOCK_CONFIG", dir.path().join("server.toml"))
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start foolock serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read the listening line");
        let addr = first
            .strip_prefix("foolock listening on ")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
        TestServer {
            child,
            url: format!("http://{addr}"),
            dir,
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CLI binary, pointed at this server, with no config file and no client id from
    /// the environment.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env("FOOLOCK_SERVER", &self.url)
            .env("FOOLOCK_CONFIG", self.dir.path().join("client.toml"))
            .env_remove("FOOLOCK_CLIENT")
            .env_remove("FOOLOCK_AUTH_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the CLI with `args` and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cli().args(args).output().expect("run foolock");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `GET /lock` for `job`, as JSON.
    pub fn status(&self, job: &str) -> serde_json::Value {
        let (code, out, err) = self.run(&["status", job, "--json"]);
        assert_eq!(code, 0, "status failed: {err}");
        serde_json::from_str(&out).expect("status JSON")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // SAFETY: plain syscalls on our own child; a stopped server must be continued to die.
        unsafe {
            libc::kill(self.pid(), libc::SIGCONT);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Polls `check` every 50 ms until it is true or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a pid written by a test command, once the file is complete.
pub fn read_pid(path: &Path) -> Option<libc::pid_t> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits for `child` to exit within `limit`; kills it and panics otherwise.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Parses the UTC timestamp that starts a log line (`2026-11-26T10:45:05.592925Z`).
pub fn log_time(line: &str) -> Option<std::time::SystemTime> {
    let ts = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min, sec) = (t.next()?, t.next()?, t.next()?);
    let secs: f64 = sec.parse().ok()?;
    // Days from civil (proleptic Gregorian), epoch 1970-01-01.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let whole = days * 86_400 + h.parse::<i64>().ok()? * 3600 + min.parse::<i64>().ok()? * 60;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(whole as u64) + Duration::from_secs_f64(secs))
}
