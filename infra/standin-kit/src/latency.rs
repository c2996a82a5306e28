//! A service latency: every API request is answered no sooner than this after it arrived,
//! as a real service's network and processing time would make it. Off (zero) by default;
//! token requests and the `/_standin` controls are not delayed (tokens are cached by the
//! clients, and a test's controls are no part of the service).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Default)]
pub struct Latency {
    micros: AtomicU64,
}

impl Latency {
    pub fn set(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.micros.store(micros, Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }
}

fn delayed(path: &str) -> bool {
    !(path.starts_with("/_standin") || path.contains("/oauth2/"))
}

/// The middleware: waits out the latency, then handles the request.
pub async fn layer(State(latency): State<Arc<Latency>>, req: Request, next: Next) -> Response {
    let wait = latency.get();
    if !wait.is_zero() && delayed(req.uri().path()) {
        tokio::time::sleep(wait).await;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_tokens_are_not_delayed() {
        assert!(delayed("/v1.0/engagements/referrals/x"));
        assert!(delayed("/api/data/v9.2/opportunities"));
        assert!(!delayed("/_standin/faults"));
        assert!(!delayed("/tenant/oauth2/v2.0/token"));
        let l = Latency::default();
        assert_eq!(l.get(), Duration::ZERO);
        l.set(Duration::from_millis(150));
        assert_eq!(l.get(), Duration::from_millis(150));
    }
}
