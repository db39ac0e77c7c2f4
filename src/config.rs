//! Settings: the TOML file in the user's config directory, its defaults, validation and paths.
//!
//! A missing file means defaults. Unknown keys and bad values are refused with the file, line
//! and key named, so a typo never silently becomes a default.

use crate::engine::Rules;
use crate::time::{Compact, serde_go};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest grace period the config accepts.
pub const MAX_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Lease length when a client sends no `ttl`.
    #[serde(with = "serde_go")]
    pub default_ttl: Duration,
    /// After a lease expires, only its holder may take it back for this long.
    #[serde(with = "serde_go")]
    pub grace_period: Duration,
    /// The longest lease a client may ask for.
    #[serde(with = "serde_go")]
    pub max_ttl: Duration,
    /// The most jobs the server tracks at once.
    pub max_jobs: usize,
    /// How long an expired lease keeps its last holder before it is forgotten.
    #[serde(with = "serde_go")]
    pub retention: Duration,
    /// The longest a `POST /lock?wait=` request may wait.
    #[serde(with = "serde_go")]
    pub max_wait: Duration,
    /// Where the server keeps its state; default: the user's data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// For the CLI on other devices: the server to talk to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// For the CLI: this device's client id (default: derived from the hostname).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub notifications: Notifications,
}

/// Which events the desktop agent posts a notification for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Notifications {
    pub takeover: bool,
    pub force_release: bool,
    pub acquire: bool,
    pub release: bool,
    pub expire: bool,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            takeover: true,
            force_release: true,
            acquire: false,
            release: false,
            expire: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let rules = Rules::default();
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            default_ttl: rules.default_ttl,
            grace_period: rules.grace,
            max_ttl: rules.max_ttl,
            max_jobs: rules.max_jobs,
            retention: rules.retention,
            max_wait: Duration::from_secs(300),
            state_dir: None,
            server: None,
            client: None,
            notifications: Notifications::default(),
        }
    }
}

/// Settings that cannot be used: a config file that cannot be read or is wrong, or a flag whose
/// value does not fit. All are usage errors; the message names the file, line and key, or the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a value of the wrong type; toml's message says where.
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A value out of its range or at odds with another; `line` is where the key is set.
    #[error("config file {path}: {}key `{key}`: {problem}", line_prefix(.line))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: &'static str,
        problem: String,
    },
    /// A flag's value out of its range or at odds with another setting (`flag` without `--`).
    #[error("--{flag}: {problem}")]
    Flag { flag: String, problem: String },
    /// No `--config` was given and there is no home directory to find the default file in.
    #[error(
        "config file config.toml: cannot find the home directory to locate the config file; \
         pass --config"
    )]
    NoHome,
}

fn line_prefix(line: &Option<usize>) -> String {
    line.map_or(String::new(), |n| format!("line {n}, "))
}

/// A setting whose value is out of its range or at odds with another, from [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    /// The config key, as spelled in the file.
    pub key: &'static str,
    pub problem: String,
}

impl OutOfRange {
    /// The error for this value as set on the command line: the key spelled as its flag.
    pub fn as_flag(self) -> ConfigError {
        ConfigError::Flag {
            flag: self.key.replace('_', "-"),
            problem: self.problem,
        }
    }
}

impl Config {
    /// Reads the config file at `path`; a missing file means defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: describe_toml_error(&e),
        })?;
        config
            .validate()
            .map_err(|OutOfRange { key, problem }| ConfigError::Invalid {
                path: path.to_owned(),
                line: line_of_key(text, key),
                key,
                problem,
            })?;
        Ok(config)
    }

    /// Checks values against each other and their ranges; names the offending key.
    pub fn validate(&self) -> Result<(), OutOfRange> {
        let out_of_range = |key, problem| Err(OutOfRange { key, problem });
        if self.grace_period > MAX_GRACE {
            return out_of_range(
                "grace_period",
                format!("must be between 0s and {}", Compact(MAX_GRACE)),
            );
        }
        if self.max_ttl.is_zero() {
            return out_of_range("max_ttl", "must be greater than 0".into());
        }
        if self.default_ttl.is_zero() || self.default_ttl > self.max_ttl {
            return out_of_range(
                "default_ttl",
                format!(
                    "must be greater than 0 and at most max_ttl ({})",
                    Compact(self.max_ttl)
                ),
            );
        }
        if self.max_jobs == 0 {
            return out_of_range("max_jobs", "must be at least 1".into());
        }
        if self.retention.is_zero() {
            return out_of_range("retention", "must be greater than 0".into());
        }
        Ok(())
    }

    /// The lock engine's rules from these settings.
    pub fn rules(&self) -> Rules {
        Rules {
            default_ttl: self.default_ttl,
            grace: self.grace_period,
            max_ttl: self.max_ttl,
            max_jobs: self.max_jobs,
            retention: self.retention,
            ..Rules::default()
        }
    }
}

/// toml's messages already carry line, column and key; keep them on one readable block.
fn describe_toml_error(e: &toml::de::Error) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        out.push_str(&format!("at byte {}: ", span.start));
    }
    out.push_str(e.message());
    // The Display form includes "line N, column M" and the offending source line.
    format!("{}\n{e}", out.trim_end())
}

/// The 1-based line on which `key = …` is set, if it is set at all.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The default location of the config file (`~/.config/foolock/config.toml` on Linux,
/// `~/Library/Application Support/io.foolock.foolock/config.toml` on macOS).
pub fn default_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

/// The default state directory (the user's data directory).
pub fn default_state_dir() -> Option<PathBuf> {
    project_dirs().map(|d| d.data_dir().to_owned())
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("io", "foolock", "foolock")
}

/// Where the config file is: `--config`/`FOOLOCK_CONFIG` if given, else the default.
pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    match explicit {
        Some(p) => Ok(p.to_owned()),
        None => default_path().ok_or(ConfigError::NoHome),
    }
}

/// A commented config file with every key at its default, for `foolock config init`.
pub fn default_file_text() -> String {
    let d = Config::default();
    let n = &d.notifications;
    format!(
        r#"# foolock configuration. Every key is optional; shown here with its default.
# Durations use Go's syntax: 300ms, 30s, 1h30m.

# Address the lock server listens on. 0.0.0.0 lets the other devices on your LAN reach it.
listen = "{listen}"

# Lease length when a client sends no ttl.
default_ttl = "{default_ttl}"

# After a lease expires, only its holder may take it back for this long (0s to 60s).
grace_period = "{grace}"

# The longest lease a client may ask for.
max_ttl = "{max_ttl}"

# The most jobs tracked at once; expired ones are forgotten first when it is reached.
max_jobs = {max_jobs}

# How long an expired lease keeps its last holder (who may still renew it).
retention = "{retention}"

# The longest a client may wait for a busy job (POST /lock?wait=...).
max_wait = "{max_wait}"

# Where the server keeps its state across restarts (default: the user's data directory).
# state_dir = "/path/to/dir"

# For the foolock CLI on other devices: the server to use, and this device's client id.
# server = "http://192.168.1.20:8080"
# client = "laptop1"

[notifications]
# Desktop notifications posted by the agent.
takeover = {takeover}
force_release = {force_release}
acquire = {acquire}
release = {release}
expire = {expire}
"#,
        listen = d.listen,
        default_ttl = Compact(d.default_ttl),
        grace = Compact(d.grace_period),
        max_ttl = Compact(d.max_ttl),
        max_jobs = d.max_jobs,
        retention = Compact(d.retention),
        max_wait = Compact(d.max_wait),
        takeover = n.takeover,
        force_release = n.force_release,
        acquire = n.acquire,
        release = n.release,
        expire = n.expire,
    )
}

/// Writes the default file at `path` unless one exists. Returns false if it existed.
pub fn init_file(path: &Path) -> std::io::Result<bool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, default_file_text().as_bytes())?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match toml::to_string(self) {
            Ok(text) => f.write_str(&text),
            Err(_) => Err(fmt::Error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/foolock.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn default_file_parses_to_defaults() {
        assert_eq!(parse(&default_file_text()).unwrap(), Config::default());
    }

    #[test]
    fn values_are_read() {
        let c = parse(
            "listen = \"127.0.0.1:9000\"\ndefault_ttl = \"1m30s\"\ngrace_period = \"0s\"\n\
             [notifications]\nacquire = true\n",
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.default_ttl, Duration::from_secs(90));
        assert_eq!(c.grace_period, Duration::ZERO);
        assert!(c.notifications.acquire);
        assert!(c.notifications.takeover);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("listen = \"0.0.0.0:1\"\ngrace = \"5s\"\n").unwrap_err();
        assert!(err.contains("/etc/foolock.toml"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("grace"), "{err}");
    }

    #[test]
    fn bad_duration_names_line_and_value() {
        let err = parse("\n\ndefault_ttl = \"5 minutes\"\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("5 minutes"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_line_and_key() {
        let err = parse("# c\ngrace_period = \"2m\"\n").unwrap_err();
        assert!(err.contains("line 2, key `grace_period`"), "{err}");
        let err = parse("default_ttl = \"48h\"\n").unwrap_err();
        assert!(err.contains("key `default_ttl`"), "{err}");
        let err = parse("max_jobs = 0\n").unwrap_err();
        assert!(err.contains("key `max_jobs`"), "{err}");
    }

    #[test]
    fn a_value_at_odds_with_another_key_names_the_key_without_a_line() {
        let err = parse("max_ttl = \"10s\"\n").unwrap_err();
        assert_eq!(
            err,
            "config file /etc/foolock.toml: key `default_ttl`: \
             must be greater than 0 and at most max_ttl (10s)"
        );
    }

    #[test]
    fn a_flag_out_of_range_is_named_as_the_flag() {
        let config = Config {
            grace_period: Duration::from_secs(120),
            ..Config::default()
        };
        let err = config.validate().unwrap_err().as_flag();
        assert_eq!(err.to_string(), "--grace-period: must be between 0s and 1m");
    }

    #[test]
    fn init_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        assert!(init_file(&path).unwrap());
        std::fs::write(&path, "max_jobs = 5\n").unwrap();
        assert!(!init_file(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "max_jobs = 5\n");
    }
}
