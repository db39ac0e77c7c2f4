//! The `foolock serve` and `foolock config` commands as a user runs them.
#![cfg(unix)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{BIN, Server, eventually, request, signal, wait_exit};

fn foolock() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("FOOLOCK_CONFIG").env("RUST_LOG", "warn");
    cmd
}

#[test]
fn port_in_use_is_a_one_line_error_and_nonzero_exit() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = foolock()
        .args(["serve", "--listen", &server.addr.to_string(), "--state-dir"])
        .arg(dir.path().join("state"))
        .env("FOOLOCK_CONFIG", dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = Server::start(&[]);
    let healthz = request(server.addr, "GET", "/healthz").unwrap();
    assert_eq!(healthz.status, 200);
    server.terminate();
}

#[test]
fn sigterm_ends_waiting_requests_instead_of_waiting_for_them() {
    let mut server = Server::start(&[]);
    assert_eq!(server.post("client=a&job=j&ttl=1m").status, 200);
    let addr = server.addr;
    let waiter = std::thread::spawn(move || request(addr, "POST", "/lock?client=b&job=j&wait=4m"));
    assert!(eventually(Duration::from_secs(20), || {
        request(addr, "GET", "/lock?job=j").is_ok_and(|r| r.body["waiting"] == 1)
    }));
    signal(server.pid(), libc::SIGTERM);
    let started = Instant::now();
    let reply = waiter
        .join()
        .unwrap()
        .expect("a reply before the server exits");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["error"], "the server is shutting down");
    // Within 10 s of the signal.
    let left = Duration::from_secs(10).saturating_sub(started.elapsed());
    let status = wait_exit(&mut server.child, left);
    assert!(status.success(), "exit status {status}");
}

#[test]
fn bad_config_names_file_line_and_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\ngrace_period = \"90s\"\n").unwrap();
    let out = foolock()
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("grace_period"), "{stderr}");

    std::fs::write(&path, "listn = \"127.0.0.1:0\"\n").unwrap();
    let out = foolock()
        .args(["config", "check"])
        .env("FOOLOCK_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listn") && stderr.contains("line 1"),
        "{stderr}"
    );
}

#[test]
fn bad_flag_value_is_a_usage_error() {
    let out = foolock()
        .args(["serve", "--grace-period", "2m", "--listen", "127.0.0.1:0"])
        .env("FOOLOCK_CONFIG", "/nonexistent/foolock.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--grace-period"));
}

#[test]
fn config_init_writes_once_and_check_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/config.toml");
    let run = |args: &[&str]| {
        let out = foolock()
            .args(args)
            .env("FOOLOCK_CONFIG", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["config", "path"]).trim(), path.to_str().unwrap());
    assert!(run(&["config", "init"]).contains("wrote"));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(run(&["config", "init"]).contains("already exists"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    let check = run(&["config", "check"]);
    assert!(check.contains("is valid"), "{check}");
    assert!(check.contains("default_ttl = \"30s\""), "{check}");
}

#[test]
fn flags_override_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "default_ttl = \"10s\"\n").unwrap();
    let server = Server::start(&["--default-ttl", "42s", "--config", path.to_str().unwrap()]);
    assert_eq!(server.post("client=a").body["ttl_ms"], 42_000);
}
