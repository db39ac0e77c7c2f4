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
    /// Address the HTTP server listens on (`:8080` and `localhost:8080` are read too).
    #[serde(deserialize_with = "deserialize_listen")]
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
    /// The shared access token: the server requires it, the CLI sends it. [`Config::load`]
    /// fills it in from `auth_token_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<AuthToken>,
    /// A file holding the access token (readable by its owner only), instead of `auth_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token_file: Option<PathBuf>,
    /// Whether the server answers `GET /metrics` (Prometheus). Off, it also skips the
    /// per-request timing.
    pub metrics: bool,
    /// The desktop agent holds off idle sleep while at least one lease is held.
    pub keep_awake: bool,
    pub notifications: Notifications,
}

/// The shared secret that clients present as `Authorization: Bearer <token>`. Its `Debug`
/// and serialized forms hide it, so it is never printed or logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AuthToken(String);

impl AuthToken {
    /// The token itself, to send or compare.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AuthToken {
    type Error = String;

    /// A token must fit an HTTP header as one word: visible ASCII, no spaces.
    fn try_from(text: String) -> Result<AuthToken, String> {
        if text.is_empty() {
            return Err("the access token is empty".into());
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the access token may only contain visible ASCII characters (no spaces)".into(),
            );
        }
        Ok(AuthToken(text))
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(hidden)")
    }
}

impl Serialize for AuthToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("(hidden)")
    }
}

/// A new access token from the operating system's random source: 32 bytes as 64 hex digits.
pub(crate) fn generate_token() -> std::io::Result<AuthToken> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(AuthToken(hex))
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
            auth_token: None,
            auth_token_file: None,
            metrics: true,
            keep_awake: true,
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
    Syntax {
        path: PathBuf,
        /// toml's whole message, with the offending line quoted.
        message: String,
        /// Where it is, as far as the parser's span tells.
        line: Option<usize>,
        key: Option<String>,
        /// What is wrong, on one line.
        problem: String,
    },
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
    /// A path starts with `~` but there is no home directory to put in its place.
    #[error("cannot find the home directory that `~` in {0} stands for")]
    Home(PathBuf),
    /// No `--config` was given and there is no home directory to find the default file in.
    #[error(
        "config file config.toml: cannot find the home directory to locate the config file; \
         pass --config"
    )]
    NoHome,
}

/// A config error in parts short enough for one line each (the agent's menu): which file,
/// where in it and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The config file; `None` for a flag's value.
    pub path: Option<PathBuf>,
    pub line: Option<usize>,
    /// The key (`table.key` inside a table), or the flag as `--flag`.
    pub key: Option<String>,
    pub problem: String,
}

impl Problem {
    /// `line 2, key `grace`` (whichever are known), or `None` if neither is.
    pub fn location(&self) -> Option<String> {
        let line = self.line.map(|n| format!("line {n}"));
        let key = self.key.as_ref().map(|k| format!("key `{k}`"));
        match (line, key) {
            (Some(l), Some(k)) => Some(format!("{l}, {k}")),
            (l, k) => l.or(k),
        }
    }
}

impl ConfigError {
    /// This error as a [`Problem`]: file, line, key and what is wrong, each on its own.
    pub fn problem(&self) -> Problem {
        let in_file = |path: &PathBuf, line, key, problem| Problem {
            path: Some(path.clone()),
            line,
            key,
            problem,
        };
        match self {
            ConfigError::Read { path, source } => {
                in_file(path, None, None, format!("cannot read it: {source}"))
            }
            ConfigError::Syntax {
                path,
                line,
                key,
                problem,
                ..
            } => in_file(path, *line, key.clone(), problem.clone()),
            ConfigError::Invalid {
                path,
                line,
                key,
                problem,
            } => in_file(path, *line, Some((*key).to_owned()), problem.clone()),
            ConfigError::Flag { flag, problem } => Problem {
                path: None,
                line: None,
                key: Some(format!("--{flag}")),
                problem: problem.clone(),
            },
            ConfigError::Home(_) | ConfigError::NoHome => Problem {
                path: None,
                line: None,
                key: None,
                problem: self.to_string(),
            },
        }
    }
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
    /// Reads the config file at `path`, and the token file it names; a missing config file
    /// means defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut config = Config::parse(&text, path)?;
        if let Some(file) = &config.auth_token_file {
            // A relative path is relative to the config file, not to wherever foolock runs.
            let file = path.parent().unwrap_or(Path::new("")).join(file);
            config.auth_token =
                Some(
                    read_token_file(&file).map_err(|problem| ConfigError::Invalid {
                        path: path.to_owned(),
                        line: line_of_key(&text, "auth_token_file"),
                        key: "auth_token_file",
                        problem,
                    })?,
                );
        }
        Ok(config)
    }

    /// Parses and validates config text; `path` is only used in messages. A `state_dir`
    /// starting with `~` is in the home directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| line_at(text, span.start));
            ConfigError::Syntax {
                path: path.to_owned(),
                message: describe_toml_error(&e, text),
                line,
                key: line.and_then(|n| key_on_line(text, n)),
                problem: e
                    .message()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            }
        })?;
        config.state_dir = config.state_dir.as_deref().map(expand_home).transpose()?;
        config.auth_token_file = config
            .auth_token_file
            .as_deref()
            .map(expand_home)
            .transpose()?;
        // Checked here, not in `validate`: once loaded, `auth_token` holds the file's token too.
        let both =
            (config.auth_token.is_some() && config.auth_token_file.is_some()).then(|| OutOfRange {
                key: "auth_token_file",
                problem: "set either auth_token or auth_token_file, not both".into(),
            });
        both.map_or_else(|| config.validate(), Err)
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

/// Reads an access token file: one token, surrounding whitespace ignored. The file must be
/// private to its owner, since anyone who can read it can take and release every lock.
fn read_token_file(path: &Path) -> Result<AuthToken, String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = file
            .metadata()
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} can be read or changed by other users (mode {:03o}); \
                 make it private with `chmod 600 {shown}`",
                mode & 0o777
            ));
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    AuthToken::try_from(text.trim().to_owned()).map_err(|e| format!("{shown}: {e}"))
}

/// A toml error in the user's terms, each thing once: the line, the key and what it must be
/// (`line 3: max_jobs = "ten": must be a whole number, like 10000`), rather than serde's
/// "expected usize" followed by the same message again in toml's own layout.
fn describe_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim();
    let Some(span) = e.span() else {
        return message.to_owned();
    };
    let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        let known: Vec<&str> = rest
            .split('`')
            .skip(1)
            .filter(|part| !part.contains([',', ' ']) && !part.is_empty())
            .collect();
        return format!(
            "line {line_no}: unknown key `{key}` (the keys here are: {})",
            known.join(", ")
        );
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match key.and_then(expected_value) {
        Some(expected) => format!("line {line_no}: {line}: must be {expected}"),
        None => format!("line {line_no}: {message}"),
    }
}

/// What a key's value must look like, in words.
fn expected_value(key: &str) -> Option<&'static str> {
    Some(match key {
        "listen" => "an address in quotes, like \"0.0.0.0:8080\", \":8080\" or \"localhost:8080\"",
        "default_ttl" | "grace_period" | "max_ttl" | "retention" | "max_wait" => {
            "a duration in quotes, like \"30s\", \"5m\" or \"1h30m\""
        }
        "max_jobs" => "a whole number, like 10000",
        "state_dir" | "server" | "client" | "auth_token_file" => "text in quotes",
        "takeover" | "force_release" | "acquire" | "release" | "expire" => "true or false",
        _ => return None,
    })
}

/// Reads an address to listen on: `HOST:PORT` with an IP address, or as Go programs write it,
/// `:8080` (every interface), or `localhost:8080` (this machine only).
pub(crate) fn parse_listen(input: &str) -> Result<SocketAddr, String> {
    let text = input.trim();
    if let Some(Ok(port)) = text.strip_prefix(':').map(str::parse::<u16>) {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Some(Ok(port)) = text.strip_prefix("localhost:").map(str::parse::<u16>) {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| {
        format!(
            "{input:?} is not an address to listen on: use HOST:PORT with an IP address, like \
             0.0.0.0:8080 (every interface), 127.0.0.1:8080 or localhost:8080 (this machine \
             only), or :8080"
        )
    })
}

fn deserialize_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// `~` or `~/…` at the start of a path stands for the home directory, as in a shell (a service
/// or a quoted flag would otherwise create a directory named `~`).
pub fn expand_home(path: &Path) -> Result<PathBuf, ConfigError> {
    let mut parts = path.components();
    match parts.next() {
        Some(std::path::Component::Normal(first)) if first == "~" => {
            let home = directories::BaseDirs::new()
                .map(|b| b.home_dir().to_owned())
                .ok_or_else(|| ConfigError::Home(path.to_owned()))?;
            Ok(home.join(parts.as_path()))
        }
        _ => Ok(path.to_owned()),
    }
}

/// The 1-based line that byte `offset` of `text` is on.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key set on line `line` (1-based), as `table.key` inside a `[table]`; for a table header
/// line, the table's name. `None` for anything else (a comment, a line that is not `key = …`).
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut table: Option<&str> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        let header = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.split(']').next())
            .map(|name| name.trim_matches(|c| c == '[' || c == ' '));
        if i + 1 == line {
            if let Some(name) = header {
                return Some(name.to_owned());
            }
            let (key, _) = trimmed.split_once('=')?;
            let key = key.trim();
            return (!key.is_empty() && !key.starts_with('#')).then(|| match table {
                Some(t) => format!("{t}.{key}"),
                None => key.to_owned(),
            });
        }
        if header.is_some() {
            table = header;
        }
    }
    None
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
        Some(p) => expand_home(p),
        None => default_path().ok_or(ConfigError::NoHome),
    }
}

/// A commented config file with every key at its default, for `foolock config init`, offering
/// `suggested_token` (commented out) as the access token.
pub fn default_file_text(suggested_token: &AuthToken) -> String {
    let d = Config::default();
    let n = &d.notifications;
    format!(
        r#"# foolock configuration. Every key is optional; shown here with its default.
# Durations use Go's syntax: 300ms, 30s, 1h30m.

# Address the lock server listens on. 0.0.0.0 lets the other devices on your LAN reach it;
# "127.0.0.1:8080" keeps it to this machine.
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

# An access token. Once set, the server refuses every request without it (except /healthz)
# and the CLI sends it, so give every device the same one (here, in FOOLOCK_AUTH_TOKEN, or in
# a file only you can read, named by auth_token_file). This one was generated for you: remove
# the # to use it. It travels as plain HTTP, so it keeps out other devices on the LAN, not
# someone who can watch its traffic.
# auth_token = "{token}"
# auth_token_file = "/path/to/token"

# Serve Prometheus metrics at /metrics (and time every request for them).
metrics = {metrics}

# The desktop agent keeps this machine from going to sleep when idle while at least one job is
# held, so other devices can still renew and release (a closed lid still sleeps it). The
# agent's menu can switch it off until foolock restarts. `foolock serve` never does this.
keep_awake = {keep_awake}

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
        token = suggested_token.expose(),
        metrics = d.metrics,
        keep_awake = d.keep_awake,
        takeover = n.takeover,
        force_release = n.force_release,
        acquire = n.acquire,
        release = n.release,
        expire = n.expire,
    )
}

/// Writes the default file at `path` unless one exists. Returns false if it existed. The file
/// is private to its owner (on Unix), since it holds a suggested access token.
pub fn init_file(path: &Path) -> std::io::Result<bool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = default_file_text(&generate_token()?);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, text.as_bytes())?;
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
        let token = generate_token().unwrap();
        assert_eq!(
            parse(&default_file_text(&token)).unwrap(),
            Config::default()
        );
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
        assert!(c.keep_awake, "on unless switched off");
        assert!(!parse("keep_awake = false\n").unwrap().keep_awake);
    }

    #[test]
    fn metrics_are_on_unless_turned_off() {
        assert!(Config::default().metrics);
        assert!(!parse("metrics = false\n").unwrap().metrics);
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

    fn problem(text: &str) -> Problem {
        Config::parse(text, Path::new("/etc/foolock.toml"))
            .unwrap_err()
            .problem()
    }

    #[test]
    fn every_file_error_has_a_one_line_problem_with_its_line_and_key() {
        let unknown = problem("listen = \"0.0.0.0:1\"\ngrace = \"5s\"\n");
        assert_eq!(
            unknown.path.as_deref(),
            Some(Path::new("/etc/foolock.toml"))
        );
        assert_eq!(unknown.location().as_deref(), Some("line 2, key `grace`"));
        assert!(
            unknown.problem.starts_with("unknown field `grace`"),
            "{unknown:?}"
        );
        assert!(!unknown.problem.contains('\n'), "{unknown:?}");

        let in_table = problem("# x\n[notifications]\ntakeover = \"yes\"\n");
        assert_eq!(
            in_table.location().as_deref(),
            Some("line 3, key `notifications.takeover`")
        );

        let range = problem("max_jobs = 0\n");
        assert_eq!(range.location().as_deref(), Some("line 1, key `max_jobs`"));
        assert_eq!(range.problem, "must be at least 1");

        let not_toml = problem("listen = \n");
        assert_eq!(not_toml.line, Some(1));
        assert!(!not_toml.problem.is_empty() && !not_toml.problem.contains('\n'));
    }

    #[test]
    fn an_unreadable_file_and_a_flag_are_problems_too() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be cannot be read as one.
        let err = Config::load(dir.path()).unwrap_err().problem();
        assert_eq!(err.path.as_deref(), Some(dir.path()));
        assert_eq!(err.location(), None);
        assert!(err.problem.starts_with("cannot read it: "), "{err:?}");
        let flag = OutOfRange {
            key: "grace_period",
            problem: "must be between 0s and 1m".into(),
        };
        let flag = flag.as_flag().problem();
        assert_eq!(flag.location().as_deref(), Some("key `--grace-period`"));
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
    fn type_errors_say_what_the_value_must_be_once() {
        let err = parse("# c\n\nmax_jobs = \"ten\"\n").unwrap_err();
        assert_eq!(
            err,
            "config file /etc/foolock.toml: line 3: max_jobs = \"ten\": must be a whole number, \
             like 10000"
        );
        assert!(!err.contains("usize"), "{err}");
        let err = parse("default_ttl = 30\n").unwrap_err();
        assert!(err.contains("must be a duration in quotes"), "{err}");
        assert_eq!(err.matches("line 1").count(), 1, "{err}");
        let err = parse("[notifications]\ntakeover = \"yes\"\n").unwrap_err();
        assert!(
            err.ends_with("line 2: takeover = \"yes\": must be true or false"),
            "{err}"
        );
        let err = parse("listn = \":1\"\n").unwrap_err();
        assert!(
            err.contains("line 1: unknown key `listn` (the keys here are: listen,"),
            "{err}"
        );
    }

    #[test]
    fn listen_takes_go_style_and_localhost_addresses() {
        assert_eq!(parse_listen(":8080"), Ok("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(
            parse_listen("localhost:9000"),
            Ok("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(parse_listen("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        for bad in ["8080", ":", ":99999", "nas.local:8080", "localhost"] {
            let err = parse_listen(bad).unwrap_err();
            assert!(err.contains(":8080"), "{bad}: {err}");
        }
        let c = parse("listen = \":7000\"\n").unwrap();
        assert_eq!(c.listen, "0.0.0.0:7000".parse().unwrap());
    }

    #[test]
    fn a_tilde_in_a_path_is_the_home_directory() {
        let home = directories::BaseDirs::new().unwrap().home_dir().to_owned();
        let c = parse("state_dir = \"~/foolock-state\"\n").unwrap();
        assert_eq!(c.state_dir, Some(home.join("foolock-state")));
        assert_eq!(expand_home(Path::new("~")).unwrap(), home);
        assert_eq!(
            expand_home(Path::new("/srv/~x")).unwrap(),
            Path::new("/srv/~x")
        );
        assert_eq!(expand_home(Path::new("~x/y")).unwrap(), Path::new("~x/y"));
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

    #[test]
    fn init_offers_a_fresh_random_token_commented_out() {
        let dir = tempfile::tempdir().unwrap();
        let suggested = |name: &str| {
            let path = dir.path().join(name);
            assert!(init_file(&path).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("# auth_token = "))
                .expect("a suggested token")
                .to_owned();
            // Uncommenting it gives a config that requires that token.
            let enabled = text.replace(&line, &line[2..]);
            let token = parse(&enabled).unwrap().auth_token.unwrap();
            assert_eq!(token.expose().len(), 64);
            assert!(token.expose().bytes().all(|b| b.is_ascii_hexdigit()));
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "config file mode {mode:o}");
            }
            token
        };
        assert_ne!(suggested("a.toml"), suggested("b.toml"));
    }

    #[test]
    fn a_token_is_read_from_the_config_or_its_file_and_never_printed() {
        let c = parse("auth_token = \"s3cret-token\"\n").unwrap();
        assert_eq!(
            c.auth_token.as_ref().map(AuthToken::expose),
            Some("s3cret-token")
        );
        assert!(!c.to_string().contains("s3cret"), "{c}");
        assert!(!format!("{c:?}").contains("s3cret"));

        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "from-file\n").unwrap();
        #[cfg(unix)]
        set_mode(&token, 0o600);
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "auth_token_file = \"token\"\n").unwrap();
        let c = Config::load(&config).unwrap();
        assert_eq!(
            c.auth_token.as_ref().map(AuthToken::expose),
            Some("from-file")
        );
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!("# x\nauth_token_file = \"{}\"\n", token.display()),
        )
        .unwrap();
        for mode in [0o640, 0o604, 0o620] {
            set_mode(&token, mode);
            let err = Config::load(&config).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
            let err = err.to_string();
            assert!(err.contains("line 2, key `auth_token_file`"), "{err}");
            assert!(err.contains(&format!("(mode {mode:03o})")), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains("t0ken"), "{err}");
        }
    }

    #[test]
    fn bad_tokens_are_refused() {
        let err = parse("auth_token = \"\"\n").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = parse("auth_token = \"two words\"\n").unwrap_err();
        assert!(err.contains("visible ASCII"), "{err}");
        let err = parse("auth_token = \"a\"\nauth_token_file = \"/t\"\n").unwrap_err();
        assert!(err.contains("not both"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "auth_token_file = \"missing\"\n").unwrap();
        let err = Config::load(&config).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        let empty = dir.path().join("missing");
        std::fs::write(&empty, " \n").unwrap();
        #[cfg(unix)]
        set_mode(&empty, 0o600);
        let err = Config::load(&config).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }
}
