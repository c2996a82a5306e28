//! Partner Center: the referral resource, its enums, and webhook events.

pub mod event;
pub mod referral;
pub mod status;
pub mod wire;

pub use event::WebhookEvent;
pub use referral::Referral;
pub use status::{
    ReferralDirection, ReferralQualification, ReferralStatus, ReferralSubstatus, ReferralType,
};
