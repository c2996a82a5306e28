//! The functions' metrics: the `metrics` facade's recorder is the CloudWatch EMF exporter,
//! which writes one JSON document per dimension set to stdout after each invocation (the
//! [`run`] and [`run_http`] wrappers flush it); Lambda ships stdout to CloudWatch Logs,
//! which turns the documents into metrics. Names and units: `cosell::telemetry::names`.

use cosell::telemetry::names::{NAMESPACE, STACK};
pub use metrics_cloudwatch_embedded::lambda::service::{run, run_http};
use metrics_cloudwatch_embedded::Collector;

use crate::EdgeError;

/// The variable holding the stack's name (the template sets it), the [`STACK`] dimension.
pub const STACK_NAME_VARIABLE: &str = "COSELL_STACK_NAME";

/// The EMF property carrying the invocation's request id (searchable, not a dimension).
pub const REQUEST_ID_PROPERTY: &str = "RequestId";

/// Installs the exporter as the process's recorder; once per process.
pub fn init() -> Result<&'static Collector, EdgeError> {
    let stack = std::env::var(STACK_NAME_VARIABLE)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(STACK, stack)
        .with_lambda_request_id(REQUEST_ID_PROPERTY)
        .init()
        .map_err(|e| EdgeError::Metrics(e.to_string()))?;
    cosell::telemetry::describe();
    Ok(collector)
}
