//! Helpers shared by the integration tests under `tests/tests/`.

pub mod convergence;
pub mod convergence_leads;
pub mod crash_store;
pub mod crm_rows;
pub mod harness;
pub mod intake_fixture;
pub mod knobs;
pub mod log_capture;
pub mod queue_worker;
pub mod request_cases;
pub mod runtime_api;
pub mod schedule_expression;
pub mod webhook_signing;
pub mod webhook_sink;
