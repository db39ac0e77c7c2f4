//! This machine as the CLI and the agent see it: its name (for the default client id), and the
//! program that opens a file in the user's default app (the tray's "Edit config").

use std::path::Path;
use std::process::Command;

/// The program that opens a file in the user's default app: `open` on macOS, freedesktop's
/// `xdg-open` elsewhere.
pub const OPENER: &str = if cfg!(target_os = "macos") {
    "open"
} else {
    "xdg-open"
};

/// The command that opens `path` in the user's default app. It returns at once; the app opens
/// the file in the background.
pub fn open_command(path: &Path) -> Command {
    let mut cmd = Command::new(OPENER);
    cmd.arg(path);
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
    fn open_command_runs_the_platform_opener_on_the_path_as_one_argument() {
        let path = Path::new("/home/ann/My Config/config.toml");
        let cmd = open_command(path);
        assert_eq!(cmd.get_program(), OsStr::new(OPENER));
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), [path.as_os_str()]);
    }

    #[test]
    fn the_opener_is_open_on_macos_and_xdg_open_on_linux() {
        #[cfg(target_os = "macos")]
        assert_eq!(OPENER, "open");
        #[cfg(target_os = "linux")]
        assert_eq!(OPENER, "xdg-open");
    }

    #[cfg(unix)]
    #[test]
    fn hostname_is_reported_without_its_terminating_nul() {
        let name = hostname().expect("a unix machine has a hostname");
        assert!(!name.is_empty());
        assert!(!name.contains('\0'), "{name:?}");
    }
}
