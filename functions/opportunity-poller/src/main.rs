//! Lambda entry point of the opportunity poller (EventBridge schedules with the inputs
//! `{"task":"poll"}` and `{"task":"reconcile"}`).

use std::sync::Arc;

use cosell_edge::aws;
use cosell_edge::settings::Services;
use cosell_edge::startup::Started;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use opportunity_poller::{run_task, Task};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // First: the root certificates are read while the rest is set up.
    cosell_edge::tls::preload();
    cosell_edge::logging::init();
    let metrics = cosell_edge::metrics::init()?;
    let started = Started::load(Services::BOTH).await?;
    let engine = Arc::new(started.engine()?);
    let queue = Arc::new(aws::sync_queue(&started.sdk)?);
    cosell_edge::metrics::run(
        metrics,
        service_fn(move |event: LambdaEvent<Value>| {
            let (engine, queue) = (engine.clone(), queue.clone());
            async move {
                let task = Task::of(&event.payload)?;
                Ok::<Value, Error>(run_task(task, &engine, queue.as_ref()).await?)
            }
        }),
    )
    .await
}
