//! JSON logs, one object a line, which CloudWatch (and the function's JSON log format)
//! understands. The level comes from `COSELL_LOG_LEVEL`, else `RUST_LOG`, else `info`;
//! Lambda's own `AWS_LAMBDA_LOG_LEVEL` is honoured as a fallback so the template's
//! `ApplicationLogLevel` also applies.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The filter directive in force, from the variables above.
pub fn level_directive(var: impl Fn(&str) -> Option<String>) -> String {
    ["COSELL_LOG_LEVEL", "RUST_LOG", "AWS_LAMBDA_LOG_LEVEL"]
        .iter()
        .filter_map(|name| var(name))
        .map(|v| v.trim().to_ascii_lowercase())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "info".to_string())
}

/// The functions' log layer: JSON lines to `writer`, filtered by `directive` with the SDK
/// and HTTP crates held at `info` or above whatever it says (see `cosell::log_filter`).
pub fn json_layer<S, W>(writer: W, directive: &str) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .flatten_event(true)
        .with_target(true)
        // Lambda has no terminal for colours.
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(cosell::log_filter::filter(directive))
}

/// Installs the JSON subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let directive = level_directive(|name| std::env::var(name).ok());
    let _ = tracing_subscriber::registry()
        .with(json_layer(std::io::stdout, &directive))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn our_variable_wins_then_rust_log_then_lambdas() {
        assert_eq!(level_directive(vars(&[])), "info");
        assert_eq!(
            level_directive(vars(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")])),
            "warn"
        );
        assert_eq!(
            level_directive(vars(&[
                ("RUST_LOG", "debug"),
                ("AWS_LAMBDA_LOG_LEVEL", "WARN")
            ])),
            "debug"
        );
        assert_eq!(
            level_directive(vars(&[
                ("COSELL_LOG_LEVEL", "ERROR"),
                ("RUST_LOG", "debug")
            ])),
            "error"
        );
        assert_eq!(level_directive(vars(&[("COSELL_LOG_LEVEL", " ")])), "info");
    }
}
