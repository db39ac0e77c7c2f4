//! This machine as the CLI and the agent see it: its name (for the default client id), and the
//! program that opens a file for the user to edit (the tray's "Open config file") or a page in
//! the default browser (the tray's "Open status page").

use std::path::Path;
use std::process::{Command, ExitStatus};

/// The program that opens a file for the user: `open` on macOS, freedesktop's `xdg-open`
/// elsewhere.
pub const OPENER: &str = if cfg!(target_os = "macos") {
    "open"
} else {
    "xdg-open"
};

/// The command that opens `path` for editing on this OS (see [`edit_command_for`]).
pub fn open_command(path: &Path) -> Command {
    edit_command_for(cfg!(target_os = "macos"), path)
}

/// The command that opens `path` for editing, on macOS (`macos`) or elsewhere. On a stock Mac
/// no app claims `.toml`, so a plain `open FILE` fails (-10814, "no application knows how to
/// open"); `open -t` hands it to the default text editor instead (TextEdit unless the user chose
/// another). `xdg-open` picks the desktop's app for the file's type. Either may fail: the
/// caller must check the exit status ([`open_failure`]).
pub(crate) fn edit_command_for(macos: bool, path: &Path) -> Command {
    let mut cmd = Command::new(if macos { "open" } else { "xdg-open" });
    if macos {
        cmd.arg("-t");
    }
    cmd.arg(path);
    cmd
}

/// Why the opener failed, if its `status` says it did, for a message to the user: the last
/// line it wrote to stderr, else what its exit code means (`xdg-open`'s are documented; `open`
/// only ever exits 1).
pub fn open_failure(status: ExitStatus, stderr: &[u8]) -> Option<String> {
    if status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(stderr);
    if let Some(line) = text.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        return Some(line.to_owned());
    }
    Some(match (OPENER, status.code()) {
        ("xdg-open", Some(1)) => "xdg-open rejected its command line (exit 1)".to_owned(),
        ("xdg-open", Some(2)) => "the file does not exist (xdg-open exit 2)".to_owned(),
        ("xdg-open", Some(3)) => {
            "no program to open it with was found (xdg-open exit 3)".to_owned()
        }
        ("xdg-open", Some(4)) => {
            "the program that should open it failed (xdg-open exit 4)".to_owned()
        }
        (opener, _) => format!("{opener} failed ({status})"),
    })
}

/// The command that opens `url` in the user's default browser (the same opener as for files:
/// both hand a URL to the browser). Its exit status says whether that worked ([`open_failure`]).
pub fn browse_command(url: &str) -> Command {
    let mut cmd = Command::new(OPENER);
    cmd.arg(url);
    cmd
}

/// On a Mac the kernel hostname may follow whatever name DHCP hands out on the current
/// network; the Bonjour name (`scutil --get LocalHostName`, e.g. `Annas-MacBook`) does not,
/// and matches the usual `Annas-MacBook.local` hostname's first label.
#[cfg(target_os = "macos")]
pub fn hostname() -> Option<String> {
    let bonjour = Command::new("/usr/sbin/scutil")
        .args(["--get", "LocalHostName"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|name| !name.is_empty());
    bonjour.or_else(kernel_hostname)
}

/// The machine's hostname as the kernel reports it, if it reports one.
#[cfg(all(unix, not(target_os = "macos")))]
pub fn hostname() -> Option<String> {
    kernel_hostname()
}

/// The machine's name from the environment Windows sets, if it is set.
#[cfg(not(unix))]
pub fn hostname() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}

#[cfg(unix)]
fn kernel_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length; gethostname writes at most that many
    // bytes, and we stop at the first NUL (or the end, if it was truncated without one).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn the_mac_opens_the_file_in_the_default_text_editor() {
        // Plain `open config.toml` fails on a Mac where no app claims .toml; `-t` never does.
        let path = Path::new("/Users/ann/Library/Application Support/io.foolock.foolock/c.toml");
        let cmd = edit_command_for(true, path);
        assert_eq!(cmd.get_program(), OsStr::new("open"));
        let args: Vec<&OsStr> = cmd.get_args().collect();
        assert_eq!(args, [OsStr::new("-t"), path.as_os_str()]);
    }

    #[test]
    fn linux_opens_the_file_with_xdg_open_as_one_argument() {
        let path = Path::new("/home/ann/My Config/config.toml");
        let cmd = edit_command_for(false, path);
        assert_eq!(cmd.get_program(), OsStr::new("xdg-open"));
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), [path.as_os_str()]);
    }

    #[test]
    fn browse_command_hands_the_url_to_the_opener_as_one_argument() {
        let cmd = browse_command("http://127.0.0.1:8080/");
        assert_eq!(cmd.get_program(), OsStr::new(OPENER));
        assert_eq!(
            cmd.get_args().collect::<Vec<_>>(),
            [OsStr::new("http://127.0.0.1:8080/")]
        );
    }

    #[test]
    fn the_opener_is_open_on_macos_and_xdg_open_on_linux() {
        let cmd = open_command(Path::new("c.toml"));
        assert_eq!(cmd.get_program(), OsStr::new(OPENER));
        #[cfg(target_os = "macos")]
        assert_eq!(OPENER, "open");
        #[cfg(target_os = "linux")]
        assert_eq!(OPENER, "xdg-open");
    }

    #[cfg(unix)]
    fn exit(code: i32) -> ExitStatus {
        std::os::unix::process::ExitStatusExt::from_raw(code << 8)
    }

    #[cfg(unix)]
    #[test]
    fn a_failed_open_is_told_by_its_last_stderr_line_or_its_exit_code() {
        assert_eq!(open_failure(exit(0), b"noise\n"), None);
        let said =
            b"The file /x does not exist.\nNo application knows how to open URL file:///x\n\n";
        assert_eq!(
            open_failure(exit(1), said).as_deref(),
            Some("No application knows how to open URL file:///x")
        );
        let silent = open_failure(exit(3), b"").unwrap();
        if OPENER == "xdg-open" {
            assert_eq!(
                silent,
                "no program to open it with was found (xdg-open exit 3)"
            );
        } else {
            assert!(silent.starts_with("open failed ("), "{silent}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn hostname_is_reported_without_its_terminating_nul() {
        let name = hostname().expect("a unix machine has a hostname");
        assert!(!name.is_empty());
        assert!(!name.contains('\0'), "{name:?}");
    }
}
