//! A small HTTP/1.1 client for the lock API, decoding replies into the shared wire types.
//!
//! Each request uses its own connection, driven inside the request's future: dropping the
//! future (a cancelled long-poll, a timeout) closes the socket at once, which is how the
//! server learns that a waiter has gone. hyper is already in the tree for axum, so this adds
//! no HTTP stack of its own and no TLS (the server speaks plain HTTP on the LAN).

use crate::api::wire::{LockReply, LocksReply};
use crate::engine::Who;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// Replies larger than this are refused rather than buffered.
const MAX_BODY: usize = 1 << 20;

/// Rows asked for per `GET /locks` page: well under [`MAX_BODY`] with the longest names.
const LIST_PAGE: usize = 500;

/// How long a one-shot request may take in total (connect, reply, body).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A server URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid server URL {url:?}: {reason}")]
pub struct BadServerUrl {
    pub url: String,
    pub reason: String,
}

/// A request that got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("no reply from {server} within {}s", .after.as_secs_f64())]
    Timeout { server: String, after: Duration },
    #[error("unexpected reply from {server}: {reason}")]
    BadReply { server: String, reason: String },
}

/// A decoded reply: the HTTP status and the JSON body.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub status: StatusCode,
    pub body: T,
}

/// The lock API of one server.
#[derive(Debug, Clone)]
pub struct Api {
    /// As the user gave it, for messages.
    url: String,
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    /// Any path the server is mounted under, without a trailing slash.
    prefix: String,
    auth_token: Option<String>,
}

impl Api {
    /// An API client for `url` (`http://host[:port][/prefix]`; a bare `host:port` means
    /// http). `auth_token`, when set, is sent as `Authorization: Bearer …`.
    pub fn new(url: &str, auth_token: Option<String>) -> Result<Api, BadServerUrl> {
        let bad = |reason: &str| BadServerUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported; the server speaks plain HTTP (use http://)",
                ));
            }
            _ => return Err(bad("the scheme must be http://")),
        }
        if uri.query().is_some() {
            return Err(bad("a server URL has no query string"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user names in the URL are not supported"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        // `Authority::port` reads an out-of-range port as no port at all, which would
        // silently mean 80: read what follows the host ourselves.
        let port = match authority.as_str()[authority.host().len()..].strip_prefix(':') {
            None => 80,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        Ok(Api {
            url: url.to_owned(),
            host,
            port,
            authority: authority.as_str().to_owned(),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            auth_token,
        })
    }

    /// The server URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `POST /lock`: acquire or renew `job` for `client`. With `wait`, the server holds the
    /// request open until the lock can be granted or the wait ends.
    pub async fn acquire<'a>(
        &self,
        job: &str,
        who: impl Into<Who<'a>>,
        ttl: Option<Duration>,
        wait: Option<Duration>,
        timeout: Duration,
    ) -> Result<Reply<LockReply>, HttpError> {
        let mut query = who_query(job, who.into());
        if let Some(ttl) = ttl {
            query.push(("ttl", go_duration(ttl)));
        }
        if let Some(wait) = wait {
            query.push(("wait", go_duration(wait)));
        }
        self.lock_call(Method::POST, &query, timeout).await
    }

    /// `DELETE /lock`: release `job` if `client` holds it.
    pub async fn release<'a>(
        &self,
        job: &str,
        who: impl Into<Who<'a>>,
        timeout: Duration,
    ) -> Result<Reply<LockReply>, HttpError> {
        let query = who_query(job, who.into());
        self.lock_call(Method::DELETE, &query, timeout).await
    }

    /// `POST /admin/force-release`: frees `job` whatever its holder (allowed only from the
    /// server's own machine, or with the auth token).
    pub async fn force_release(&self, job: &str) -> Result<Reply<LockReply>, HttpError> {
        let path = format!("/admin/force-release?job={}", encode(job));
        self.decode_lock_reply(self.call(Method::POST, path, REQUEST_TIMEOUT).await?)
    }

    /// `GET /lock`: who holds `job`.
    pub async fn status(&self, job: &str) -> Result<Reply<LockReply>, HttpError> {
        let query = [("job", job.to_owned())];
        self.lock_call(Method::GET, &query, REQUEST_TIMEOUT).await
    }

    /// `GET /locks`: every job with a recorded holder, a page at a time (a full table can be
    /// larger than [`MAX_BODY`]); a server that does not page answers the first request with
    /// everything. A reply with an error status (a wrong path in the server URL, say) comes
    /// back as the `Err` of the inner result, decoded like a `/lock` error.
    pub async fn list(&self) -> Result<Result<Reply<LocksReply>, Reply<LockReply>>, HttpError> {
        let mut all = LocksReply {
            locks: Vec::new(),
            next: None,
        };
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/locks?limit={LIST_PAGE}");
            if let Some(job) = &after {
                path.push_str(&format!("&after={}", encode(job)));
            }
            let reply = self.call(Method::GET, path, REQUEST_TIMEOUT).await?;
            if !reply.status.is_success() {
                let body = serde_json::from_slice::<LockReply>(&reply.body)
                    .unwrap_or_else(|_| LockReply::error(format!("HTTP {}", reply.status)));
                return Ok(Err(Reply {
                    status: reply.status,
                    body,
                }));
            }
            let page: LocksReply = serde_json::from_slice(&reply.body)
                .map_err(|e| self.bad_reply(format!("invalid JSON: {e}")))?;
            all.locks.extend(page.locks);
            // A `next` that does not move on would loop forever.
            match page.next {
                Some(next) if after.as_ref().is_none_or(|a| next > *a) => after = Some(next),
                _ => {
                    return Ok(Ok(Reply {
                        status: reply.status,
                        body: all,
                    }));
                }
            }
        }
    }

    /// A `/lock` call. Error statuses still carry a [`LockReply`] (`{"error": …}`); a body
    /// that is not one (a proxy's error page, say) becomes an `error` naming the status.
    async fn lock_call(
        &self,
        method: Method,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Reply<LockReply>, HttpError> {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let reply = self
            .call(method, format!("/lock?{}", query.join("&")), timeout)
            .await?;
        self.decode_lock_reply(reply)
    }

    /// A reply decoded as a [`LockReply`]; see [`Api::lock_call`].
    fn decode_lock_reply(&self, reply: Reply<Bytes>) -> Result<Reply<LockReply>, HttpError> {
        let body = match serde_json::from_slice::<LockReply>(&reply.body) {
            Ok(body) => body,
            Err(_) if !reply.status.is_success() => {
                LockReply::error(format!("HTTP {}", reply.status))
            }
            Err(e) => return Err(self.bad_reply(format!("invalid JSON: {e}"))),
        };
        Ok(Reply {
            status: reply.status,
            body,
        })
    }

    /// One request on a fresh connection, bounded by `timeout` from connect to last byte.
    async fn call(
        &self,
        method: Method,
        path_and_query: String,
        timeout: Duration,
    ) -> Result<Reply<Bytes>, HttpError> {
        tokio::time::timeout(timeout, self.exchange(method, path_and_query))
            .await
            .map_err(|_| HttpError::Timeout {
                server: self.url.clone(),
                after: timeout,
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        path_and_query: String,
    ) -> Result<Reply<Bytes>, HttpError> {
        let unreachable = |reason: String| HttpError::Unreachable {
            server: self.url.clone(),
            reason,
        };
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.prefix))
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json")
            .header(header::CONNECTION, "close")
            .header(
                header::USER_AGENT,
                concat!("foolock/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.auth_token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.bad_reply(format!("cannot build request: {e}")))?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| self.bad_reply(format!("cannot read the reply: {e}")))?
                .to_bytes();
            Ok(Reply { status, body })
        };
        // The connection is driven here, not spawned, so it lives exactly as long as this
        // future. When it ends first (the server closed), the exchange finishes from what
        // was already read, or fails.
        let mut conn = std::pin::pin!(conn);
        let mut exchange = std::pin::pin!(exchange);
        tokio::select! {
            reply = &mut exchange => reply,
            _ = &mut conn => exchange.await,
        }
    }

    fn bad_reply(&self, reason: String) -> HttpError {
        HttpError::BadReply {
            server: self.url.clone(),
            reason,
        }
    }
}

/// `job`, `client` and, for a run, `run`: who a `/lock` call is for.
fn who_query(job: &str, who: Who<'_>) -> Vec<(&'static str, String)> {
    let mut query = vec![("job", job.to_owned()), ("client", who.client.to_owned())];
    if let Some(run) = who.run {
        query.push(("run", run.to_owned()));
    }
    query
}

/// A duration in Go syntax, exactly (the server parses Go durations): whole milliseconds as
/// `ms`, anything finer in nanoseconds, so no nonzero duration is ever sent as zero.
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else {
        format!("{nanos}ns")
    }
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters.
fn encode(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_parse_with_defaults() {
        let api = Api::new("http://nas.local:9000/foolock/", None).unwrap();
        assert_eq!(
            (api.host.as_str(), api.port, api.prefix.as_str()),
            ("nas.local", 9000, "/foolock")
        );
        let api = Api::new("192.168.1.5:8080", None).unwrap();
        assert_eq!((api.host.as_str(), api.port), ("192.168.1.5", 8080));
        let api = Api::new("http://[::1]:8080", None).unwrap();
        assert_eq!(
            (api.host.as_str(), api.authority.as_str()),
            ("::1", "[::1]:8080")
        );
        assert_eq!(Api::new("http://server", None).unwrap().port, 80);
    }

    #[test]
    fn unusable_server_urls_are_refused_with_a_reason() {
        for url in [
            "https://x:1",
            "ftp://x",
            "http://",
            "http://x/?a=b",
            "http://u@x",
            "http://x:99999",
            "http://x:0",
            "http://x:",
            "http://[::1]:65536",
            "x:8o80",
        ] {
            assert!(Api::new(url, None).is_err(), "{url}");
        }
        let err = Api::new("https://nas:8080", None).unwrap_err();
        assert!(err.to_string().contains("plain HTTP"), "{err}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("nightly backup/ü&x=1"),
            "nightly%20backup%2F%C3%BC%26x%3D1"
        );
        assert_eq!(encode("host-1.lan_~"), "host-1.lan_~");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn out_of_range_port_is_refused_not_turned_into_80() {
        let err = Api::new("http://x:99999", None).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
        assert_eq!(Api::new("http://x:65535", None).unwrap().port, 65535);
        assert_eq!(Api::new("http://[::1]", None).unwrap().port, 80);
    }

    #[test]
    fn sub_millisecond_durations_are_sent_exactly_not_as_zero() {
        assert_eq!(go_duration(Duration::from_micros(500)), "500000ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500_001)), "1500001ns");
        assert_eq!(go_duration(Duration::from_secs(30)), "30000ms");
        assert_eq!(go_duration(Duration::ZERO), "0ms");
        for d in [1, 999, 1_000_001, 123_456_789].map(Duration::from_nanos) {
            let parsed = crate::time::parse_positive(&go_duration(d));
            assert_eq!(parsed, Ok(d), "{d:?}");
        }
    }
}
