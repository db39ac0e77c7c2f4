//! Regressions for the server bugs found in review (issue 10), each reproduced against the
//! real binary before it was fixed.
#![cfg(unix)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;
use support::{Server, eventually, request};

fn write_state(dir: &Path, json: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("state.json"), json).unwrap();
}

fn watermarks(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("watermarks.json")).unwrap()).unwrap()
}

/// Bug 3: a grant above `u64::MAX - 1000` made the saved token ceiling wrap (release) or the
/// writer thread panic (debug), leaving a server that never answered again.
#[test]
fn bug3_tokens_near_u64_max_never_wrap_and_run_out_with_a_clear_refusal() {
    let state = tempfile::tempdir().unwrap();
    let near = 18_446_744_073_709_551_000; // as seen: its ceiling wrapped to 385
    write_state(
        state.path(),
        &format!(r#"{{"last_token": {near}, "leases": []}}"#),
    );
    let server = Server::builder().state_dir(state.path()).start();
    let reply = server.post("client=a&job=j");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.token(), near + 1);
    let ceiling = watermarks(state.path())["token_ceiling"].as_u64().unwrap();
    assert!(ceiling > near, "the ceiling {ceiling} wrapped");
    assert_eq!(request(server.addr, "GET", "/healthz").unwrap().status, 200);
}

#[test]
fn bug3_a_server_whose_tokens_are_used_up_starts_and_refuses_grants_clearly() {
    let state = tempfile::tempdir().unwrap();
    write_state(
        state.path(),
        &format!(r#"{{"last_token": {}, "leases": []}}"#, u64::MAX - 1),
    );
    let server = Server::builder().state_dir(state.path()).start();
    let last = server.post("client=a&job=last");
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.token(), u64::MAX);
    // Renewing keeps the token, so the holder of the last one is still served.
    assert_eq!(server.post("client=a&job=last").status, 200);
    let refused = server.post("client=b&job=other");
    assert_eq!(refused.status, 503, "{}", refused.body);
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("last fencing token"), "{error}");
    assert!(server.log().contains("fencing tokens"), "{}", server.log());
    assert_eq!(
        request(server.addr, "GET", "/lock?job=other")
            .unwrap()
            .status,
        200
    );
}

/// Bug 1: a long-poll waiter that pipelined a second request and hung up stayed queued
/// (hyper does not look for EOF while its read buffer holds a request), so the job was later
/// granted to a client that was gone.
#[test]
fn bug1_a_waiter_that_pipelined_a_request_and_hung_up_is_forgotten() {
    let server = Server::start(&["--max-wait", "5m"]);
    assert_eq!(server.post("client=a&job=j&ttl=10m").status, 200);
    let host = server.addr;
    let mut client = TcpStream::connect(server.addr).unwrap();
    write!(
        client,
        "POST /lock?client=b&job=j&wait=4m HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"
    )
    .unwrap();
    let waiting = || request(server.addr, "GET", "/lock?job=j").unwrap().body["waiting"].as_u64();
    assert!(
        eventually(Duration::from_secs(5), || waiting() == Some(1)),
        "the waiter never queued"
    );
    // Hang up with both replies unread.
    drop(client);
    assert!(
        eventually(Duration::from_secs(10), || waiting() == Some(0)),
        "the waiter that hung up is still queued"
    );
    assert_eq!(server.delete("client=a&job=j").status, 200);
    let status = request(server.addr, "GET", "/lock?job=j").unwrap();
    assert_eq!(
        status.body["holder"], "",
        "granted to a client that is gone"
    );
}

/// Bug 4: a plain acquire whose state write was stuck got a 408 from the request timeout but
/// kept its grant in memory: the client held the job without knowing it.
#[test]
fn bug4_an_acquire_whose_write_is_stuck_is_refused_and_leaves_the_job_free() {
    let state = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .state_dir(state.path())
        .args(&["--max-wait", "0s"])
        .start();
    // The writer creates `state.json.partial` for each write; as a FIFO nobody reads, opening
    // it blocks, as a write to a hung disk would.
    let fifo =
        std::ffi::CString::new(state.path().join("state.json.partial").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    write!(
        stream,
        "POST /lock?client=a&job=j HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut reply);
    let status = request(server.addr, "GET", "/lock?job=j").unwrap();
    assert_eq!(
        status.body["holder"], "",
        "the job is held after the reply {reply:?}"
    );
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("could not be saved"), "{reply}");
}

/// Bug 5: `GET /locks` with `max_jobs` jobs held could exceed the CLI's 1 MiB reply cap, so
/// `foolock list` failed exactly when there was most to see.
#[test]
fn bug5_list_shows_every_job_even_when_all_of_them_exceed_one_reply() {
    const JOBS: usize = 2000;
    let server = Server::start(&["--max-jobs", "2000"]);
    // Long names make 2000 rows well over 1 MiB.
    let pad = "x".repeat(200);
    let addr = server.addr;
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let pad = pad.clone();
            std::thread::spawn(move || {
                for i in (w..JOBS).step_by(16) {
                    let query =
                        format!("/lock?client=client-{pad}-{w}&job=job-{pad}-{i:04}&ttl=1h");
                    let reply = request(addr, "POST", &query).unwrap();
                    assert_eq!(reply.status, 200, "{}", reply.body);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (code, out, err) = server.run(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.len() > 1 << 20, "the listing is {} bytes", out.len());
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let locks = listed["locks"].as_array().unwrap();
    assert_eq!(locks.len(), JOBS);
    assert_eq!(locks[0]["job"], format!("job-{pad}-0000"));
    assert_eq!(locks[JOBS - 1]["job"], format!("job-{pad}-{:04}", JOBS - 1));
    let (code, table, err) = server.run(&["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(table.lines().filter(|l| l.contains("job-x")).count(), JOBS);
}
