//! Router tests: requests go through the real router with `oneshot`, no socket.

use super::*;
use crate::engine::Rules;
use crate::time::SystemClock;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

fn app_with(rules: Rules) -> Router {
    router(AppState {
        service: LockService::new(rules, Arc::new(SystemClock)),
        max_wait: Duration::from_secs(300),
        shutdown: tokio_util::sync::CancellationToken::new(),
    })
}

fn app() -> Router {
    app_with(Rules::default())
}

async fn call(app: &Router, method: Method, uri: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: body is not JSON ({e}): {bytes:?}"));
    (status, json)
}

#[tokio::test]
async fn acquire_then_renew_keeps_token() {
    let app = app();
    let (s, a) = call(&app, Method::POST, "/lock?client=a&job=backup&ttl=10s").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(a["success"], true);
    assert_eq!(a["message"], "acquired");
    assert_eq!(a["holder"], "a");
    assert_eq!(a["job"], "backup");
    assert!(a["expires_at"].as_str().unwrap().ends_with('Z'));
    let (s, r) = call(&app, Method::POST, "/lock?client=a&job=backup&ttl=10s").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["message"], "renewed");
    assert_eq!(r["token"], a["token"]);
}

#[tokio::test]
async fn conflict_names_the_holder() {
    let app = app();
    call(&app, Method::POST, "/lock?client=a&job=j").await;
    let (s, b) = call(&app, Method::POST, "/lock?client=b&job=j").await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["success"], false);
    assert_eq!(b["holder"], "a");
    assert_eq!(b["message"], "held by another client");
}

#[tokio::test]
async fn job_defaults_to_default() {
    let app = app();
    call(&app, Method::POST, "/lock?client=a").await;
    let (_, st) = call(&app, Method::GET, "/lock?job=default").await;
    assert_eq!(st["holder"], "a");
    let (_, st) = call(&app, Method::GET, "/lock").await;
    assert_eq!(st["holder"], "a");
}

#[tokio::test]
async fn status_of_free_job_has_empty_holder_and_creates_nothing() {
    let app = app();
    let (s, st) = call(&app, Method::GET, "/lock?job=never").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["holder"], "");
    assert_eq!(st["message"], "no lock held");
    assert_eq!(st["is_expired"], true, "as the original: nobody holds it");
    assert_eq!(st["waiting"], 0);
    assert!(st.get("expires_at").is_none());
    let (_, all) = call(&app, Method::GET, "/locks").await;
    assert_eq!(all["locks"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn release_by_holder_and_by_other() {
    let app = app();
    call(&app, Method::POST, "/lock?client=a&job=j").await;
    let (s, e) = call(&app, Method::DELETE, "/lock?client=b&job=j").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(e["error"], "client does not hold the lock");
    let (s, r) = call(&app, Method::DELETE, "/lock?client=a&job=j").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["success"], true);
    assert_eq!(r["message"], "lock released");
    let (s, _) = call(&app, Method::POST, "/lock?client=b&job=j").await;
    assert_eq!(s, StatusCode::OK, "released job has no grace period");
}

#[tokio::test]
async fn bad_input_is_400_and_changes_nothing() {
    let app = app();
    let long = "x".repeat(257);
    for (method, uri, error) in [
        (
            Method::POST,
            "/lock?job=j".to_owned(),
            "client parameter required",
        ),
        (
            Method::POST,
            "/lock?client=&job=j".to_owned(),
            "client parameter required",
        ),
        (
            Method::DELETE,
            "/lock?job=j".to_owned(),
            "client parameter required",
        ),
        (
            Method::POST,
            "/lock?client=a&job=j&ttl=abc".to_owned(),
            "invalid ttl format",
        ),
        (
            Method::POST,
            "/lock?client=a&job=j&ttl=5".to_owned(),
            "invalid ttl format",
        ),
        (
            Method::POST,
            "/lock?client=a&job=j&ttl=0s".to_owned(),
            "ttl must be greater than 0 and at most 24h",
        ),
        (
            Method::POST,
            "/lock?client=a&job=j&ttl=-5s".to_owned(),
            "ttl must be greater than 0 and at most 24h",
        ),
        (
            Method::POST,
            "/lock?client=a&job=j&ttl=25h".to_owned(),
            "ttl must be greater than 0 and at most 24h",
        ),
        (
            Method::POST,
            format!("/lock?client={long}&job=j"),
            "invalid client parameter: must be at most 256 bytes of UTF-8",
        ),
        (
            Method::POST,
            format!("/lock?client=a&job={long}"),
            "invalid job parameter: must be at most 256 bytes of UTF-8",
        ),
        (
            Method::POST,
            "/lock?client=a%0Ab&job=j".to_owned(),
            "invalid client parameter: must not contain control characters",
        ),
        (
            Method::POST,
            "/lock?client=a&job=%FF".to_owned(),
            "invalid query string: parameters must be valid UTF-8",
        ),
        (
            Method::POST,
            "/lock?client=a&job=j&wait=soon".to_owned(),
            "invalid wait format",
        ),
        (
            Method::POST,
            "/lock?client=a&job=j&wait=6m".to_owned(),
            "wait must be at least 0 and at most 5m",
        ),
    ] {
        let (s, body) = call(&app, method, &uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"], error, "{uri}");
    }
    let (_, body) = call(&app, Method::POST, "/lock?client=a&job=j&wait=6m").await;
    assert_eq!(body["max_wait_ms"], 300_000, "the cap is machine-readable");
    let (_, all) = call(&app, Method::GET, "/locks").await;
    assert_eq!(all["locks"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn encoded_names_round_trip() {
    let app = app();
    let (s, a) = call(
        &app,
        Method::POST,
        "/lock?client=m%C3%A4c%20mini&job=photos%2F2026",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(a["holder"], "mäc mini");
    assert_eq!(a["job"], "photos/2026");
    let (_, st) = call(&app, Method::GET, "/lock?job=photos%2F2026").await;
    assert_eq!(st["holder"], "mäc mini");
    let (_, st) = call(&app, Method::GET, "/lock?job=photos/2026&unknown=1").await;
    assert_eq!(st["holder"], "mäc mini", "unknown parameters are ignored");
}

#[tokio::test]
async fn first_value_of_a_repeated_parameter_wins() {
    let app = app();
    let (_, a) = call(&app, Method::POST, "/lock?client=a&client=b&job=j").await;
    assert_eq!(a["holder"], "a");
}

#[tokio::test]
async fn other_methods_are_405_and_unknown_paths_404() {
    let app = app();
    for m in [Method::PUT, Method::PATCH] {
        let (s, body) = call(&app, m, "/lock?client=a").await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "method not allowed");
    }
    let (s, _) = call(&app, Method::GET, "/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_increase_with_each_new_holder() {
    let app = app();
    let (_, a) = call(&app, Method::POST, "/lock?client=a&job=x").await;
    let (_, b) = call(&app, Method::POST, "/lock?client=a&job=y").await;
    call(&app, Method::DELETE, "/lock?client=a&job=x").await;
    let (_, c) = call(&app, Method::POST, "/lock?client=a&job=x").await;
    let t = |v: &Value| v["token"].as_u64().unwrap();
    assert!(t(&a) < t(&b) && t(&b) < t(&c));
}

#[tokio::test]
async fn list_shows_every_recorded_holder_with_its_own_lease() {
    let app = app();
    let (_, b) = call(&app, Method::POST, "/lock?client=a&job=b-job&ttl=1m").await;
    let (_, a) = call(&app, Method::POST, "/lock?client=c&job=a-job&ttl=2h").await;
    let (_, c) = call(&app, Method::POST, "/lock?client=z&job=c-job&ttl=30s").await;
    let (s, all) = call(&app, Method::GET, "/locks").await;
    assert_eq!(s, StatusCode::OK);
    let rows = all["locks"].as_array().unwrap();
    let time = |v: &Value| humantime::parse_rfc3339(v.as_str().expect("a time")).expect("RFC 3339");
    let expected = [
        ("a-job", "c", &a, 7_200_000),
        ("b-job", "a", &b, 60_000),
        ("c-job", "z", &c, 30_000),
    ];
    assert_eq!(rows.len(), expected.len(), "{all}");
    for (row, (job, holder, granted, ttl_ms)) in rows.iter().zip(expected) {
        let mut got: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec![
            "acquired_at",
            "expires_at",
            "expires_in_ms",
            "holder",
            "job",
            "state",
            "token",
        ];
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{row}");
        assert_eq!(row["job"], job, "{row}");
        assert_eq!(row["holder"], holder, "{row}");
        assert_eq!(row["state"], "held", "{row}");
        assert_eq!(row["token"], granted["token"], "{row}");
        assert_eq!(row["acquired_at"], granted["acquired_at"], "{row}");
        // Whole seconds computed at two instants: equal, or one second apart at a boundary.
        let drift = time(&row["expires_at"])
            .duration_since(time(&granted["expires_at"]))
            .unwrap_or_else(|e| e.duration());
        assert!(drift <= Duration::from_secs(1), "{row} vs {granted}");
        let left = row["expires_in_ms"].as_i64().unwrap();
        assert!(left > ttl_ms - 10_000 && left <= ttl_ms, "{row}");
        let term = time(&row["expires_at"])
            .duration_since(time(&row["acquired_at"]))
            .expect("expires after it was acquired");
        let ttl = Duration::from_millis(ttl_ms as u64);
        assert!(
            term + Duration::from_secs(1) >= ttl && term <= ttl + Duration::from_secs(1),
            "{row}"
        );
    }
}

#[tokio::test]
async fn full_table_is_503_and_disturbs_nothing() {
    let app = app_with(Rules {
        max_jobs: 2,
        ..Rules::default()
    });
    call(&app, Method::POST, "/lock?client=a&job=1").await;
    call(&app, Method::POST, "/lock?client=a&job=2").await;
    let (s, e) = call(&app, Method::POST, "/lock?client=a&job=3").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e["error"], "too many jobs: at most 2 can be held at once");
    let (s, _) = call(&app, Method::POST, "/lock?client=a&job=1").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn healthz_is_ok() {
    let (s, body) = call(&app(), Method::GET, "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

/// Arbitrary bytes in the query string never crash a handler or leave a trace: every reply is
/// one of the documented statuses with a JSON body.
#[tokio::test]
async fn random_queries_get_documented_replies() {
    let app = app();
    let alphabet: &[u8] = b"abc=&%+;/?#0123456789FFfe.smhu-_\\\"' \x7f";
    let keys = ["client=", "job=", "ttl=", "wait=", ""];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: deterministic, so a failure reproduces.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for _ in 0..2000 {
        let mut query = String::new();
        for _ in 0..(next() % 4) {
            query.push_str(keys[(next() % keys.len() as u64) as usize]);
            for _ in 0..(next() % 12) {
                let b = alphabet[(next() % alphabet.len() as u64) as usize];
                match b {
                    b' ' | b'"' | b'\\' | b'#' | 0x7f => query.push_str(&format!("%{b:02X}")),
                    _ => query.push(b as char),
                }
            }
            query.push('&');
        }
        for method in [Method::POST, Method::GET, Method::DELETE] {
            let uri = format!("/lock?{query}");
            let (status, body) = call(&app, method.clone(), &uri).await;
            assert!(
                [200, 400, 403, 409].contains(&status.as_u16()),
                "{method} {uri}: {status} {body}"
            );
            if status.is_client_error() {
                assert!(body["error"].is_string(), "{uri}: {body}");
            }
        }
    }
}

/// A request's status and its body exactly as sent.
async fn call_raw(app: &Router, method: Method, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// `body` with the values that depend on the clock replaced by `_`, everything else (field
/// names, their order, the other values) left byte for byte.
fn mask_times(body: &str) -> String {
    let mut out = body.to_owned();
    for key in ["acquired_at", "expires_at", "grace_until", "expires_in_ms"] {
        let tag = format!("\"{key}\":");
        let mut from = 0;
        while let Some(at) = out[from..].find(&tag) {
            let start = from + at + tag.len();
            let end = start + out[start..].find([',', '}']).unwrap();
            out.replace_range(start..end, "_");
            from = start;
        }
    }
    out
}

/// Polls `GET /lock?job=…` until the lease reaches `state`, for at most ten seconds.
async fn wait_for_state(app: &Router, job: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, st) = call(app, Method::GET, &format!("/lock?job={job}")).await;
        if st["state"] == state {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{job} never reached {state}: {st}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The exact bytes of every kind of `/lock` reply: scripts written for the Go original compare
/// these fields, so their names, order and strings must not drift.
#[tokio::test]
async fn every_reply_kind_keeps_its_exact_json_bytes() {
    let app = app_with(Rules {
        grace: Duration::from_secs(3600),
        max_jobs: 3,
        ..Rules::default()
    });
    let expect = async |method: Method, uri: &str, status: u16, body: &str| {
        let (s, got) = call_raw(&app, method.clone(), uri).await;
        assert_eq!(
            (s.as_u16(), mask_times(&got).as_str()),
            (status, body),
            "{method} {uri}"
        );
    };
    expect(
        Method::GET,
        "/lock?job=j",
        200,
        r#"{"success":true,"job":"j","holder":"","message":"no lock held","is_expired":true,"last_token":0,"waiting":0}"#,
    )
    .await;
    expect(
        Method::POST,
        "/lock?client=a&job=j&ttl=1m",
        200,
        r#"{"success":true,"job":"j","holder":"a","message":"acquired","token":1,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"ttl_ms":60000,"state":"held"}"#,
    )
    .await;
    expect(
        Method::POST,
        "/lock?client=a&job=j&ttl=2m",
        200,
        r#"{"success":true,"job":"j","holder":"a","message":"renewed","token":1,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"ttl_ms":120000,"state":"held"}"#,
    )
    .await;
    expect(
        Method::POST,
        "/lock?client=b&job=j",
        409,
        r#"{"success":false,"job":"j","holder":"a","message":"held by another client","token":1,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"ttl_ms":120000,"state":"held"}"#,
    )
    .await;
    expect(
        Method::GET,
        "/lock?job=j",
        200,
        r#"{"success":true,"job":"j","holder":"a","message":"lock held","token":1,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"ttl_ms":120000,"is_expired":false,"state":"held","last_token":1,"waiting":0}"#,
    )
    .await;
    expect(
        Method::GET,
        "/locks",
        200,
        r#"{"locks":[{"job":"j","holder":"a","token":1,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"state":"held"}]}"#,
    )
    .await;
    expect(
        Method::DELETE,
        "/lock?client=b&job=j",
        403,
        r#"{"error":"client does not hold the lock"}"#,
    )
    .await;
    expect(
        Method::DELETE,
        "/lock?client=a&job=j",
        200,
        r#"{"success":true,"job":"j","message":"lock released","status":"lock released"}"#,
    )
    .await;

    // A lapsed lease in its (hour-long) grace period.
    call(&app, Method::POST, "/lock?client=a&job=g&ttl=1ms").await;
    wait_for_state(&app, "g", "grace").await;
    expect(
        Method::POST,
        "/lock?client=b&job=g",
        409,
        r#"{"success":false,"error":"grace period active","job":"g","holder":"a","message":"grace period active","token":2,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"ttl_ms":1,"grace_until":_,"state":"grace"}"#,
    )
    .await;
    expect(
        Method::GET,
        "/lock?job=g",
        200,
        r#"{"success":true,"job":"g","holder":"a","message":"lock held","token":2,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"ttl_ms":1,"is_expired":true,"grace_until":_,"state":"grace","last_token":2,"waiting":0}"#,
    )
    .await;
    expect(
        Method::GET,
        "/locks",
        200,
        r#"{"locks":[{"job":"g","holder":"a","token":2,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"state":"grace","grace_until":_}]}"#,
    )
    .await;

    // Errors: a JSON `error`, plus the machine-readable cap for a too-long wait.
    expect(
        Method::POST,
        "/lock?job=j",
        400,
        r#"{"error":"client parameter required"}"#,
    )
    .await;
    expect(
        Method::POST,
        "/lock?client=a&job=j&wait=6m",
        400,
        r#"{"error":"wait must be at least 0 and at most 5m","max_wait_ms":300000}"#,
    )
    .await;
    expect(
        Method::PUT,
        "/lock?client=a",
        405,
        r#"{"error":"method not allowed"}"#,
    )
    .await;
    expect(Method::GET, "/nope", 404, r#"{"error":"not found"}"#).await;
    call(&app, Method::POST, "/lock?client=a&job=k").await;
    call(&app, Method::POST, "/lock?client=a&job=l").await;
    expect(
        Method::POST,
        "/lock?client=a&job=m",
        503,
        r#"{"error":"too many jobs: at most 3 can be held at once"}"#,
    )
    .await;
}

/// A takeover after the grace period names the previous holder in its message.
#[tokio::test]
async fn takeover_reply_keeps_its_exact_json_bytes() {
    let app = app_with(Rules {
        grace: Duration::ZERO,
        ..Rules::default()
    });
    call(&app, Method::POST, "/lock?client=a&job=t&ttl=1ms").await;
    wait_for_state(&app, "t", "expired").await;
    let (s, body) = call_raw(&app, Method::POST, "/lock?client=b&job=t&ttl=1m").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        mask_times(&body),
        r#"{"success":true,"job":"t","holder":"b","message":"acquired from a","token":2,"acquired_at":_,"expires_at":_,"expires_in_ms":_,"ttl_ms":60000,"state":"held"}"#
    );
}

mod access_token {
    use super::*;
    use crate::api::admin::Token;
    use crate::api::auth::Auth;
    use crate::config::AuthToken;

    fn protected() -> Router {
        let token = AuthToken::try_from("s3cret".to_owned()).unwrap();
        Auth::new(Some(&token)).protect(app())
    }

    async fn send(app: &Router, method: Method, uri: &str, auth: Option<&str>) -> Response {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    use axum::response::Response;

    #[tokio::test]
    async fn with_a_token_every_route_but_healthz_answers_401_without_it() {
        let app = protected();
        for (method, uri) in [
            (Method::POST, "/lock?client=a&job=j"),
            (Method::GET, "/lock?job=j"),
            (Method::DELETE, "/lock?client=a&job=j"),
            (Method::GET, "/locks"),
            (Method::GET, "/no-such-path"),
            (Method::PUT, "/lock"),
        ] {
            for auth in [None, Some("Bearer wrong"), Some("Basic s3cret")] {
                let response = send(&app, method.clone(), uri, auth).await;
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri}"
                );
                assert_eq!(response.headers()["www-authenticate"], "Bearer");
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert!(
                    body["error"].as_str().unwrap().contains("access token"),
                    "{body}"
                );
            }
        }
        let (s, st) = call(&app, Method::GET, "/lock?job=j").await;
        assert_eq!(
            (s, st["holder"].clone()),
            (StatusCode::UNAUTHORIZED, Value::Null)
        );
        let response = send(&app, Method::GET, "/healthz", None).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn with_the_token_the_api_works_as_without_one() {
        let app = protected();
        let good = Some("Bearer s3cret");
        let r = send(&app, Method::POST, "/lock?client=a&job=j", good).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = send(&app, Method::GET, "/lock?job=j", good).await;
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["holder"], "a");
        let r = send(&app, Method::GET, "/nope", good).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn handlers_see_what_the_request_proved() {
        let token = AuthToken::try_from("s3cret".to_owned()).unwrap();
        let seen =
            |auth: Auth| {
                auth.protect(Router::new().route(
                    "/healthz",
                    get(|req: Request<Body>| async move {
                        format!("{:?}", Token::of(req.extensions()))
                    }),
                ))
            };
        let text = |r: Response| async move {
            String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
        };
        let app = seen(Auth::new(Some(&token)));
        let r = send(&app, Method::GET, "/healthz", None).await;
        assert_eq!(text(r).await, "Missing");
        let r = send(&app, Method::GET, "/healthz", Some("Bearer s3cret")).await;
        assert_eq!(text(r).await, "Valid");
        let app = seen(Auth::new(None));
        let r = send(&app, Method::GET, "/healthz", Some("Bearer s3cret")).await;
        assert_eq!(text(r).await, "NotConfigured");
    }
}

#[tokio::test]
async fn locks_come_a_page_at_a_time_when_asked() {
    let app = app();
    for job in ["a", "b", "c", "d", "e"] {
        call(&app, Method::POST, &format!("/lock?client=x&job={job}")).await;
    }
    let jobs = |v: &Value| -> Vec<String> {
        v["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["job"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, all) = call(&app, Method::GET, "/locks").await;
    assert_eq!((s, jobs(&all).len()), (StatusCode::OK, 5));
    assert!(all.get("next").is_none(), "no paging unless asked: {all}");
    let (_, first) = call(&app, Method::GET, "/locks?limit=2").await;
    assert_eq!(
        (jobs(&first), &first["next"]),
        (vec!["a".into(), "b".into()], &Value::from("b"))
    );
    let (_, last) = call(&app, Method::GET, "/locks?limit=2&after=d").await;
    assert_eq!(jobs(&last), ["e"]);
    assert!(last.get("next").is_none(), "{last}");
    let (_, exact) = call(&app, Method::GET, "/locks?limit=3&after=b").await;
    assert_eq!(jobs(&exact), ["c", "d", "e"]);
    assert!(exact.get("next").is_none(), "{exact}");
    for bad in ["limit=0", "limit=1001", "limit=x"] {
        let (s, e) = call(&app, Method::GET, &format!("/locks?{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(e["error"].as_str().unwrap().contains("limit"), "{e}");
    }
}

#[tokio::test]
async fn runs_of_one_client_are_holders_of_their_own_and_requests_without_run_keep_the_old_rule() {
    let app = app();
    let (s, a) = call(&app, Method::POST, "/lock?client=nas&job=j&ttl=10s&run=r1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(a["holder"], "nas", "the holder shown is the machine's name");
    assert_eq!(a["run"], "r1");
    let (s, b) = call(&app, Method::POST, "/lock?client=nas&job=j&ttl=10s&run=r2").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["message"], "held by another client");
    assert!(b["expires_in_ms"].as_i64() <= a["expires_in_ms"].as_i64());
    let (s, _) = call(&app, Method::DELETE, "/lock?client=nas&job=j&run=r2").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "r2 cannot release r1's lease");
    // Plain clients (curl, the shell helper) send no run: same client id renews.
    let (s, c) = call(&app, Method::POST, "/lock?client=nas&job=j&ttl=10s").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["message"], "renewed");
    assert_eq!(c["token"], a["token"]);
    let (s, _) = call(&app, Method::DELETE, "/lock?client=nas&job=j&run=r1").await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = call(&app, Method::POST, "/lock?client=nas&job=j&run=%01").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["error"].as_str().unwrap().contains("run"), "{e}");
}

/// Like [`call`], as a request from `peer` (what `into_make_service_with_connect_info` adds).
async fn call_from(app: &Router, method: Method, uri: &str, peer: &str) -> (StatusCode, Value) {
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .extension(Peer::at(peer))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn force_release_frees_any_holders_job_from_this_machine_only() {
    let app = app();
    let (s, _) = call(&app, Method::POST, "/lock?client=nas&job=j&ttl=1m&run=r1").await;
    assert_eq!(s, StatusCode::OK);
    let uri = "/admin/force-release?job=j";
    let (s, body) = call_from(&app, Method::POST, uri, "192.168.1.20:4000").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        serde_json::json!({"error": "force release is only allowed from the server's own machine or with the auth token"})
    );
    let (_, status) = call(&app, Method::GET, "/lock?job=j").await;
    assert_eq!(status["holder"], "nas", "refused: nothing changed");
    let (s, body) = call_from(&app, Method::POST, uri, "127.0.0.1:4000").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"success": true, "job": "j", "message": "lock released", "holder": "nas"})
    );
    let (_, status) = call(&app, Method::GET, "/lock?job=j").await;
    assert_eq!(status["holder"], "", "free at once, no grace");
    let (s, body) = call_from(&app, Method::POST, uri, "127.0.0.1:4000").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        serde_json::json!({"success": false, "error": "no lock held"})
    );
    let (s, _) = call_from(&app, Method::GET, uri, "127.0.0.1:4000").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

/// The query reading `Params::parse` replaced: split on `&`, then on the first `=`, decode the
/// key, keep the first value of each known one. The byte-level parser must read every query
/// exactly as this does.
fn reference_parse(raw: &str) -> Result<[Option<String>; 5], String> {
    let mut slots: [Option<String>; 5] = Default::default();
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let i = match &*decode(key).map_err(|e| e.to_string())? {
            "client" => 0,
            "job" => 1,
            "ttl" => 2,
            "wait" => 3,
            "run" => 4,
            _ => continue,
        };
        if slots[i].is_none() {
            slots[i] = Some(decode(value).map_err(|e| e.to_string())?.into_owned());
        }
    }
    Ok(slots)
}

fn read_as_slots(raw: &str) -> Result<[Option<String>; 5], String> {
    let p = Params::parse(Some(raw)).map_err(|e| e.to_string())?;
    let own = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_owned);
    Ok([
        own(&p.client),
        own(&p.job),
        own(&p.ttl),
        own(&p.wait),
        own(&p.run),
    ])
}

#[test]
fn queries_are_read_as_split_and_decode_would_read_them() {
    // Every string of up to five of these characters: separators, escapes, a character of
    // two bytes, and ones that spell a key.
    let alphabet = ["&", "=", "+", "%", "j", "é", "4"];
    let mut strings = vec![String::new()];
    let mut all = Vec::new();
    for _ in 0..5 {
        strings = strings
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        all.extend(strings.iter().cloned());
    }
    // Every pair of pairs built from keys and values that need decoding or not, are invalid
    // or are repeated.
    let keys = [
        "job", "client", "ttl", "wait", "run", "jo%62", "cl+ient", "x", "", "%FF",
    ];
    let values = ["", "a", "a+b", "%41%42", "%zz", "%FF", "é", "b=c"];
    let pairs: Vec<String> = keys
        .iter()
        .flat_map(|k| {
            values
                .iter()
                .map(move |v| format!("{k}={v}"))
                .chain([k.to_string()])
        })
        .collect();
    for a in &pairs {
        for b in &pairs {
            all.push(format!("{a}&{b}"));
            all.push(format!("&{a}&&{b}&"));
        }
    }
    for raw in &all {
        assert_eq!(read_as_slots(raw), reference_parse(raw), "{raw:?}");
    }
    assert_eq!(
        Params::parse(None).map(|p| p.job.is_none()).ok(),
        Some(true)
    );
}
