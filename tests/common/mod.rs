//! Helpers for tests that drive the real `foolock` binary over real HTTP on 127.0.0.1.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `foolock serve` with its own state directory.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_path: PathBuf,
}

/// Starts `foolock serve` on a free port with `state_dir` and extra flags; waits for its
/// "listening" line. Panics with its stderr if it exits instead.
pub fn start(state_dir: &Path, extra: &[&str], log_dir: &Path) -> Server {
    try_start(state_dir, extra, log_dir).unwrap_or_else(|(code, err)| {
        panic!("server exited with {code:?} instead of listening:\n{err}")
    })
}

/// Like [`start`], returning the exit status and stderr if it does not come up.
pub fn try_start(
    state_dir: &Path,
    extra: &[&str],
    log_dir: &Path,
) -> Result<Server, (Option<i32>, String)> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stderr_path = log_dir.join(format!("server-{n}.stderr"));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_foolock"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state_dir)
        .args(extra)
        .env("FOOLOCK_CONFIG", log_dir.join("no-such-config.toml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("cannot start foolock");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(addr) = line
        .strip_prefix("foolock listening on ")
        .and_then(|rest| rest.split(';').next())
        .and_then(|a| a.parse().ok())
    else {
        let status = child.wait().unwrap();
        return Err((
            status.code(),
            std::fs::read_to_string(&stderr_path).unwrap(),
        ));
    };
    Ok(Server {
        child,
        addr,
        stderr_path,
    })
}

impl Server {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) with our own child's pid, which we have not waited for yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status} on SIGTERM");
    }

    pub fn post(&self, query: &str) -> Reply {
        request(self.addr, "POST", query).expect("request failed")
    }

    pub fn delete(&self, query: &str) -> Reply {
        request(self.addr, "DELETE", query).expect("request failed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A status code and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn token(&self) -> u64 {
        self.body["token"].as_u64().expect("token in reply")
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// One HTTP/1.1 request on a fresh connection; `Err` if the server is unreachable or the
/// connection breaks before a whole reply arrives.
pub fn request(addr: SocketAddr, method: &str, query: &str) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} /lock?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let broken = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete reply");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(broken)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(broken)?;
    let body = serde_json::from_str(body).map_err(|_| broken())?;
    Ok(Reply { status, body })
}
