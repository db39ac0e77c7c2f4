//! The optional access token: once one is configured, every request except those to
//! [`PUBLIC_PATHS`] and the status page's [`crate::web::PUBLIC_PATHS`] must carry
//! `Authorization: Bearer <token>`, or it gets a 401.
//!
//! Requests that get through carry a [`Token`] extension saying what they proved, for handlers
//! that decide more than "may call the API" (the status page, force release). With no token
//! configured the layer is not installed at all, so the renew path pays nothing; a handler then
//! finds no extension, which [`Token::of`] reads as [`Token::NotConfigured`].

use super::ApiError;
use super::admin::Token;
use crate::config::AuthToken;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// API paths served without the token: `/healthz`, so that a monitor or a launcher can tell
/// the server is up without knowing the secret. The status page and its assets are public too
/// (a browser cannot send the token with a page load; the page shows no locks then, and its
/// script asks for the token). Their handlers still see a [`Token`] extension.
pub(crate) const PUBLIC_PATHS: &[&str] = &["/healthz"];

fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path) || crate::web::PUBLIC_PATHS.contains(&path)
}

/// At most this many refused requests are logged per [`LOG_WINDOW`]; the rest are counted.
const LOG_BURST: u32 = 5;
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// The configured token, if any, and the log of refusals. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Auth {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    token: Box<[u8]>,
    refusals: Mutex<Refusals>,
}

impl Auth {
    /// Requires `token`, or nothing when it is `None`.
    pub(crate) fn new(token: Option<&AuthToken>) -> Auth {
        Auth {
            inner: token.map(|t| {
                Arc::new(Inner {
                    token: t.expose().as_bytes().into(),
                    refusals: Mutex::default(),
                })
            }),
        }
    }

    pub(crate) fn is_required(&self) -> bool {
        self.inner.is_some()
    }

    /// What `headers` prove. The comparison takes the same time wherever the presented token
    /// first differs, so timing reveals nothing about the secret but its length.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Token {
        let Some(inner) = &self.inner else {
            return Token::NotConfigured;
        };
        match bearer(headers) {
            Some(presented) if bool::from(presented.ct_eq(&inner.token[..])) => Token::Valid,
            _ => Token::Missing,
        }
    }

    /// `router` behind the token check; `router` itself when no token is configured.
    pub(crate) fn protect(&self, router: Router) -> Router {
        if self.inner.is_none() {
            return router;
        }
        router.layer(middleware::from_fn_with_state(self.clone(), require))
    }

    /// Logs a refused request, rate-limited, with its peer and never its token.
    fn refused(&self, peer: Option<SocketAddr>, request: &Request, presented: bool) {
        let Some(inner) = &self.inner else { return };
        let unlogged = inner
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(Instant::now());
        let Some(unlogged) = unlogged else { return };
        let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        let reason = if presented {
            "a wrong access token"
        } else {
            "no access token"
        };
        let more = if unlogged > 0 {
            format!(" ({unlogged} more refused requests were not logged)")
        } else {
            String::new()
        };
        tracing::warn!(
            %peer,
            method = %request.method(),
            path = request.uri().path(),
            "refused a request with {reason}{more}"
        );
    }
}

/// The token in `Authorization: Bearer <token>` (the scheme in any case), if there is one.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    Some(rest.trim_ascii())
}

async fn require(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let token = auth.check(request.headers());
    if token == Token::Missing && !is_public(request.uri().path()) {
        let peer = request
            .extensions()
            .get::<super::Peer>()
            .map(|peer| peer.addr);
        let presented = request.headers().contains_key(header::AUTHORIZATION);
        auth.refused(peer, &request, presented);
        return ApiError::Unauthorized.into_response();
    }
    request.extensions_mut().insert(token);
    next.run(request).await
}

/// How many refusals were logged in the current window, and how many were not.
#[derive(Default)]
struct Refusals {
    window_start: Option<Instant>,
    logged: u32,
    unlogged: u64,
}

impl Refusals {
    /// Records a refusal at `now`: `Some(n)` if it should be logged, `n` being how many
    /// before it were not.
    fn note(&mut self, now: Instant) -> Option<u64> {
        if self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= LOG_WINDOW)
        {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < LOG_BURST {
            self.logged += 1;
            Some(std::mem::take(&mut self.unlogged))
        } else {
            self.unlogged += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        h
    }

    #[test]
    fn only_the_exact_bearer_token_is_valid() {
        let token = AuthToken::try_from("s3cret".to_owned()).unwrap();
        let auth = Auth::new(Some(&token));
        assert_eq!(auth.check(&headers("Bearer s3cret")), Token::Valid);
        assert_eq!(auth.check(&headers("bearer  s3cret ")), Token::Valid);
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "Basic s3cret",
            "s3cret",
            "Bearer",
            "Bearer ",
        ] {
            assert_eq!(auth.check(&headers(wrong)), Token::Missing, "{wrong:?}");
        }
        assert_eq!(auth.check(&HeaderMap::new()), Token::Missing);
        let open = Auth::new(None);
        assert_eq!(open.check(&HeaderMap::new()), Token::NotConfigured);
        assert_eq!(
            open.check(&headers("Bearer anything")),
            Token::NotConfigured
        );
    }

    #[test]
    fn refusals_are_logged_a_few_per_minute_with_a_count_of_the_rest() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        for _ in 0..LOG_BURST {
            assert_eq!(r.note(t0), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(r.note(t0 + Duration::from_secs(59)), None);
        }
        assert_eq!(r.note(t0 + LOG_WINDOW), Some(7));
        assert_eq!(r.note(t0 + LOG_WINDOW), Some(0));
    }
}
