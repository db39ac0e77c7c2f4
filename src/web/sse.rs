//! `GET /events`: the event log as Server-Sent Events.
//!
//! A client without `Last-Event-ID` (or with one the log can no longer serve: too old, or
//! from before a restart) first gets `event: snapshot` with the whole state; a client that
//! reconnects in time gets `event: hello` (the server's clock and description) and the
//! entries it missed. Then one unnamed event per change, each with an `id`. Comments every
//! [`KEEP_ALIVE`] keep proxies and the page's watchdog from giving up on a quiet stream. The
//! stream ends when the server shuts down.
//!
//! The reply's [`ADMIN_HEADER`] tells the page whether this viewer may force a release (the
//! page itself may have been loaded without the token, and so without the controls).

use super::WebState;
use super::log::{Message, Subscription};
use crate::api::admin::{Caller, admin_allowed};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::time::Duration;

/// How often a quiet stream sends a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What an `EventSource` waits before reconnecting.
const RETRY: Duration = Duration::from_secs(2);
/// `true` when [`admin_allowed`] lets the caller use `/admin/force-release`, else `false`.
pub const ADMIN_HEADER: &str = "x-foolock-admin";

pub async fn events(State(web): State<WebState>, caller: Caller, headers: HeaderMap) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let subscription = web.log.subscribe(last);
    let stream = futures_util::stream::unfold((subscription, true), next_event);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    let out = response.headers_mut();
    // Tells reverse proxies not to buffer the stream.
    out.insert("x-accel-buffering", HeaderValue::from_static("no"));
    let admin = if admin_allowed(&caller) {
        "true"
    } else {
        "false"
    };
    out.insert(ADMIN_HEADER, HeaderValue::from_static(admin));
    response
}

async fn next_event(
    (mut subscription, first): (Subscription, bool),
) -> Option<(Result<Event, Infallible>, (Subscription, bool))> {
    let message = subscription.next().await?;
    let mut event = match &message {
        Message::Snapshot { id, json } => Event::default().event("snapshot").id(id).data(json),
        Message::Hello { json } => Event::default().event("hello").data(json),
        Message::Entry { id, entry } => Event::default().id(id).data(entry.json()),
    };
    if first {
        event = event.retry(RETRY);
    }
    Some((Ok(event), (subscription, false)))
}
