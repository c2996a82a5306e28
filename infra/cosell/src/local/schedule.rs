//! Periodic jobs (the opportunity poll, the referral sweep): run now, then every interval,
//! until shutdown. A run in progress is finished, never cut off.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

pub async fn every<J, F>(
    name: &'static str,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    job: J,
) where
    J: Fn() -> F,
    F: Future<Output = Result<String, String>>,
{
    loop {
        if *shutdown.borrow() {
            break;
        }
        match job().await {
            Ok(summary) if summary.is_empty() => {}
            Ok(summary) => tracing::info!(job = name, "{summary}"),
            Err(e) => tracing::warn!(job = name, error = %e, "run failed; next run as scheduled"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::debug!(job = name, "stopped");
}
