//! cosell-sync's domain logic, clients and adapters. Nothing here knows about Lambda:
//! the functions under `functions/` and the local runner under `infra/` are thin edges
//! that build these pieces once and hand events to them.

pub mod config;
pub mod dataverse;
pub mod duration_text;
pub mod entra;
pub mod open_enum;
pub mod partner_center;
pub mod retry;
pub mod secret;

pub use config::{Config, ConfigError};
pub use secret::Secret;
