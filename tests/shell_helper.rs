//! `contrib/foolock.sh` under a strict POSIX shell (dash) against a real server.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::{Proxy, Server, eventually};

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/foolock.sh");

/// Runs `script` in dash after sourcing the helper, with `env` set.
fn dash(server: &Server, env: &[(&str, &str)], script: &str) -> Command {
    shell("dash", server, env, script)
}

fn shell(name: &str, server: &Server, env: &[(&str, &str)], script: &str) -> Command {
    let mut cmd = Command::new(name);
    cmd.arg("-c")
        .arg(format!(". \"$0\"\n{script}"))
        .arg(HELPER)
        .env("FOOLOCK_SERVER", &server.url)
        .env_remove("FOOLOCK_JOB")
        .env_remove("FOOLOCK_CLIENT")
        .env_remove("FOOLOCK_AUTH_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

fn run(server: &Server, env: &[(&str, &str)], script: &str) -> (i32, serde_json::Value) {
    run_in("dash", server, env, script)
}

fn run_in(
    name: &str,
    server: &Server,
    env: &[(&str, &str)],
    script: &str,
) -> (i32, serde_json::Value) {
    let out: Output = shell(name, server, env, script)
        .output()
        .expect("dash must be installed (apt-get install -y dash)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn acquire_status_release_with_the_original_names_and_return_codes() {
    let server = Server::start(&[]);
    let job = [("FOOLOCK_JOB", "backup")];
    let (code, body) = run(&server, &job, "foolock_acquire '' 30s");
    assert_eq!(code, 0, "{body}");
    assert_eq!(body["ttl_ms"], 30_000);
    let me = body["holder"].as_str().expect("holder").to_owned();

    let other = [("FOOLOCK_JOB", "backup"), ("FOOLOCK_CLIENT", "other")];
    let (code, body) = run(&server, &other, "foolock_acquire");
    assert_eq!(code, 1);
    assert_eq!(body["holder"], me.as_str(), "the refusal names the holder");
    let (code, body) = run(&server, &other, "foolock_status");
    assert_eq!(code, 0);
    assert_eq!(body["holder"], me.as_str());
    assert_eq!(
        run(&server, &other, "foolock_release").0,
        1,
        "not the holder"
    );
    assert_eq!(run(&server, &job, "foolock_release").0, 0);
    assert_eq!(server.status("backup")["holder"], "");
}

#[test]
fn the_helper_and_the_cli_derive_the_same_client_id_and_default_job() {
    let server = Server::start(&[]);
    let (code, body) = run(&server, &[], "foolock_acquire");
    assert_eq!(code, 0, "{body}");
    assert_eq!(body["job"], "default");
    // The CLI, with no --client, is the same client: it may release the helper's lock.
    let (code, _, err) = server.run(&["release", "default"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn names_are_url_encoded() {
    let server = Server::start(&[]);
    let env = [
        ("FOOLOCK_JOB", "nightly backup/ü&x=1"),
        ("FOOLOCK_CLIENT", "Anna's Mac+1"),
    ];
    let (code, body) = run(&server, &env, "foolock_acquire '' 1m");
    assert_eq!(code, 0, "{body}");
    let status = server.status("nightly backup/ü&x=1");
    assert_eq!(status["holder"], "Anna's Mac+1");
    assert_eq!(run(&server, &env, "foolock_release").0, 0);
}

#[test]
fn acquire_can_wait_for_the_holder_to_release() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let waiting = dash(&server, &[], "foolock_acquire job 30s 20s")
        .stdout(Stdio::piped())
        .spawn()
        .expect("dash");
    // Release once the helper's request is queued, so the grant is the wait's doing.
    let queued = || server.status("job")["waiting"] == 1;
    assert!(eventually(Duration::from_secs(20), queued), "never queued");
    assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
    let out = waiting.wait_with_output().expect("dash");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn an_unreachable_server_returns_3() {
    let server = Server::start(&[]);
    let env = [("FOOLOCK_SERVER", "http://127.0.0.1:1")];
    assert_eq!(run(&server, &env, "foolock_status").0, 3);
    assert_eq!(run(&server, &env, "foolock_acquire").0, 3);
}

#[test]
fn bash_and_an_auth_token_work_too() {
    let server = Server::start(&[]);
    let env = [
        ("FOOLOCK_JOB", "nightly backup/ü"),
        ("FOOLOCK_CLIENT", "desk"),
        ("FOOLOCK_AUTH_TOKEN", "s3cret token"),
    ];
    let shells: Vec<&str> = ["dash", "bash"]
        .into_iter()
        .filter(|sh| Command::new(sh).arg("-c").arg("true").status().is_ok())
        .collect();
    for sh in shells {
        let (code, body) = run_in(sh, &server, &env, "foolock_acquire '' 1m");
        assert_eq!(code, 0, "{sh}: {body}");
        assert_eq!(body["holder"], "desk", "{sh}");
        assert_eq!(run_in(sh, &server, &env, "foolock_release").0, 0, "{sh}");
    }
}

#[test]
fn every_request_carries_the_auth_token_as_a_bearer_header() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    let env = [
        ("FOOLOCK_SERVER", proxy.url.as_str()),
        ("FOOLOCK_CLIENT", "desk"),
        ("FOOLOCK_AUTH_TOKEN", "s3cret token"),
    ];
    for script in [
        "foolock_acquire job 1m",
        "foolock_status job",
        "foolock_release job",
    ] {
        assert_eq!(run(&server, &env, script).0, 0, "{script}");
    }
    let seen = proxy.seen();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "GET", "DELETE"]);
    for request in &seen {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer s3cret token"),
            "{request:?}"
        );
    }
    // Without a token, no header at all.
    let env = [("FOOLOCK_SERVER", proxy.url.as_str())];
    assert_eq!(run(&server, &env, "foolock_status job").0, 0);
    let last = proxy.seen().pop().unwrap();
    assert_eq!(last.header("authorization"), None, "{last:?}");
}

#[test]
fn old_style_calls_name_the_job_first_and_the_ttl_second() {
    let server = Server::start(&[]);
    // As scripts written for the original library call it, with FOOLOCK_JOB set elsewhere.
    let env = [("FOOLOCK_JOB", "other"), ("FOOLOCK_CLIENT", "desk")];
    let (code, body) = run(&server, &env, "foolock_acquire myjob 60s");
    assert_eq!(code, 0, "{body}");
    assert_eq!(body["job"], "myjob");
    assert_eq!(body["ttl_ms"], 60_000);
    let (code, body) = run(&server, &env, "foolock_status myjob");
    assert_eq!(code, 0, "{body}");
    assert_eq!(body["holder"], "desk");
    assert_eq!(
        server.status("other")["holder"],
        "",
        "FOOLOCK_JOB untouched"
    );
    let (code, body) = run(&server, &env, "foolock_release myjob");
    assert_eq!(code, 0, "{body}");
    assert_eq!(server.status("myjob")["holder"], "");

    // A job alone takes the original's default ttl of 30s.
    let (code, body) = run(&server, &env, "foolock_acquire myjob");
    assert_eq!(code, 0, "{body}");
    assert_eq!(body["ttl_ms"], 30_000);
}

#[test]
fn foolock_client_id_prints_the_id_the_other_functions_use() {
    let server = Server::start(&[]);
    let out = dash(&server, &[], "foolock_client_id")
        .output()
        .expect("dash");
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout).expect("utf-8");
    let (code, body) = run(&server, &[], "foolock_acquire");
    assert_eq!(code, 0, "{body}");
    assert_eq!(body["holder"], id.trim_end_matches('\n'));
    let out = dash(
        &server,
        &[("FOOLOCK_CLIENT", "router")],
        "foolock_client_id",
    )
    .output()
    .expect("dash");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "router\n");
}

#[test]
fn usage_errors_return_2_and_send_nothing() {
    let server = Server::start(&[]);
    let env = [("FOOLOCK_CLIENT", "desk")];
    for script in [
        // Arguments swapped: "myjob" is no ttl.
        "foolock_acquire 60s myjob",
        "foolock_acquire myjob 60",
        "foolock_acquire myjob 60s soon",
        "foolock_acquire a 1s 1s extra",
        "foolock_release a b",
        "foolock_status a b",
    ] {
        let out = dash(&server, &env, script).output().expect("dash");
        assert_eq!(out.status.code(), Some(2), "{script}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("foolock_"), "{script}: {err}");
    }
    for job in ["60s", "myjob", "a"] {
        assert_eq!(server.status(job)["holder"], "", "{job} untouched");
    }
    // What only the server can judge: a ttl out of its range is a 400, also a usage error.
    let (code, body) = run(&server, &env, "foolock_acquire myjob 0s");
    assert_eq!(code, 2, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("ttl"),
        "{body}"
    );
}

#[test]
fn refusals_return_1_not_2() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let env = [("FOOLOCK_CLIENT", "desk")];
    assert_eq!(run(&server, &env, "foolock_acquire job 1m").0, 1);
    assert_eq!(run(&server, &env, "foolock_release job").0, 1);
}
