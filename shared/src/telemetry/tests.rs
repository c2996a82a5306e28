use super::names::{self, dim};
use super::testing::Recorded;
use crate::entra::{Grant, TokenProvider};
use crate::retry::RetryPolicy;
use crate::Secret;

/// A token request that gets no token is a renewal failure of the provider's service, and
/// one that gets one a renewal.
#[tokio::test(flavor = "current_thread")]
async fn token_renewals_and_failures_are_counted_per_service() {
    let recorded = Recorded::default();
    let _guard = metrics::set_default_local_recorder(&recorded.recorder);
    // Nothing listens on port 9 of the loopback: the request fails at once.
    let policy = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::fast()
    };
    let tokens = TokenProvider::new(
        reqwest::Client::new(),
        "http://127.0.0.1:9/token".parse().unwrap(),
        "app",
        Secret::new("s"),
        "https://api.partnercenter.microsoft.com/.default",
        Grant::ClientCredentials,
        policy,
    )
    .for_service(names::Service::PartnerCenter);
    assert!(tokens.token().await.is_err());
    let pc = [(dim::SERVICE, "partner-center")];
    assert_eq!(recorded.counter(names::TOKEN_RENEWAL_FAILURES.name, &pc), 1);
    assert_eq!(recorded.counter(names::TOKEN_RENEWALS.name, &pc), 0);
    // The token endpoint's own call is counted under Entra.
    let entra = [(dim::SERVICE, "entra")];
    assert_eq!(recorded.counter(names::CALLS.name, &entra), 1);
}
