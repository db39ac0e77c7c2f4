//! The access token end to end: a real server that requires it, the CLI that sends it (from
//! the environment or its config file), and the server's log of refused requests.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{BIN, Server, eventually, request};

const TOKEN: &str = "0123456789abcdef-not-so-secret";

fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A server whose config file names a token file.
fn server_with_token() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    private_file(&dir.path().join("token"), &format!("{TOKEN}\n"));
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "auth_token_file = \"token\"\n").unwrap();
    let server = Server::builder()
        .env("FOOLOCK_CONFIG", config.to_str().unwrap())
        .start();
    (server, dir)
}

/// The status line and body of `GET path` with `authorization`, if any.
fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn a_server_with_a_token_refuses_requests_without_it_but_answers_healthz() {
    let (server, _dir) = server_with_token();
    let (status, head, body) = get(server.addr, "/lock?job=j", None);
    assert_eq!(status, 401, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"].as_str().unwrap().contains("access token"));
    let (status, _, _) = get(server.addr, "/locks", Some("Bearer wrong"));
    assert_eq!(status, 401);
    let (status, _, _) = get(server.addr, "/healthz", None);
    assert_eq!(status, 200);
    let (status, _, body) = get(server.addr, "/lock?job=j", Some(&format!("Bearer {TOKEN}")));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_cli_sends_the_token_from_the_environment_or_its_config_file() {
    let (server, dir) = server_with_token();
    let (code, _, err) = server.run(&["acquire", "j", "--client", "a"]);
    assert_eq!(
        code, 2,
        "a refusal for a missing token is a usage error: {err}"
    );
    assert!(err.contains("access token"), "{err}");

    let out = server
        .cli()
        .env("FOOLOCK_AUTH_TOKEN", TOKEN)
        .args(["acquire", "j", "--client", "a"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let client_config = dir.path().join("client.toml");
    std::fs::write(&client_config, format!("auth_token = \"{TOKEN}\"\n")).unwrap();
    let out = server
        .cli()
        .env("FOOLOCK_CONFIG", &client_config)
        .args(["release", "j", "--client", "a"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn refused_requests_are_logged_with_the_peer_a_few_at_a_time_and_never_the_token() {
    let (server, _dir) = server_with_token();
    for _ in 0..20 {
        get(server.addr, "/locks", Some("Bearer a-guess-at-the-token"));
    }
    // The reply is sent before the line is flushed; wait for the lines, not for a time.
    assert!(eventually(Duration::from_secs(10), || {
        server.log().matches("refused a request").count() >= 5
    }));
    let log = server.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a request"))
        .collect();
    assert_eq!(refusals.len(), 5, "rate-limited:\n{log}");
    assert!(refusals[0].contains("peer=127.0.0.1:"), "{log}");
    assert!(refusals[0].contains("a wrong access token"), "{log}");
    assert!(!log.contains("a-guess-at-the-token"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
    // Requests with the token are not refused (nor logged as such).
    let reply = request(server.addr, "GET", "/healthz").unwrap();
    assert_eq!(reply.status, 200);
}

#[test]
fn a_token_file_others_can_read_stops_the_server_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    private_file(&token, TOKEN);
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "auth_token_file = \"token\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .env("FOOLOCK_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth_token_file"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
}

#[test]
fn config_init_offers_a_generated_token_and_check_hides_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("FOOLOCK_CONFIG", &config)
            .output()
            .unwrap()
    };
    assert!(run(&["config", "init"]).status.success());
    let text = std::fs::read_to_string(&config).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("# auth_token = \""))
        .unwrap();
    let token = line
        .trim_start_matches("# auth_token = \"")
        .trim_end_matches('"');
    assert_eq!(token.len(), 64, "{line}");
    std::fs::write(&config, text.replace(line, &line[2..])).unwrap();
    let out = run(&["config", "check"]);
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("auth_token = \"(hidden)\""), "{shown}");
    assert!(!shown.contains(token), "{shown}");
}
