//! Lambda entry point of the webhook registration (CloudFormation custom resource, or a
//! direct invocation with `{"action":"register"|"unregister"|"show"}`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cosell::engine::wiring::partner_center_client;
use cosell_edge::settings::Services;
use cosell_edge::startup::Started;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use webhook_registration::{handle_custom_resource, handle_direct, Invocation, Registrar};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Builds the registrar, or says why it could not: a custom resource request must be
/// answered even then, or CloudFormation waits an hour.
async fn registrar() -> Result<Registrar, String> {
    let started = Started::load(Services::PARTNER_CENTER)
        .await
        .map_err(|e| e.to_string())?;
    let pc = partner_center_client(
        &started.config,
        &started.http,
        started.refresh_store.clone(),
    );
    Ok(Registrar {
        pc,
        store: Box::new(started.store.as_ref().clone()),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // First: the root certificates are read while the rest is set up.
    cosell_edge::tls::preload();
    cosell_edge::logging::init();
    let metrics = cosell_edge::metrics::init()?;
    let registrar = Arc::new(registrar().await);
    if let Err(why) = registrar.as_ref() {
        tracing::error!(error = %why, "could not start; every request will fail with this reason");
    }
    // For answering CloudFormation: its own short timeouts, independent of the settings; on
    // the root certificates the start-up has read by now.
    let http = cosell_edge::tls::reqwest_builder()?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .build()?;
    cosell_edge::metrics::run(
        metrics,
        service_fn(move |event: LambdaEvent<Value>| {
            let (registrar, http) = (registrar.clone(), http.clone());
            async move {
                let registrar = registrar.as_ref().as_ref().map_err(String::as_str);
                match Invocation::of(event.payload)? {
                    Invocation::CustomResource(request) => {
                        let budget = event
                            .context
                            .deadline()
                            .duration_since(SystemTime::now())
                            .unwrap_or_default();
                        let response =
                            handle_custom_resource(registrar, &http, &request, budget, var).await?;
                        Ok::<Value, Error>(json!({
                            "Status": response.status,
                            "PhysicalResourceId": response.physical_resource_id,
                            "Reason": response.reason,
                        }))
                    }
                    Invocation::Direct(action) => Ok(handle_direct(registrar, action, var).await?),
                }
            }
        }),
    )
    .await
}
