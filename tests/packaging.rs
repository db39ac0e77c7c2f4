//! The real `foolock` binary installing and uninstalling itself into a temp `HOME`: what it
//! writes, that a round trip leaves nothing behind, that the files pass `desktop-file-validate`
//! and `systemd-analyze verify --user`, and that a fake `systemctl` first on `PATH` sees exactly
//! the calls a headless install and uninstall should make (so no test needs a running systemd).
//!
//! Also the Homebrew cask's stanzas: what `brew upgrade` runs must keep the login item.
//!
//! Linux only: on macOS these would call the real `launchctl`. The macOS plan is tested as data
//! and against a `launchctl` double in `src/platform/launchd.rs`, its plist in
//! `src/platform/tests.rs`.
//!
//! A validator that is not installed skips its check with a printed note, unless
//! `FOOLOCK_REQUIRE_TOOLS` is set (CI sets it), which turns the skip into a failure.
#![cfg(target_os = "linux")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FOOLOCK: &str = env!("CARGO_BIN_EXE_foolock");

/// A scratch user: `home/` with `XDG_CONFIG_HOME` inside it (with a space, to exercise
/// quoting), and a `bin/` put first on `PATH` holding a fake `systemctl` that logs its arguments.
struct Scratch {
    tmp: tempfile::TempDir,
    home: PathBuf,
    config: PathBuf,
    bin: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let config = home.join("config dir");
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("systemctl");
        support::write_executable(
            &fake,
            "#!/bin/sh\n\
             echo \"$*\" >> \"$FOOLOCK_TEST_SYSTEMCTL_LOG\"\n\
             case \"$2\" in is-enabled) echo enabled ;; is-active) echo active ;; esac\n",
        );
        Scratch {
            tmp,
            home,
            config,
            bin,
        }
    }

    fn systemctl_log(&self) -> PathBuf {
        self.tmp.path().join("systemctl.log")
    }

    /// The `systemctl` calls made so far, one argument string each.
    fn systemctl_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.systemctl_log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn autostart_file(&self) -> PathBuf {
        self.config.join("autostart/foolock.desktop")
    }

    fn unit_file(&self) -> PathBuf {
        self.config.join("systemd/user/foolock.service")
    }

    /// Runs `program` (the real binary, or a copy of it) as this scratch user.
    fn run_program(&self, program: &Path, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new(program)
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("PATH", path)
            .env("FOOLOCK_TEST_SYSTEMCTL_LOG", self.systemctl_log())
            .env_remove("FOOLOCK_CONFIG")
            .output()
            .unwrap();
        eprintln!(
            "$ foolock {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs the binary and insists it succeeded; returns its stdout.
    fn foolock(&self, args: &[&str]) -> String {
        let output = self.run_program(Path::new(FOOLOCK), args);
        assert!(
            output.status.success(),
            "foolock {args:?} failed: {output:?}"
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Every regular file under `home/`.
    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let mut found = vec![];
        walk(&self.home, &mut found);
        found
    }
}

fn canonical_foolock() -> String {
    std::fs::canonicalize(FOOLOCK)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// Whether a missing validator must fail the test rather than skip its check.
fn tools_required() -> bool {
    std::env::var_os("FOOLOCK_REQUIRE_TOOLS").is_some()
}

fn skip(what: &str, why: &str) {
    assert!(
        !tools_required(),
        "{what} is required (FOOLOCK_REQUIRE_TOOLS is set) but {why}"
    );
    println!("note: skipping the {what} check: {why}");
}

/// Runs `desktop-file-validate`, which must accept the file without a single warning.
fn assert_desktop_file_valid(file: &Path) {
    let output = match Command::new("desktop-file-validate").arg(file).output() {
        Ok(output) => output,
        Err(e) => {
            return skip(
                "desktop-file-validate",
                &format!("it cannot run ({e}); apt install desktop-file-utils"),
            );
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "desktop-file-validate {}:\n{said}",
        file.display()
    );
}

/// Runs `systemd-analyze verify --user`, which must accept the unit without a warning. A
/// throwaway `XDG_RUNTIME_DIR` lets it start its user manager where no session exists (CI).
fn assert_unit_verifies(unit: &Path) {
    let runtime = tempfile::tempdir().unwrap();
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let verify = |file: &Path| {
        Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(file)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .output()
    };
    // First a unit that is certainly fine: if even that fails, this machine cannot verify.
    let known_good = runtime.path().join("foolock-known-good.service");
    std::fs::write(&known_good, "[Service]\nExecStart=/bin/true\n").unwrap();
    match verify(&known_good) {
        Err(e) => {
            return skip(
                "systemd-analyze",
                &format!("it cannot run ({e}); apt install systemd"),
            );
        }
        Ok(out) if !out.status.success() => {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return skip(
                "systemd-analyze",
                &format!("it cannot verify even a trivial unit here: {why}"),
            );
        }
        Ok(_) => {}
    }
    let output = verify(unit).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("foolock.service"),
        "systemd-analyze verify --user {}:\n{stderr}",
        unit.display()
    );
}

#[test]
fn install_dry_run_prints_the_autostart_entry_and_writes_nothing() {
    let s = Scratch::new();
    let out = s.foolock(&["install", "--dry-run"]);
    assert!(
        out.contains(&format!("would write {}:", s.autostart_file().display())),
        "{out}"
    );
    assert!(out.contains("    [Desktop Entry]"), "{out}");
    assert!(
        out.contains(&format!("    Exec={}", canonical_foolock())),
        "{out}"
    );
    assert_eq!(s.files(), Vec::<PathBuf>::new());
    assert!(!s.config.exists());
}

#[test]
fn headless_dry_run_prints_the_unit_and_the_systemctl_calls_without_making_them() {
    let s = Scratch::new();
    let out = s.foolock(&["install", "--headless", "--dry-run"]);
    assert!(
        out.contains(&format!("would write {}:", s.unit_file().display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("    ExecStart={} serve", canonical_foolock())),
        "{out}"
    );
    assert!(
        out.contains("would run: systemctl --user daemon-reload"),
        "{out}"
    );
    assert!(
        out.contains("would run: systemctl --user enable --now foolock.service"),
        "{out}"
    );
    assert_eq!(s.systemctl_calls(), Vec::<String>::new());
    assert_eq!(s.files(), Vec::<PathBuf>::new());
}

#[test]
fn login_item_install_uninstall_round_trip_leaves_no_file_behind() {
    let s = Scratch::new();
    let out = s.foolock(&["install"]);
    assert!(
        out.contains(&format!("wrote {}", s.autostart_file().display())),
        "{out}"
    );
    assert_eq!(s.files(), [s.autostart_file()]);
    assert_desktop_file_valid(&s.autostart_file());

    let status = s.foolock(&["install", "--status"]);
    assert!(
        status.contains("login item (XDG autostart): installed\n"),
        "{status}"
    );
    assert!(
        status.contains("headless service (systemd user unit): not installed"),
        "{status}"
    );

    let again = s.foolock(&["install"]);
    assert!(again.contains("is already up to date"), "{again}");

    let out = s.foolock(&["uninstall"]);
    assert!(
        out.contains(&format!("removed {}", s.autostart_file().display())),
        "{out}"
    );
    assert_eq!(s.files(), Vec::<PathBuf>::new());
    let status = s.foolock(&["install", "--status"]);
    assert!(
        status.contains("login item (XDG autostart): not installed"),
        "{status}"
    );

    let again = s.foolock(&["uninstall"]);
    assert!(
        again.contains("not installed; nothing to remove"),
        "{again}"
    );
    assert_eq!(
        s.systemctl_calls(),
        Vec::<String>::new(),
        "the login item never needs systemctl"
    );
}

#[test]
fn headless_round_trip_makes_exactly_the_expected_systemctl_calls() {
    let s = Scratch::new();
    s.foolock(&["install", "--headless"]);
    assert_eq!(s.files(), [s.unit_file()]);
    assert_eq!(
        s.systemctl_calls(),
        [
            "--user daemon-reload",
            "--user enable --now foolock.service"
        ]
    );
    assert_unit_verifies(&s.unit_file());

    let status = s.foolock(&["install", "--status"]);
    assert!(
        status.contains("headless service (systemd user unit): installed\n"),
        "{status}"
    );
    assert!(status.contains("systemd: enabled, active"), "{status}");

    // Unchanged unit: no restart, just the idempotent reload and enable.
    s.foolock(&["install", "--headless"]);
    assert_eq!(s.systemctl_calls().len(), 4 + 2);

    s.foolock(&["uninstall", "--headless"]);
    assert_eq!(
        s.systemctl_calls()[6..],
        [
            "--user disable --now foolock.service",
            "--user daemon-reload"
        ]
    );
    assert_eq!(s.files(), Vec::<PathBuf>::new());
}

#[test]
fn login_item_and_headless_service_refuse_each_other_with_a_way_out() {
    let s = Scratch::new();
    s.foolock(&["install", "--headless"]);
    let refused = s.run_program(Path::new(FOOLOCK), &["install"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("foolock uninstall --headless"), "{err}");
    assert_eq!(s.files(), [s.unit_file()]);
}

#[test]
fn a_binary_under_a_path_with_spaces_and_percent_gets_files_the_validators_accept() {
    let s = Scratch::new();
    let dir = s.tmp.path().join("my apps 100%");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("foolock");
    support::copy_executable(Path::new(FOOLOCK), &copy);

    let out = s.run_program(&copy, &["install"]);
    assert!(out.status.success(), "{out:?}");
    let entry = std::fs::read_to_string(s.autostart_file()).unwrap();
    assert!(
        entry.contains(&format!(
            "\nExec=\"{}\" --autostart\n",
            copy.display().to_string().replace('%', "%%")
        )),
        "{entry}"
    );
    assert_desktop_file_valid(&s.autostart_file());
    assert!(s.run_program(&copy, &["uninstall"]).status.success());

    let out = s.run_program(&copy, &["install", "--headless"]);
    assert!(out.status.success(), "{out:?}");
    let unit = std::fs::read_to_string(s.unit_file()).unwrap();
    assert!(
        unit.contains(&format!(
            "\nExecStart=\"{}\" serve\n",
            copy.display().to_string().replace('%', "%%")
        )),
        "{unit}"
    );
    assert_unit_verifies(&s.unit_file());
}

#[test]
fn checked_in_desktop_entry_passes_desktop_file_validate() {
    assert_desktop_file_valid(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/linux/foolock.desktop"),
    );
}

// ---------------------------------------------------------------------------------------------
// The Homebrew cask. Homebrew runs a cask's `uninstall` directives and flight blocks on every
// `brew upgrade` and `brew reinstall` too, skipping only `signal:` (its
// cask/artifact/uninstall.rb), so anything in them that stops or removes the login item would
// do so on each upgrade. These tests read the cask's stanzas as Homebrew's DSL groups them.

/// The cask template, as checked in.
fn cask() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/macos/foolock.rb"),
    )
    .unwrap()
}

/// The text of every top-level stanza of the cask named `name` (e.g. `uninstall`, `postflight`):
/// its first line and the lines indented under it, up to the next stanza.
fn stanzas(cask: &str, name: &str) -> Vec<String> {
    let mut found = vec![];
    let mut current: Option<String> = None;
    for line in cask.lines() {
        let top_level = line.starts_with("  ") && !line.starts_with("   ");
        if top_level || line.starts_with("end") {
            found.extend(current.take());
            let word = line.trim_start().split([' ', '(']).next().unwrap_or("");
            if top_level && word == name {
                current = Some(String::new());
            }
        }
        if let Some(text) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    found.extend(current);
    found
}

fn label() -> &'static str {
    foolock::platform::BUNDLE_ID
}

#[test]
fn cask_uninstall_directives_leave_the_login_item_alone_on_upgrade() {
    let cask = cask();
    let uninstall = stanzas(&cask, "uninstall");
    assert_eq!(uninstall.len(), 1, "one uninstall stanza: {uninstall:?}");
    let uninstall = &uninstall[0];
    // Each of these runs on upgrade: launchctl removes the agent and deletes its plist; quit
    // stops it (and new Homebrew reopens it outside launchd); the others could delete files.
    for directive in [
        "launchctl:",
        "quit:",
        "early_script:",
        "script:",
        "delete:",
        "trash:",
        "login_item:",
    ] {
        assert!(
            !uninstall.contains(directive),
            "`uninstall {directive}` runs on every upgrade:\n{uninstall}"
        );
    }
    // The one directive Homebrew skips on upgrade: it stops the agent on a real uninstall.
    assert!(
        uninstall.contains(&format!(r#"signal: [["TERM", "{}"]]"#, label())),
        "{uninstall}"
    );
    // Flight blocks of the uninstall phase run on upgrade too.
    for block in ["uninstall_preflight", "uninstall_postflight"] {
        assert!(stanzas(&cask, block).is_empty(), "{block} runs on upgrade");
    }
}

#[test]
fn cask_postflight_restarts_an_installed_login_item_on_the_new_binary() {
    let cask = cask();
    let postflight = stanzas(&cask, "postflight");
    assert_eq!(postflight.len(), 1, "{postflight:?}");
    let postflight = &postflight[0];
    let plist = format!("~/Library/LaunchAgents/{}.plist", label());
    // Only when the user installed the login item; never installs one by itself.
    assert!(
        postflight.contains(&format!(r#"File.expand_path("{plist}")"#))
            && postflight.contains("if File.exist?(plist)"),
        "{postflight}"
    );
    assert!(
        postflight.contains(r#"domain = "gui/#{Process.uid}""#)
            && postflight.contains(&format!(r##"service = "#{{domain}}/{}""##, label())),
        "{postflight}"
    );
    // Loaded: kill the old binary's process and start the new one; not loaded: load it.
    assert!(
        postflight.contains(r#"args: ["kickstart", "-k", service]"#),
        "{postflight}"
    );
    assert!(
        postflight.contains(r#"args: ["bootstrap", domain, plist]"#),
        "{postflight}"
    );
    // A launchctl failure must not fail (and roll back) the whole upgrade.
    assert_eq!(
        postflight.matches("system_command").count(),
        postflight.matches("must_succeed: false").count(),
        "{postflight}"
    );
}

#[test]
fn cask_zap_removes_the_login_item() {
    let zap = stanzas(&cask(), "zap");
    assert_eq!(zap.len(), 1, "{zap:?}");
    let zap = &zap[0];
    assert!(
        zap.contains(&format!(r#"zap launchctl: "{}""#, label())),
        "{zap}"
    );
    assert!(
        zap.contains(&format!(r#""~/Library/LaunchAgents/{}.plist""#, label())),
        "{zap}"
    );
}

#[test]
fn stanza_reader_finds_blocks_and_multi_line_directives() {
    let text = "cask \"x\" do\n  app \"X.app\"\n\n  postflight do\n    a\n  end\n\n  zap trash: [\n        \"p\",\n      ]\nend\n";
    assert_eq!(stanzas(text, "postflight"), ["  postflight do\n    a\n"]);
    assert_eq!(
        stanzas(text, "zap"),
        ["  zap trash: [\n        \"p\",\n      ]\n"]
    );
    assert!(stanzas(text, "uninstall").is_empty());
}

/// The cask's `postflight` run by Ruby as Homebrew runs it (tests/doubles/cask-postflight.rb),
/// in a scratch `HOME`, against the launchd double (tests/doubles/launchctl). Returns the
/// launchctl calls it made and the double's answer to `print` afterwards.
struct Postflight {
    tmp: tempfile::TempDir,
}

impl Postflight {
    fn new() -> Postflight {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["bin", "state", "home/Library/LaunchAgents"] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        let double = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles/launchctl");
        let launchctl = tmp.path().join("bin/launchctl");
        support::copy_executable(&double, &launchctl);
        Postflight { tmp }
    }

    fn plist(&self) -> PathBuf {
        self.tmp
            .path()
            .join(format!("home/Library/LaunchAgents/{}.plist", label()))
    }

    fn launchctl(&self, args: &[&str]) -> Output {
        Command::new(self.tmp.path().join("bin/launchctl"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Writes the login item's plist, as `foolock install` would.
    fn install_login_item(&self) {
        let plist = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
             <key>Label</key><string>{}</string><key>ProgramArguments</key><array>\
             <string>/Applications/Foolock.app/Contents/MacOS/foolock</string></array>\
             </dict></plist>\n",
            label()
        );
        std::fs::write(self.plist(), plist).unwrap();
    }

    /// Runs the postflight; returns the launchctl calls it made.
    fn run(&self) -> Vec<String> {
        let log = self.tmp.path().join("state/calls.log");
        let _ = std::fs::remove_file(&log);
        let harness =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles/cask-postflight.rb");
        let cask = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/macos/foolock.rb");
        let output = Command::new("ruby")
            .arg(harness)
            .arg(cask)
            .arg(self.tmp.path().join("bin/launchctl"))
            .env("HOME", self.tmp.path().join("home"))
            .output()
            .unwrap();
        assert!(output.status.success(), "postflight failed: {output:?}");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn ruby_missing() -> bool {
    Command::new("ruby").arg("--version").output().is_err()
}

#[test]
fn cask_postflight_kickstarts_a_loaded_login_item_and_loads_an_unloaded_one() {
    if ruby_missing() {
        return skip("ruby", "it is not installed; apt install ruby");
    }
    let p = Postflight::new();
    p.install_login_item();
    let plist = p.plist().display().to_string();
    let (domain, service) = (
        format!("gui/{}", uid()),
        format!("gui/{}/{}", uid(), label()),
    );
    assert!(
        p.launchctl(&["bootstrap", &domain, &plist])
            .status
            .success()
    );
    assert_eq!(
        p.run(),
        [
            format!("print {service}"),
            format!("kickstart -k {service}")
        ]
    );

    // Not loaded (booted out by hand, say): the postflight loads it.
    assert!(p.launchctl(&["bootout", &service]).status.success());
    while p.launchctl(&["print", &service]).status.success() {}
    assert_eq!(
        p.run(),
        [
            format!("print {service}"),
            format!("bootstrap {domain} {plist}")
        ]
    );
    assert!(p.launchctl(&["print", &service]).status.success());
}

#[test]
fn cask_postflight_installs_no_login_item_the_user_did_not_ask_for() {
    if ruby_missing() {
        return skip("ruby", "it is not installed; apt install ruby");
    }
    let p = Postflight::new();
    let calls = p.run();
    assert_eq!(calls, Vec::<String>::new());
    assert!(!p.plist().exists());
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}
