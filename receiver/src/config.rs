//! The receiver's configuration file, parsed once into checked values.
//!
//! ```toml
//! listen = "0.0.0.0:7400"
//! state_dir = "/var/lib/sluice"
//! trust = "/etc/sluice/trust"      # a directory of *.pub files, or one TOML file
//!
//! [limits]
//! max_bundle_bytes = 68719476736   # largest payload accepted
//! idle_timeout_secs = 30           # a transfer silent this long is closed
//! max_transfers = 32
//! max_pending_blocks = 64
//!
//! [socket]
//! recv_buffer = 33554432
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_protocol::reassembly::ReassemblyConfig;

/// Default UDP port of the high side.
pub const DEFAULT_PORT: u16 = 7400;

/// Everything the daemon needs, validated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub trust: PathBuf,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub socket: SocketSettings,
}

/// Resource bounds; every one has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_bundle_bytes: u64,
    pub idle_timeout_secs: u64,
    pub max_transfers: usize,
    pub max_unverified: usize,
    pub max_pending_blocks: usize,
}

/// Socket tuning.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketSettings {
    pub recv_buffer: usize,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid receiver configuration: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("limit `{name}` must be greater than zero")]
    ZeroLimit { name: &'static str },
}

impl ReceiverConfig {
    /// Reads and checks a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        config.limits.check()?;
        Ok(config)
    }

    /// A configuration from explicit values and default limits.
    pub fn new(listen: SocketAddr, state_dir: PathBuf, trust: PathBuf) -> Self {
        Self {
            listen,
            state_dir,
            trust,
            limits: Limits::default(),
            socket: SocketSettings::default(),
        }
    }

    /// The reassembly core's limits.
    pub fn reassembly(&self) -> ReassemblyConfig {
        ReassemblyConfig {
            max_transfers: self.limits.max_transfers,
            max_unverified: self.limits.max_unverified,
            max_pending_blocks: self.limits.max_pending_blocks,
            idle_timeout: self.idle_timeout(),
            ..ReassemblyConfig::default()
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.idle_timeout_secs)
    }
}

impl Limits {
    fn check(&self) -> Result<(), ConfigError> {
        let checks = [
            ("max_bundle_bytes", self.max_bundle_bytes == 0),
            ("idle_timeout_secs", self.idle_timeout_secs == 0),
            ("max_transfers", self.max_transfers == 0),
            ("max_unverified", self.max_unverified == 0),
            ("max_pending_blocks", self.max_pending_blocks == 0),
        ];
        match checks.iter().find(|(_, zero)| *zero) {
            Some((name, _)) => Err(ConfigError::ZeroLimit { name }),
            None => Ok(()),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let core = ReassemblyConfig::default();
        Self {
            max_bundle_bytes: 64 << 30,
            idle_timeout_secs: 30,
            max_transfers: core.max_transfers,
            max_unverified: core.max_unverified,
            max_pending_blocks: core.max_pending_blocks,
        }
    }
}

impl Default for SocketSettings {
    fn default() -> Self {
        Self {
            recv_buffer: 32 << 20,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ReceiverConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receiver.toml");
        std::fs::write(&path, text).unwrap();
        ReceiverConfig::load(&path)
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let config = parse("state_dir = \"/s\"\ntrust = \"/t\"\n").unwrap();
        assert_eq!(config.listen.port(), DEFAULT_PORT);
        assert_eq!(config.limits.idle_timeout_secs, 30);
        assert_eq!(config.reassembly().idle_timeout, Duration::from_secs(30));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("state_dir = \"/s\"\ntrust = \"/t\"\nlisten_port = 5\n").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn shipped_examples_parse() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let config = ReceiverConfig::load(&examples.join("receiver.toml")).unwrap();
        assert_eq!(config.listen.port(), DEFAULT_PORT);
        assert_eq!(config.limits.max_unverified, 8);
        let trust = std::fs::read_to_string(examples.join("trust.toml")).unwrap();
        let store = sluice_protocol::trust::TrustStore::from_toml(&trust).unwrap();
        assert_eq!(store.keys().len(), 2);
    }

    #[test]
    fn zero_limits_are_refused() {
        let text = "state_dir = \"/s\"\ntrust = \"/t\"\n[limits]\nmax_transfers = 0\n";
        let err = parse(text).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::ZeroLimit {
                name: "max_transfers"
            }
        ));
    }
}
