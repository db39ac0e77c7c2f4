//! The client CLI's one-shot commands against a real server over real HTTP: JSON output, exit
//! codes, where the server and client id come from. `foolock lock` has its own file,
//! tests/cli_lock.rs.

mod support;

use support::Server;

#[test]
fn one_shot_commands_print_json_and_use_the_documented_exit_codes() {
    let server = Server::start(&[]);
    let json = |args: &[&str], want: i32| -> serde_json::Value {
        let (code, out, err) = server.run(args);
        assert_eq!(code, want, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    };
    let got = json(
        &["acquire", "job", "--client", "nas", "--ttl", "1m", "--json"],
        0,
    );
    assert_eq!(
        (got["success"].as_bool(), got["holder"].as_str()),
        (Some(true), Some("nas"))
    );
    assert_eq!(got["ttl_ms"], 60_000);
    let got = json(&["acquire", "job", "--client", "pi", "--json"], 1);
    assert_eq!(
        (got["success"].as_bool(), got["holder"].as_str()),
        (Some(false), Some("nas"))
    );
    let got = json(&["status", "job", "--json"], 0);
    assert_eq!(got["holder"], "nas");
    let got = json(&["list", "--json"], 0);
    assert_eq!(got["locks"][0]["job"], "job");
    let got = json(&["status", "--json"], 0);
    assert_eq!(got["locks"].as_array().map(Vec::len), Some(1));
    json(&["release", "job", "--client", "pi", "--json"], 1);
    let got = json(&["release", "job", "--client", "nas", "--json"], 0);
    assert_eq!(got["success"], true);

    // Human output names the holder.
    server.run(&["acquire", "job", "--client", "nas"]);
    let (code, out, _) = server.run(&["status", "job"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("job: held by nas"), "{out}");
    let (code, out, _) = server.run(&["list"]);
    assert_eq!(code, 0);
    assert!(out.contains("nas"), "{out}");
}

#[test]
fn unreachable_server_exits_3_and_usage_errors_exit_2() {
    let server = Server::start(&[]);
    let (code, out, err) =
        server.run(&["status", "job", "--server", "http://127.0.0.1:1", "--json"]);
    assert_eq!(code, 3, "{err}");
    let body: serde_json::Value = serde_json::from_str(&out).expect("JSON error on stdout");
    assert_eq!(body["success"], false);
    assert_eq!(
        server
            .run(&[
                "lock",
                "job",
                "--server",
                "http://127.0.0.1:1",
                "--",
                "true"
            ])
            .0,
        3
    );
    assert_eq!(server.run(&["acquire", "job", "--ttl", "soon"]).0, 2);
    assert_eq!(server.run(&["lock", "job"]).0, 2, "no command");
    assert_eq!(server.run(&["list", "--server", "https://nas"]).0, 2);
    let (code, _, err) = server.run(&["acquire", "job", "--ttl", "1000h"]);
    assert_eq!(code, 2, "beyond the server's max_ttl: {err}");
}

#[test]
fn server_and_client_come_from_flags_then_environment_then_config_then_hostname() {
    let server = Server::start(&[]);
    // Default client id: the hostname's first label, lower-cased.
    let mut name = [0u8; 256];
    // SAFETY: writable buffer of the given length.
    unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    let host = String::from_utf8_lossy(&name[..name.iter().position(|&b| b == 0).unwrap()])
        .split('.')
        .next()
        .unwrap()
        .to_ascii_lowercase();
    let (code, out, _) = server.run(&["acquire", "a", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("\"holder\":\"{host}\"")), "{out}");

    let out = server
        .cli()
        .args(["acquire", "b", "--json"])
        .env("FOOLOCK_CLIENT", "env-id")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"holder\":\"env-id\""));

    // The config file names the server and the client; FOOLOCK_SERVER would win, so unset it.
    let config = server.dir().join("client.toml");
    std::fs::write(
        &config,
        format!("server = \"{}\"\nclient = \"conf-id\"\n", server.url),
    )
    .unwrap();
    let out = server
        .cli()
        .args(["acquire", "c", "--json"])
        .env_remove("FOOLOCK_SERVER")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"holder\":\"conf-id\""));

    // A broken config file is a usage error.
    std::fs::write(&config, "sever = 1\n").unwrap();
    assert_eq!(server.run(&["list"]).0, 2);
}

// Regression tests from the client review (L3, L4).

#[test]
fn l3_one_shot_acquire_sends_a_sub_millisecond_ttl_exactly() {
    let server = Server::start(&[]);
    // It used to go out as `ttl=0ms`, which the server refuses.
    let (code, out, err) = server.run(&["acquire", "job", "--ttl", "500us", "--json"]);
    assert_eq!(code, 0, "{err}");
    let body: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(body["success"], true, "{out}");
}

#[test]
fn l4_out_of_range_port_is_a_usage_error_not_port_80() {
    let server = Server::start(&[]);
    let (code, _, err) = server.run(&["list", "--server", "http://127.0.0.1:99999"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("port"), "{err}");
    let out = server
        .cli()
        .args(["status", "job"])
        .env("FOOLOCK_SERVER", "http://127.0.0.1:65536")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
