//! The log filter every edge installs on top of the operator's level. Whatever that level
//! (`COSELL_LOG_LEVEL=trace` included), the AWS SDK and the HTTP and TLS crates log at
//! `info` at most: below it they write request and response bodies (the SDK's orchestrator
//! logs a `PutSecretValue` body, client secret and refresh token in it, at trace).

use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::Filter;

/// Target prefixes held to `info` (a prefix covers `aws_sdk_secretsmanager`, `hyper_util`...).
pub const CAPPED_AT_INFO: &[&str] = &[
    "aws_smithy",
    "aws_sdk",
    "aws_config",
    "aws_sigv4",
    "aws_runtime",
    "aws_credential",
    "hyper",
    "h2",
    "reqwest",
    "rustls",
    "tower",
    "lambda_runtime",
    "lambda_http",
];

/// `info` for [`CAPPED_AT_INFO`], anything for the rest.
pub fn dependency_caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED_AT_INFO.iter().map(|t| (*t, LevelFilter::INFO)))
}

/// The operator's `directive` (an `EnvFilter` text; `info` when it does not parse) with the
/// caps above: an event passes only when both let it.
pub fn filter<S>(directive: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let operator = EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new("info"));
    operator.and(dependency_caps())
}
