//! Generator tests: each file parses as its format and says what the issue asked for, values are
//! escaped so that reading them back gives the original, and the checked-in packaging files are
//! exactly the generators' output.

use super::generate::*;
use super::{BUNDLE_ID, launchd, paths::Layout};
use plist::Value;
use std::path::{Path, PathBuf};

fn text_path(p: &str) -> TextPath {
    TextPath::new(Path::new(p)).unwrap()
}

/// A path with everything the formats treat specially: spaces, quotes, `&<>`, `%`, `$`, `\`.
const NASTY: &str = "/Users/Ann & Bob/<Apps> \"x\" it's 100% $HOME \\ `tick`/foolock";

fn parse_plist(xml: &str) -> plist::Dictionary {
    Value::from_reader_xml(xml.as_bytes())
        .expect("valid XML plist")
        .into_dictionary()
        .expect("top level is a dict")
}

#[test]
fn launch_agent_plist_has_the_keys_launchd_needs_with_the_right_types() {
    let layout = Layout {
        home: "/Users/ann".into(),
        config_home: "/Users/ann/.config".into(),
    };
    let log = TextPath::new(&launchd::log_file(&layout)).unwrap();
    let program = text_path("/Applications/Foolock.app/Contents/MacOS/foolock");
    let dict = parse_plist(&launch_agent_plist(&program, &log));

    assert_eq!(dict["Label"].as_string(), Some(BUNDLE_ID));
    let args = dict["ProgramArguments"].as_array().unwrap();
    assert_eq!(args.len(), 2);
    assert_eq!(args[0].as_string(), Some(program.as_str()));
    assert_eq!(args[1].as_string(), Some(super::AUTOSTART_FLAG));
    assert_eq!(dict["RunAtLoad"].as_boolean(), Some(true));
    let keep_alive = dict["KeepAlive"].as_dictionary().unwrap();
    assert_eq!(keep_alive.len(), 1);
    assert_eq!(keep_alive["SuccessfulExit"].as_boolean(), Some(false));
    assert_eq!(dict["ProcessType"].as_string(), Some("Interactive"));
    assert_eq!(dict["LimitLoadToSessionType"].as_string(), Some("Aqua"));
    let log_path = "/Users/ann/Library/Logs/foolock/foolock.log";
    assert_eq!(dict["StandardOutPath"].as_string(), Some(log_path));
    assert_eq!(dict["StandardErrorPath"].as_string(), Some(log_path));
    let associated = dict["AssociatedBundleIdentifiers"].as_array().unwrap();
    assert_eq!(associated[0].as_string(), Some(BUNDLE_ID));
}

#[test]
fn launch_agent_plist_carries_any_path_through_xml_unchanged() {
    let program = text_path(NASTY);
    let log = text_path("/Users/Ann & Bob/Library/Logs/foolock/foolock.log");
    let dict = parse_plist(&launch_agent_plist(&program, &log));
    assert_eq!(
        dict["ProgramArguments"].as_array().unwrap()[0].as_string(),
        Some(NASTY)
    );
    assert_eq!(dict["StandardOutPath"].as_string(), Some(log.as_str()));
}

#[test]
fn info_plist_describes_a_menu_bar_app_with_our_bundle_id() {
    let dict = parse_plist(&info_plist("1.2.3"));
    assert_eq!(dict["CFBundleIdentifier"].as_string(), Some(BUNDLE_ID));
    assert_eq!(dict["CFBundleExecutable"].as_string(), Some("foolock"));
    assert_eq!(dict["CFBundleName"].as_string(), Some("Foolock"));
    assert_eq!(dict["CFBundlePackageType"].as_string(), Some("APPL"));
    assert_eq!(dict["CFBundleIconFile"].as_string(), Some("foolock"));
    assert_eq!(
        dict["CFBundleShortVersionString"].as_string(),
        Some("1.2.3")
    );
    assert_eq!(dict["CFBundleVersion"].as_string(), Some("1.2.3"));
    assert_eq!(dict["LSUIElement"].as_boolean(), Some(true));
    assert_eq!(dict["NSAppSleepDisabled"].as_boolean(), Some(true));
}

#[test]
fn info_plist_drops_prerelease_and_build_suffixes_apple_would_reject() {
    let dict = parse_plist(&info_plist("0.2.0-beta.1+g1234"));
    assert_eq!(
        dict["CFBundleShortVersionString"].as_string(),
        Some("0.2.0")
    );
    assert_eq!(bundle_version("3.4.5"), "3.4.5");
    assert_eq!(bundle_version("3.4.5+meta"), "3.4.5");
}

#[test]
fn xml_escape_escapes_markup_only() {
    assert_eq!(
        xml_escape("a & b <c> \"d\" 'e'"),
        "a &amp; b &lt;c&gt; \"d\" 'e'"
    );
}

/// Reads an `Exec` value back the way the desktop-entry spec says a launcher must: string
/// unescaping first, then quote removal, then `%%` → `%`. Panics on anything the spec forbids.
fn decode_desktop_exec(value: &str) -> Vec<String> {
    let mut unescaped = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        unescaped.push(if c == '\\' {
            match chars.next() {
                Some('s') => ' ',
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('\\') => '\\',
                other => panic!("invalid string escape \\{other:?} in {value:?}"),
            }
        } else {
            c
        });
    }
    let (mut args, mut arg, mut in_arg, mut quoted) = (vec![], String::new(), false, false);
    let mut chars = unescaped.chars();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') => quoted = false,
            (true, '\\') => match chars.next() {
                Some(e @ ('"' | '`' | '$' | '\\')) => arg.push(e),
                other => panic!("invalid quoted escape \\{other:?} in {value:?}"),
            },
            (true, _) => arg.push(c),
            (false, ' ') => {
                if in_arg {
                    args.push(std::mem::take(&mut arg));
                    in_arg = false;
                }
            }
            (false, '"') => (quoted, in_arg) = (true, true),
            (false, _) => {
                assert!(
                    !"\t\n'\\><~|&;$*?#()`".contains(c),
                    "unquoted reserved {c:?} in {value:?}"
                );
                arg.push(c);
                in_arg = true;
            }
        }
    }
    assert!(!quoted, "unclosed quote in {value:?}");
    if in_arg {
        args.push(arg);
    }
    args.into_iter()
        .map(|a| {
            assert!(
                !a.replace("%%", "").contains('%'),
                "field code in {value:?}"
            );
            a.replace("%%", "%")
        })
        .collect()
}

fn exec_line(desktop: &str) -> &str {
    desktop
        .lines()
        .find_map(|l| l.strip_prefix("Exec="))
        .expect("an Exec line")
}

#[test]
fn desktop_exec_round_trips_awkward_paths() {
    for path in [
        "/usr/bin/foolock",
        "/opt/foo lock/foolock",
        "/opt/100%/foolock",
        "/home/o'neil/bin/foolock",
        NASTY,
    ] {
        let entry = autostart_desktop(&text_path(path));
        assert_eq!(
            decode_desktop_exec(exec_line(&entry)),
            [path, super::AUTOSTART_FLAG],
            "{entry}"
        );
    }
}

#[test]
fn desktop_exec_quotes_only_when_needed() {
    assert_eq!(desktop_exec_arg("/usr/bin/foolock"), "/usr/bin/foolock");
    assert_eq!(desktop_exec_arg("/a b"), "\"/a b\"");
    assert_eq!(desktop_exec_arg("/a%b"), "/a%%b");
    // The spec's own example: a literal `$` in a quoted argument is `\\$` in the file.
    assert_eq!(desktop_string(&desktop_exec_arg("/a $b")), r#""/a \\$b""#);
    assert_eq!(desktop_string(&desktop_exec_arg(r"/a\b")), r#""/a\\\\b""#);
}

#[test]
fn desktop_string_escapes_a_leading_space_and_controls() {
    assert_eq!(desktop_string(" a\tb\n"), r"\sa\tb\n");
}

#[test]
fn autostart_enabled_honours_hidden_and_the_gnome_switch_in_the_main_group_only() {
    let base = autostart_desktop(&text_path("/usr/bin/foolock"));
    assert!(autostart_enabled(&base));
    assert!(!autostart_enabled(&format!("{base}Hidden=true\n")));
    assert!(!autostart_enabled(&format!(
        "{base}X-GNOME-Autostart-enabled = false\n"
    )));
    assert!(autostart_enabled(&format!(
        "{base}X-GNOME-Autostart-enabled=true\n"
    )));
    assert!(autostart_enabled(&format!(
        "{base}[Desktop Action x]\nHidden=true\n"
    )));
}

#[test]
fn systemd_exec_path_quotes_spaces_and_doubles_percent() {
    assert_eq!(systemd_exec_path("/usr/bin/foolock"), "/usr/bin/foolock");
    assert_eq!(
        systemd_exec_path("/opt/foo lock/foolock"),
        "\"/opt/foo lock/foolock\""
    );
    assert_eq!(systemd_exec_path("/opt/100%/foolock"), "/opt/100%%/foolock");
    // systemd does not expand variables in the executable path, so `$` stays single.
    assert_eq!(systemd_exec_path("/opt/$x/foolock"), "/opt/$x/foolock");
}

#[test]
fn systemd_unit_runs_serve_and_restarts_only_on_failure() {
    let unit = systemd_unit(&text_path("/opt/foo lock/foolock"), None);
    assert!(
        unit.contains("\nExecStart=\"/opt/foo lock/foolock\" serve\n"),
        "{unit}"
    );
    assert!(unit.contains("\nRestart=on-failure\n"));
    assert!(unit.contains("\n[Install]\nWantedBy=default.target\n"));
    assert!(systemd_refuses(&text_path("/opt/foo lock/foolock")).is_none());
    assert!(systemd_refuses(&text_path(NASTY)).is_some());
}

#[test]
fn systemd_unit_keeps_the_config_file_install_was_pointed_at() {
    let config = text_path("/home/an na/100%/\"quoted\"\\.toml");
    let unit = systemd_unit(&text_path("/usr/bin/foolock"), Some(&config));
    assert!(
        unit.contains(
            "\nEnvironment=\"FOOLOCK_CONFIG=/home/an na/100%%/\\\"quoted\\\"\\\\.toml\"\nExecStart="
        ),
        "{unit}"
    );
    // Whatever the config, the unit is current if the rest is what install writes.
    assert_eq!(
        systemd_unit_without_config(&unit),
        systemd_unit(&text_path("/usr/bin/foolock"), None)
    );
}

#[test]
fn login_items_pass_the_autostart_marker() {
    let entry = autostart_desktop(&text_path("/usr/bin/foolock"));
    assert!(
        entry.contains("\nExec=/usr/bin/foolock --autostart\n"),
        "{entry}"
    );
    let plist = launch_agent_plist(
        &text_path("/Applications/Foolock.app/Contents/MacOS/foolock"),
        &text_path("/tmp/log"),
    );
    assert!(plist.contains("<string>--autostart</string>"), "{plist}");
}

#[test]
fn text_path_refuses_what_no_format_can_carry() {
    assert!(matches!(
        TextPath::new(Path::new("foolock")),
        Err(TextPathError::NotAbsolute(_))
    ));
    assert!(matches!(
        TextPath::new(Path::new("/a\nb")),
        Err(TextPathError::Control(_))
    ));
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"/a\xffb"));
        assert!(matches!(TextPath::new(bad), Err(TextPathError::NotUtf8(_))));
    }
}

/// Compares a checked-in packaging file with the generator's output. `FOOLOCK_BLESS=1 cargo
/// test` rewrites the file instead, after a deliberate change to a generator or a version bump.
fn assert_checked_in(relative: &str, expected: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("FOOLOCK_BLESS").is_some() {
        std::fs::write(&path, expected).unwrap();
        return;
    }
    let found =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        found == expected,
        "{relative} differs from its generator; run `FOOLOCK_BLESS=1 cargo test platform::` \
         to rewrite it\n--- checked in\n{found}\n--- generated\n{expected}"
    );
}

#[test]
fn checked_in_info_plist_matches_the_generator_and_cargo_version() {
    assert_checked_in(
        "packaging/macos/Info.plist",
        &info_plist(env!("CARGO_PKG_VERSION")),
    );
}

#[test]
fn checked_in_desktop_entry_matches_the_generator() {
    assert_checked_in(
        "packaging/linux/foolock.desktop",
        &autostart_desktop(&text_path("/usr/bin/foolock")),
    );
}

#[test]
fn checked_in_systemd_unit_matches_the_generator() {
    assert_checked_in(
        "packaging/linux/foolock.service",
        &systemd_unit(&text_path("/usr/bin/foolock"), None),
    );
}
