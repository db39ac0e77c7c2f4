//! The `foolock serve` and `foolock config` commands as a user runs them.
#![cfg(unix)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{ServerProcess, http};

fn foolock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_foolock"));
    cmd.env_remove("FOOLOCK_CONFIG").env("RUST_LOG", "warn");
    cmd
}

#[test]
fn port_in_use_is_a_one_line_error_and_nonzero_exit() {
    let server = ServerProcess::start(&[]);
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
    let mut server = ServerProcess::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _) = rt.block_on(http(server.addr, "GET", "/healthz"));
    assert_eq!(status, 200);
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_ends_waiting_requests_instead_of_waiting_for_them() {
    let mut server = ServerProcess::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _) = rt.block_on(http(server.addr, "POST", "/lock?client=a&job=j&ttl=1m"));
    assert_eq!(status, 200);
    let addr = server.addr;
    let waiter = rt.spawn(http(addr, "POST", "/lock?client=b&job=j&wait=4m"));
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let (status, body) = rt.block_on(waiter).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "the server is shutting down");
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let mut child = foolock()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--default-ttl",
            "42s",
            "--config",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches(';')
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, body) = rt.block_on(http(addr, "POST", "/lock?client=a"));
    assert_eq!(body["ttl_ms"], 42_000);
    child.kill().unwrap();
    child.wait().unwrap();
}
