//! Why a function could not start or could not do its work outside the engine.

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("missing setting {0}")]
    MissingSetting(&'static str),
    #[error("bad setting {name}: {reason}")]
    BadSetting { name: &'static str, reason: String },
    #[error(transparent)]
    Config(#[from] cosell::ConfigError),
    /// A Secrets Manager call failed or the secret is not the expected JSON. Never holds a
    /// secret value.
    #[error("secret {arn}: {reason}")]
    Secret { arn: String, reason: String },
    #[error(transparent)]
    Wiring(#[from] cosell::engine::wiring::WiringError),
    /// A start-up task died (it panicked or the runtime shut down).
    #[error("start-up: {0}")]
    Startup(String),
    /// No TLS client could be set up on the system's root certificates.
    #[error("TLS: {0}")]
    Tls(String),
    /// The metrics exporter could not be installed (a recorder was already set).
    #[error("metrics: {0}")]
    Metrics(String),
}
