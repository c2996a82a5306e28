//! Human-readable logs on stderr, so stdout stays free for what the command prints.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Installs the global subscriber once; `RUST_LOG` overrides `default_filter`. The SDK and
/// HTTP crates stay at `info` or above whatever the level (see `cosell::log_filter`).
pub fn init(default_filter: &str) {
    let directive = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default_filter.to_string());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(cosell::log_filter::filter(&directive));
    // A second call (tests running several scenarios) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
