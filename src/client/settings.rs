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
            // From `auth_token`, or the file `auth_token_file` names (read by `Config::load`).
            auth_token: non_empty(auth_token)
                .or_else(|| config.auth_token.as_ref().map(|t| t.expose().to_owned())),
        }
    }
}

/// This machine's client id: derived from its hostname, so it is the same on every run.
pub fn default_client_id() -> String {
    crate::platform::hostname()
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

    #[test]
    fn the_token_from_the_environment_wins_over_the_config_file() {
        let config = Config::parse("auth_token = \"from-config\"\n", "c.toml".as_ref()).unwrap();
        let s = Settings::resolve(None, None, None, &config);
        assert_eq!(s.auth_token.as_deref(), Some("from-config"));
        let s = Settings::resolve(None, None, Some("from-env"), &config);
        assert_eq!(s.auth_token.as_deref(), Some("from-env"));
    }
}
