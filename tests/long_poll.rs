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
    assert!(
        !b.is_finished() && !c.is_finished(),
        "both wait while a holds the job"
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
    tokio::time::sleep(SECOND).await;

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
    tokio::time::sleep(SECOND).await;
    release(&api, "solo", "a").await;
    tokio::time::sleep(SECOND).await;
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
