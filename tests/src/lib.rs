//! Helpers shared by the integration tests under `tests/tests/`.

pub mod runtime_api;
pub mod schedule_expression;
pub mod harness;
