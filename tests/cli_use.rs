//! The CLI as people use it day to day, against a real server: exit codes that tell a busy job
//! and foolock's own failures from the command's, status/list agreement, messages on a
//! terminal (through `script`, which gives the command a pseudo-terminal), `--stdin`, a second
//! Ctrl-C, completions, `serve --listen`, plain `foolock` without a display, and settings.
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{
    BIN, Server, alive, eventually, listening_addr, path_str, read_pid, signal, wait_exit,
};

const SECOND: Duration = Duration::from_secs(1);

/// `sh -c SCRIPT` under a pseudo-terminal: `script -qec`, whose exit code is the command's.
fn on_a_terminal(server: &Server, command_line: &str) -> Command {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", command_line, "/dev/null"])
        .env("FOOLOCK_SERVER", &server.url)
        .env("FOOLOCK_CONFIG", server.dir().join("client.toml"))
        .env_remove("FOOLOCK_CLIENT")
        .env_remove("RUST_LOG");
    cmd
}

/// Waits up to 20 s for `child` (under `script`) to end and returns its output; kills it and
/// fails if it does not end (a command stopped on the terminal would hang the test).
fn finish(mut child: Child) -> std::process::Output {
    drop(child.stdin.take());
    let ended = eventually(20 * SECOND, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("script");
    assert!(
        ended,
        "still running after 20 s: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn output(cmd: &mut Command) -> (i32, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("script must be installed (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    (out.status.code().unwrap_or(-1), text)
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    err
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
fn on_a_terminal_lock_says_once_whom_it_waits_for_and_when_it_got_the_job() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let run = |quiet: &str| {
        let line = format!("{BIN} lock job --client laptop --wait 30s {quiet} -- echo ran");
        let child = on_a_terminal(&server, &line)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script");
        assert!(eventually(20 * SECOND, || server.status("job")["waiting"] == 1));
        assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
        let out = finish(child);
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
        text
    };
    let text = run("");
    assert_eq!(
        text.matches("job is held by nas since").count(),
        1,
        "{text}"
    );
    assert!(text.contains("waiting up to 30s"), "{text}");
    assert!(text.contains("foolock: got job after "), "{text}");
    assert!(text.contains("ran"), "{text}");
    assert!(
        !text.contains("ns)") && !text.contains('T'),
        "local time, human: {text}"
    );
    let quiet = run("-q");
    assert!(!quiet.contains("foolock:"), "{quiet}");
    assert!(quiet.contains("ran"), "{quiet}");
}

#[test]
fn stdin_gives_the_command_the_terminal_and_without_it_the_command_reads_nothing() {
    let server = Server::start(&[]);
    // Whether its stdin is the terminal, then what it read.
    let read =
        "sh -c 'test -t 0 && echo stdin:tty; test -t 0 || echo stdin:other; read x; echo got:$x'";
    for (flag, want) in [
        ("--stdin", "stdin:tty\ngot:hello"),
        ("--pass-stdin", "stdin:tty\ngot:hello"),
        ("", "stdin:other\ngot:\n"),
    ] {
        let line = format!("{BIN} lock job --client laptop {flag} -- {read}");
        let child = on_a_terminal(&server, &line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script");
        let mut input = child.stdin.as_ref().expect("piped");
        std::io::Write::write_all(&mut input, b"hello\n").expect("write");
        let out = finish(child);
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        assert_eq!(out.status.code(), Some(0), "{flag}: {text}");
        assert!(text.contains(want), "{flag}: {text}");
    }
}

#[test]
fn without_stdin_piped_input_still_reaches_the_command() {
    // Only a terminal is kept from the command; a pipe is its input as usual.
    let server = Server::start(&[]);
    let mut child = server
        .cli()
        .args(["lock", "job", "--client", "laptop", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("piped");
    std::io::Write::write_all(&mut input, b"hello\n").expect("write");
    drop(input);
    let out = child.wait_with_output().expect("foolock lock");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
}

#[test]
fn after_a_command_given_the_terminal_the_terminal_is_taken_back() {
    // What runs next on the terminal must be able to read it: a job left in the background
    // of its own terminal cannot.
    let server = Server::start(&[]);
    let line = format!("{BIN} lock job --client laptop --stdin -- true; read y; echo after:$y");
    let child = on_a_terminal(&server, &line)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script");
    let mut input = child.stdin.as_ref().expect("piped");
    std::io::Write::write_all(&mut input, b"hello\n").expect("write");
    let out = finish(child);
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(text.contains("after:hello"), "{text}");
}

#[test]
fn a_second_ctrl_c_kills_the_commands_group_and_says_so() {
    let server = Server::start(&[]);
    let dir = server.dir().to_owned();
    // A command that shrugs off SIGINT and has a child of its own.
    let script = format!(
        "trap '' INT; sleep 60 & echo $! > {d}/child.tmp; mv {d}/child.tmp {d}/child; \
         echo $$ > {d}/pid.tmp; mv {d}/pid.tmp {d}/pid; wait",
        d = dir.display()
    );
    let mut run = server
        .cli()
        .args([
            "lock", "job", "--client", "laptop", "--", "sh", "-c", &script,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    assert!(eventually(10 * SECOND, || dir.join("pid").exists()));
    let pid = read_pid(&dir.join("pid")).expect("pid");
    let child = read_pid(&dir.join("child")).expect("child pid");
    signal(run.id() as libc::pid_t, libc::SIGINT);
    std::thread::sleep(SECOND);
    assert!(alive(pid), "the first interrupt is only passed on");
    signal(run.id() as libc::pid_t, libc::SIGINT);
    let status = wait_exit(&mut run, 10 * SECOND);
    assert_eq!(status.code(), Some(128 + 9));
    assert!(stderr_of(&mut run).contains("second interrupt: killed the command"));
    assert!(eventually(2 * SECOND, || !alive(pid) && !alive(child)));
    assert_eq!(server.status("job")["holder"], "", "released");
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
fn a_crashed_runs_lapsed_lease_is_taken_over_as_a_fresh_run_and_a_refusal_extends_nothing() {
    let server = Server::start(&["--grace-period", "1s"]);
    // What a killed run leaves behind: a lease under this machine's id that nobody renews.
    let (code, _, err) = server.run(&["acquire", "stale", "--client", "x", "--ttl", "3s"]);
    assert_eq!(code, 0, "{err}");
    let before = server.status("stale");
    let (code, _, err) = server.run(&["lock", "stale", "--client", "x", "--", "true"]);
    assert_eq!(code, 1, "refused while the lease runs: {err}");
    assert!(
        err.contains("--client x"),
        "the hint names the client id: {err}"
    );
    let after = server.status("stale");
    assert_eq!(after["token"], before["token"]);
    assert!(
        after["expires_in_ms"].as_i64() <= before["expires_in_ms"].as_i64(),
        "the refusal did not renew: {before} then {after}"
    );
    assert!(eventually(20 * SECOND, || server.status("stale")["state"] == "expired"));
    let (code, out, err) = server.run(&[
        "lock",
        "stale",
        "--client",
        "x",
        "--",
        "sh",
        "-c",
        "echo $FOOLOCK_TOKEN",
    ]);
    assert_eq!(code, 0, "{err}");
    let token: u64 = out.trim().parse().expect("token");
    assert!(token > before["token"].as_u64().unwrap(), "a fresh grant");
    assert_eq!(
        server.status("stale")["holder"],
        "",
        "released after the run"
    );
}

#[test]
fn two_runs_on_one_machine_take_turns_first_come_first_served_with_other_devices() {
    let server = Server::start(&[]);
    let dir = server.dir().to_owned();
    let log = dir.join("log");
    let go = dir.join("go");
    let first_script = format!(
        "echo start one >> {log}; while [ ! -e {go} ]; do sleep 0.1; done; echo end one >> {log}",
        log = path_str(&log),
        go = path_str(&go)
    );
    let step = |tag: &str| {
        format!(
            "echo start {tag} >> {log}; echo end {tag} >> {log}",
            log = path_str(&log)
        )
    };
    let lock = |client: &str, script: &str| {
        server
            .cli()
            .args(["lock", "job", "--wait", "60s", "--client", client, "--"])
            .args(["sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut one = lock("x", &first_script);
    assert!(eventually(20 * SECOND, || log.exists()));
    let mut other = lock("laptop", &step("laptop"));
    assert!(eventually(20 * SECOND, || server.status("job")["waiting"] == 1));
    let mut two = lock("x", &step("two"));
    assert!(eventually(20 * SECOND, || server.status("job")["waiting"] == 2));
    std::fs::write(&go, "").unwrap();
    for run in [&mut one, &mut other, &mut two] {
        let status = wait_exit(run, 30 * SECOND);
        assert!(status.success(), "{}", stderr_of(run));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        "start one\nend one\nstart laptop\nend laptop\nstart two\nend two\n"
    );
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
