//! Where install puts things: the per-user directories, resolved once from the environment.
//!
//! Everything hangs off `HOME` and `XDG_CONFIG_HOME` so tests (and curious users) can point an
//! install at a scratch directory and see exactly what it would touch.

use super::{BIN_NAME, BUNDLE_ID};
use anyhow::{Context, bail};
use std::ffi::OsString;
use std::path::PathBuf;

/// The per-user directories install writes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, or `~/.config` when it is unset, empty or relative (the XDG spec says
    /// to ignore relative values).
    pub config_home: PathBuf,
}

impl Layout {
    /// Reads `HOME` and `XDG_CONFIG_HOME` from the process environment.
    pub(crate) fn from_env() -> anyhow::Result<Layout> {
        Layout::from_vars(|name| std::env::var_os(name)).or_else(|err| {
            // HOME unset is rare (some service managers); the passwd entry still knows.
            let home = directories::BaseDirs::new().map(|d| d.home_dir().to_owned());
            match home {
                Some(home) if home.is_absolute() => Layout::from_vars(|name| match name {
                    "HOME" => Some(home.clone().into_os_string()),
                    _ => std::env::var_os(name),
                }),
                _ => Err(err),
            }
        })
    }

    /// Resolves the layout from variables given by `var` (the environment, or a test's map).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<Layout> {
        let home = PathBuf::from(var("HOME").context("HOME is not set")?);
        if !home.is_absolute() {
            bail!("HOME is not an absolute path: {}", home.display());
        }
        let config_home = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        Ok(Layout { home, config_home })
    }

    /// `~/.config/autostart/foolock.desktop`: started by the desktop session at login.
    pub fn autostart_file(&self) -> PathBuf {
        self.config_home
            .join("autostart")
            .join(format!("{BIN_NAME}.desktop"))
    }

    /// `~/.config/systemd/user/foolock.service`: the headless server as a user service.
    pub fn systemd_unit_file(&self) -> PathBuf {
        self.config_home
            .join("systemd")
            .join("user")
            .join(systemd_unit_name())
    }

    /// `~/Library/LaunchAgents/io.foolock.agent.plist`: the macOS login item.
    pub fn launch_agent_file(&self) -> PathBuf {
        self.home
            .join("Library")
            .join("LaunchAgents")
            .join(format!("{BUNDLE_ID}.plist"))
    }

    /// `~/Library/Logs/foolock/`: where launchd sends the agent's stdout and stderr.
    pub fn launchd_log_dir(&self) -> PathBuf {
        self.home.join("Library").join("Logs").join(BIN_NAME)
    }
}

/// The systemd unit name, `foolock.service`.
pub fn systemd_unit_name() -> String {
    format!("{BIN_NAME}.service")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn layout(vars: &[(&str, &str)]) -> anyhow::Result<Layout> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        Layout::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn config_home_defaults_to_dot_config_under_home() {
        let l = layout(&[("HOME", "/home/ann")]).unwrap();
        assert_eq!(
            l.autostart_file(),
            PathBuf::from("/home/ann/.config/autostart/foolock.desktop")
        );
        assert_eq!(
            l.systemd_unit_file(),
            PathBuf::from("/home/ann/.config/systemd/user/foolock.service")
        );
        assert_eq!(
            l.launch_agent_file(),
            PathBuf::from("/home/ann/Library/LaunchAgents/io.foolock.agent.plist")
        );
        assert_eq!(
            l.launchd_log_dir(),
            PathBuf::from("/home/ann/Library/Logs/foolock")
        );
    }

    #[test]
    fn xdg_config_home_wins_when_absolute() {
        let l = layout(&[("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "/cfg")]).unwrap();
        assert_eq!(
            l.autostart_file(),
            PathBuf::from("/cfg/autostart/foolock.desktop")
        );
    }

    #[test]
    fn relative_or_empty_xdg_config_home_is_ignored_as_the_spec_says() {
        for value in ["relative/cfg", ""] {
            let l = layout(&[("HOME", "/home/ann"), ("XDG_CONFIG_HOME", value)]).unwrap();
            assert_eq!(
                l.config_home,
                PathBuf::from("/home/ann/.config"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn missing_or_relative_home_is_an_error() {
        assert!(layout(&[]).is_err());
        assert!(layout(&[("HOME", "ann")]).is_err());
    }
}
