//! Admin actions: `POST /admin/force-release?job=J`, shared by `foolock force-release`, the
//! status page and its form, and the rule that says who may use it ([`admin_allowed`]).
//!
//! Allowed to a request from the server's own machine, or to one that presents the access
//! token once one is configured. A browser brings two risks a CLI does not, and the rule
//! closes both: a page of another web site posting to the server from the user's browser
//! (refused by `Origin` and `Sec-Fetch-Site`), and a name controlled by another site resolving
//! to 127.0.0.1 (DNS rebinding: without a token, the request must name the server by address
//! or as `localhost`).
//!
//! The token seam: an authentication layer that checks `Authorization` puts a [`Token`] in
//! the request's extensions; without one, no token is configured.

use super::wire::{LockReply, Message};
use super::{ApiError, App, Params, Peer, bounded};
use axum::Json;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// What the request proved with the access token (put in the request's extensions by the
/// authentication layer; absent means no token is configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// No token is configured: being on the server's machine is what counts.
    NotConfigured,
    /// The request presented the configured token.
    Valid,
    /// A token is configured and the request did not present it.
    Missing,
}

impl Token {
    /// What the request whose extensions these are proved.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> Token {
        extensions
            .get::<Token>()
            .copied()
            .unwrap_or(Token::NotConfigured)
    }
}

/// The facts about a request that the rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The TCP peer, if the server recorded it.
    pub peer: Option<IpAddr>,
    pub token: Token,
    /// The request names the server by IP address or as `localhost` (not by a DNS name
    /// someone else may control).
    pub host_is_address: bool,
    /// A browser says the request comes from a page of another site.
    pub cross_site: bool,
}

impl Caller {
    pub(crate) fn from_parts(parts: &Parts) -> Caller {
        let peer = parts
            .extensions
            .get::<Peer>()
            .map(|peer| peer.addr.ip().to_canonical());
        let token = Token::of(&parts.extensions);
        let host = host_of(&parts.headers).or_else(|| parts.uri.authority().map(|a| a.as_str()));
        Caller {
            peer,
            token,
            host_is_address: host.is_none_or(names_by_address),
            cross_site: is_cross_site(&parts.headers, host),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        Ok(Caller::from_parts(parts))
    }
}

/// The rule for admin actions: never for a cross-site browser request; with a token
/// configured, only with it; otherwise only from this machine, addressed by IP address or
/// `localhost`.
pub fn admin_allowed(caller: &Caller) -> bool {
    if caller.cross_site {
        return false;
    }
    match caller.token {
        Token::Valid => true,
        Token::Missing => false,
        Token::NotConfigured => caller.host_is_address && caller.peer.is_some_and(is_own_machine),
    }
}

/// `POST /admin/force-release?job=J`: frees `J` whatever its holder, if [`admin_allowed`].
/// Replies `{"success":true,"job":J,"message":"lock released","holder":<previous>}`, or 404
/// `no lock held`. The job must be named (no `default` here: freeing it by accident would
/// hurt). The status page's form (a browser without JavaScript, which accepts HTML) is sent
/// back to the page instead.
pub async fn force_release(
    State(app): App,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    if !admin_allowed(&caller) {
        tracing::warn!(peer = ?caller.peer, "force release refused");
        return Err(ApiError::AdminOnly);
    }
    let p = Params::parse(raw.as_deref())?;
    if p.job.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::MissingJob);
    }
    let job = p.job()?.to_owned();
    let from_form = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    match bounded(&app, app.service.force_release(&job)).await? {
        Some(lease) => {
            tracing::warn!(job, holder = &*lease.holder, peer = ?caller.peer, "force release over HTTP");
            if from_form {
                return Ok(Redirect::to("/").into_response());
            }
            Ok(Json(LockReply {
                success: Some(true),
                job: Some(job),
                message: Some(Message::Released),
                holder: Some(String::from(&*lease.holder)),
                ..LockReply::default()
            })
            .into_response())
        }
        // Someone released it first: the page shows that already.
        None if from_form => Ok(Redirect::to("/").into_response()),
        None => Err(ApiError::NotHeld),
    }
}

/// Loopback, or one of this machine's own interface addresses (a browser on the server
/// that opened the page by its LAN address connects from that address).
pub(crate) fn is_own_machine(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback()
        || crate::server::reachable_addrs(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0))
            .iter()
            .any(|a| a.ip().to_canonical() == ip)
}

fn host_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST)?.to_str().ok()
}

/// Whether `host` (`name[:port]`, `[v6]:port`) is an IP address or `localhost`.
fn names_by_address(host: &str) -> bool {
    let name = strip_port(host);
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// A browser marks requests a page of another site makes: `Sec-Fetch-Site` (modern
/// browsers) and `Origin` (on every POST). A client that sends neither (the CLI, curl) is not
/// a browser page.
fn is_cross_site(headers: &HeaderMap, host: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if site != "same-origin" && site != "none" {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(authority), Some(host)) => !authority.eq_ignore_ascii_case(host),
        // `null` (a sandboxed or file page) or no Host to compare with.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn caller(peer: &str, headers: &[(&str, &str)]) -> Caller {
        let mut request = Request::builder().uri("/admin/force-release");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(Peer::at(peer.parse::<SocketAddr>().unwrap()));
        Caller::from_parts(&parts)
    }

    #[test]
    fn loopback_peer_may_force_release_without_a_token() {
        let c = caller("127.0.0.1:5000", &[("host", "127.0.0.1:8080")]);
        assert!(admin_allowed(&c));
        let c = caller("[::1]:5000", &[("host", "localhost:8080")]);
        assert!(admin_allowed(&c));
        // IPv4 seen through an IPv6 socket is still loopback.
        let c = caller("[::ffff:127.0.0.1]:5000", &[("host", "[::1]:8080")]);
        assert!(admin_allowed(&c));
    }

    #[test]
    fn another_device_may_not_force_release_without_a_token() {
        let c = caller("192.0.2.7:5000", &[("host", "192.0.2.1:8080")]);
        assert!(!admin_allowed(&c));
    }

    #[test]
    fn a_valid_token_allows_any_device_and_a_missing_one_refuses_even_loopback() {
        let mut c = caller("192.0.2.7:5000", &[("host", "192.0.2.1:8080")]);
        c.token = Token::Valid;
        assert!(admin_allowed(&c));
        let mut c = caller("127.0.0.1:5000", &[("host", "127.0.0.1:8080")]);
        c.token = Token::Missing;
        assert!(!admin_allowed(&c));
    }

    #[test]
    fn a_page_of_another_site_may_not_force_release_from_the_servers_machine() {
        let c = caller(
            "127.0.0.1:5000",
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ],
        );
        assert!(!admin_allowed(&c));
        let c = caller(
            "127.0.0.1:5000",
            &[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")],
        );
        assert!(!admin_allowed(&c));
        let c = caller(
            "127.0.0.1:5000",
            &[("host", "127.0.0.1:8080"), ("origin", "null")],
        );
        assert!(!admin_allowed(&c));
    }

    #[test]
    fn the_status_page_itself_may_force_release_from_the_servers_machine() {
        let c = caller(
            "127.0.0.1:5000",
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
        );
        assert!(admin_allowed(&c));
    }

    #[test]
    fn a_dns_name_pointing_at_loopback_is_not_trusted() {
        // DNS rebinding: evil.example resolves to 127.0.0.1, and its page is "same-origin".
        let c = caller(
            "127.0.0.1:5000",
            &[
                ("host", "evil.example:8080"),
                ("origin", "http://evil.example:8080"),
            ],
        );
        assert!(!admin_allowed(&c));
    }

    #[test]
    fn unknown_peer_is_not_the_servers_machine() {
        let (parts, ()) = Request::builder()
            .uri("/")
            .header("host", "127.0.0.1:8080")
            .body(())
            .unwrap()
            .into_parts();
        assert!(!admin_allowed(&Caller::from_parts(&parts)));
    }

    #[test]
    fn host_forms_are_recognised() {
        assert!(names_by_address("127.0.0.1:8080"));
        assert!(names_by_address("[::1]:8080"));
        assert!(names_by_address("[fe80::1]"));
        assert!(names_by_address("LOCALHOST"));
        assert!(names_by_address("10.0.0.2"));
        assert!(!names_by_address("mac.local:8080"));
        assert!(!names_by_address("localhost.evil.example"));
    }
}
