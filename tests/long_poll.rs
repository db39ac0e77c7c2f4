//! The server side of waiting, over real HTTP: `POST /lock?wait=` long-polls are served
//! first-come first-served, respect the grace period, are capped by `max_wait`, and a waiter
//! that disconnects is forgotten and never granted the job.

mod support;

use foolock::api::wire::LockReply;
use foolock::client::http::{Api, Reply};
use hyper::StatusCode;
use std::time::{Duration, Instant};
use support::Server;
use tokio::task::JoinHandle;

const SECOND: Duration = Duration::from_secs(1);
const TTL: Option<Duration> = Some(Duration::from_secs(60));

fn api(server: &Server) -> Api {
    Api::new(&server.url, None).expect("server URL")
}

async fn acquire(api: &Api, job: &str, client: &str) -> Reply<LockReply> {
    api.acquire(job, client, TTL, None, 5 * SECOND)
        .await
        .expect("acquire")
}

/// Starts a long-poll for `client` in the background.
fn wait_for(api: &Api, job: &str, client: &str, wait: Duration) -> JoinHandle<Reply<LockReply>> {
    let (api, job, client) = (api.clone(), job.to_owned(), client.to_owned());
    tokio::spawn(async move {
        api.acquire(&job, &client, TTL, Some(wait), wait + 10 * SECOND)
            .await
            .expect("long-poll")
    })
}

async fn holder(api: &Api, job: &str) -> String {
    let reply = api.status(job).await.expect("status");
    reply.body.holder.unwrap_or_default()
}

/// Waits (up to 20 s) until `n` clients are queued for `job`, as the server reports it.
async fn until_waiting(api: &Api, job: &str, n: usize) {
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        let reply = api.status(job).await.expect("status");
        if reply.body.waiting == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} waiters never queued for {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn release(api: &Api, job: &str, client: &str) {
    let reply = api.release(job, client, 5 * SECOND).await.expect("release");
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order() {
    let server = Server::start(&[]);
    let api = api(&server);
    assert_eq!(acquire(&api, "job", "a").await.status, StatusCode::OK);
    let b = wait_for(&api, "job", "b", 30 * SECOND);
    until_waiting(&api, "job", 1).await;
    let c = wait_for(&api, "job", "c", 30 * SECOND);
    until_waiting(&api, "job", 2).await;
    // A third waiter: with two, a queue that serves the first and moves the last into its
    // place would still look fair.
    let d = wait_for(&api, "job", "d", 30 * SECOND);
    until_waiting(&api, "job", 3).await;
    assert!(
        !b.is_finished() && !c.is_finished() && !d.is_finished(),
        "all wait while a holds the job"
    );

    release(&api, "job", "a").await;
    let got = tokio::time::timeout(5 * SECOND, b)
        .await
        .expect("b is served")
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.holder.as_deref(), Some("b"));
    tokio::time::sleep(SECOND).await;
    assert!(!c.is_finished(), "c still waits while b holds the job");
    assert_eq!(holder(&api, "job").await, "b");

    release(&api, "job", "b").await;
    let got = tokio::time::timeout(5 * SECOND, c)
        .await
        .expect("c is served")
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.holder.as_deref(), Some("c"));
    tokio::time::sleep(SECOND).await;
    assert!(!d.is_finished(), "d still waits while c holds the job");

    release(&api, "job", "c").await;
    let got = tokio::time::timeout(5 * SECOND, d)
        .await
        .expect("d is served")
        .unwrap();
    assert_eq!(got.body.holder.as_deref(), Some("d"));
}

#[tokio::test]
async fn a_waiter_that_disconnects_is_forgotten_and_never_granted() {
    let server = Server::start(&[]);
    let api = api(&server);
    assert_eq!(acquire(&api, "job", "a").await.status, StatusCode::OK);
    // b gives up after a second: dropping the request closes its connection.
    let gave_up = tokio::time::timeout(
        SECOND,
        api.acquire("job", "b", TTL, Some(30 * SECOND), 40 * SECOND),
    )
    .await;
    assert!(gave_up.is_err(), "b was still waiting when it disconnected");
    let c = wait_for(&api, "job", "c", 30 * SECOND);
    // c alone: b's departure has been noticed and c has queued.
    until_waiting(&api, "job", 1).await;

    release(&api, "job", "a").await;
    let got = tokio::time::timeout(5 * SECOND, c)
        .await
        .expect("c is served")
        .unwrap();
    assert_eq!(
        got.body.holder.as_deref(),
        Some("c"),
        "c, not the departed b"
    );
    release(&api, "job", "c").await;
    assert_eq!(holder(&api, "job").await, "", "b was never granted the job");

    // With nobody else queued, a departed waiter leaves the job free on release.
    assert_eq!(acquire(&api, "solo", "a").await.status, StatusCode::OK);
    let _ = tokio::time::timeout(
        SECOND,
        api.acquire("solo", "b", TTL, Some(30 * SECOND), 40 * SECOND),
    )
    .await;
    until_waiting(&api, "solo", 0).await;
    release(&api, "solo", "a").await;
    assert_eq!(holder(&api, "solo").await, "");
}

#[tokio::test]
async fn a_wait_that_ends_gets_the_usual_409_naming_the_holder() {
    let server = Server::start(&[]);
    let api = api(&server);
    assert_eq!(acquire(&api, "job", "a").await.status, StatusCode::OK);
    let started = Instant::now();
    let reply = api
        .acquire("job", "b", TTL, Some(2 * SECOND), 20 * SECOND)
        .await
        .expect("long-poll");
    assert!(
        started.elapsed() >= 2 * SECOND,
        "held open for the whole wait"
    );
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body.holder.as_deref(), Some("a"));
}

#[tokio::test]
async fn waits_beyond_max_wait_are_refused() {
    let server = Server::start(&["--max-wait", "2s"]);
    let api = api(&server);
    let reply = api
        .acquire("job", "b", TTL, Some(5 * SECOND), 5 * SECOND)
        .await
        .expect("reply");
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .body
            .error
            .as_deref()
            .unwrap_or("")
            .contains("at most 2s"),
        "{:?}",
        reply.body
    );
    // A free job is granted at once, whatever the wait.
    let reply = api
        .acquire("job", "b", TTL, Some(2 * SECOND), 5 * SECOND)
        .await
        .expect("reply");
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_waiter_is_not_granted_during_the_previous_holders_grace_period() {
    let server = Server::start(&["--grace-period", "3s"]);
    let api = api(&server);
    let started = Instant::now();
    let reply = api
        .acquire("job", "a", Some(SECOND), None, 5 * SECOND)
        .await
        .expect("acquire");
    assert_eq!(reply.status, StatusCode::OK);
    let got = api
        .acquire("job", "b", TTL, Some(30 * SECOND), 40 * SECOND)
        .await
        .expect("long-poll");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.holder.as_deref(), Some("b"));
    // a's lease ran 1s and its grace 3s more: b could not have been granted before 4s.
    assert!(
        started.elapsed() >= 3 * SECOND,
        "granted after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_expiry_timer_serves_a_waiter_when_the_grace_ends_not_when_its_wait_does() {
    // Nothing but the server's own timer can notice that a's grace ended: no other request
    // arrives while b waits. Without the timer, b would be served only when its 60 s wait
    // ran out (and the server then retried the grant).
    let server = Server::start(&["--grace-period", "1s"]);
    let api = api(&server);
    let reply = api
        .acquire("job", "a", Some(SECOND), None, 5 * SECOND)
        .await
        .expect("acquire");
    assert_eq!(reply.status, StatusCode::OK);
    // The grace ends about 2 s after a's grant; a generous bound, far below the 60 s wait.
    let got = tokio::time::timeout(
        20 * SECOND,
        api.acquire("job", "b", TTL, Some(60 * SECOND), 70 * SECOND),
    )
    .await
    .expect("served by the timer well before the wait ends")
    .expect("long-poll");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.holder.as_deref(), Some("b"));
}

/// The token of `job`'s lease in the state file, if it holds one for `holder`.
fn saved_token(state: &std::path::Path, job: &str, holder: &str) -> Option<u64> {
    let bytes = std::fs::read(state.join("state.json")).ok()?;
    let saved: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    saved["leases"]
        .as_array()?
        .iter()
        .find(|l| l["job"] == job && l["holder"] == holder)?["token"]
        .as_u64()
}

#[tokio::test]
async fn a_long_poll_grant_is_on_disk_before_the_waiter_is_told() {
    // A waiter told "yours" must still hold the job after a crash, so the state file has to
    // name it by the time its reply arrives: both when a release hands the job over and when
    // the timer does at the end of a grace period.
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let server = Server::builder()
        .state_dir(&state)
        .args(&["--grace-period", "1s"])
        .start();
    let api = api(&server);

    assert_eq!(acquire(&api, "handed", "a",).await.status, StatusCode::OK);
    let b = wait_for(&api, "handed", "b", 30 * SECOND);
    until_waiting(&api, "handed", 1).await;
    // Read the file the moment b's reply arrives, not after a's release returns.
    let watcher = {
        let state = state.clone();
        tokio::spawn(async move {
            let got = b.await.unwrap();
            (saved_token(&state, "handed", "b"), got)
        })
    };
    release(&api, "handed", "a").await;
    let (on_disk, got) = watcher.await.unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        on_disk, got.body.token,
        "b's grant was replied before it was saved"
    );

    let reply = api
        .acquire("timed", "a", Some(SECOND), None, 5 * SECOND)
        .await
        .expect("acquire");
    assert_eq!(reply.status, StatusCode::OK);
    let got = api
        .acquire("timed", "b", TTL, Some(30 * SECOND), 40 * SECOND)
        .await
        .expect("long-poll");
    let on_disk = saved_token(&state, "timed", "b");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        on_disk, got.body.token,
        "b's grant was replied before it was saved"
    );
}
