//! The status page (`GET /`) and its assets. Its "Force release" controls post to the API's
//! `/admin/force-release`, shown only to callers [`admin_allowed`] lets use it.
//!
//! The page is rendered on the server from the event log's view, so it is right at load
//! without JavaScript; it also carries that view as JSON, from which `status.js` takes over
//! and follows `/events`. The HTML, CSS, script and icon are compiled into the binary: the page
//! loads nothing from elsewhere (its Content-Security-Policy says so too).

use super::WebState;
use super::log::{JobView, Recent, View};
use crate::api::admin::{Caller, Token, admin_allowed};
use crate::engine::LeaseState;
use crate::time::{readable_utc, rfc3339_millis};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

pub const CSS_PATH: &str = "/status.css";
pub const JS_PATH: &str = "/status.js";
pub const ICON_PATH: &str = "/favicon.svg";

const TEMPLATE: &str = include_str!("status.html");
const CSS: &str = include_str!("status.css");
const JS: &str = include_str!("status.js");
const ICON: &[u8] = include_bytes!("../../assets/foolock.svg");

/// Everything the page needs comes from this server; scripts only from files (no inline
/// code), so an injected string could not run even if escaping failed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /`. With an access token configured, a page load without it (a browser cannot send
/// one with a plain page load) shows no locks and no addresses, only a form asking for the
/// token; the page's script keeps the token and sends it with every request it makes.
pub async fn status_page(State(web): State<WebState>, caller: Caller) -> Response {
    let locked = caller.token == Token::Missing;
    let view = if locked {
        web.log.view().redacted()
    } else {
        web.log.view()
    };
    let html = render(
        &view,
        Viewer {
            admin: admin_allowed(&caller),
            locked,
            // A browser follows a link without the token: with one configured, the links
            // would only lead to a 401.
            links: caller.token == Token::NotConfigured,
        },
        web.serve_metrics,
    );
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS.as_bytes())
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS.as_bytes())
}

pub async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page links them with `?v=<version>`; revalidating costs little either way.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub async fn method_not_allowed() -> crate::api::ApiError {
    crate::api::ApiError::MethodNotAllowed
}

/// What the page shows to whom.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// The "Force release" controls ([`admin_allowed`]).
    pub admin: bool,
    /// A token is configured and the request did not bring it: the token form instead of the
    /// tables (their data is left out by the caller, see [`View::redacted`]).
    pub locked: bool,
    /// The footer's links to `/events` and `/metrics`.
    pub links: bool,
}

/// The page for `view` as `viewer` sees it; `metrics` adds the link to `/metrics` (when it is
/// served).
pub fn render(view: &View, viewer: Viewer, metrics: bool) -> String {
    let Viewer {
        admin,
        locked,
        links,
    } = viewer;
    let mut rows = String::new();
    for job in &view.jobs {
        job_row(&mut rows, job, view.now, admin);
    }
    let mut events = String::new();
    for recent in &view.recent {
        event_item(&mut events, recent);
    }
    let addrs: Vec<String> = view.info.addrs.iter().map(ToString::to_string).collect();
    let hidden = |yes: bool| if yes { " hidden" } else { "" };
    fill(
        TEMPLATE,
        &[
            ("version", escape(view.info.version)),
            ("admin", admin.to_string()),
            ("locked", locked.to_string()),
            ("data_hidden", hidden(locked).into()),
            ("auth_hidden", hidden(!locked).into()),
            (
                "connection",
                if locked {
                    "Waiting for the access token.".into()
                } else {
                    format!(
                        "As of <time datetime=\"{}\">{}</time>. Reload the page for fresh data.",
                        rfc3339_millis(view.now),
                        readable_utc(view.now)
                    )
                },
            ),
            ("addrs", escape(&addrs.join(", "))),
            // Left out of a redacted view.
            ("addrs_hidden", hidden(addrs.is_empty()).into()),
            ("uptime", span(view.uptime)),
            ("started_at", rfc3339_millis(view.info.started_at)),
            ("started_at_text", readable_utc(view.info.started_at)),
            ("job_count", view.jobs.len().to_string()),
            ("actions_hidden", hidden(!admin).into()),
            ("rows", rows),
            ("no_jobs_hidden", hidden(!view.jobs.is_empty()).into()),
            ("events", events),
            ("no_events_hidden", hidden(!view.recent.is_empty()).into()),
            ("state_json", script_json(&view.to_json())),
            (
                "links",
                match (links, metrics) {
                    (false, _) => String::new(),
                    (true, false) => "<a href=\"/events\">Event stream</a>".into(),
                    (true, true) => "<a href=\"/events\">Event stream</a> · \
                                     <a href=\"/metrics\">Metrics</a>"
                        .into(),
                },
            ),
        ],
    )
}

/// One row of the jobs table. `status.js` builds the same markup (`jobRow`).
fn job_row(out: &mut String, job: &JobView, now: SystemTime, admin: bool) {
    let Some(state) = job.state(now) else {
        return;
    };
    let countdown = match state {
        LeaseState::Grace => format!("grace ends in {}", span(ceil_secs(job.grace_until, now))),
        _ => span(ceil_secs(job.expires_at, now)),
    };
    let name = escape(&job.job);
    let holder = escape(&job.holder);
    let _ = write!(
        out,
        "<tr role=\"row\" data-job=\"{name}\"><th role=\"rowheader\" scope=\"row\">{name}</th>\
         <td role=\"cell\" data-label=\"Holder\">{holder}</td>\
         <td role=\"cell\" data-label=\"Token\" class=\"num\">{token}</td>\
         <td role=\"cell\" data-label=\"Expires in\" class=\"countdown\">\
         <time datetime=\"{expires}\">{countdown}</time></td>\
         <td role=\"cell\" data-label=\"State\"><span class=\"badge {state}\">{state}</span></td>\
         <td role=\"cell\" data-label=\"Waiting\" class=\"num\">{waiting}</td>",
        token = job.token,
        expires = rfc3339_millis(job.expires_at),
        state = state.as_str(),
        waiting = job.waiting,
    );
    if admin {
        let query = utf8_percent_encode(&job.job, NON_ALPHANUMERIC);
        let _ = write!(
            out,
            "<td role=\"cell\" class=\"actions\"><details class=\"force\">\
             <summary>Force release<span class=\"visually-hidden\"> {name}</span></summary>\
             <form method=\"post\" action=\"/admin/force-release?job={query}\">\
             <p>Take <strong>{name}</strong> away from {holder} now?</p>\
             <button type=\"submit\" class=\"danger\">Force release</button>\
             </form></details></td>"
        );
    }
    out.push_str("</tr>");
}

/// One line of "Recent events". `status.js` builds the same markup (`eventItem`).
fn event_item(out: &mut String, r: &Recent) {
    let job = escape(&r.job);
    let holder = escape(&r.holder);
    let token = r.token;
    let (label, text) = match r.kind {
        "acquired" => (
            "acquired",
            format!("<strong>{job}</strong> by {holder}, token {token}"),
        ),
        "renewed" => {
            let times = if r.count > 1 {
                format!(" (×{})", r.count)
            } else {
                String::new()
            };
            (
                "renewed",
                format!("<strong>{job}</strong> by {holder}, token {token}{times}"),
            )
        }
        "released" => (
            "released",
            format!("<strong>{job}</strong> by {holder}, token {token}"),
        ),
        "force_released" => (
            "force-released",
            format!("<strong>{job}</strong> from {holder}, token {token}"),
        ),
        "expired" => (
            "expired",
            format!("<strong>{job}</strong>, held by {holder}, token {token}"),
        ),
        "taken_over" => (
            "taken over",
            format!(
                "<strong>{job}</strong> by {holder} from {}, token {token}",
                escape(r.previous.as_deref().unwrap_or("?"))
            ),
        ),
        other => (other, format!("<strong>{job}</strong>")),
    };
    let _ = write!(
        out,
        "<li><time datetime=\"{}\">{}</time> <span class=\"kind\">{label}</span> {text}</li>",
        rfc3339_millis(r.at),
        readable_utc(r.at),
    );
}

/// Whole seconds from `now` until `until`, rounded up (a countdown reads 30 s right after
/// a 30 s grant, and 0 s only once it is over).
fn ceil_secs(until: SystemTime, now: SystemTime) -> Duration {
    let ms = until
        .duration_since(now)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Duration::from_secs(ms.div_ceil(1000))
}

/// Replaces each `{{key}}` of `template` with its value. Keys are fixed in this file; an
/// unknown one is left out.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        let key = &after[..end];
        debug_assert!(
            values.iter().any(|(k, _)| *k == key),
            "template key {key} has no value"
        );
        if let Some((_, value)) = values.iter().find(|(k, _)| *k == key) {
            out.push_str(value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe inside `<script type="application/json">`: no `<` can end the element early
/// (`\u003c` means the same to a JSON parser).
fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// A short span for a countdown or an uptime: `42 s`, `4 min 05 s`, `3 h 07 min`, `2 d 5 h`.
/// The page's script writes the same forms (`span` in `status.js`).
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if s < 60 {
        format!("{secs} s")
    } else if s < 3600 {
        format!("{mins} min {secs:02} s")
    } else if s < 86_400 {
        format!("{hours} h {mins:02} min")
    } else {
        format!("{days} d {hours} h")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1">'&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn fill_replaces_every_key_and_keeps_the_rest() {
        let out = fill("a{{x}}b{{y}}c", &[("x", "1".into()), ("y", "<2>".into())]);
        assert_eq!(out, "a1b<2>c");
        assert_eq!(fill("no keys {{", &[]), "no keys {{");
    }

    #[test]
    fn script_json_cannot_close_its_element() {
        let json = serde_json::json!({ "job": "</script><script>alert(1)</script>" }).to_string();
        let safe = script_json(&json);
        assert!(!safe.contains("</"));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["job"], "</script><script>alert(1)</script>");
    }

    #[test]
    fn countdown_rounds_up_to_whole_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let at = |ms| now + Duration::from_millis(ms);
        assert_eq!(ceil_secs(at(29_001), now), Duration::from_secs(30));
        assert_eq!(ceil_secs(at(30_000), now), Duration::from_secs(30));
        assert_eq!(ceil_secs(now - Duration::from_secs(1), now), Duration::ZERO);
    }

    #[test]
    fn spans_use_two_units_at_most() {
        let s = |secs| span(Duration::from_secs(secs));
        assert_eq!(s(0), "0 s");
        assert_eq!(s(59), "59 s");
        assert_eq!(s(60), "1 min 00 s");
        assert_eq!(s(245), "4 min 05 s");
        assert_eq!(s(3600 * 3 + 7 * 60 + 59), "3 h 07 min");
        assert_eq!(s(86_400 * 2 + 3600 * 5 + 1), "2 d 5 h");
    }
}
