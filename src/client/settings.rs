//! Where the CLI's server, client id and auth token come from: flags, then environment
//! (applied by clap), then the config file, then defaults.

use crate::config::Config;

/// The server used when nothing else names one (the original's default).
pub const DEFAULT_SERVER: &str = "http://localhost:8080";

/// Used only when the machine reports no usable hostname.
const FALLBACK_CLIENT: &str = "foolock-client";

/// The settings every client command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub server: String,
    pub client: String,
    pub auth_token: Option<String>,
}

impl Settings {
    /// Resolves the settings. `server` and `client` are the flags (clap has already let
    /// `FOOLOCK_SERVER` / `FOOLOCK_CLIENT` fill them in); the config file comes next.
    pub fn resolve(
        server: Option<&str>,
        client: Option<&str>,
        auth_token: Option<&str>,
        config: &Config,
    ) -> Settings {
        let non_empty =
            |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        Settings {
            server: non_empty(server)
                .or_else(|| non_empty(config.server.as_deref()))
                .unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
            client: non_empty(client)
                .or_else(|| non_empty(config.client.as_deref()))
                .unwrap_or_else(default_client_id),
            // When the config file gains `auth_token`, add `.or(config.auth_token.clone())`.
            auth_token: non_empty(auth_token),
        }
    }
}

/// This machine's client id: derived from its hostname, so it is the same on every run.
pub fn default_client_id() -> String {
    hostname()
        .and_then(|h| client_id_from_hostname(&h))
        .unwrap_or_else(|| FALLBACK_CLIENT.to_owned())
}

/// The hostname's first label, lower-cased: `Anna-MacBook.local` → `anna-macbook`,
/// `nas.home.lan` → `nas`. Dropping the domain keeps the id stable when a laptop moves
/// between networks (macOS adds `.local`, DHCP may add a search domain). The shell helper
/// derives the same id (from `scutil --get LocalHostName` on a Mac, else `uname -n`).
pub fn client_id_from_hostname(hostname: &str) -> Option<String> {
    let label = hostname.trim().split('.').next()?.trim();
    let id: String = label
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!id.is_empty()).then_some(id)
}

/// On a Mac the kernel hostname may follow whatever name DHCP hands out on the current
/// network; the Bonjour name (`scutil --get LocalHostName`, e.g. `Annas-MacBook`) does not,
/// and matches the usual `Annas-MacBook.local` hostname's first label.
#[cfg(target_os = "macos")]
fn hostname() -> Option<String> {
    let bonjour = std::process::Command::new("/usr/sbin/scutil")
        .args(["--get", "LocalHostName"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|name| !name.is_empty());
    bonjour.or_else(kernel_hostname)
}

#[cfg(all(unix, not(target_os = "macos")))]
fn hostname() -> Option<String> {
    kernel_hostname()
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

#[cfg(not(unix))]
fn hostname() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_the_lowercased_first_label_of_the_hostname() {
        let id = |h: &str| client_id_from_hostname(h);
        assert_eq!(id("Anna-MacBook.local").as_deref(), Some("anna-macbook"));
        assert_eq!(id("nas.home.lan").as_deref(), Some("nas"));
        assert_eq!(id("pi4").as_deref(), Some("pi4"));
        assert_eq!(id(" desk \n").as_deref(), Some("desk"));
        assert_eq!(id(""), None);
        assert_eq!(id(".local"), None);
    }

    #[test]
    fn default_client_id_is_stable() {
        assert_eq!(default_client_id(), default_client_id());
        assert!(!default_client_id().is_empty());
    }

    #[test]
    fn flags_win_over_config_which_wins_over_defaults() {
        let mut config = Config::default();
        let s = Settings::resolve(None, None, None, &config);
        assert_eq!(s.server, DEFAULT_SERVER);
        assert_eq!(s.client, default_client_id());
        assert_eq!(s.auth_token, None);

        config.server = Some("http://nas:9000".into());
        config.client = Some("laptop".into());
        let s = Settings::resolve(None, Some(""), Some("t0k"), &config);
        assert_eq!(
            (s.server.as_str(), s.client.as_str()),
            ("http://nas:9000", "laptop")
        );
        assert_eq!(s.auth_token.as_deref(), Some("t0k"));

        let s = Settings::resolve(Some("http://pi:1"), Some("desk"), None, &config);
        assert_eq!(
            (s.server.as_str(), s.client.as_str()),
            ("http://pi:1", "desk")
        );
    }
}
