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
    /// The shared access token: the server requires it, the CLI sends it. [`Config::load`]
    /// fills it in from `auth_token_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<AuthToken>,
    /// A file holding the access token (readable by its owner only), instead of `auth_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token_file: Option<PathBuf>,
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
pub fn generate_token() -> std::io::Result<AuthToken> {
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

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: describe_toml_error(&e),
        })?;
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
