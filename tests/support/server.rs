//! A real `foolock serve` on a free loopback port, with a directory of its own, and the CLI
//! binary pointed at it.

use super::http::{Reply, request};
use super::process::{signal, wait_exit};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_foolock");

/// How to start a [`Server`]: extra flags, the state directory, the log filter, environment.
pub struct ServerBuilder {
    args: Vec<String>,
    state_dir: Option<PathBuf>,
    rust_log: String,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    /// Extra `foolock serve` flags, e.g. `["--max-wait", "2s"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Keeps state in `dir` instead of the server's own directory, so that a later server can
    /// restart from it.
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_owned());
        self
    }

    /// `RUST_LOG` for the server (default `info`), e.g. `foolock=debug` to log renewals.
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server and waits until it listens; panics with its log if it exits instead.
    pub fn start(self) -> Server {
        self.try_start().unwrap_or_else(|(code, log)| {
            panic!("server exited with {code:?} instead of listening:\n{log}")
        })
    }

    /// Like [`ServerBuilder::start`], returning the exit code and log of a server that does
    /// not come up.
    pub fn try_start(self) -> Result<Server, (Option<i32>, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let state_dir = self.state_dir.unwrap_or_else(|| dir.path().join("state"));
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state_dir)
            .args(&self.args)
            // Never written: the server runs on its defaults and flags.
            .env("FOOLOCK_CONFIG", dir.path().join("server.toml"))
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start foolock serve");
        let Ok(addr) = listening_addr(&mut child) else {
            let status = child.wait().expect("wait for foolock serve");
            return Err((
                status.code(),
                std::fs::read_to_string(&log_path).unwrap_or_default(),
            ));
        };
        Ok(Server {
            child,
            addr,
            url: format!("http://{addr}"),
            dir,
        })
    }
}

/// Reads `child`'s first stdout line, `foolock listening on ADDR; other devices can use …`,
/// and returns ADDR, or the line if it is something else.
pub fn listening_addr(child: &mut Child) -> Result<SocketAddr, String> {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    line.strip_prefix("foolock listening on ")
        .and_then(|rest| rest.split(';').next())
        .and_then(|addr| addr.parse().ok())
        .ok_or(line)
}

/// A `foolock serve` process, killed on drop. Its directory holds its log (`server.log`, its
/// stderr), its state unless the builder named another directory, and the CLI's config file.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// `http://ADDR`
    pub url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// A server with `flags` and its own state directory.
    pub fn start(flags: &[&str]) -> Server {
        Server::builder().args(flags).start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            args: Vec::new(),
            state_dir: None,
            rust_log: "info".to_owned(),
            env: Vec::new(),
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log (its stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) {
        signal(self.pid(), libc::SIGTERM);
        let status = wait_exit(&mut self.child, Duration::from_secs(10));
        assert!(status.success(), "server exited with {status} on SIGTERM");
    }

    /// `POST /lock?{query}`.
    pub fn post(&self, query: &str) -> Reply {
        request(self.addr, "POST", &format!("/lock?{query}")).expect("request failed")
    }

    /// `DELETE /lock?{query}`.
    pub fn delete(&self, query: &str) -> Reply {
        request(self.addr, "DELETE", &format!("/lock?{query}")).expect("request failed")
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

    /// `GET /lock` for `job` through the CLI, as JSON.
    pub fn status(&self, job: &str) -> serde_json::Value {
        let (code, out, err) = self.run(&["status", job, "--json"]);
        // 0: held, 1: free.
        assert!(code == 0 || code == 1, "status failed ({code}): {err}");
        serde_json::from_str(&out).expect("status JSON")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A stopped server must be continued to die; one already reaped is left alone, as its
        // pid may belong to another process by now.
        if let Ok(None) = self.child.try_wait() {
            signal(self.pid(), libc::SIGCONT);
        }
        self.kill();
    }
}

/// Parses the UTC timestamp that starts a log line (`2026-11-26T10:45:05.592925Z`).
pub fn log_time(line: &str) -> Option<SystemTime> {
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
    Some(UNIX_EPOCH + Duration::from_secs(whole as u64) + Duration::from_secs_f64(secs))
}
