//! cosell-sync's domain logic, clients and adapters. Nothing here knows about Lambda:
//! the functions under `functions/` and the local runner under `infra/` are thin edges
//! that build these pieces once and hand events to them.

pub mod audit;
pub mod config;
pub mod crosswalk;
pub mod custom_resource;
pub mod dataverse;
pub mod device_code;
pub mod duration_text;
pub mod engine;
pub mod entra;
pub mod log_filter;
pub mod mapping;
pub mod open_enum;
pub mod partner_center;
pub mod queue;
pub mod retry;
pub mod secret;
pub mod store;
pub mod telemetry;

pub use config::{Config, ConfigError};
pub use secret::Secret;
