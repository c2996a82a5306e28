//! Downloads a signing certificate: a client of its own that follows no redirect, short
//! timeouts, few retries with every wait capped, and a size cap read as the body streams.

use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::retry::{self, RetryPolicy};

/// Certificates are a few KB; a chain of five is well under this.
pub const MAX_CERT_BYTES: usize = 64 * 1024;

/// Why a download failed (for logs; the delivery gets one fixed answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("larger than {MAX_CERT_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Transport(String),
}

/// Where certificate bytes (DER or PEM) come from.
#[async_trait]
pub trait CertificateSource: Send + Sync {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, FetchError>;
}

pub struct HttpCertificateSource {
    http: reqwest::Client,
    policy: RetryPolicy,
}

impl HttpCertificateSource {
    /// `timeout` bounds each attempt; two attempts and one capped wait in all.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Self::with_builder(timeout, reqwest::Client::builder())
    }

    /// Like [`new`](Self::new), from a builder whose TLS is already set (a Lambda function
    /// shares one read of the root certificates between its clients); the rest is set here.
    pub fn with_builder(
        timeout: Duration,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, reqwest::Error> {
        let http = builder
            // A redirect could lead anywhere, past the URL checks.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .pool_max_idle_per_host(2)
            .user_agent(concat!("cosell-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpCertificateSource {
            http,
            policy: RetryPolicy {
                max_retries: 1,
                base_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(500),
                max_inline_wait: Duration::from_secs(1),
                attempt_timeout: timeout,
            },
        })
    }
}

#[async_trait]
impl CertificateSource for HttpCertificateSource {
    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let mut resp = retry::send(&self.policy, "fetch webhook certificate", || {
            self.http.get(url.clone())
        })
        .await
        .map_err(|e| FetchError::Transport(transport_kind(&e).into()))?;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_CERT_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| FetchError::Transport("body interrupted".into()))?
        {
            if bytes.len() + chunk.len() > MAX_CERT_BYTES {
                return Err(FetchError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// A fixed word for the failure: the error's own text names the URL.
fn transport_kind(e: &retry::CallError) -> &'static str {
    match e {
        retry::CallError::Timeout { .. } => "timeout",
        retry::CallError::Transport { .. } => "connection failed",
        retry::CallError::Throttled { .. } => "throttled",
        retry::CallError::Unavailable { .. } => "server error",
        retry::CallError::DeadlineReached { .. } => "out of time",
        retry::CallError::OutcomeUnknown { .. } => "no answer",
    }
}
