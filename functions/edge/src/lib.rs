//! The Lambda edge of cosell-sync: what every function binary needs and that only makes
//! sense on AWS Lambda. The sync logic itself lives in `cosell::engine`; this crate turns
//! Lambda events into engine calls and engine results into Lambda answers.
//!
//! - [`logging`]: JSON logs for CloudWatch.
//! - [`metrics`]: the EMF metrics exporter, flushed after each invocation.
//! - [`settings`]: the `cosell::Config` from the environment plus the Secrets Manager secrets.
//! - [`secrets`]: reading those secrets, and writing rotated refresh tokens back.
//! - [`aws`]: the AWS SDK configuration, the DynamoDB store and the SQS queues.
//! - [`startup`]: the clients a syncing function builds once at cold start.
//! - [`batch`]: one SQS batch in, per-message dispositions and partial batch failures out.
//! - [`consumer`]: the whole of a queue-consuming function.
//! - [`tls`]: the system's root certificates, read once and shared by every HTTP client.

pub mod aws;
pub mod batch;
pub mod consumer;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod secrets;
pub mod settings;
pub mod startup;
pub mod tls;

pub use error::EdgeError;
