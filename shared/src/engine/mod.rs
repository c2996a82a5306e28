//! The sync engine: plain async functions that take their clients, store and queues as
//! arguments. The Lambda functions and the local runner are thin edges around these.
//!
//! - [`intake`]: a webhook delivery in, an [`InboundMessage`] out (or a 4xx).
//! - [`inbound`]: one referral -> its opportunity (with account and contact).
//! - [`outbound`]: one opportunity -> its referral.
//! - [`poller`]: Dataverse changes since the stored delta link -> [`OutboundMessage`]s.
//! - [`reconcile`]: referrals updated since the sweep watermark -> [`InboundMessage`]s.
//! - [`registration`]: the webhook registration kept in line with the configured URL.
//! - [`disposition`]: what a queue worker does with a message after a sync attempt.

pub mod claim;
pub mod context;
pub mod disposition;
pub mod error;
pub mod inbound;
pub mod intake;
pub mod messages;
pub mod outbound;
pub mod poller;
pub mod reconcile;
pub mod referral_context;
pub mod registration;
pub mod wiring;

pub use context::{Engine, SyncOptions};
pub use disposition::Disposition;
pub use error::SyncError;
pub use messages::{BadMessage, InboundMessage, InboundTrigger, OutboundMessage};
