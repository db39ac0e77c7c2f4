//! Connection limits and timeouts against the real server: stalled heads, idle connections,
//! oversized requests, and a shutdown that a stalled client cannot hold up.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Server, request, signal, wait_exit};

/// Everything the server sends until it closes the connection.
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

/// The server's `/metrics` text.
fn metrics_text(addr: std::net::SocketAddr) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_until_closed(&mut conn)
}

/// The count of 4xx replies for `reason` in `/metrics`, 0 when not listed.
fn client_errors(addr: std::net::SocketAddr, reason: &str) -> u64 {
    let series = format!("foolock_http_client_errors_total{{reason=\"{reason}\"}} ");
    metrics_text(addr)
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn a_head_that_stalls_gets_408_and_the_connection_closes() {
    let server = Server::start(&[]);
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .write_all(b"POST /lock?client=a&job=j HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let reply = read_until_closed(&mut stalled);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(25),
        "closed after {after:?}"
    );
    // Nothing of the half-sent request happened.
    let status = request(server.addr, "GET", "/lock?job=j").unwrap();
    assert_eq!(status.body["holder"], "");
    assert_eq!(
        client_errors(server.addr, "timeout"),
        1,
        "the 408 is counted"
    );
}

#[test]
fn an_idle_kept_alive_connection_is_closed() {
    let server = Server::start(&[]);
    let mut conn = TcpStream::connect(server.addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let everything = read_until_closed(&mut conn);
    assert!(everything.starts_with("HTTP/1.1 200"), "{everything:?}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "still open after {:?}",
        started.elapsed()
    );
}

#[test]
fn oversized_uris_get_414_and_oversized_heads_431() {
    let server = Server::start(&[]);
    let long_job = "j".repeat(9 * 1024);
    let mut conn = TcpStream::connect(server.addr).unwrap();
    write!(
        conn,
        "GET /lock?job={long_job} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let reply = read_until_closed(&mut conn);
    assert!(
        reply.starts_with("HTTP/1.1 414"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert!(reply.contains("URI is longer"), "{reply}");

    let mut conn = TcpStream::connect(server.addr).unwrap();
    let big = "a".repeat(20 * 1024);
    // The server stops reading once the head is too large, answers and closes: the rest of
    // this write may meet the closed connection (EPIPE). The answer is read all the same.
    let _ = write!(
        conn,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let reply = read_until_closed(&mut conn);
    assert!(
        reply.starts_with("HTTP/1.1 431"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert_eq!(request(server.addr, "GET", "/healthz").unwrap().status, 200);
    // Answered before the app saw them, and counted all the same.
    assert_eq!(client_errors(server.addr, "uri_too_long"), 1);
    assert_eq!(client_errors(server.addr, "headers_too_large"), 1);
}

#[test]
fn sigterm_cuts_a_stalled_client_and_a_long_poll_within_seconds_and_saves_state() {
    let state = tempfile::tempdir().unwrap();
    let mut server = Server::builder()
        .state_dir(state.path())
        .args(&["--max-wait", "5m"])
        .start();
    assert_eq!(server.post("client=a&job=j&ttl=10m").status, 200);
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.write_all(b"GET /lock?job=j HTTP/1.1\r\n").unwrap();
    let addr = server.addr;
    let waiter = std::thread::spawn(move || request(addr, "POST", "/lock?client=b&job=j&wait=4m"));
    assert!(support::eventually(Duration::from_secs(10), || {
        request(addr, "GET", "/lock?job=j").is_ok_and(|r| r.body["waiting"] == 1)
    }));
    let started = Instant::now();
    signal(server.pid(), libc::SIGTERM);
    let status = wait_exit(&mut server.child, Duration::from_secs(9));
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "exit took {:?}",
        started.elapsed()
    );
    let _ = waiter.join();
    assert!(
        server.log().contains("saved final state"),
        "{}",
        server.log()
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["leases"][0]["holder"], "a");
}
