//! What the connector counts and measures, through the `metrics` facade: whichever recorder
//! the process installed (the EMF exporter in a Lambda function, an in-memory one in the
//! local runner, none in most tests) receives it.
//!
//! - [`names`]: every metric's name, unit and dimensions (the one list).
//! - [`record`]: the calls the engine, the retry loop and the token provider make.
//! - [`sync`]: a settled message's outcome, direction and latency.

pub mod names;
pub mod record;
pub mod sync;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use names::{Direction, Outcome, Service, Source};

/// Tells the installed recorder each metric's unit (call once, after installing it).
pub fn describe() {
    for m in names::ALL {
        let unit = match m.unit {
            names::Unit::Count => metrics::Unit::Count,
            names::Unit::Milliseconds => metrics::Unit::Milliseconds,
        };
        match m.kind {
            names::Kind::Counter => metrics::describe_counter!(m.name, unit, m.help),
            names::Kind::Distribution => metrics::describe_histogram!(m.name, unit, m.help),
        }
    }
}
