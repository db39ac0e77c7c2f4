//! `foolock lock` against a real server over real HTTP: exclusion, exit codes, signals passed
//! on, lost locks, the lease keeper's schedule, and the command's terminal and stdin. The
//! mutation check's `lease` area (tests/mutants.sh) runs this file, so every test of `foolock
//! lock` belongs here, and nothing else.

mod support;

use std::process::{Child, Stdio};
use std::time::Duration;
use support::{
    BIN, Proxy, Server, alive, eventually, finish, log_time, on_a_terminal, path_str, read_pid,
    signal, stderr_of, wait_exit,
};

const SECOND: Duration = Duration::from_secs(1);

/// Starts `foolock lock` with `args` in the background, stderr captured.
fn spawn_lock(server: &Server, args: &[&str]) -> Child {
    spawn_lock_at(server, &server.url, args)
}

/// Like [`spawn_lock`], talking to the server at `url` (a [`Proxy`] in front of it).
fn spawn_lock_at(server: &Server, url: &str, args: &[&str]) -> Child {
    server
        .cli()
        .env("FOOLOCK_SERVER", url)
        .arg("lock")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foolock lock")
}

#[test]
fn lock_runs_the_command_with_the_lock_in_its_environment_and_passes_its_exit_code() {
    let server = Server::start(&[]);
    let (code, out, err) = server.run(&[
        "lock",
        "backup",
        "--client",
        "laptop",
        "--",
        "sh",
        "-c",
        "echo \"$FOOLOCK_JOB $FOOLOCK_CLIENT $FOOLOCK_TOKEN\"; exit 7",
    ]);
    assert_eq!(code, 7, "stderr: {err}");
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[..2], ["backup", "laptop"]);
    assert!(fields[2].parse::<u64>().is_ok(), "token: {out}");
    assert_eq!(
        server.status("backup")["holder"],
        "",
        "released after the command"
    );

    let (code, _, _) = server.run(&["lock", "backup", "--", "true"]);
    assert_eq!(code, 0);
}

#[test]
fn lock_fails_at_once_naming_the_holder_and_does_not_run_the_command() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "backup", "--client", "nas"]).0, 0);
    let marker = server.dir().join("ran");
    let (code, _, err) = server.run(&[
        "lock",
        "backup",
        "--client",
        "laptop",
        "--",
        "touch",
        path_str(&marker),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("backup is held by nas"), "{err}");
    assert!(!marker.exists());
}

#[test]
fn two_waiting_locks_on_one_job_never_overlap_and_both_finish() {
    let server = Server::start(&[]);
    let log = server.dir().join("log");
    let script = format!(
        "echo \"start $FOOLOCK_CLIENT\" >> {0}; sleep 1; echo \"end $FOOLOCK_CLIENT\" >> {0}",
        path_str(&log)
    );
    let mut runs: Vec<Child> = ["a", "b"]
        .iter()
        .map(|client| {
            spawn_lock(
                &server,
                &[
                    "job", "--wait", "30s", "--client", client, "--", "sh", "-c", &script,
                ],
            )
        })
        .collect();
    for run in &mut runs {
        let status = wait_exit(run, Duration::from_secs(30));
        assert!(status.success(), "{}", stderr_of(run));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // Each start is followed by its own end before anything else starts.
    assert_eq!(lines[0].replace("start", "end"), lines[1], "{text}");
    assert_eq!(lines[2].replace("start", "end"), lines[3], "{text}");
    assert_ne!(lines[0], lines[2], "{text}");
}

#[test]
fn lock_waits_across_several_long_polls_when_the_server_caps_waits() {
    let server = Server::start(&["--max-wait", "1s"]);
    assert_eq!(
        server
            .run(&["acquire", "job", "--client", "nas", "--ttl", "60s"])
            .0,
        0
    );
    let mut run = spawn_lock(
        &server,
        &["job", "--wait", "30s", "--client", "laptop", "--", "true"],
    );
    std::thread::sleep(3 * SECOND);
    assert!(run.try_wait().unwrap().is_none(), "{}", stderr_of(&mut run));
    assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert!(status.success(), "{}", stderr_of(&mut run));
}

#[test]
fn sigint_while_waiting_gives_up_and_leaves_the_queue() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let marker = server.dir().join("ran");
    let mut run = spawn_lock(
        &server,
        &[
            "job",
            "--wait",
            "60s",
            "--client",
            "laptop",
            "--",
            "touch",
            path_str(&marker),
        ],
    );
    // Interrupt it once it is queued (its signal handlers are set up before it asks).
    let queued = || server.status("job")["waiting"] == 1;
    assert!(eventually(Duration::from_secs(20), queued));
    signal(run.id() as libc::pid_t, libc::SIGINT);
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let err = stderr_of(&mut run);
    assert!(
        err.contains("SIGINT while waiting for job; the command was not started"),
        "{err}"
    );
    assert!(eventually(Duration::from_secs(10), || server.status("job")
        ["waiting"]
        == 0));
    // The abandoned waiter is never granted the job.
    assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
    std::thread::sleep(SECOND);
    assert_eq!(server.status("job")["holder"], "");
    assert!(!marker.exists());
}

/// A command that records its pid and a background child's pid, and notes SIGTERM.
fn trapping_script(dir: &std::path::Path, exit_code: u8) -> String {
    format!(
        "trap 'echo term >> {d}/term; exit {exit_code}' TERM; echo $$ > {d}/pid.tmp; \
         mv {d}/pid.tmp {d}/pid; sleep 60 & echo $! > {d}/child.tmp; mv {d}/child.tmp {d}/child; \
         wait",
        d = dir.display()
    )
}

/// Waits until the trapping script has written both pids.
fn started_pids(dir: &std::path::Path) -> (libc::pid_t, libc::pid_t) {
    assert!(
        eventually(Duration::from_secs(10), || dir.join("child").exists()),
        "the command did not start"
    );
    (
        read_pid(&dir.join("pid")).expect("pid"),
        read_pid(&dir.join("child")).expect("child pid"),
    )
}

#[test]
fn sigterm_is_passed_to_the_command_and_nothing_is_left_behind() {
    let server = Server::start(&[]);
    let dir = server.dir().to_owned();
    let script = trapping_script(&dir, 3);
    let mut run = spawn_lock(
        &server,
        &["job", "--client", "laptop", "--", "sh", "-c", &script],
    );
    let (pid, grandchild) = started_pids(&dir);
    signal(run.id() as libc::pid_t, libc::SIGTERM);
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(status.code(), Some(3), "{}", stderr_of(&mut run));
    assert!(dir.join("term").exists(), "the command got SIGTERM");
    assert!(eventually(2 * SECOND, || !alive(pid) && !alive(grandchild)));
    assert_eq!(server.status("job")["holder"], "", "released");
}

#[test]
fn lost_lock_when_the_server_stops_answering_stops_the_command_before_the_lease_ends() {
    let server = Server::builder().rust_log("foolock=debug").start();
    let dir = server.dir().to_owned();
    let script = trapping_script(&dir, 9);
    let ttl = Duration::from_secs(10);
    let mut run = spawn_lock(
        &server,
        &[
            "job", "--ttl", "10s", "--client", "laptop", "--", "sh", "-c", &script,
        ],
    );
    let (pid, grandchild) = started_pids(&dir);
    // Let at least one renewal through, then freeze the server: renewals now time out.
    assert!(
        eventually(Duration::from_secs(20), || renewals(&server, "laptop") > 0),
        "no renewal got through"
    );
    signal(server.pid(), libc::SIGSTOP);
    assert!(
        eventually(Duration::from_secs(20), || dir.join("term").exists()),
        "the command was not stopped"
    );
    // When the command's trap ran, not when this test noticed: a slow test must not make
    // the stop look later than it was.
    let term_seen = std::fs::metadata(dir.join("term"))
        .and_then(|m| m.modified())
        .expect("mtime");

    let exit = wait_exit(&mut run, Duration::from_secs(15));
    let err = stderr_of(&mut run);
    assert_eq!(exit.code(), Some(75), "{err}");
    assert!(err.contains("lost the lock on job"), "{err}");
    assert!(eventually(2 * SECOND, || !alive(pid) && !alive(grandchild)));

    // The server's last renewal before the command was stopped: its lease ran until a ttl
    // later, and the command had been told to stop well before that.
    let log = server.log();
    let last_renewal = log
        .lines()
        .filter(|l| (l.contains(" renewed") || l.contains(" acquired")) && l.contains("laptop"))
        .filter_map(log_time)
        .filter(|t| *t < term_seen)
        .max()
        .unwrap_or_else(|| panic!("no renewal in the log:\n{log}"));
    let lease_end = last_renewal + ttl;
    let margin = lease_end.duration_since(term_seen).unwrap_or_else(|e| {
        panic!(
            "the command was stopped {:?} after the lease ended",
            e.duration()
        )
    });
    eprintln!("the command was stopped {margin:?} before the lease ended");
    assert!(
        margin >= SECOND,
        "stopped only {margin:?} before the lease ended"
    );
}

/// Someone frees `job` under `client`'s id and `thief` takes it, while the renewals of the
/// `foolock lock` behind `proxy` are held: one landing in between would take the free job
/// back, and the thief would be refused.
fn steal(server: &Server, proxy: &Proxy, job: &str, client: &str, thief: &str) {
    proxy.hold("POST");
    assert_eq!(server.run(&["release", job, "--client", client]).0, 0);
    assert_eq!(
        server
            .run(&["acquire", job, "--client", thief, "--ttl", "60s"])
            .0,
        0
    );
}

#[test]
fn lost_lock_when_a_renewal_is_refused_stops_the_command_and_exits_75() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    let dir = server.dir().to_owned();
    let script = trapping_script(&dir, 9);
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &[
            "job", "--ttl", "3s", "--client", "laptop", "--", "sh", "-c", &script,
        ],
    );
    let (pid, grandchild) = started_pids(&dir);
    steal(&server, &proxy, "job", "laptop", "thief");
    proxy.let_through();
    let exit = wait_exit(&mut run, Duration::from_secs(15));
    let err = stderr_of(&mut run);
    assert_eq!(exit.code(), Some(75), "{err}");
    assert!(err.contains("lost the lock on job"), "{err}");
    assert!(err.contains("held by thief"), "{err}");
    assert!(dir.join("term").exists());
    assert!(eventually(2 * SECOND, || !alive(pid) && !alive(grandchild)));
    assert_eq!(
        server.status("job")["holder"],
        "thief",
        "the thief's lease is untouched"
    );
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_when_the_lock_is_lost() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    let dir = server.dir().to_owned();
    // SIGTERM stays ignored in `sleep` (exec keeps the disposition): only SIGKILL ends it.
    let script = format!(
        "trap '' TERM; echo $$ > {d}/pid.tmp; mv {d}/pid.tmp {d}/pid; exec sleep 60",
        d = dir.display()
    );
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &[
            "job", "--ttl", "3s", "--client", "laptop", "--", "sh", "-c", &script,
        ],
    );
    assert!(
        eventually(Duration::from_secs(10), || dir.join("pid").exists()),
        "the command did not start"
    );
    let pid = read_pid(&dir.join("pid")).expect("pid");
    steal(&server, &proxy, "job", "laptop", "thief");
    proxy.let_through();
    let exit = wait_exit(&mut run, Duration::from_secs(15));
    let err = stderr_of(&mut run);
    assert_eq!(exit.code(), Some(75), "{err}");
    assert!(err.contains("it ended by SIGKILL"), "{err}");
    assert!(!alive(pid), "the command outlived the lock");
}

/// A command that writes which of SIGINT, SIGHUP or SIGTERM it got to `dir/got` and exits
/// with 5, 6 or 7; it writes `dir/ready` once its traps are set.
fn reporting_script(dir: &std::path::Path) -> String {
    format!(
        "trap 'echo INT > {d}/got; exit 5' INT; trap 'echo HUP > {d}/got; exit 6' HUP; \
         trap 'echo TERM > {d}/got; exit 7' TERM; touch {d}/ready; \
         while :; do sleep 0.1; done",
        d = dir.display()
    )
}

#[test]
fn sigint_and_sighup_are_passed_on_to_the_command_as_themselves() {
    let server = Server::start(&[]);
    for (signo, name, code) in [(libc::SIGINT, "INT", 5), (libc::SIGHUP, "HUP", 6)] {
        let dir = tempfile::tempdir().unwrap();
        let script = reporting_script(dir.path());
        let mut run = spawn_lock(
            &server,
            &["job", "--client", "laptop", "--", "sh", "-c", &script],
        );
        assert!(
            eventually(Duration::from_secs(10), || dir
                .path()
                .join("ready")
                .exists()),
            "the command did not start"
        );
        // To foolock only: the command runs in a process group of its own.
        signal(run.id() as libc::pid_t, signo);
        let exit = wait_exit(&mut run, Duration::from_secs(10));
        assert_eq!(exit.code(), Some(code), "{name}: {}", stderr_of(&mut run));
        let got = std::fs::read_to_string(dir.path().join("got")).unwrap_or_default();
        assert_eq!(got.trim(), name);
        assert_eq!(server.status("job")["holder"], "", "released after {name}");
    }
}

#[test]
fn lock_refuses_to_run_alongside_a_lock_under_the_same_client_id() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "laptop"]).0, 0);
    let token = server.status("job")["token"].clone();
    let (code, _, err) = server.run(&["lock", "job", "--client", "laptop", "--", "true"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("`foolock release job --client laptop`"),
        "{err}"
    );
    let after = server.status("job");
    assert_eq!(after["holder"], "laptop", "not released");
    assert_eq!(after["token"], token, "not taken over");
}

#[test]
fn missing_command_exits_127_and_releases() {
    let server = Server::start(&[]);
    let (code, _, err) = server.run(&["lock", "job", "--", "/nonexistent/command"]);
    assert_eq!(code, 127, "{err}");
    assert_eq!(server.status("job")["holder"], "");
}

/// How many renewals by `client` the server has logged (it logs them at debug level).
fn renewals(server: &Server, client: &str) -> usize {
    let holder = format!("holder=\"{client}\"");
    server
        .log()
        .lines()
        .filter(|l| l.contains(" renewed") && l.contains(&holder))
        .count()
}

#[test]
fn a_short_outage_is_ridden_out_by_retrying_the_renewal() {
    let server = Server::builder().rust_log("foolock=debug").start();
    let proxy = Proxy::start(server.addr);
    // The command runs until the test says so.
    let dir = server.dir().to_owned();
    let script = format!(
        "touch {d}/started; while [ ! -e {d}/go ]; do sleep 0.1; done; exit 4",
        d = dir.display()
    );
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &[
            "job", "--ttl", "10s", "--client", "laptop", "--", "sh", "-c", &script,
        ],
    );
    assert!(
        eventually(Duration::from_secs(20), || dir.join("started").exists()),
        "the command did not start"
    );
    // The server cannot be reached: renewals fail at once. Two failures mean the first was
    // retried; the lease (10 s) is far from its end.
    proxy.refuse("POST");
    let ended = |run: &mut std::process::Child| run.try_wait().unwrap().is_some();
    eventually(Duration::from_secs(20), || {
        proxy.refused() >= 2 || ended(&mut run)
    });
    assert!(
        proxy.refused() >= 2 && !ended(&mut run),
        "the failed renewal was not retried: {}",
        stderr_of(&mut run)
    );
    let before = renewals(&server, "laptop");
    proxy.answer();
    assert!(
        eventually(Duration::from_secs(20), || renewals(&server, "laptop")
            > before),
        "no renewal after the outage: {}",
        server.log()
    );
    assert!(run.try_wait().unwrap().is_none(), "{}", stderr_of(&mut run));
    std::fs::write(dir.join("go"), b"").unwrap();
    let exit = wait_exit(&mut run, Duration::from_secs(20));
    assert_eq!(exit.code(), Some(4), "{}", stderr_of(&mut run));
    assert_eq!(server.status("job")["holder"], "");
}

// Regression tests from the client review (H1, M2, M3, L3).

#[test]
fn h1_wait_ending_during_a_503_pause_does_not_panic() {
    // The server is full, so the wait gets 503s; after the one-second pause less than the
    // 200 ms retry floor is left, which used to panic in `clamp`.
    let server = Server::start(&["--max-jobs", "1"]);
    assert_eq!(
        server
            .run(&["acquire", "a", "--client", "nas", "--ttl", "60s"])
            .0,
        0
    );
    let marker = server.dir().join("ran");
    for wait in ["1100ms", "1150ms"] {
        let (code, _, err) = server.run(&[
            "lock",
            "b",
            "--wait",
            wait,
            "--client",
            "laptop",
            "--",
            "touch",
            path_str(&marker),
        ]);
        assert!(!err.contains("panicked"), "--wait {wait}: {err}");
        assert_eq!(code, 3, "--wait {wait}: the server refused service: {err}");
    }
    assert!(!marker.exists());
}

#[test]
fn m2_lock_lost_between_renewals_exits_75_even_if_the_command_finished() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    // The command runs until the test says so, and the renewals are held meanwhile: nothing
    // can notice the loss but the final release.
    let go = server.dir().join("go");
    let script = format!("while [ ! -e {} ]; do sleep 0.1; done", path_str(&go));
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &["j", "--client", "x", "--", "sh", "-c", &script],
    );
    assert!(eventually(
        Duration::from_secs(10),
        || server.status("j")["holder"] == "x"
    ));
    steal(&server, &proxy, "j", "x", "y");
    std::fs::write(&go, b"").unwrap();
    let exit = wait_exit(&mut run, Duration::from_secs(15));
    let err = stderr_of(&mut run);
    assert_eq!(exit.code(), Some(75), "{err}");
    assert!(err.contains("lost the lock on j"), "{err}");
    assert!(err.contains("when the command finished"), "{err}");
    assert_eq!(server.status("j")["holder"], "y", "y's lease is untouched");
}

#[test]
fn m3_signal_after_the_server_granted_a_waiting_lock_releases_it() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let marker = server.dir().join("ran");
    // The command ignores SIGINT, so had it been started at all, the marker would exist.
    let script = format!("trap '' INT; touch {}", path_str(&marker));
    let mut run = spawn_lock(
        &server,
        &[
            "job", "--wait", "60s", "--client", "laptop", "--", "sh", "-c", &script,
        ],
    );
    assert!(eventually(Duration::from_secs(20), || server.status("job")
        ["waiting"]
        == 1));
    // Freeze the waiting CLI, let the server grant it the job (the reply sits unread in its
    // socket), then interrupt it: the grant and the signal arrive together.
    let pid = run.id() as libc::pid_t;
    signal(pid, libc::SIGSTOP);
    assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
    let holder = || server.status("job")["holder"].clone();
    assert!(eventually(Duration::from_secs(10), || holder() == "laptop"));
    signal(pid, libc::SIGINT);
    signal(pid, libc::SIGCONT);
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", stderr_of(&mut run));
    assert_eq!(
        server.status("job")["holder"],
        "",
        "the unused grant was given back, not left for ttl + grace"
    );
    assert!(!marker.exists());
}

#[test]
fn interrupted_run_under_a_busy_client_id_leaves_the_other_runs_lease_alone() {
    // Two runs share the client id "x" (the default id is the hostname, so cron jobs on one
    // machine do). The second is interrupted while its request is outstanding: it must not
    // give back the first run's lease, which the server cannot tell from its own.
    let server = Server::start(&[]);
    let mut first = spawn_lock(&server, &["job", "--client", "x", "--", "sleep", "30"]);
    assert!(eventually(Duration::from_secs(10), || server.status("job")
        ["holder"]
        == "x"));
    let token = server.status("job")["token"].clone();

    let proxy = Proxy::start(server.addr);
    proxy.hold("GET");
    let mut second = spawn_lock_at(&server, &proxy.url, &["job", "--client", "x", "--", "true"]);
    // Interrupt it once its first request is out (its signal handlers are set up by then).
    assert!(
        eventually(Duration::from_secs(20), || proxy.held() == 1),
        "the second run sent no request"
    );
    signal(second.id() as libc::pid_t, libc::SIGINT);
    let status = wait_exit(&mut second, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", stderr_of(&mut second));
    proxy.let_through();

    let after = server.status("job");
    assert_eq!(after["holder"], "x");
    assert_eq!(
        after["token"], token,
        "the first run's lease was not released"
    );
    assert!(alive(first.id() as libc::pid_t), "the first run goes on");
    signal(first.id() as libc::pid_t, libc::SIGTERM);
    wait_exit(&mut first, Duration::from_secs(10));
}

#[test]
fn an_interrupted_request_gives_back_only_a_lease_granted_after_it_was_sent() {
    // A lease under our id that existed before our request (left by a run that was killed)
    // is not ours to give back, though its holder name is ours: its token is not above the
    // newest token from before the request.
    let server = Server::start(&["--grace-period", "1s"]);
    // Another grant first, so that lease's token is not the server's first (the check must
    // read the newest token, not assume one).
    assert_eq!(server.run(&["acquire", "other", "--client", "y"]).0, 0);
    assert_eq!(
        server
            .run(&["acquire", "job", "--client", "x", "--ttl", "1s"])
            .0,
        0
    );
    let token = server.status("job")["token"].clone();
    assert_eq!(token, 2);
    // Expired, so the new run's check before asking does not refuse it.
    assert!(eventually(Duration::from_secs(10), || server.status("job")
        ["state"]
        == "expired"));

    let proxy = Proxy::start(server.addr);
    proxy.hold("POST");
    let marker = server.dir().join("ran");
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &["job", "--client", "x", "--", "touch", path_str(&marker)],
    );
    assert!(
        eventually(Duration::from_secs(20), || proxy.held() == 1),
        "the run never asked for the job"
    );
    signal(run.id() as libc::pid_t, libc::SIGINT);
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", stderr_of(&mut run));

    // It looked (the status check after the interrupted request), and left the lease alone.
    let seen = proxy.seen();
    let asked = seen.iter().position(|r| r.method == "POST").unwrap();
    assert!(
        seen[asked..].iter().any(|r| r.method == "GET"),
        "no check of the lease after the interrupted request: {seen:?}"
    );
    assert!(
        !seen.iter().any(|r| r.method == "DELETE"),
        "released a lease it was not granted: {seen:?}"
    );
    let after = server.status("job");
    assert_eq!(
        (after["holder"].clone(), after["token"].clone()),
        ("x".into(), token)
    );
    assert!(!marker.exists());
}

#[test]
fn l3_lock_refuses_a_ttl_below_one_second() {
    let server = Server::start(&[]);
    let marker = server.dir().join("ran");
    for ttl in ["500ms", "999ms", "1us"] {
        let (code, _, err) = server.run(&[
            "lock",
            "job",
            "--ttl",
            ttl,
            "--",
            "touch",
            path_str(&marker),
        ]);
        assert_eq!(code, 2, "--ttl {ttl}: {err}");
        assert!(err.contains("at least 1s"), "--ttl {ttl}: {err}");
    }
    assert!(!marker.exists());
    assert_eq!(server.status("job")["holder"], "");
}

// The lease keeper's schedule and its confirmation of a grant that arrived after a wait.

#[test]
fn lock_announces_a_wait_only_when_it_will_wait_for_a_taken_job() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "busy", "--client", "nas"]).0, 0);
    // -v prints what a terminal would see, and more.
    let lock = |job: &str, wait: &str| {
        server.run(&[
            "lock", job, "--client", "laptop", "-v", "--wait", wait, "--", "true",
        ])
    };
    let (code, _, err) = lock("busy", "0s");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("busy is held by nas"), "{err}");
    assert!(
        !err.contains("waiting up to") && !err.contains("gave up after waiting"),
        "no wait was asked for: {err}"
    );

    let (code, _, err) = lock("busy", "1s");
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("waiting up to 1s").count(), 1, "{err}");
    assert!(err.contains("gave up after waiting 1s"), "{err}");

    let (code, _, err) = lock("free", "10s");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("waiting"), "the job was free: {err}");
}

#[test]
fn a_lease_is_first_renewed_a_third_of_the_ttl_after_it_was_granted() {
    // With a 30 s ttl the first renewal is due 10 s after the grant: a command of 2 s sees
    // none, and one granted after a wait sees only the renewal that confirms its grant.
    let server = Server::builder().rust_log("foolock=debug").start();
    let ttl = ["--client", "laptop", "--ttl", "30s"];
    let (code, _, err) = server.run(&[&["lock", "now"], &ttl[..], &["--", "sleep", "2"]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(renewals(&server, "laptop"), 0, "{}", server.log());

    assert_eq!(server.run(&["acquire", "later", "--client", "nas"]).0, 0);
    let mut run = spawn_lock(
        &server,
        &[&["later", "--wait", "30s"], &ttl[..], &["--", "sleep", "2"]].concat(),
    );
    assert!(eventually(Duration::from_secs(20), || server
        .status("later")["waiting"]
        == 1));
    assert_eq!(server.run(&["release", "later", "--client", "nas"]).0, 0);
    let exit = wait_exit(&mut run, Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0), "{}", stderr_of(&mut run));
    assert_eq!(
        renewals(&server, "laptop"),
        1,
        "only the confirmation: {}",
        server.log()
    );
}

/// Lets the waiting `foolock lock` behind `proxy` be granted `job` (held by `holder`), and
/// holds its next request, the renewal that confirms the grant, at the proxy.
fn grant_and_hold_the_confirmation(server: &Server, proxy: &Proxy, job: &str, holder: &str) {
    assert!(eventually(
        Duration::from_secs(20),
        || server.status(job)["waiting"] == 1
    ));
    std::thread::scope(|s| {
        // Returns once the long-poll's reply (the grant) has passed the proxy.
        let holding = s.spawn(|| proxy.hold("POST"));
        assert_eq!(server.run(&["release", job, "--client", holder]).0, 0);
        holding.join().unwrap();
    });
    assert!(
        eventually(Duration::from_secs(20), || proxy.held() == 1),
        "the grant was not confirmed"
    );
}

#[test]
fn a_signal_while_a_grant_after_a_wait_is_confirmed_gives_the_lease_back() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let marker = server.dir().join("ran");
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &[
            "job",
            "--wait",
            "60s",
            "--client",
            "laptop",
            "--",
            "touch",
            path_str(&marker),
        ],
    );
    grant_and_hold_the_confirmation(&server, &proxy, "job", "nas");
    assert_eq!(server.status("job")["holder"], "laptop");
    signal(run.id() as libc::pid_t, libc::SIGINT);
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", stderr_of(&mut run));
    // Checked before the held confirmation goes through (it would take the job afresh).
    assert_eq!(
        server.status("job")["holder"],
        "",
        "the grant it will not use was given back"
    );
    assert!(!marker.exists());
}

#[test]
fn a_grant_after_a_wait_whose_confirmation_fails_runs_on_the_grants_own_time() {
    let server = Server::builder().rust_log("foolock=debug").start();
    let proxy = Proxy::start(server.addr);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let dir = server.dir().to_owned();
    let script = format!(
        "touch {d}/started; while [ ! -e {d}/go ]; do sleep 0.1; done; exit 4",
        d = dir.display()
    );
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &[
            "job", "--wait", "60s", "--ttl", "10s", "--client", "laptop", "--", "sh", "-c", &script,
        ],
    );
    assert!(eventually(Duration::from_secs(20), || server.status("job")
        ["waiting"]
        == 1));
    // The long-poll is on its way; the renewals after it (the confirmation first) fail.
    proxy.refuse("POST");
    assert_eq!(server.run(&["release", "job", "--client", "nas"]).0, 0);
    let ended = |run: &mut Child| run.try_wait().unwrap().is_some();
    eventually(Duration::from_secs(20), || {
        (dir.join("started").exists() && proxy.refused() >= 2) || ended(&mut run)
    });
    assert!(
        dir.join("started").exists() && proxy.refused() >= 2 && !ended(&mut run),
        "the command should run on the grant's remaining time: {}",
        stderr_of(&mut run)
    );
    let before = renewals(&server, "laptop");
    proxy.answer();
    assert!(
        eventually(Duration::from_secs(20), || renewals(&server, "laptop")
            > before),
        "no renewal once the server answers again: {}",
        server.log()
    );
    std::fs::write(dir.join("go"), b"").unwrap();
    let exit = wait_exit(&mut run, Duration::from_secs(20));
    assert_eq!(exit.code(), Some(4), "{}", stderr_of(&mut run));
    assert_eq!(server.status("job")["holder"], "");
}

#[test]
fn a_confirmation_that_hangs_is_given_up_before_the_lease_could_end() {
    // With an 8 s ttl the command must be stopped (and the lease released) 1.6 s before the
    // lease ends: the confirmation is given up at that point, not after the usual 10 s
    // request timeout.
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &[
            "job", "--wait", "60s", "--ttl", "8s", "--client", "laptop", "--", "sleep", "60",
        ],
    );
    // The grant comes after this instant, so its lease ends more than 8 s after it.
    let before_grant = std::time::Instant::now();
    grant_and_hold_the_confirmation(&server, &proxy, "job", "nas");
    let exit = wait_exit(&mut run, Duration::from_secs(30));
    let took = before_grant.elapsed();
    let err = stderr_of(&mut run);
    assert_eq!(exit.code(), Some(75), "{err}");
    assert!(
        took < Duration::from_secs(8),
        "gave the lease up {took:?} after it was granted, past its 8 s: {err}"
    );
}

#[test]
fn a_final_release_that_meets_a_server_error_is_retried_a_second_later() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    let dir = server.dir().to_owned();
    let script = format!(
        "touch {d}/started; while [ ! -e {d}/go ]; do sleep 0.1; done; exit 3",
        d = dir.display()
    );
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &["job", "--client", "laptop", "--", "sh", "-c", &script],
    );
    assert!(
        eventually(Duration::from_secs(20), || dir.join("started").exists()),
        "the command did not start"
    );
    // The first release gets a 503: not a refusal, so it is tried again.
    proxy.fail("DELETE", 503, 1);
    std::fs::write(dir.join("go"), b"").unwrap();
    let exit = wait_exit(&mut run, Duration::from_secs(20));
    assert_eq!(
        exit.code(),
        Some(3),
        "the command's own code: {}",
        stderr_of(&mut run)
    );
    assert_eq!(server.status("job")["holder"], "", "released on the retry");
    let deletes: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.at)
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    // Sleeping a second lets a server that is restarting come back; the test only checks
    // that the pause is there (it can only come out longer on a slow machine).
    assert!(
        deletes[1] - deletes[0] >= Duration::from_millis(900),
        "retried after {:?}",
        deletes[1] - deletes[0]
    );
}

#[test]
fn a_final_release_the_server_refuses_is_reported_and_not_retried() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.addr);
    proxy.fail("DELETE", 400, 1);
    let mut run = spawn_lock_at(
        &server,
        &proxy.url,
        &["job", "--client", "laptop", "--", "sh", "-c", "exit 3"],
    );
    let exit = wait_exit(&mut run, Duration::from_secs(20));
    let err = stderr_of(&mut run);
    assert_eq!(exit.code(), Some(3), "the command's own code: {err}");
    assert!(
        err.contains("releasing job as laptop was refused (HTTP 400"),
        "{err}"
    );
    let deletes = proxy.seen().iter().filter(|r| r.method == "DELETE").count();
    assert_eq!(deletes, 1, "a refusal is final");
}

#[test]
fn what_the_command_leaves_running_gets_sigterm_then_sigkill_after_the_grace() {
    // The command starts two processes in its group and exits once both have set their
    // traps: one ends on SIGTERM (noting it), one ignores it. With a 30 s ttl the grace
    // between the two signals is 3 s.
    let server = Server::start(&[]);
    let dir = server.dir().to_owned();
    let script = format!(
        "(trap 'touch {d}/term; exit' TERM; touch {d}/polite.ready; sleep 60 & wait) & \
         echo $! > {d}/polite; \
         (trap '' TERM; touch {d}/stubborn.ready; exec sleep 60) & echo $! > {d}/stubborn; \
         while [ ! -e {d}/polite.ready ] || [ ! -e {d}/stubborn.ready ]; do sleep 0.1; done; \
         touch {d}/started",
        d = dir.display()
    );
    let mut run = spawn_lock(
        &server,
        &[
            "job", "--ttl", "30s", "--client", "laptop", "--", "sh", "-c", &script,
        ],
    );
    assert!(
        eventually(Duration::from_secs(10), || dir.join("started").exists()),
        "the command did not start"
    );
    // `started` was written before the command exited, so before the leftovers' SIGTERM: the
    // time from it to the run's end can only come out longer than the grace, however slowly
    // this test notices either.
    let ended = std::fs::metadata(dir.join("started"))
        .and_then(|m| m.modified())
        .expect("mtime");
    let polite = read_pid(&dir.join("polite")).expect("pid");
    let stubborn = read_pid(&dir.join("stubborn")).expect("pid");
    let status = wait_exit(&mut run, Duration::from_secs(20));
    let waited = ended.elapsed().unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&mut run));
    assert!(dir.join("term").exists(), "the leftover got SIGTERM first");
    assert!(
        eventually(2 * SECOND, || !alive(polite) && !alive(stubborn)),
        "leftovers outlived the lock"
    );
    assert!(
        waited >= 2 * SECOND,
        "SIGKILL came {waited:?} after the command ended, not after the 3 s grace"
    );
    assert_eq!(server.status("job")["holder"], "", "released");
}

#[test]
fn with_nothing_left_behind_lock_ends_as_soon_as_the_command_does() {
    // A 50 s ttl has a 5 s grace for leftovers: waiting it out with none would show.
    let server = Server::start(&[]);
    let started = std::time::Instant::now();
    let (code, _, err) = server.run(&[
        "lock", "job", "--ttl", "50s", "--client", "laptop", "--", "true",
    ]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(took < 4 * SECOND, "took {took:?}");
}

#[test]
fn sigterm_and_sighup_while_waiting_are_named_and_exit_128_plus_their_number() {
    let server = Server::start(&[]);
    assert_eq!(server.run(&["acquire", "job", "--client", "nas"]).0, 0);
    for (signo, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let mut run = spawn_lock(
            &server,
            &["job", "--wait", "60s", "--client", "laptop", "--", "true"],
        );
        assert!(eventually(Duration::from_secs(20), || server.status("job")
            ["waiting"]
            == 1));
        signal(run.id() as libc::pid_t, signo);
        let status = wait_exit(&mut run, Duration::from_secs(10));
        let err = stderr_of(&mut run);
        assert_eq!(status.code(), Some(128 + signo), "{err}");
        assert!(
            err.contains(&format!("{name} while waiting for job")),
            "{err}"
        );
        assert!(eventually(Duration::from_secs(10), || server.status("job")
            ["waiting"]
            == 0));
    }
}

// On a terminal (`script` gives the run a pseudo-terminal), stdin, and a second Ctrl-C.

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

// Runs under one client id: what a killed run left behind, and runs taking turns.

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
