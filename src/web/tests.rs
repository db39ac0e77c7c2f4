//! The page, the stream, the metrics and the force release through the server's whole app
//! ([`crate::server::app`]: API and web routes, with the metrics middleware), driven with
//! `oneshot` and a real lock service.

use super::log::{Message, RING};
use super::{ServerInfo, WebState};
use crate::api::auth::Auth;
use crate::api::{AppState, Peer};
use crate::config::AuthToken;
use crate::engine::{Engine, Rules};
use crate::server::App;
use crate::service::{LockService, Running};
use crate::time::SystemClock;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const LOOPBACK: &str = "127.0.0.1:40000";
const OTHER_DEVICE: &str = "192.0.2.7:40000";

struct Harness {
    web: WebState,
    app: App,
    shutdown: CancellationToken,
    /// The service's expiry timer.
    _running: Running,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn harness() -> Harness {
    harness_with(Rules::default())
}

fn harness_with(rules: Rules) -> Harness {
    harness_full(rules, true, None)
}

/// The access token [`harness_with_token`] requires.
const TOKEN: &str = "s3cret-t0ken";

/// A server configured with the access token [`TOKEN`].
fn harness_with_token() -> Harness {
    harness_full(Rules::default(), true, Some(TOKEN))
}

/// Wired as the server wires them: a service with its timer, an event log fed by its events
/// and its waiter count, and the server's app over both; `metrics` and `token` as the config
/// keys `metrics` and `auth_token`.
fn harness_full(rules: Rules, metrics: bool, token: Option<&str>) -> Harness {
    let running = LockService::start(Engine::new(rules), Arc::new(SystemClock), None);
    let service = running.service().clone();
    let web = WebState::new(
        service.clone(),
        ServerInfo::starting_now(vec!["192.0.2.1:8080".parse().unwrap()]),
        metrics,
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(
        web.log
            .clone()
            .run(shutdown.clone(), Some(service.waiters_changed())),
    );
    let app = crate::server::app(
        AppState {
            service,
            max_wait: Duration::from_secs(10),
            shutdown: shutdown.clone(),
        },
        web.clone(),
        &Auth::new(
            token
                .map(|t| AuthToken::try_from(t.to_owned()).unwrap())
                .as_ref(),
        ),
    );
    Harness {
        web,
        app,
        shutdown,
        _running: running,
    }
}

fn request(method: &str, uri: &str, peer: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8080")
        .extension(Peer::at(peer.parse::<SocketAddr>().unwrap()))
}

async fn send(app: &App, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn call(app: &App, method: &str, uri: &str, peer: &str) -> (StatusCode, String) {
    send(app, request(method, uri, peer).body(Body::empty()).unwrap()).await
}

/// Waits (up to 5 s) until the log has taken in every event made so far: subscribes and
/// waits for a marker entry made after the subscription (or a resynchronisation, which reads
/// the service's table after the marker).
async fn settle(h: &Harness) {
    let mut sub = h.web.log.subscribe(None);
    let first = sub.next().await;
    assert!(matches!(first, Some(Message::Snapshot { .. })));
    // A force release of a job nobody holds publishes nothing; a hold-and-release does.
    h.web
        .service
        .acquire("__settle__", "t", Duration::from_secs(60))
        .await
        .unwrap();
    h.web.service.release("__settle__", "t").await.unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("the log takes in events within 5 s")
            .expect("log running");
        match next {
            Message::Entry { entry, .. }
                if entry.json().contains("\"released\"") && entry.json().contains("__settle__") =>
            {
                return;
            }
            // The log fell behind and rebuilt its mirror from the service after the marker.
            Message::Snapshot { .. } => return,
            _ => {}
        }
    }
}

#[tokio::test]
async fn status_page_lists_a_held_job_without_javascript() {
    let h = harness();
    call(
        &h.app,
        "POST",
        "/lock?job=build&client=mac&ttl=30s",
        LOOPBACK,
    )
    .await;
    settle(&h).await;
    let (status, html) = call(&h.app, "GET", "/", OTHER_DEVICE).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(
        "<tr role=\"row\" data-job=\"build\"><th role=\"rowheader\" scope=\"row\">build</th>\
         <td role=\"cell\" data-label=\"Holder\">mac</td>"
    ));
    assert!(html.contains("<span class=\"badge held\">held</span>"));
    // A fresh 30 s lease counts down from 30 s or just under.
    assert!(
        html.contains(">30 s</time>") || html.contains(">29 s</time>"),
        "{html}"
    );
    assert!(html.contains("192.0.2.1:8080"));
    assert!(html.contains(env!("CARGO_PKG_VERSION")));
    assert!(html.contains("<caption"));
    // The recent events show the grant with a machine-readable time.
    assert!(html.contains("<span class=\"kind\">acquired</span> <strong>build</strong> by mac"));
    assert!(!html.contains("{{"), "every template key is filled");
}

#[tokio::test]
async fn status_page_escapes_names_everywhere() {
    let h = harness();
    let job = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    call(
        &h.app,
        "POST",
        &format!("/lock?job={job}&client=a%22b"),
        LOOPBACK,
    )
    .await;
    settle(&h).await;
    let (_, html) = call(&h.app, "GET", "/", LOOPBACK).await;
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("a&quot;b"));
    // The embedded state cannot end its script element early.
    let state = html.split("id=\"state\">").nth(1).unwrap();
    let state = state.split("</script>").next().unwrap();
    assert!(!state.contains('<'));
    let parsed: serde_json::Value = serde_json::from_str(state).unwrap();
    assert_eq!(parsed["jobs"][0]["job"], "<script>alert(1)</script>");
}

#[tokio::test]
async fn force_release_control_is_shown_only_to_the_servers_own_machine() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    settle(&h).await;
    let (_, local) = call(&h.app, "GET", "/", LOOPBACK).await;
    assert!(local.contains("data-admin=\"true\""));
    assert!(local.contains("action=\"/admin/force-release?job=build\""));
    let (_, remote) = call(&h.app, "GET", "/", OTHER_DEVICE).await;
    assert!(remote.contains("data-admin=\"false\""));
    assert!(!remote.contains("/force-release?job="));
}

#[tokio::test]
async fn status_page_shows_no_locks_to_a_caller_without_the_configured_token() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    settle(&h).await;
    let (status, html) = send(
        &h.app,
        request("GET", "/", LOOPBACK)
            .extension(crate::api::admin::Token::Missing)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("build"), "{html}");
    assert!(!html.contains("192.0.2.1"));
    assert!(html.contains("data-admin=\"false\""));
}

/// `request` with `Authorization: Bearer <token>`.
fn with_token(builder: axum::http::request::Builder, token: &str) -> axum::http::request::Builder {
    builder.header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn with_a_token_the_page_is_served_without_it_but_shows_only_the_token_form() {
    let h = harness_with_token();
    let grant = with_token(
        request("POST", "/lock?job=build&client=mac", LOOPBACK),
        TOKEN,
    );
    assert_eq!(
        send(&h.app, grant.body(Body::empty()).unwrap()).await.0,
        StatusCode::OK
    );
    settle(&h).await;
    let (status, html) = call(&h.app, "GET", "/", LOOPBACK).await;
    assert_eq!(status, StatusCode::OK);
    // No lock data: no job, no holder, no event, no address.
    for secret in ["build", "mac", "192.0.2.1", "__settle__"] {
        assert!(!html.contains(secret), "{secret} in {html}");
    }
    assert!(html.contains("data-locked=\"true\""));
    assert!(
        html.contains("data-admin=\"false\""),
        "no controls before the token"
    );
    // The form is shown (not hidden), labelled, and the tables are hidden.
    assert!(
        html.contains("<form id=\"auth\" class=\"auth\" aria-labelledby=\"auth-heading\">"),
        "{html}"
    );
    assert!(html.contains("<label for=\"token\">Access token</label>"));
    assert!(html.contains("<input id=\"token\" type=\"password\""));
    assert!(html.contains("<section id=\"jobs-section\" aria-labelledby=\"jobs-caption\" hidden>"));
    assert!(
        html.contains("<section id=\"events-section\" aria-labelledby=\"events-heading\" hidden>")
    );
    // Links a browser could only follow into a 401 are left out.
    assert!(!html.contains("href=\"/events\""), "{html}");
    assert!(!html.contains("{{"), "every template key is filled");
    // Its assets are served without the token too.
    for path in ["/status.js", "/status.css", "/favicon.svg"] {
        let (status, _) = call(&h.app, "GET", path, OTHER_DEVICE).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // A wrong token is no token.
    let wrong = with_token(request("GET", "/", LOOPBACK), "wrong");
    let (status, html) = send(&h.app, wrong.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("build"));
}

#[tokio::test]
async fn without_a_token_configured_the_page_shows_no_token_form() {
    let h = harness();
    let (_, html) = call(&h.app, "GET", "/", OTHER_DEVICE).await;
    assert!(html.contains("data-locked=\"false\""));
    assert!(
        html.contains("<form id=\"auth\" class=\"auth\" aria-labelledby=\"auth-heading\" hidden>")
    );
    assert!(html.contains("<section id=\"jobs-section\" aria-labelledby=\"jobs-caption\">"));
    assert!(html.contains("<a href=\"/events\">Event stream</a>"));
}

#[tokio::test]
async fn with_a_token_the_page_shows_the_locks_to_a_request_that_brings_it() {
    let h = harness_with_token();
    let grant = with_token(
        request("POST", "/lock?job=build&client=mac", LOOPBACK),
        TOKEN,
    );
    send(&h.app, grant.body(Body::empty()).unwrap()).await;
    settle(&h).await;
    let page = with_token(request("GET", "/", LOOPBACK), TOKEN);
    let (status, html) = send(&h.app, page.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-job=\"build\""), "{html}");
    assert!(html.contains("data-locked=\"false\""));
    assert!(html.contains("data-admin=\"true\""));
}

#[tokio::test]
async fn with_a_token_events_metrics_and_force_release_refuse_requests_without_it() {
    let h = harness_with_token();
    for (method, path) in [
        ("GET", "/events"),
        ("GET", "/metrics"),
        ("POST", "/admin/force-release?job=build"),
        ("GET", "/locks"),
    ] {
        for token in [None, Some("wrong")] {
            let mut req = request(method, path, LOOPBACK);
            if let Some(token) = token {
                req = with_token(req, token);
            }
            let response = h
                .app
                .clone()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
        }
    }
    // Refusals are counted (the metrics layer sits outside the token check).
    let scrape = with_token(request("GET", "/metrics", OTHER_DEVICE), TOKEN);
    let (status, text) = send(&h.app, scrape.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = parse_prometheus(&text);
    assert_eq!(
        metrics["foolock_http_client_errors_total{reason=\"unauthorized\"}"],
        8.0
    );
}

#[tokio::test]
async fn with_the_token_events_stream_and_say_whether_the_viewer_may_force_release() {
    let h = harness_with_token();
    let grant = with_token(
        request("POST", "/lock?job=build&client=mac", LOOPBACK),
        TOKEN,
    );
    send(&h.app, grant.body(Body::empty()).unwrap()).await;
    settle(&h).await;
    for (peer, token, admin) in [(OTHER_DEVICE, TOKEN, "true"), (LOOPBACK, TOKEN, "true")] {
        let events = with_token(request("GET", "/events", peer), token);
        let response = h
            .app
            .clone()
            .oneshot(events.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["x-foolock-admin"], admin, "{peer}");
        let mut stream = SseReader {
            body: response.into_body(),
            buf: String::new(),
        };
        let first = stream.next().await;
        assert_eq!(first.event.as_deref(), Some("snapshot"));
        assert_eq!(first.json()["jobs"][0]["job"], "build");
    }
    // Without a token configured, only the server's own machine may.
    let h = harness();
    for (peer, admin) in [(OTHER_DEVICE, "false"), (LOOPBACK, "true")] {
        let response = h
            .app
            .clone()
            .oneshot(request("GET", "/events", peer).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.headers()["x-foolock-admin"], admin, "{peer}");
    }
}

#[tokio::test]
async fn with_the_token_another_device_may_force_release() {
    let h = harness_with_token();
    let grant = with_token(
        request("POST", "/lock?job=build&client=mac", LOOPBACK),
        TOKEN,
    );
    send(&h.app, grant.body(Body::empty()).unwrap()).await;
    let release = with_token(
        request("POST", "/admin/force-release?job=build", OTHER_DEVICE),
        TOKEN,
    );
    let (status, body) = send(&h.app, release.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(h.web.service.status("build").lease.is_none());
}

#[tokio::test]
async fn force_release_from_the_servers_machine_frees_the_job() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    let (status, body) = call(&h.app, "POST", "/admin/force-release?job=build", LOOPBACK).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        r#"{"success":true,"job":"build","holder":"mac","message":"lock released"}"#
    );
    assert!(h.web.service.status("build").lease.is_none());
    // Again: nothing to free.
    let (status, body) = call(&h.app, "POST", "/admin/force-release?job=build", LOOPBACK).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"success":false,"error":"no lock held"}"#);
}

#[tokio::test]
async fn force_release_form_without_javascript_returns_to_the_page() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    let response = h
        .app
        .clone()
        .oneshot(
            request("POST", "/admin/force-release?job=build", LOOPBACK)
                .header("accept", "text/html,application/xhtml+xml")
                .header("origin", "http://127.0.0.1:8080")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    assert!(h.web.service.status("build").lease.is_none());
}

#[tokio::test]
async fn force_release_is_refused_to_other_devices_and_other_sites() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    let (status, body) = call(
        &h.app,
        "POST",
        "/admin/force-release?job=build",
        OTHER_DEVICE,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        r#"{"error":"force release is only allowed from the server's own machine or with the auth token"}"#
    );
    let with_token = request("POST", "/admin/force-release?job=build", OTHER_DEVICE)
        .extension(crate::api::admin::Token::Missing)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, with_token).await.0, StatusCode::FORBIDDEN);
    let cross_site = request("POST", "/admin/force-release?job=build", LOOPBACK)
        .header("origin", "http://evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&h.app, cross_site).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        &*h.web.service.status("build").lease.unwrap().holder,
        "mac",
        "still held"
    );
    let (status, body) = call(&h.app, "POST", "/admin/force-release", LOOPBACK).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, r#"{"error":"job parameter required"}"#);
    let (status, _) = call(&h.app, "GET", "/admin/force-release?job=build", LOOPBACK).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn force_release_with_the_token_is_allowed_from_another_device() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    let with_token = request("POST", "/admin/force-release?job=build", OTHER_DEVICE)
        .extension(crate::api::admin::Token::Valid)
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&h.app, with_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(h.web.service.status("build").lease.is_none());
}

#[tokio::test]
async fn assets_are_served_from_the_binary() {
    let h = harness();
    for (path, kind) in [
        ("/status.css", "text/css"),
        ("/status.js", "text/javascript"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let response = h
            .app
            .clone()
            .oneshot(
                request("GET", path, OTHER_DEVICE)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    let response = h
        .app
        .clone()
        .oneshot(
            request("GET", "/", OTHER_DEVICE)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
}

/// Reads Server-Sent Events from a response body.
struct SseReader {
    body: Body,
    buf: String,
}

#[derive(Debug, Default, Clone)]
struct SseEvent {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

impl SseEvent {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

impl SseReader {
    async fn open(app: &App, last_event_id: Option<&str>) -> SseReader {
        let mut req = request("GET", "/events", OTHER_DEVICE);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseReader {
            body: response.into_body(),
            buf: String::new(),
        }
    }

    /// The next event (comments skipped), waiting up to 5 s.
    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(Duration::from_secs(5), self.next_inner())
            .await
            .expect("an event within 5 s")
    }

    async fn next_inner(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event.event = Some(value.to_owned()),
                        "id" => event.id = Some(value.to_owned()),
                        "data" => data.push(value),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue;
                }
                event.data = data.join("\n");
                return event;
            }
            let frame = self.body.frame().await.expect("stream open").unwrap();
            if let Ok(bytes) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    }
}

#[tokio::test]
async fn events_stream_starts_with_a_snapshot_and_carries_a_later_acquire() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=old&client=a", LOOPBACK).await;
    settle(&h).await;
    let mut stream = SseReader::open(&h.app, None).await;
    let snapshot = stream.next().await;
    assert_eq!(snapshot.event.as_deref(), Some("snapshot"));
    let state = snapshot.json();
    assert_eq!(state["jobs"][0]["job"], "old");
    assert_eq!(state["id"].as_str(), snapshot.id.as_deref());
    call(
        &h.app,
        "POST",
        "/lock?job=build&client=mac&ttl=30s",
        LOOPBACK,
    )
    .await;
    let event = stream.next().await;
    assert_eq!(event.event, None, "lock events are plain messages");
    let data = event.json();
    assert_eq!(data["kind"], "acquired");
    assert_eq!(data["job"], "build");
    assert_eq!(data["holder"], "mac");
    assert_eq!(data["waiting"], 0);
    assert!(data["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(event.id.is_some());
}

#[tokio::test]
async fn events_resume_after_last_event_id_with_what_was_missed() {
    let h = harness();
    let mut stream = SseReader::open(&h.app, None).await;
    let snapshot = stream.next().await;
    call(&h.app, "POST", "/lock?job=a&client=x", LOOPBACK).await;
    let seen = stream.next().await;
    drop(stream);
    // Missed while disconnected:
    call(&h.app, "DELETE", "/lock?job=a&client=x", LOOPBACK).await;
    call(&h.app, "POST", "/lock?job=b&client=y", LOOPBACK).await;
    settle(&h).await;

    let mut resumed = SseReader::open(&h.app, seen.id.as_deref()).await;
    let hello = resumed.next().await;
    assert_eq!(hello.event.as_deref(), Some("hello"));
    assert!(hello.json()["now"].is_string());
    let released = resumed.next().await;
    assert_eq!(released.json()["kind"], "released");
    assert_eq!(released.json()["job"], "a");
    let acquired = resumed.next().await;
    assert_eq!(acquired.json()["kind"], "acquired");
    assert_eq!(acquired.json()["job"], "b");

    // From the snapshot's id: everything since, the first grant included.
    let mut from_start = SseReader::open(&h.app, snapshot.id.as_deref()).await;
    assert_eq!(from_start.next().await.event.as_deref(), Some("hello"));
    assert_eq!(from_start.next().await.json()["job"], "a");
}

#[tokio::test]
async fn events_from_another_run_or_too_long_ago_get_a_snapshot() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=a&client=x", LOOPBACK).await;
    settle(&h).await;
    for stale in ["0-1", "garbage", "ffffffff-99999999"] {
        let mut stream = SseReader::open(&h.app, Some(stale)).await;
        let first = stream.next().await;
        assert_eq!(first.event.as_deref(), Some("snapshot"), "{stale}");
        assert_eq!(first.json()["jobs"][0]["job"], "a");
    }
    // More than the ring holds since an id: a snapshot rather than a partial replay.
    let mut sub = h.web.log.subscribe(None);
    let Some(Message::Snapshot { id, .. }) = sub.next().await else {
        panic!("snapshot first")
    };
    for i in 0..(RING / 2 + 1) {
        let job = format!("j{i}");
        h.web
            .service
            .acquire(&job, "c", Duration::from_secs(60))
            .await
            .unwrap();
        h.web.service.release(&job, "c").await.unwrap();
    }
    settle(&h).await;
    let mut late = SseReader::open(&h.app, Some(&id)).await;
    assert_eq!(late.next().await.event.as_deref(), Some("snapshot"));
}

#[tokio::test]
async fn a_stalled_subscriber_never_slows_the_service_and_is_resynchronised() {
    let h = harness();
    let mut stalled = h.web.log.subscribe(None);
    assert!(matches!(
        stalled.next().await,
        Some(Message::Snapshot { .. })
    ));
    // Far more changes than a subscriber's channel holds, while it reads nothing.
    let started = std::time::Instant::now();
    for i in 0..2_000 {
        let job = format!("j{}", i % 10);
        h.web
            .service
            .acquire(&job, "c", Duration::from_secs(60))
            .await
            .unwrap();
        h.web.service.release(&job, "c").await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the service did not wait for the subscriber"
    );
    h.web
        .service
        .acquire("last", "c", Duration::from_secs(60))
        .await
        .unwrap();
    settle(&h).await;
    // It resumes with a snapshot of the current state, not with stale entries.
    let Some(Message::Snapshot { json, .. }) = stalled.next().await else {
        panic!("a stalled subscriber gets a snapshot")
    };
    let state: serde_json::Value = serde_json::from_str(&json).unwrap();
    let jobs: Vec<&str> = state["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["last"]);
}

#[tokio::test]
async fn renewals_in_a_row_share_one_line_of_recent_events() {
    let h = harness();
    for _ in 0..3 {
        call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    }
    settle(&h).await;
    let view = h.web.log.view();
    let build: Vec<_> = view.recent.iter().filter(|r| &*r.job == "build").collect();
    assert_eq!(build.len(), 2, "{build:?}");
    assert_eq!((build[0].kind, build[0].count), ("renewed", 2));
    assert_eq!(build[1].kind, "acquired");
}

#[tokio::test]
async fn waiter_counts_are_shown() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    let app = h.app.clone();
    let waiter = tokio::spawn(async move {
        call(&app, "POST", "/lock?job=build&client=pc&wait=10s", LOOPBACK).await
    });
    // Wait until it is queued (observable), then look.
    for _ in 0..500 {
        if h.web.service.status("build").waiting == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.web.service.status("build").waiting, 1);
    settle(&h).await;
    let view = h.web.log.view();
    assert_eq!(
        view.jobs
            .iter()
            .find(|j| &*j.job == "build")
            .unwrap()
            .waiting,
        1
    );
    call(&h.app, "DELETE", "/lock?job=build&client=mac", LOOPBACK).await;
    assert_eq!(waiter.await.unwrap().0, StatusCode::OK);
    settle(&h).await;
    let view = h.web.log.view();
    let build = view.jobs.iter().find(|j| &*j.job == "build").unwrap();
    assert_eq!((&*build.holder, build.waiting), ("pc", 0));
}

#[tokio::test]
async fn a_change_of_waiters_is_published_without_a_reader_asking() {
    let h = harness();
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    let mut sub = h.web.log.subscribe(None);
    sub.next().await;
    let app = h.app.clone();
    let waiter = tokio::spawn(async move {
        call(&app, "POST", "/lock?job=build&client=pc&wait=10s", LOOPBACK).await
    });
    // Queueing publishes no lock event: the service's waiter count is what tells the log.
    let entry = loop {
        let next = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("published within 5 s")
            .unwrap();
        if let Message::Entry { entry, .. } = next
            && entry.json().contains("\"waiting\",")
        {
            break entry;
        }
    };
    let data: serde_json::Value = serde_json::from_str(entry.json()).unwrap();
    assert_eq!(
        (data["job"].as_str(), data["waiting"].as_u64()),
        (Some("build"), Some(1))
    );
    waiter.abort();
}

#[tokio::test]
async fn expired_lease_shows_grace_then_leaves_the_table() {
    let h = harness_with(Rules {
        grace: Duration::from_secs(1),
        ..Rules::default()
    });
    let mut sub = h.web.log.subscribe(None);
    sub.next().await;
    call(
        &h.app,
        "POST",
        "/lock?job=build&client=mac&ttl=500ms",
        LOOPBACK,
    )
    .await;
    loop {
        let Some(Message::Entry { entry, .. }) =
            tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .unwrap()
        else {
            continue;
        };
        if entry.json().contains("\"expired\"") {
            break;
        }
    }
    let (_, html) = call(&h.app, "GET", "/", LOOPBACK).await;
    assert!(html.contains("badge grace"), "{html}");
    // After the grace period (1 s) the job is no longer listed.
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (_, html) = call(&h.app, "GET", "/", LOOPBACK).await;
            if !html.contains("data-job=\"build\"") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the row leaves within 5 s");
}

/// Parses the Prometheus text format (0.0.4) strictly enough to catch malformed output:
/// every sample belongs to a family declared by `# TYPE` before it, names and label syntax
/// are valid, values are numbers. Returns samples keyed by `name{labels}`.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(valid_name(name), "bad name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "{line:?}"
                );
                types.insert(name.to_owned(), t.to_owned());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad sample name in {line:?}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect("labels in braces");
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(valid_name(k), "{line:?}");
                assert!(v.starts_with('"') && v.ends_with('"'), "{line:?}");
            }
        }
        let family = types.keys().find(|f| {
            name == f.as_str()
                || ["_bucket", "_sum", "_count", "_total", "_info"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(f.as_str()))
        });
        assert!(family.is_some(), "sample without a # TYPE: {line:?}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(h: &Harness) -> HashMap<String, f64> {
    let response = h
        .app
        .clone()
        .oneshot(
            request("GET", "/metrics", OTHER_DEVICE)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    parse_prometheus(std::str::from_utf8(&body).unwrap())
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_counters_move() {
    let h = harness();
    let before = scrape(&h).await;
    let outcome = |m: &HashMap<String, f64>, o: &str| {
        m[&format!("foolock_lock_outcomes_total{{outcome=\"{o}\"}}")]
    };
    assert_eq!(outcome(&before, "granted"), 0.0);
    assert_eq!(before["foolock_held_jobs"], 0.0);

    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    call(&h.app, "POST", "/lock?job=build&client=pc", LOOPBACK).await;
    call(&h.app, "POST", "/lock?job=x&client=a&ttl=bogus", LOOPBACK).await;
    call(&h.app, "GET", "/nowhere", LOOPBACK).await;
    settle(&h).await;
    let after = scrape(&h).await;
    // settle() adds one grant and one release of its own.
    assert_eq!(outcome(&after, "granted"), 2.0);
    assert_eq!(outcome(&after, "renewed"), 1.0);
    assert_eq!(outcome(&after, "conflict"), 1.0);
    assert_eq!(outcome(&after, "grace_refused"), 0.0);
    assert_eq!(outcome(&after, "released"), 1.0);
    assert_eq!(after["foolock_held_jobs"], 1.0);
    assert_eq!(
        after["foolock_http_client_errors_total{reason=\"conflict\"}"],
        1.0
    );
    assert_eq!(
        after["foolock_http_client_errors_total{reason=\"invalid_ttl\"}"],
        1.0
    );
    assert_eq!(
        after["foolock_http_client_errors_total{reason=\"not_found\"}"],
        1.0
    );
    let lock_posts =
        after["foolock_http_request_duration_seconds_count{route=\"/lock\",method=\"POST\"}"];
    assert_eq!(lock_posts, 4.0);
    assert!(after.contains_key(&format!(
        "foolock_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    )));
    // No label carries a job or client name.
    assert!(
        !after
            .keys()
            .any(|k| k.contains("build\"") || k.contains("mac"))
    );
}

#[tokio::test]
async fn a_grace_refusal_and_a_force_release_are_counted() {
    let h = harness();
    let mut sub = h.web.log.subscribe(None);
    sub.next().await;
    call(&h.app, "POST", "/lock?job=g&client=mac&ttl=1s", LOOPBACK).await;
    // Wait for the lease to run out (its grace period then begins).
    loop {
        if let Some(Message::Entry { entry, .. }) =
            tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .expect("expiry within 5 s")
            && entry.json().contains("\"expired\"")
        {
            break;
        }
    }
    let (status, _) = call(&h.app, "POST", "/lock?job=g&client=pc", LOOPBACK).await;
    assert_eq!(status, StatusCode::CONFLICT);
    call(&h.app, "POST", "/admin/force-release?job=g", LOOPBACK).await;
    call(&h.app, "POST", "/admin/force-release?job=g", OTHER_DEVICE).await;
    settle(&h).await;
    let m = scrape(&h).await;
    assert_eq!(
        m["foolock_lock_outcomes_total{outcome=\"grace_refused\"}"],
        1.0
    );
    assert_eq!(m["foolock_lock_outcomes_total{outcome=\"conflict\"}"], 0.0);
    assert_eq!(
        m["foolock_lock_outcomes_total{outcome=\"force_released\"}"],
        1.0
    );
    assert_eq!(
        m["foolock_http_client_errors_total{reason=\"admin_only\"}"],
        1.0
    );
}

#[tokio::test]
async fn metrics_turned_off_are_not_served() {
    let h = harness_full(Rules::default(), false, None);
    call(&h.app, "POST", "/lock?job=build&client=mac", LOOPBACK).await;
    let (status, _) = call(&h.app, "GET", "/metrics", LOOPBACK).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The page does not depend on them, and does not link to them.
    let (status, html) = call(&h.app, "GET", "/", LOOPBACK).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("/metrics"), "{html}");
    let (_, html) = call(&harness().app, "GET", "/", LOOPBACK).await;
    assert!(html.contains("<a href=\"/metrics\">Metrics</a>"), "{html}");
}

#[tokio::test]
async fn metrics_count_sse_subscribers_while_streams_are_open() {
    let h = harness();
    let stream = SseReader::open(&h.app, None).await;
    assert_eq!(scrape(&h).await["foolock_sse_subscribers"], 1.0);
    drop(stream);
    assert_eq!(scrape(&h).await["foolock_sse_subscribers"], 0.0);
}

#[tokio::test]
async fn streams_end_when_the_server_shuts_down() {
    let h = harness();
    let mut stream = SseReader::open(&h.app, None).await;
    stream.next().await;
    h.shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.body.frame().await {
                None => return,
                Some(_) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ended");
}
