//! Lambda entry point of the opportunity poller (EventBridge schedules with the inputs
//! `{"task":"poll"}` and `{"task":"reconcile"}`).

use std::sync::Arc;

use cosell_edge::aws::{self, QueueName};
use cosell_edge::settings::Services;
use cosell_edge::startup::Started;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use opportunity_poller::{run_task, Task};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cosell_edge::logging::init();
    let started = Started::load(Services::BOTH).await?;
    let engine = Arc::new(started.engine()?);
    let outbound = Arc::new(aws::queue(&started.sdk, QueueName::Outbound)?);
    let inbound = Arc::new(aws::queue(&started.sdk, QueueName::Inbound)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (engine, outbound, inbound) = (engine.clone(), outbound.clone(), inbound.clone());
        async move {
            let task = Task::of(&event.payload)?;
            Ok::<Value, Error>(run_task(task, &engine, outbound.as_ref(), inbound.as_ref()).await?)
        }
    }))
    .await
}
