//! JSON logs, one object a line, which CloudWatch (and the function's JSON log format)
//! understands. The level comes from `COSELL_LOG_LEVEL`, else `RUST_LOG`, else `info`;
//! Lambda's own `AWS_LAMBDA_LOG_LEVEL` is honoured as a fallback so the template's
//! `ApplicationLogLevel` also applies.

use tracing_subscriber::EnvFilter;

/// The filter directive in force, from the variables above.
pub fn level_directive(var: impl Fn(&str) -> Option<String>) -> String {
    ["COSELL_LOG_LEVEL", "RUST_LOG", "AWS_LAMBDA_LOG_LEVEL"]
        .iter()
        .filter_map(|name| var(name))
        .map(|v| v.trim().to_ascii_lowercase())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "info".to_string())
}

/// Installs the JSON subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let directive = level_directive(|name| std::env::var(name).ok());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .flatten_event(true)
        .with_target(true)
        // Lambda has no terminal for colours.
        .with_ansi(false)
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
