//! The state file against the real binary: what survives a clean stop, and how an unusable
//! file or directory is handled (moved aside + quarantine, or a clear startup error).

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Server, eventually};

/// Short ttl and grace so a quarantine is seconds long: 2 s + 1 s when nothing better is known.
const SHORT: &[&str] = &["--default-ttl", "2s", "--grace-period", "1s"];

fn corrupt_files(dir: &Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        })
        .collect()
}

#[test]
fn holders_and_tokens_survive_a_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut server = Server::builder().state_dir(&state).start();
    let a = server.post("client=a&job=backup&ttl=1m");
    assert_eq!(a.status, 200);
    let b = server.post("client=b&job=sync&ttl=1m");
    server.terminate();
    assert!(server.log().contains("saved final state"));

    let server = Server::builder().state_dir(&state).start();
    let again = server.post("client=a&job=backup&ttl=1m");
    assert_eq!((again.status, again.message()), (200, "renewed"));
    assert_eq!(again.token(), a.token());
    assert_eq!(server.post("client=c&job=sync").status, 409);
    let fresh = server.post("client=c&job=new");
    assert!(fresh.token() > b.token(), "tokens never go backwards");
}

#[test]
fn corrupt_state_file_is_moved_aside_and_grants_wait_for_the_quarantine() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("state.json"), b"{ this is not json").unwrap();

    let started = Instant::now();
    let server = Server::builder().state_dir(&state).args(SHORT).start();
    let moved = corrupt_files(&state);
    assert_eq!(moved.len(), 1, "moved aside with a timestamped name");
    assert_eq!(fs::read(&moved[0]).unwrap(), b"{ this is not json");
    let log = server.log();
    assert!(
        log.contains("saved state is unusable") && log.contains("state.json.corrupt-"),
        "clear log line naming the moved file:\n{log}"
    );

    // A new client and a "holder" the server cannot know about are both refused, and told
    // when to come back, in the body and in a Retry-After header (whole seconds, rounded up).
    for query in ["client=new&job=j", "client=old-holder&job=j&ttl=1s"] {
        let r = server.post(query);
        assert_eq!(r.status, 503, "{query}: {:?}", r.body);
        let error = r.body["error"].as_str().unwrap();
        assert!(error.contains("lost its saved state"), "{error}");
        let retry_ms = r.body["retry_after_ms"].as_u64().unwrap();
        assert!(retry_ms <= 3000, "{retry_ms}");
        let header: u64 = r
            .header("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After header: {r:?}"))
            .parse()
            .expect("Retry-After in seconds");
        assert_eq!(header, retry_ms.div_ceil(1000).max(1), "{r:?}");
    }
    // Quarantine is default_ttl + grace = 3 s (no watermarks survived): granted after it.
    assert!(eventually(Duration::from_secs(10), || server
        .post("client=new&job=j")
        .status
        == 200));
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[test]
fn quarantine_survives_a_crash_during_it() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("state.json"), b"\0\0\0garbage").unwrap();
    // A minute: long enough that the restart surely falls inside it, on any machine.
    let quarantine = &["--default-ttl", "59s", "--grace-period", "1s"];
    let mut server = Server::builder().state_dir(&state).args(quarantine).start();
    let before = server.post("client=a&job=j");
    let asked = Instant::now();
    assert_eq!(before.status, 503);
    let left_before = before.body["retry_after_ms"].as_u64().unwrap();
    assert!(left_before > 50_000, "{before:?}");
    server.kill();

    // The quarantine was saved before serving: a restart neither ends it early nor makes it
    // longer than it was.
    let server = Server::builder().state_dir(&state).args(quarantine).start();
    let after = server.post("client=a&job=j");
    assert_eq!(after.status, 503, "{after:?}");
    let left_after = after.body["retry_after_ms"].as_u64().unwrap();
    let between = asked.elapsed().as_millis() as u64;
    // One second of slack: the saved end is in wall-clock milliseconds.
    assert!(
        left_after + between + 1000 >= left_before,
        "cut short: {left_before} ms left before, {left_after} ms {between} ms later"
    );
    assert!(
        left_after <= left_before + 1000,
        "made longer: {left_before} ms left before, {left_after} ms {between} ms later"
    );
}

#[test]
fn truncated_state_file_quarantines_for_the_longest_saved_ttl_and_keeps_tokens_rising() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut server = Server::builder().state_dir(&state).args(SHORT).start();
    // A lease longer than default_ttl: the quarantine must outlast it, not just the default.
    let long = server.post("client=a&job=long&ttl=6s");
    assert_eq!(long.status, 200);
    server.kill();

    let file = state.join("state.json");
    let full = fs::read(&file).unwrap();
    fs::write(&file, &full[..full.len() / 2]).unwrap();
    let started = Instant::now();
    let server = Server::builder().state_dir(&state).args(SHORT).start();
    assert_eq!(corrupt_files(&state).len(), 1);
    assert_eq!(server.post("client=b&job=long").status, 503);
    // The watermark's 6 s + 1 s grace, not default_ttl + grace (3 s).
    let log = server.log();
    assert!(log.contains("refusing new grants for 7s"), "{log}");
    let mut granted = None;
    assert!(eventually(Duration::from_secs(10), || {
        let r = server.post("client=b&job=long");
        let ok = r.status == 200;
        granted = ok.then_some(r);
        ok
    }));
    assert!(started.elapsed() >= Duration::from_secs(7));
    let token = granted.unwrap().token();
    assert!(
        token > long.token(),
        "token {token} must exceed {} though the file that held it was lost",
        long.token()
    );
}

#[test]
fn empty_state_file_counts_as_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("state.json"), b"").unwrap();
    let server = Server::builder().state_dir(&state).args(SHORT).start();
    assert_eq!(corrupt_files(&state).len(), 1);
    assert_eq!(server.post("client=a&job=j").status, 503);
}

#[test]
fn state_dir_under_a_regular_file_is_a_clear_startup_error() {
    // chmod cannot make a directory read-only for root (CI runs as root), but nobody can
    // create a directory inside a regular file (ENOTDIR).
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    let dir = file.join("state");
    let Err((code, stderr)) = Server::builder().state_dir(&dir).try_start() else {
        panic!("server started with an unusable state directory");
    };
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("cannot create state directory") && stderr.contains("plain-file"),
        "{stderr}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn existing_state_dir_that_refuses_writes_is_a_clear_startup_error() {
    // /proc/self is a directory in which even root cannot create files: a read-only
    // directory that works whoever runs the tests.
    let Err((code, stderr)) = Server::builder()
        .state_dir(Path::new("/proc/self"))
        .try_start()
    else {
        panic!("server started with a read-only state directory");
    };
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("state directory /proc/self is not writable"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn read_only_state_dir_is_a_clear_startup_error_for_ordinary_users() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root ignores permission bits; the two tests above cover root.
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    let result = Server::builder().state_dir(&dir).try_start();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let Err((code, stderr)) = result else {
        panic!("server started with a read-only state directory");
    };
    assert_ne!(code, Some(0));
    assert!(stderr.contains("is not writable"), "{stderr}");
}

fn saved_ttl_ms(state: &Path, job: &str) -> Option<u64> {
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(state.join("state.json")).ok()?).ok()?;
    saved["leases"]
        .as_array()?
        .iter()
        .find(|l| l["job"] == job)?["ttl_ms"]
        .as_u64()
}

#[test]
fn renewal_with_a_longer_ttl_is_saved_before_its_reply() {
    // The restore rule holds a lease for its *saved* ttl after a restart, so a longer ttl
    // must reach the disk before the holder is told.
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let server = Server::builder().state_dir(&state).start();
    assert_eq!(server.post("client=a&job=j&ttl=10s").status, 200);
    assert_eq!(saved_ttl_ms(&state, "j"), Some(10_000));
    assert_eq!(server.post("client=a&job=j&ttl=10m").status, 200);
    assert_eq!(saved_ttl_ms(&state, "j"), Some(600_000));
}

#[test]
fn grants_and_releases_are_on_disk_when_replied_and_renewals_soon_after() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let server = Server::builder().state_dir(&state).start();
    let first = server.post("client=a&job=j&ttl=10s");
    let saved = |field: &str| -> Option<u64> {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(state.join("state.json")).ok()?).ok()?;
        v["leases"].as_array()?.first()?[field].as_u64()
    };
    assert_eq!(saved("token"), Some(first.token()));
    let expiry = saved("expires_at_ms").unwrap();
    // A renewal (same ttl) may be written lazily, but within about a second.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(server.post("client=a&job=j&ttl=10s").status, 200);
    assert!(eventually(Duration::from_secs(3), || saved(
        "expires_at_ms"
    )
    .is_some_and(|e| e > expiry)));
    assert_eq!(server.delete("client=a&job=j").status, 200);
    assert_eq!(saved("token"), None, "release saved before its reply");
}

#[test]
fn second_server_on_the_same_state_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _first = Server::builder().state_dir(&state).start();
    let Err((code, stderr)) = Server::builder().state_dir(&state).try_start() else {
        panic!("two servers share one state file");
    };
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("in use by another foolock server"),
        "{stderr}"
    );
}
