//! Shared test support: start the real `foolock` binary and talk HTTP to it.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `foolock serve` process on a free loopback port, killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Holds the server's config path and state directory.
    pub dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `foolock serve --listen 127.0.0.1:0 ARGS…` with an empty config and waits until
    /// it prints the address it listens on.
    pub fn start(args: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_foolock"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path().join("state"))
            .args(args)
            .env("FOOLOCK_CONFIG", dir.path().join("config.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start foolock serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read first line");
        // "foolock listening on 127.0.0.1:PORT; other devices can use …"
        let addr = line
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.trim_end_matches(';').parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        ServerProcess { child, addr, dir }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with no body over a fresh connection; returns status and JSON body.
/// Written by hand to keep test dependencies small and the wire visible.
pub async fn http(addr: SocketAddr, method: &str, path_and_query: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, json)
}
