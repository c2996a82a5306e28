//! Lambda entry point of the webhook intake (HTTP API route `POST /partner-center/webhook`).

use std::sync::Arc;

use cosell_edge::aws;
use cosell_edge::settings::IntakeSettings;
use lambda_http::{service_fn, Error, Request};
use webhook_intake::Intake;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // First: the root certificates are read while the rest is set up.
    cosell_edge::tls::preload();
    cosell_edge::logging::init();
    let metrics = cosell_edge::metrics::init()?;
    let sdk = aws::sdk_config().await;
    let intake = Arc::new(Intake {
        verifier: IntakeSettings::from_env()?.verifier()?,
        store: Box::new(aws::store(&sdk)?),
        inbound: Box::new(aws::sync_queue(&sdk)?),
    });
    cosell_edge::metrics::run_http(
        metrics,
        service_fn(move |request: Request| {
            let intake = intake.clone();
            async move { Ok::<_, Error>(intake.handle(request).await) }
        }),
    )
    .await
}
