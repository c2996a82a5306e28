//! The sync engine: plain async functions that take their clients, store and queues as
//! arguments. The Lambda functions and the local runner are thin edges around these.
//!
//! - [`intake`]: a webhook delivery in, a [`SyncMessage`] out (or a 4xx).
//! - [`pair`]: one reconcile of a referral/opportunity pair, both directions.
//! - [`poller`]: Dataverse changes since the stored delta link -> [`SyncMessage`]s.
//! - [`lead_poller`]: flagged Dynamics 365 leads changed since the watermark -> messages.
//! - [`reconcile`]: referrals updated since the sweep watermark -> [`SyncMessage`]s.
//! - [`registration`]: the webhook registration kept in line with the configured URL.
//! - [`disposition`]: what a queue worker does with a message after a reconcile.

pub mod context;
pub mod disposition;
pub mod error;
pub mod intake;
pub mod lead_poller;
pub mod messages;
pub mod pair;
pub mod poller;
pub mod reconcile;
pub mod referral_context;
pub mod registration;
pub mod solution_poller;
pub mod wiring;

pub use context::{Engine, SyncOptions};
pub use disposition::Disposition;
pub use error::SyncError;
pub use messages::{BadMessage, Origin, SyncMessage};
pub use pair::{reconcile as reconcile_pair, PairOutcome};
