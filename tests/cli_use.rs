//! The CLI as people use it day to day, against a real server: exit codes that tell a busy job
//! and foolock's own failures from the command's, status/list agreement, messages, completions,
//! `serve --listen`, plain `foolock` without a display (through `script`, which gives it a
//! pseudo-terminal), and settings. `foolock lock` on a terminal and with `--stdin` is in
//! tests/cli_lock.rs.
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{
    BIN, Server, eventually, listening_addr, on_a_terminal, path_str, stderr_of, wait_exit,
};

const SECOND: Duration = Duration::from_secs(1);

fn output(cmd: &mut Command) -> (i32, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("script must be installed (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn conflict_and_failure_exit_codes_tell_foolock_apart_from_the_command() {
    let server = Server::start(&[]);
    let codes = ["-E", "200", "--failure-exit-code", "201"];
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let lock = |extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["lock", "job", "--client", "laptop"];
        args.extend_from_slice(&codes);
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(cmd);
        server.run(&args)
    };
    let (code, _, err) = lock(&[], &["true"]);
    assert_eq!(code, 200, "busy: {err}");
    let (code, _, err) = lock(&["--server", "http://127.0.0.1:1"], &["true"]);
    assert_eq!(code, 201, "unreachable: {err}");
    assert!(err.contains("cannot reach"), "{err}");
    assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
    let (code, _, err) = lock(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "the command's own code: {err}");
    // Without the flags, the documented defaults.
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    assert_eq!(server.run(&["acquire", "job", "--client", "x"]).0, 1);
    assert_eq!(
        server
            .run(&["acquire", "job", "--client", "x", "-E", "9"])
            .0,
        9
    );
}

#[test]
fn status_exits_0_when_held_1_when_free_and_agrees_with_list() {
    let server = Server::start(&["--grace-period", "0s"]);
    assert_eq!(server.run(&["status", "job"]).0, 1, "never held");
    assert_eq!(server.run(&["status"]).0, 1, "nothing held");
    let (code, _, err) = server.run(&["acquire", "job", "--client", "nas", "--ttl", "1s"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = server.run(&["status", "job"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("job: held by nas"), "{out}");
    assert_eq!(server.run(&["status"]).0, 0);
    // Once the lease has lapsed both call the job free; the server still remembers it.
    assert!(eventually(10 * SECOND, || server.status("job")["state"] == "expired"));
    let (code, out, _) = server.run(&["status", "job"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("job: free (the lease of nas"), "{out}");
    assert_eq!(server.run(&["list"]).1, "no locks held\n");
    assert_eq!(server.run(&["status"]).0, 1);
    let (_, all, _) = server.run(&["list", "--all"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with("job ") && l.contains(" free ")),
        "{all}"
    );
}

#[test]
fn refusals_go_to_stderr_and_results_to_stdout() {
    let server = Server::start(&[]);
    let (_, out, _) = server.run(&["acquire", "job", "--client", "nas"]);
    assert!(out.starts_with("acquired job as nas"), "{out}");
    let (code, out, err) = server.run(&["acquire", "job", "--client", "laptop"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("foolock: job is held by nas since "),
        "{err}"
    );
    let (code, out, err) = server.run(&["release", "job", "--client", "laptop"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("laptop does not hold job"), "{err}");
    // --json keeps stdout JSON for scripts, refusals included.
    let (code, out, _) = server.run(&["acquire", "job", "--client", "laptop", "--json"]);
    assert_eq!(code, 1);
    let body: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(body["holder"], "nas");
}

#[test]
fn empty_names_and_a_wrong_server_path_are_usage_errors() {
    let server = Server::start(&[]);
    for args in [
        &["acquire", ""][..],
        &["acquire", "job", "--client", ""],
        &["lock", "", "--", "true"],
    ] {
        let (code, _, err) = server.run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let wrong = format!("{}/not-foolock", server.url);
    for args in [
        &["status", "job"][..],
        &["list"],
        &["acquire", "job"],
        &["release", "job"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--server", wrong.as_str()]);
        let (code, _, err) = server.run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("check its path"), "{args:?}: {err}");
    }
}

#[test]
fn acquire_waits_for_a_busy_job_with_wait() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let mut waiting = server
        .cli()
        .args(["acquire", "job", "--client", "laptop", "--wait", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    assert!(eventually(20 * SECOND, || server.status("job")["waiting"] == 1));
    assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
    let status = wait_exit(&mut waiting, 10 * SECOND);
    assert!(status.success(), "{}", stderr_of(&mut waiting));
    assert_eq!(server.status("job")["holder"], "laptop");
    // A wait that ends first is a refusal that says how long it waited.
    let (code, _, err) = server.run(&["acquire", "job", "--client", "x", "--wait", "1s"]);
    assert_eq!(code, 1);
    assert!(err.contains("gave up after waiting 1s"), "{err}");
}

#[test]
fn completions_for_every_shell_and_a_version_with_commit_and_date() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("foolock") && text.contains("lock"), "{shell}");
    }
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("foolock 0."), "{version}");
    assert!(
        version.contains("(commit ") && version.contains(", built 20"),
        "{version}"
    );
    let man = Command::new(BIN).arg("man").output().unwrap();
    assert!(
        String::from_utf8_lossy(&man.stdout).starts_with(".ie"),
        "roff"
    );
}

/// Starts `foolock serve --listen LISTEN` on its own and returns its first line.
fn serve_first_line(listen: &str) -> (Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", listen, "--state-dir"])
        .arg(dir.path().join("state"))
        .env("FOOLOCK_CONFIG", dir.path().join("none.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line, dir)
}

#[test]
fn serve_listens_go_style_and_a_loopback_bind_says_only_this_machine_can_connect() {
    let (mut child, line, _dir) = serve_first_line("localhost:0");
    let _ = child.kill();
    assert!(
        line.starts_with("foolock listening on 127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("only this machine can connect"), "{line}");
    assert!(line.contains("--listen :"), "{line}");
    assert!(!line.contains("http://127.0.0.1"), "{line}");
    let (mut child, line, _dir) = serve_first_line(":0");
    let _ = child.kill();
    assert!(line.starts_with("foolock listening on 0.0.0.0:"), "{line}");
}

#[test]
fn a_port_in_use_exits_with_the_could_not_start_code() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &server.addr.to_string(), "--state-dir"])
        .arg(dir.path().join("state"))
        .env("FOOLOCK_CONFIG", dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not start: cannot listen on"), "{err}");
}

#[test]
fn plain_foolock_at_a_terminal_without_a_display_explains_instead_of_serving() {
    let server = Server::start(&[]);
    let (code, text) = output(
        on_a_terminal(&server, BIN)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY"),
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("foolock serve"), "{text}");
    assert!(text.contains("foolock install --headless"), "{text}");
    assert!(!text.contains("listening on"), "{text}");

    // Started by a login item (the marker), it serves as before.
    let config = server.dir().join("agent.toml");
    let state = server.dir().join("agent-state");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n",
            path_str(&state)
        ),
    )
    .unwrap();
    let mut agent = on_a_terminal(&server, &format!("{BIN} --autostart"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("FOOLOCK_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // On a terminal its stderr comes first ("running without a tray icon").
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .take(5)
        .map_while(Result::ok)
        .find(|l| l.starts_with("foolock listening on 127.0.0.1:"));
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(listening.is_some(), "the agent did not serve");
}

#[test]
fn install_headless_keeps_the_config_file_in_the_unit() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "--config",
            "~/conf/foolock.toml",
            "install",
            "--headless",
            "--dry-run",
        ])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env_remove("FOOLOCK_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let want = format!(
        "Environment=\"FOOLOCK_CONFIG={}/conf/foolock.toml\"",
        home.path().display()
    );
    assert!(text.contains(&want), "{text}");
}

#[test]
fn a_tilde_in_the_configs_state_dir_is_the_home_directory() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nstate_dir = \"~/foolock-state\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("FOOLOCK_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let listening = listening_addr(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening.is_ok(), "{listening:?}");
    assert!(home.path().join("foolock-state/state.json").exists());
    assert!(!home.path().join("~").exists(), "no literal ~ directory");
}

#[test]
fn config_errors_name_the_line_and_what_the_value_must_be_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "max_jobs = \"ten\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("FOOLOCK_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1: max_jobs = \"ten\": must be a whole number"),
        "{err}"
    );
    assert_eq!(err.matches("ten").count(), 1, "{err}");
    assert!(!err.contains("usize"), "{err}");
}

#[test]
fn force_release_from_the_servers_machine_frees_the_job_and_the_holder_loses_it() {
    let server = Server::start(&[]);
    let mut run = server
        .cli()
        .args([
            "lock", "job", "--ttl", "3s", "--client", "laptop", "--", "sleep", "60",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    assert!(eventually(20 * SECOND, || server.status("job")["holder"] == "laptop"));
    let (code, out, err) = server.run(&["force-release", "job"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "force-released job (it was held by laptop)\n");
    // Its next renewal is refused: the run stops its command and says the lock was lost.
    let status = wait_exit(&mut run, 20 * SECOND);
    assert_eq!(status.code(), Some(75), "{}", stderr_of(&mut run));
    assert!(server.log().contains("force released"), "logged");
    let (code, _, err) = server.run(&["force-release", "job"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("job is not held"), "{err}");
}

#[test]
fn an_empty_foolock_client_in_the_environment_means_unset_not_an_error() {
    let server = Server::start(&[]);
    let out = server
        .cli()
        .args(["acquire", "job"])
        .env("FOOLOCK_CLIENT", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(server.status("job")["holder"], "");
}
