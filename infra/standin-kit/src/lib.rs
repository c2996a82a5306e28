//! What the Partner Center and Dataverse stand-ins have in common and that is no part of
//! the connector itself.

pub mod latency;
pub mod lost;
pub mod rate_limit;
pub mod server;

pub use latency::Latency;
pub use lost::{is_write, Lost};
pub use rate_limit::{retry_after_secs, Limiter, RateLimit};
pub use server::{listen, Served};
