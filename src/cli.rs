//! Command-line shape shared by `foolock serve` and the agent: flags that override the file.

use crate::config::{Config, ConfigError, OutOfRange};
use crate::time::{parse_non_negative, parse_positive};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Server settings that flags may override (they win over the config file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerFlags {
    /// Address to listen on: 0.0.0.0:8080 or :8080 (every interface), localhost:8080 (this
    /// machine only) [config: listen]
    #[arg(long, value_name = "ADDR", value_parser = crate::config::parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Lease length when a client sends no ttl, e.g. 30s [config: default_ttl]
    #[arg(long, value_name = "DURATION", value_parser = parse_positive)]
    pub default_ttl: Option<Duration>,
    /// Grace period after a lease expires, 0s to 60s [config: grace_period]
    #[arg(long, value_name = "DURATION", value_parser = parse_non_negative)]
    pub grace_period: Option<Duration>,
    /// Longest lease a client may ask for [config: max_ttl]
    #[arg(long, value_name = "DURATION", value_parser = parse_positive)]
    pub max_ttl: Option<Duration>,
    /// Most jobs tracked at once [config: max_jobs]
    #[arg(long, value_name = "N")]
    pub max_jobs: Option<usize>,
    /// Longest a client may wait for a busy job [config: max_wait]
    #[arg(long, value_name = "DURATION", value_parser = parse_non_negative)]
    pub max_wait: Option<Duration>,
    /// Directory for saved state [config: state_dir]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ServerFlags {
    /// Applies the flags to `config` and re-validates the result; a value that does not fit
    /// is a [`ConfigError::Flag`] naming the flag.
    pub fn apply(&self, mut config: Config) -> Result<Config, ConfigError> {
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.default_ttl {
            config.default_ttl = v;
        }
        if let Some(v) = self.grace_period {
            config.grace_period = v;
        }
        if let Some(v) = self.max_ttl {
            config.max_ttl = v;
        }
        if let Some(v) = self.max_jobs {
            config.max_jobs = v;
        }
        if let Some(v) = self.max_wait {
            config.max_wait = v;
        }
        if let Some(v) = &self.state_dir {
            config.state_dir = Some(crate::config::expand_home(v)?);
        }
        config.validate().map_err(OutOfRange::as_flag)?;
        Ok(config)
    }
}
