//! Partner Center: the referral resource, its enums, webhook events, the API client and the
//! webhook verifier.

pub mod cert_cache;
mod cert_fetch;
mod cert_trust;
pub mod cert_url;
pub mod classify;
pub mod client;
pub mod error;
pub mod event;
pub mod referral;
pub mod registration;
pub mod shared_referral;
pub mod status;
pub mod webhook_verify;
pub mod wire;

pub use client::{
    ListQuery, Page, PartnerCenterClient, PatchOp, REFERRALS_AUDIENCE, REFERRALS_SCOPE,
    WEBHOOK_AUDIENCE, WEBHOOK_SCOPE,
};
pub use error::PartnerCenterError;
pub use event::WebhookEvent;
pub use referral::Referral;
pub use registration::{Cleared, Registration, TestEventStatus};
pub use status::{
    ReferralDirection, ReferralQualification, ReferralStatus, ReferralSubstatus, ReferralType,
};
pub use webhook_verify::{
    CertificateSource, FetchError, HttpCertificateSource, Rejection, TrustRoots, VerifiedEvent,
    WebhookVerifier,
};
