//! Where the commands read connector settings from: the process environment (the real
//! command) or a fixed list (tests), so nothing in the commands reads the environment itself.

use std::path::PathBuf;

use cosell::config::{ColumnNames, Config, ConfigError, Source};

/// Prefix of the column-name settings (`COSELL_COL_SYNC`, ...).
const COLUMN_PREFIX: &str = "COSELL_COL_";

/// The data directory when neither `--data-dir` nor `COSELL_DATA_DIR` says otherwise (as in
/// the connector's own settings).
const DEFAULT_DATA_DIR: &str = "./.cosell";

#[derive(Debug, Clone)]
pub enum Settings {
    /// `COSELL_*` environment variables (and `COSELL_CONFIG_FILE` / `./cosell.toml`).
    Env,
    /// Exactly these values.
    Pairs(Vec<(String, String)>),
}

impl Settings {
    fn get(&self, key: &str) -> Option<String> {
        let value = match self {
            Settings::Env => std::env::var(key).ok(),
            Settings::Pairs(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// The full, validated configuration (needed for Partner Center calls).
    pub fn config(&self) -> Result<Config, ConfigError> {
        match self {
            Settings::Env => Config::from_env(),
            Settings::Pairs(pairs) => Config::load(&Source::from_pairs(pairs.clone())),
        }
    }

    /// The configuration with `overrides` on top (values read from a stack's secrets) and
    /// `defaults` for keys nobody set (placeholders for a service a command does not call).
    pub fn config_with(
        &self,
        defaults: &[(&str, &str)],
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut extra: Vec<(String, String)> = overrides.to_vec();
        for (k, v) in defaults {
            if self.get(k).is_none() && !extra.iter().any(|(e, _)| e == k) {
                extra.push((k.to_string(), v.to_string()));
            }
        }
        match self {
            Settings::Env => {
                let mut source = Source::from_env_with(extra);
                let file = std::env::var("COSELL_CONFIG_FILE")
                    .ok()
                    .map(PathBuf::from)
                    .or_else(|| {
                        let p = PathBuf::from("cosell.toml");
                        p.exists().then_some(p)
                    });
                if let Some(path) = file {
                    source = source.with_file(&path)?;
                }
                Config::load(&source)
            }
            Settings::Pairs(pairs) => {
                let mut all: Vec<(String, String)> = pairs
                    .iter()
                    .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
                    .cloned()
                    .collect();
                all.extend(extra);
                Config::load(&Source::from_pairs(all))
            }
        }
    }

    /// One setting's value, when set.
    pub fn value(&self, key: &str) -> Option<String> {
        self.get(key)
    }

    /// The configured column names, validated the same way as at start-up, without needing
    /// the rest of the configuration (credentials, URLs).
    pub fn columns(&self) -> Result<ColumnNames, ConfigError> {
        let mut pairs: Vec<(String, String)> = match self {
            Settings::Env => std::env::vars()
                .filter(|(k, _)| k.starts_with(COLUMN_PREFIX))
                .collect(),
            Settings::Pairs(pairs) => pairs
                .iter()
                .filter(|(k, _)| k.starts_with(COLUMN_PREFIX))
                .cloned()
                .collect(),
        };
        // Placeholders for the settings a full load requires; only the columns are used.
        for (k, v) in [
            ("COSELL_TENANT_ID", "placeholder"),
            ("COSELL_PC_CLIENT_ID", "placeholder"),
            ("COSELL_PC_CLIENT_SECRET", "placeholder"),
            ("COSELL_DATAVERSE_URL", "https://placeholder.invalid"),
            ("COSELL_DV_CLIENT_ID", "placeholder"),
            ("COSELL_DV_CLIENT_SECRET", "placeholder"),
        ] {
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(Config::load(&Source::from_pairs(pairs))?.columns)
    }

    /// The local run's data directory: `COSELL_DATA_DIR`, else `./.cosell`.
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(
            self.get("COSELL_DATA_DIR")
                .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
        )
    }
}
