//! The files `foolock install` writes and the packages ship, produced as text by plain functions.
//!
//! Portable on purpose: the macOS plists are generated and tested on Linux too, and the
//! checked-in copies under `packaging/` are asserted equal to this output, so every file has one
//! source of truth. Each value is escaped for the format it lands in (XML for plists, the
//! desktop-entry `Exec` quoting, systemd's command-line quoting), so paths with spaces, quotes or
//! `%` survive. Paths come in as [`TextPath`], which has already refused what no format can hold.

use super::{APP_NAME, AUTOSTART_FLAG, BIN_NAME, BUNDLE_ID};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// A path that can be written into a text file another program parses: absolute, UTF-8 and free
/// of control characters (XML 1.0 cannot carry most of them, and no sane install path has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPath(String);

/// Why a path cannot go into a generated file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TextPathError {
    #[error("{} is not an absolute path", .0.display())]
    NotAbsolute(PathBuf),
    #[error("{} is not valid UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("{0:?} contains a control character")]
    Control(String),
}

impl TextPath {
    pub(crate) fn new(path: &Path) -> Result<TextPath, TextPathError> {
        let Some(text) = path.to_str() else {
            return Err(TextPathError::NotUtf8(path.to_owned()));
        };
        if !path.is_absolute() {
            Err(TextPathError::NotAbsolute(path.to_owned()))
        } else if text.chars().any(char::is_control) {
            Err(TextPathError::Control(text.to_owned()))
        } else {
            Ok(TextPath(text.to_owned()))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl fmt::Display for TextPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The launchd agent at `~/Library/LaunchAgents/<BUNDLE_ID>.plist`.
///
/// `KeepAlive = {SuccessfulExit = false}` restarts the agent after a crash but leaves it quit
/// when the user chooses Quit (which exits 0). `LimitLoadToSessionType = Aqua` keeps it out of
/// SSH and background sessions, where a tray icon has nowhere to go.
pub fn launch_agent_plist(program: &TextPath, log_file: &TextPath) -> String {
    use PlistValue::{Array, Bool, Dict, Str};
    render_plist(&[
        ("Label", Str(BUNDLE_ID)),
        (
            "ProgramArguments",
            Array(vec![Str(program.as_str()), Str(AUTOSTART_FLAG)]),
        ),
        ("RunAtLoad", Bool(true)),
        ("KeepAlive", Dict(vec![("SuccessfulExit", Bool(false))])),
        ("ProcessType", Str("Interactive")),
        ("LimitLoadToSessionType", Str("Aqua")),
        ("StandardOutPath", Str(log_file.as_str())),
        ("StandardErrorPath", Str(log_file.as_str())),
        // Lets System Settings → Login Items show "Foolock" with its icon, not a bare label.
        ("AssociatedBundleIdentifiers", Array(vec![Str(BUNDLE_ID)])),
    ])
}

/// `Foolock.app/Contents/Info.plist` for the given Cargo package version.
///
/// `LSUIElement` makes it a menu-bar-only app (no Dock icon, no app menu). The bundle id is the
/// one notifications are posted under and the launchd agent names. `NSAppSleepDisabled` asks
/// macOS not to put it in App Nap (its server's timers must fire on time while nothing of it is
/// visible); the agent also holds an activity assertion, which works for the bare binary too.
pub fn info_plist(version: &str) -> String {
    use PlistValue::{Bool, Str};
    let numeric = bundle_version(version);
    render_plist(&[
        ("CFBundleDevelopmentRegion", Str("en")),
        ("CFBundleDisplayName", Str(APP_NAME)),
        ("CFBundleExecutable", Str(BIN_NAME)),
        // build-app.sh puts the icon at Contents/Resources/foolock.icns.
        ("CFBundleIconFile", Str(BIN_NAME)),
        ("CFBundleIdentifier", Str(BUNDLE_ID)),
        ("CFBundleInfoDictionaryVersion", Str("6.0")),
        ("CFBundleName", Str(APP_NAME)),
        ("CFBundlePackageType", Str("APPL")),
        ("CFBundleShortVersionString", Str(numeric)),
        ("CFBundleVersion", Str(numeric)),
        (
            "LSApplicationCategoryType",
            Str("public.app-category.utilities"),
        ),
        ("LSMinimumSystemVersion", Str("11.0")),
        ("LSUIElement", Bool(true)),
        ("NSAppSleepDisabled", Bool(true)),
        ("NSHighResolutionCapable", Bool(true)),
        (
            "NSLocalNetworkUsageDescription",
            Str("Foolock talks to the Foolock agents on your other devices to share locks."),
        ),
    ])
}

/// The `major.minor.patch` part of a Cargo version: Apple's bundle version keys accept only
/// dot-separated integers, so a pre-release or build suffix (`-beta.1`, `+abc`) is dropped.
pub(crate) fn bundle_version(version: &str) -> &str {
    version.split(['-', '+']).next().unwrap_or(version)
}

/// The desktop entry that starts the tray agent: written to `~/.config/autostart/` by
/// `foolock install`, and shipped in `/usr/share/applications/` by the .deb (with
/// `program = /usr/bin/foolock`), so one function describes both.
///
/// It passes [`AUTOSTART_FLAG`]: the agent then runs its server even where it finds no display,
/// as it was asked to by the session rather than typed by someone at a terminal.
pub fn autostart_desktop(program: &TextPath) -> String {
    let exec = desktop_string(&format!(
        "{} {AUTOSTART_FLAG}",
        desktop_exec_arg(program.as_str())
    ));
    format!(
        "[Desktop Entry]
Type=Application
Name={APP_NAME}
GenericName=Lock referee
Comment=Take turns on shared jobs (backups, syncs, imports) across your devices
Exec={exec}
Icon={BIN_NAME}
Terminal=false
Categories=Utility;
Keywords=lock;lease;sync;
StartupNotify=false
"
    )
}

/// The systemd user unit that runs `foolock serve` on a machine without a desktop: written to
/// `~/.config/systemd/user/` by `foolock install --headless`, and shipped in
/// `/usr/lib/systemd/user/` by the .deb (with `program = /usr/bin/foolock`, no config).
///
/// `config`, the file `install` was pointed at (`--config`, `FOOLOCK_CONFIG`), is kept as the
/// service's `FOOLOCK_CONFIG`, so the service reads the same settings. systemd refuses
/// executable paths containing quotes or backslashes; callers check with [`systemd_refuses`]
/// first.
pub fn systemd_unit(program: &TextPath, config: Option<&TextPath>) -> String {
    let exec = systemd_exec_path(program.as_str());
    let environment = config.map_or(String::new(), |c| {
        format!("{}\n", systemd_environment(CONFIG_VARIABLE, c.as_str()))
    });
    format!(
        "[Unit]
Description=foolock lock server (headless)

[Service]
Type=exec
{environment}ExecStart={exec} serve
# Restart after a crash, not after a clean stop (systemctl --user stop, SIGTERM).
Restart=on-failure
RestartSec=5s

[Install]
WantedBy=default.target
"
    )
}

/// The environment variable naming the config file.
const CONFIG_VARIABLE: &str = "FOOLOCK_CONFIG";

/// A unit as [`systemd_unit`] would write it without a config file: the unit with its
/// `FOOLOCK_CONFIG` line taken out, to tell whether an installed unit is current whatever
/// config it was installed with.
pub fn systemd_unit_without_config(unit: &str) -> String {
    let prefix = format!("Environment=\"{CONFIG_VARIABLE}=");
    unit.split_inclusive('\n')
        .filter(|line| !line.starts_with(&prefix))
        .collect()
}

/// `Environment="NAME=value"`: quoted so spaces survive, with `\` and `"` escaped and `%`
/// doubled (specifiers are expanded in every setting); systemd expands no `$` here.
fn systemd_environment(name: &str, value: &str) -> String {
    let mut out = format!("Environment=\"{name}=");
    for c in value.chars() {
        match c {
            '%' => out.push_str("%%"),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why systemd would refuse `program` as an `ExecStart` executable, if it would.
///
/// systemd rejects executable names containing `"`, `'` or `\` outright, however quoted
/// (checked with systemd 252's `systemd-analyze verify`).
pub fn systemd_refuses(program: &TextPath) -> Option<String> {
    program.as_str().contains(['"', '\'', '\\']).then(|| {
        format!(
            "systemd cannot run a program whose path contains a quote or a backslash: {program}; \
             move the foolock binary to a plainer path and run install again"
        )
    })
}

/// Reads a desktop entry as a session would: false when the user turned the autostart entry off
/// in their desktop's settings (`Hidden=true`, or GNOME's `X-GNOME-Autostart-enabled=false`),
/// which leaves the file in place.
pub fn autostart_enabled(desktop_entry: &str) -> bool {
    let mut in_main_group = false;
    for line in desktop_entry.lines().map(str::trim) {
        if line.starts_with('[') {
            in_main_group = line == "[Desktop Entry]";
            continue;
        }
        if !in_main_group {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if (key == "Hidden" && value == "true")
            || (key == "X-GNOME-Autostart-enabled" && value == "false")
        {
            return false;
        }
    }
    true
}

/// Characters that force an `Exec` argument into double quotes (desktop-entry spec, "The Exec
/// key").
const DESKTOP_EXEC_RESERVED: &[char] = &[
    ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(', ')',
    '`',
];

/// Quotes one `Exec` argument per the desktop-entry spec: double quotes when it has a reserved
/// character, with `"`, `` ` ``, `$` and `\` backslash-escaped inside them, and `%` doubled
/// everywhere (a single `%` starts a field code). The result still needs [`desktop_string`]
/// escaping, which the spec applies on top.
pub(crate) fn desktop_exec_arg(arg: &str) -> String {
    let quote = arg.is_empty() || arg.contains(DESKTOP_EXEC_RESERVED);
    let mut out = String::with_capacity(arg.len() + 2);
    if quote {
        out.push('"');
    }
    for c in arg.chars() {
        match c {
            '"' | '`' | '$' | '\\' if quote => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    if quote {
        out.push('"');
    }
    out
}

/// Escapes a value of the desktop-entry `string` type: backslash and the control characters
/// the spec names, and a leading space (readers strip it otherwise).
pub(crate) fn desktop_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' if i == 0 => out.push_str("\\s"),
            _ => out.push(c),
        }
    }
    out
}

/// Writes an executable path for `ExecStart=`: double-quoted when it has whitespace, `%`
/// doubled (specifiers are expanded everywhere). `$` stays as is: systemd does not expand
/// variables in the executable path.
pub(crate) fn systemd_exec_path(path: &str) -> String {
    let quote =
        path.is_empty() || path.contains(char::is_whitespace) || path.contains(['"', '\'', '\\']);
    let mut out = String::with_capacity(path.len() + 2);
    if quote {
        out.push('"');
    }
    for c in path.chars() {
        match c {
            '%' => out.push_str("%%"),
            '"' | '\\' if quote => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    if quote {
        out.push('"');
    }
    out
}

/// Escapes text for an XML element's content.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// The few plist value types our two plists use.
enum PlistValue<'a> {
    Str(&'a str),
    Bool(bool),
    Array(Vec<PlistValue<'a>>),
    Dict(Vec<(&'a str, PlistValue<'a>)>),
}

/// Renders a top-level dictionary as an XML property list, tab-indented like Apple's tools do.
fn render_plist(entries: &[(&str, PlistValue<'_>)]) -> String {
    let mut out = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" ",
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
        "<plist version=\"1.0\">\n",
    ));
    render_dict(&mut out, entries, 0);
    out.push_str("</plist>\n");
    out
}

fn render_dict(out: &mut String, entries: &[(&str, PlistValue<'_>)], depth: usize) {
    indent(out, depth);
    out.push_str("<dict>\n");
    for (key, value) in entries {
        indent(out, depth + 1);
        let _ = writeln!(out, "<key>{}</key>", xml_escape(key));
        render_value(out, value, depth + 1);
    }
    indent(out, depth);
    out.push_str("</dict>\n");
}

fn render_value(out: &mut String, value: &PlistValue<'_>, depth: usize) {
    match value {
        PlistValue::Str(s) => {
            indent(out, depth);
            let _ = writeln!(out, "<string>{}</string>", xml_escape(s));
        }
        PlistValue::Bool(b) => {
            indent(out, depth);
            out.push_str(if *b { "<true/>\n" } else { "<false/>\n" });
        }
        PlistValue::Array(items) => {
            indent(out, depth);
            out.push_str("<array>\n");
            for item in items {
                render_value(out, item, depth + 1);
            }
            indent(out, depth);
            out.push_str("</array>\n");
        }
        PlistValue::Dict(entries) => render_dict(out, entries, depth),
    }
}

fn indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n('\t', depth));
}
