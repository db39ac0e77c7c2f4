//! The HTTP ceiling for `bench/run`: a bare axum app with foolock's routes that answers every
//! request with a fixed body recorded from the real server, so a benchmark can tell how much
//! of a request's cost is foolock's own and how much the HTTP stack's.
//!
//! It is built as a Cargo example, so it links the same axum, hyper and tokio as foolock and
//! never ships in the package. Usage: `ceiling LISTEN_ADDR BODY_DIR`, where BODY_DIR holds
//! `status.json`, `acquire.json`, `release.json`, `locks.json` and `healthz.json` (a missing
//! file answers `{}`). It prints `ceiling listening on ADDR` once it accepts connections.
//!
//! The long-poll hand-over has a ceiling too: a `POST /lock` with a `wait=` parameter parks
//! until the next `DELETE /lock`, which wakes the oldest parked request, the least work any
//! server can do for a hand-over. `GET /ceiling/waiting` says how many requests are parked,
//! so the driver knows when to release (it is not part of any timed loop).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The fixed replies, one per route and method.
struct Bodies {
    status: Bytes,
    acquire: Bytes,
    release: Bytes,
    locks: Bytes,
    healthz: Bytes,
}

struct Ceiling {
    bodies: Bodies,
    /// Parked `wait=` requests; `notify_one` wakes them in arrival order.
    handover: Notify,
    waiting: AtomicUsize,
}

type App = State<Arc<Ceiling>>;

fn json(body: &Bytes) -> impl IntoResponse + use<> {
    ([(CONTENT_TYPE, "application/json")], body.clone())
}

async fn status(State(c): App) -> impl IntoResponse {
    json(&c.bodies.status)
}

async fn acquire(State(c): App, RawQuery(raw): RawQuery) -> impl IntoResponse {
    if raw.as_deref().is_some_and(|q| q.contains("wait=")) {
        c.waiting.fetch_add(1, Ordering::SeqCst);
        // Bounded like a real wait, so a driver that dies never leaves a request hanging.
        let _ = tokio::time::timeout(Duration::from_secs(60), c.handover.notified()).await;
        c.waiting.fetch_sub(1, Ordering::SeqCst);
    }
    json(&c.bodies.acquire)
}

async fn release(State(c): App) -> impl IntoResponse {
    if c.waiting.load(Ordering::SeqCst) > 0 {
        c.handover.notify_one();
    }
    json(&c.bodies.release)
}

async fn locks(State(c): App) -> impl IntoResponse {
    json(&c.bodies.locks)
}

async fn healthz(State(c): App) -> impl IntoResponse {
    json(&c.bodies.healthz)
}

async fn waiting(State(c): App) -> String {
    c.waiting.load(Ordering::SeqCst).to_string()
}

fn read_body(dir: &Path, name: &str) -> Bytes {
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Bytes::from_static(b"{}"),
        Err(e) => panic!("cannot read {}: {e}", dir.join(name).display()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, dir] = args.as_slice() else {
        eprintln!("usage: ceiling LISTEN_ADDR BODY_DIR");
        std::process::exit(2);
    };
    let dir = Path::new(dir);
    let ceiling = Arc::new(Ceiling {
        bodies: Bodies {
            status: read_body(dir, "status.json"),
            acquire: read_body(dir, "acquire.json"),
            release: read_body(dir, "release.json"),
            locks: read_body(dir, "locks.json"),
            healthz: read_body(dir, "healthz.json"),
        },
        handover: Notify::new(),
        waiting: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/lock", get(status).post(acquire).delete(release))
        .route("/locks", get(locks))
        .route("/healthz", get(healthz))
        .route("/ceiling/waiting", get(waiting))
        .with_state(ceiling);
    // The same runtime foolock's server builds: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
        println!("ceiling listening on {}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.expect("serve");
    });
}
